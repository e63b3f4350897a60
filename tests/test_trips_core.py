"""The pure trip core on synthetic NumPy tracks: segmentation, metrics, events, score, streaming."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod

from trips import (CRASH, HARSH_ACCEL, HARSH_BRAKE, HARSH_CORNER, SPEEDING, Events, Stops, TripConfig,
                   Trips, TripState, close_idle, path_hops, process_all, score, score_periods, step,
                   utc_offsets)
from tests.trip_tracks import CFG, FOREVER, G, T0, Track, commute, merge


# --- segmentation -----------------------------------------------------------------------------------


def test_straight_line_at_known_speed_is_one_trip_with_expected_metrics():
    r = process_all(commute(Track(), minutes=10, kmh=60).build(), CFG)
    assert len(r.trips) == 1
    t = r.trips
    expected = 60 / 3.6 * 600 + 2 * (60 / 3.6 / 2 * 20)       # cruise + two ramps
    assert t.distance_m[0] == pytest.approx(expected, rel=0.01)
    assert t.duration_s[0] == pytest.approx(640, abs=5)
    assert t.max_speed_kmh[0] == pytest.approx(60, abs=0.01)
    assert t.mean_speed_kmh[0] == pytest.approx(t.distance_m[0] / t.moving_s[0] * 3.6)
    assert t.moving_s[0] + t.idle_s[0] == pytest.approx(t.duration_s[0])
    assert t.n_fixes[0] == pytest.approx(641, abs=5)
    assert len(r.events) == 0
    assert Trips.road_class_source == "speed_bands"


def test_long_stop_splits_and_is_reported_as_a_stop():
    tr = commute(Track(), minutes=5)
    tr.park(600).drive(20, 0, 50).drive(300, 50).drive(20, 50, 0).park(300)
    r = process_all(tr.build(), CFG)
    assert len(r.trips) == 2
    assert len(r.stops) == 1
    assert r.stops.start_ms[0] == r.trips.end_ms[0] and r.stops.end_ms[0] == r.trips.start_ms[1]
    # 5 min parking after the first trip + 10 min: the stop lasts about 15 min.
    assert r.stops.duration_s[0] == pytest.approx(900, abs=10)
    # the trip ends when the car arrived, not min_stop_duration_s later
    arrival = T0 + (300 + 20 + 300 + 20) * 1000
    assert abs(int(r.trips.end_ms[0]) - arrival) <= 3000


def test_short_stop_at_a_light_does_not_split():
    tr = Track().park(300).drive(20, 0, 50).drive(200, 50).drive(10, 50, 0).park(60)
    tr.drive(20, 0, 50).drive(200, 50).drive(10, 50, 0).park(300)
    r = process_all(tr.build(), CFG)
    assert len(r.trips) == 1
    assert r.trips.idle_s[0] >= 55


def test_ignition_off_ends_a_trip_even_for_a_short_stop():
    def build(ign_on, ign_off):
        tr = Track().park(120, ignition=ign_off).drive(20, 0, 50, ignition=ign_on).drive(240, 50, ignition=ign_on)
        tr.drive(10, 50, 0, ignition=ign_on).park(90, ignition=ign_off)
        tr.drive(20, 0, 50, ignition=ign_on).drive(240, 50, ignition=ign_on).drive(10, 50, 0, ignition=ign_on)
        return tr.park(120, ignition=ign_off).build()

    assert len(process_all(build(1, 0), CFG).trips) == 2     # 90 s with ignition off: two trips
    assert len(process_all(build(-1, -1), CFG).trips) == 1   # same track, no ignition: 90 s < 180 s


def test_ignition_on_while_idling_keeps_the_trip_open():
    tr = Track().park(120, ignition=0).drive(20, 0, 50, ignition=1).drive(200, 50, ignition=1)
    tr.drive(10, 50, 0, ignition=1).park(600, ignition=1)           # 10 min idling, engine running
    tr.drive(20, 0, 50, ignition=1).drive(200, 50, ignition=1).drive(10, 50, 0, ignition=1).park(60, ignition=0)
    r = process_all(tr.build(), CFG)
    assert len(r.trips) == 1
    assert r.trips.idle_s[0] >= 590


def test_data_gap_longer_than_max_gap_splits():
    tr = Track().park(120).drive(20, 0, 50).drive(300, 50)
    tr.gap(2 * 3600, move_m=30_000).drive(300, 50).drive(10, 50, 0).park(300)
    r = process_all(tr.build(), CFG)
    assert len(r.trips) == 2
    assert r.trips.start_ms[1] - r.trips.end_ms[0] > 3600 * 1000
    assert r.trips.distance_m.sum() < 2 * 320 * 50 / 3.6        # the jump across the gap is not driven


@pytest.mark.parametrize("no_speed", [False, True])
def test_parked_car_with_gps_drift_for_hours_makes_no_trip(no_speed):
    tr = Track(seed=7).park(4 * 3600, drift_m=20.0, speed_noise=1.5, no_speed=no_speed)
    r = process_all(tr.build(), CFG)
    assert len(r.trips) == 0
    assert len(r.events) == 0


def test_positions_alone_find_the_trip_when_no_speed_is_reported():
    b = commute(Track(), minutes=10, kmh=60).build()
    b["speed_kmh"][:] = np.nan
    r = process_all(b, CFG)
    assert len(r.trips) == 1
    # Without Doppler speed the stay starts at the first fix within min_distance_m of the parking spot.
    assert 10_000 - 2 * CFG.min_distance_m <= r.trips.distance_m[0] <= 10_400


def test_a_single_gps_jump_while_parked_is_not_a_trip():
    b = Track(seed=2).park(1800, drift_m=5.0, speed_noise=0.5).build()
    b["lat"][900] += 0.05                                       # one fix 5.5 km away
    assert len(process_all(b, CFG).trips) == 0
    b["accuracy_m"] = np.where(np.arange(len(b["lat"])) == 900, 3000.0, 8.0).astype(np.float32)
    assert len(process_all(b, TripConfig(max_accuracy_m=100.0)).trips) == 0


def test_accuracy_filter_follows_the_fixes_when_a_batch_arrives_in_time_order():
    # Two devices interleaved in time order (not sorted by device): every fix of device 1 is too
    # inaccurate, so only device 0 is accepted, whatever the order the batch comes in.
    n = 20
    batch = {"device": np.tile([0, 1], n), "ts_ms": np.repeat(T0 + 1000 * np.arange(n), 2),
             "lat": np.full(2 * n, 45.0), "lon": np.full(2 * n, 9.0),
             "accuracy_m": np.tile(np.float32([5.0, 500.0]), n)}
    r = step(TripState.empty(), batch, TripConfig(max_accuracy_m=100.0))
    assert r.state.devices().tolist() == [0]
    assert r.state.tail["ts_ms"].tolist() == (T0 + 1000 * np.arange(n)).tolist()


def test_trips_shorter_than_the_minimums_are_dropped():
    tr = Track().park(300).drive(5, 0, 40).drive(10, 40).drive(5, 40, 0).park(300)   # ~190 m, 20 s
    assert len(process_all(tr.build(), CFG).trips) == 0
    loose = TripConfig(min_trip_distance_m=50, min_trip_duration_s=10, min_distance_m=100)
    assert len(process_all(tr.build(), loose).trips) == 1


def test_late_and_duplicate_fixes_are_ignored():
    b = commute(Track()).build()
    n = len(b["ts_ms"])
    first = {k: v[: n // 2] for k, v in b.items()}
    second = {k: np.concatenate([v[n // 2 - 10: n // 2], v[n // 2:]]) for k, v in b.items()}  # 10 replays
    st = step(TripState.empty(), first, CFG).state
    r = step(st, second, CFG)
    r2 = close_idle(r.state, FOREVER, CFG)
    whole = process_all(b, CFG)
    assert len(r.trips) + len(r2.trips) == len(whole.trips) == 1
    got = Trips.concat([r.trips, r2.trips])
    assert got.distance_m[0] == pytest.approx(whole.trips.distance_m[0], rel=1e-9)


# --- metrics ----------------------------------------------------------------------------------------


def test_distance_matches_pyproj_geod_within_0_1_percent():
    geod = Geod(ellps="WGS84")
    rng = np.random.default_rng(3)
    for lat0 in (-60.0, -33.9, 0.5, 45.0, 59.9, 69.6):
        tr = Track(lat=lat0, lon=rng.uniform(-170, 170), heading=rng.uniform(0, 360), seed=int(lat0 * 10) % 97)
        tr.park(300).drive(20, 0, 90).drive(900, 90, turn_deg_s=0.3).drive(600, 90, 130, turn_deg_s=-0.2)
        b = tr.drive(20, 130, 0).park(300).build()
        r = process_all(b, CFG)
        assert len(r.trips) == 1
        i0 = np.searchsorted(b["ts_ms"], r.trips.start_ms[0])
        i1 = np.searchsorted(b["ts_ms"], r.trips.end_ms[0])
        lat, lon = b["lat"][i0:i1 + 1], b["lon"][i0:i1 + 1]
        _, _, hops = geod.inv(lon[:-1], lat[:-1], lon[1:], lat[1:])
        ref = float(np.sum(hops))
        assert abs(r.trips.distance_m[0] - ref) / ref < 1e-3
        assert np.max(np.abs(path_hops(lat, lon) - hops) / np.maximum(hops, 1.0)) < 1e-3


def test_long_hops_match_pyproj_too():
    geod = Geod(ellps="WGS84")
    rng = np.random.default_rng(5)
    lat = rng.uniform(-70, 70, 2000)
    lon = rng.uniform(-179, 179, 2000)
    lat2 = lat + rng.uniform(-0.1, 0.1, 2000)      # hops up to ~15 km, any direction
    lon2 = lon + rng.uniform(-0.1, 0.1, 2000)
    _, _, ref = geod.inv(lon, lat, lon2, lat2)
    got = path_hops(np.stack([lat, lat2], 1).ravel(), np.stack([lon, lon2], 1).ravel())[0::2]
    assert np.max(np.abs(got - ref) / ref) < 1e-3


def test_night_share_uses_the_device_local_time():
    t0 = 1_700_000_000_000 - (1_700_000_000_000 % 86_400_000) + 21 * 3_600_000   # 21:00 UTC
    tr = Track(t0=t0 + 30 * 60_000).park(120).drive(20, 0, 60).drive(3600, 60).drive(20, 60, 0).park(300)
    b = tr.build()
    utc = process_all(b, CFG).trips                       # 21:32-22:33 UTC: not night
    assert utc.night_share[0] == pytest.approx(0.0, abs=1e-9)
    rome = process_all(b, CFG, utc_offset_min=120).trips  # 23:32-00:33 at UTC+2: all night
    assert rome.night_share[0] == pytest.approx(1.0, abs=1e-6)
    assert rome.score_time_of_day[0] < utc.score_time_of_day[0] == 100.0


def test_utc_offsets_from_zone_names_follow_daylight_saving():
    winter, summer = 1_705_000_000_000, 1_720_000_000_000    # January and July 2024
    off = utc_offsets(np.array([winter, summer, winter]), np.array([1, 1, 2]), {1: "Europe/Rome"})
    assert off.tolist() == [60, 120, 0]


def test_road_class_from_speed_bands():
    tr = Track().park(300).drive(30, 0, 120).drive(900, 120).drive(30, 120, 0).park(300)
    tr.drive(20, 0, 30).drive(900, 30).drive(20, 30, 0).park(300)
    t = process_all(tr.build(), CFG).trips
    assert len(t) == 2
    assert t.highway_m[0] / t.distance_m[0] > 0.95
    assert t.urban_m[1] / t.distance_m[1] > 0.95
    assert np.allclose(t.urban_m + t.extra_urban_m + t.highway_m, t.distance_m)


# --- events -----------------------------------------------------------------------------------------


def brake_half_g(tr: Track) -> Track:
    """Cruise at 72 km/h, then 0.5 g for 4 s (19.6 m/s lost), then roll to a stop."""
    after = 72 - 4 * 0.5 * G * 3.6
    return tr.park(300).drive(30, 0, 72).drive(120, 72).drive(4, 72, after).drive(1, after, 0).park(300)


def test_harsh_brake_of_half_a_g_is_one_harsh_braking_event():
    tr = brake_half_g(Track())
    r = process_all(tr.build(), CFG)
    assert len(r.trips) == 1
    ev = r.events
    assert ev.kind.tolist() == [HARSH_BRAKE]
    assert ev.value[0] == pytest.approx(0.5, abs=1e-3)
    assert ev.duration_s[0] == pytest.approx(4.0)
    assert ev.severity[0] == 2 and ev.trip_start_ms[0] == r.trips.start_ms[0]
    assert r.trips.event_count[0].tolist() == [0, 1, 0, 0, 0]
    assert r.trips.score[0] < 100


def test_harsh_brake_from_the_accelerometer():
    n_brake = 4
    tr = Track().park(300).drive(30, 0, 60, accel=np.full(30, 0.05)).drive(120, 60, accel=np.zeros(120))
    tr.drive(n_brake, 60, 60 - n_brake * 0.4 * G * 3.6, accel=np.full(n_brake, -0.4))
    tr.drive(10, 60 - n_brake * 0.4 * G * 3.6, 0, accel=np.full(10, -0.1)).park(300)
    ev = process_all(tr.build(), CFG).events
    assert ev.kind.tolist() == [HARSH_BRAKE]
    assert ev.value[0] == pytest.approx(0.4, abs=1e-6) and ev.duration_s[0] == pytest.approx(n_brake)


def test_harsh_acceleration_from_speed():
    top = 4 * 0.4 * G * 3.6                                     # 0.4 g for 4 s from a standstill
    tr = Track().park(300).drive(4, 0, top).drive(120, top).drive(40, top, 0).park(300)
    ev = process_all(tr.build(), CFG).events
    assert ev.kind.tolist() == [HARSH_ACCEL]
    assert ev.value[0] == pytest.approx(0.4, abs=1e-3) and ev.severity[0] == 1


def test_single_bad_speed_value_makes_no_event():
    b = commute(Track(), kmh=50).build()
    b["speed_kmh"][400] = 90.0                                  # one glitch: +40 then -40 km/h in 1 s
    assert len(process_all(b, CFG).events) == 0


def test_crash_spike_of_three_g_is_a_crash():
    accel = np.full(120, 0.02)
    accel[60] = -3.0
    tr = Track().park(300).drive(30, 0, 50).drive(120, 50, accel=accel).drive(10, 50, 0).park(300)
    ev = process_all(tr.build(), CFG).events
    assert ev.kind.tolist() == [CRASH]
    assert ev.value[0] == pytest.approx(3.0, abs=1e-6) and ev.severity[0] == 1


def test_crash_of_a_parked_car_is_reported_outside_trips():
    accel = np.zeros(600)
    accel[300] = 3.5
    tr = Track().drive(1, 0).park(600)
    tr.cols["accel_x"][-1] = accel
    tr.cols["accel_y"][-1] = np.zeros(600)
    tr.cols["accel_z"][-1] = np.zeros(600)
    r = process_all(tr.build(), CFG)
    assert len(r.trips) == 0
    assert r.events.kind.tolist() == [CRASH] and r.events.trip_start_ms[0] == -1


def test_speeding_20_over_for_30_s_is_one_speeding_event():
    tr = Track().park(300).drive(60, 0, 120).drive(300, 120).drive(10, 120, 150).drive(30, 150)
    tr.drive(10, 150, 120).drive(180, 120).drive(60, 120, 0).park(300)
    r = process_all(tr.build(), CFG)
    ev = r.events
    assert ev.kind.tolist() == [SPEEDING]
    assert ev.value[0] == pytest.approx(20.0, abs=1e-3)
    assert 30 <= ev.duration_s[0] <= 40 and ev.severity[0] == 2
    assert r.trips.speeding_s[0] == pytest.approx(ev.duration_s[0])
    assert r.trips.score_speed[0] < 100 and r.trips.score_smoothness[0] == 100


def test_harsh_cornering_from_heading_rate():
    # 40 km/h turning 25 deg/s for 4 s: 11.1 m/s x 0.436 rad/s = 4.85 m/s^2 = 0.49 g
    tr = Track().park(300).drive(30, 0, 40).drive(60, 40).drive(4, 40, turn_deg_s=25).drive(60, 40)
    r = process_all(tr.drive(20, 40, 0).park(300).build(), CFG)
    assert r.events.kind.tolist() == [HARSH_CORNER]
    assert r.events.value[0] == pytest.approx(0.49, abs=0.02)


# --- streaming --------------------------------------------------------------------------------------


def run_split(fixes: dict[str, np.ndarray], cuts, cfg=CFG, roundtrip="bytes"):
    """Feed ``fixes`` in batches cut at ``cuts`` (indices into arrival order = ts order), serialising
    the state between batches; then close everything."""
    arrival = np.argsort(fixes["ts_ms"], kind="stable")
    bounds = [0, *sorted(set(cuts)), len(arrival)]
    state = TripState.empty()
    trips, events, stops = [], [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        rows = arrival[a:b]
        rows = rows[np.lexsort((fixes["ts_ms"][rows], fixes["device"][rows]))]
        r = step(state, {k: v[rows] for k, v in fixes.items()}, cfg)
        state = (TripState.from_bytes(r.state.to_bytes()) if roundtrip == "bytes"
                 else TripState.from_dict(r.state.to_dict()))
        trips.append(r.trips), events.append(r.events), stops.append(r.stops)
    r = close_idle(state, FOREVER, cfg)
    trips.append(r.trips), events.append(r.events), stops.append(r.stops)
    t, e, s = Trips.concat(trips), Events.concat(events), Stops.concat(stops)
    return (t.take(np.lexsort((t.start_ms, t.device))), e.take(np.lexsort((e.kind, e.ts_ms, e.device))),
            s.take(np.lexsort((s.start_ms, s.device))))


def assert_same(whole, split):
    (wt, we, ws), (st_, se, ss) = whole, split
    assert wt.device.tolist() == st_.device.tolist()
    assert wt.start_ms.tolist() == st_.start_ms.tolist()
    assert wt.end_ms.tolist() == st_.end_ms.tolist()
    np.testing.assert_allclose(st_.distance_m, wt.distance_m, rtol=1e-9)
    np.testing.assert_allclose(st_.moving_s, wt.moving_s, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(st_.score, wt.score, rtol=1e-9)
    assert st_.event_count.tolist() == wt.event_count.tolist()
    assert (we.device.tolist(), we.ts_ms.tolist(), we.kind.tolist(), we.severity.tolist(),
            we.trip_start_ms.tolist()) == (se.device.tolist(), se.ts_ms.tolist(), se.kind.tolist(),
                                           se.severity.tolist(), se.trip_start_ms.tolist())
    np.testing.assert_allclose(se.value, we.value, rtol=1e-6)
    assert (ws.start_ms.tolist(), ws.end_ms.tolist()) == (ss.start_ms.tolist(), ss.end_ms.tolist())


LEG = st.one_of(
    st.tuples(st.just("drive"), st.integers(5, 400), st.floats(8, 140), st.floats(-15, 15)),
    st.tuples(st.just("brake"), st.integers(2, 6), st.floats(30, 120), st.just(0.0)),
    st.tuples(st.just("park"), st.integers(10, 900), st.floats(0, 25), st.just(0.0)),
    st.tuples(st.just("gap"), st.integers(30, 5000), st.floats(0, 20_000), st.just(0.0)),
    st.tuples(st.just("jolt"), st.integers(3, 60), st.floats(0, 4), st.floats(-1, 1)),
)


def build_device(device, legs, ignition, seed):
    tr = Track(device=device, lat=40 + device, seed=seed)
    tr.park(30, ignition=0 if ignition else -1)
    kmh = 0.0
    for kind, seconds, x, turn in legs:
        on = 1 if ignition else -1
        if kind == "drive":
            tr.drive(seconds, kmh, x, turn_deg_s=turn, ignition=on)
            kmh = x
        elif kind == "brake":
            tr.drive(seconds, kmh, max(kmh - x, 0), ignition=on)
            kmh = max(kmh - x, 0)
        elif kind == "jolt":                      # accelerometer on, one peak of x g (sign from turn)
            accel = np.full(seconds, 0.05 * np.sign(turn))
            accel[seconds // 2] = x * np.sign(turn)
            tr.drive(seconds, kmh, accel=accel, ignition=on)
        elif kind == "park":
            tr.drive(3, kmh, 0, ignition=on).park(seconds, drift_m=x, ignition=0 if ignition else -1)
            kmh = 0.0
        else:
            tr.gap(seconds, move_m=x)
    return tr.park(30, ignition=0 if ignition else -1).build()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(devices=st.lists(st.tuples(st.lists(LEG, min_size=1, max_size=8), st.booleans()), min_size=1, max_size=3),
       cut_fractions=st.lists(st.floats(0, 1), max_size=12), seed=st.integers(0, 1000),
       roundtrip=st.sampled_from(["bytes", "dict"]))
def test_any_split_into_batches_gives_the_same_trips_as_the_whole_stream(devices, cut_fractions, seed, roundtrip):
    fixes = merge(*(build_device(d + 1, legs, ign, seed + d) for d, (legs, ign) in enumerate(devices)))
    n = len(fixes["ts_ms"])
    whole = process_all(fixes, CFG)
    whole = (whole.trips, whole.events, whole.stops)
    assert_same(whole, run_split(fixes, [], CFG, roundtrip))
    assert_same(whole, run_split(fixes, [int(f * n) for f in cut_fractions], CFG, roundtrip))


def test_split_at_every_fix_gives_the_same_trips():
    tr = commute(Track(), minutes=4).drive(20, 0, 60).drive(60, 60).drive(5, 60, 0).park(200)
    fixes = merge(tr.build(), commute(Track(device=2, lat=50.0), minutes=3).build())
    whole = process_all(fixes, CFG)
    assert len(whole.trips) >= 3 and len(whole.events) >= 1
    assert_same((whole.trips, whole.events, whole.stops), run_split(fixes, range(1, len(fixes["ts_ms"]))))


def test_close_idle_closes_the_trip_of_a_silent_device():
    b = Track().park(300).drive(20, 0, 50).drive(300, 50).build()   # the device stops reporting mid-trip
    r = step(TripState.empty(), b, CFG)
    assert len(r.trips) == 0
    last = int(b["ts_ms"][-1])
    early = close_idle(r.state, last + 60_000, CFG)
    assert len(early.trips) == 0 and early.state.to_bytes() == r.state.to_bytes()
    late = close_idle(r.state, last + int(CFG.idle_close_s * 1000) + 1, CFG)
    assert len(late.trips) == 1 and late.trips.end_ms[0] == last
    replay = step(late.state, b, CFG)                                # a restart replays stored fixes
    assert len(replay.trips) == len(replay.events) == 0
    assert replay.state.to_bytes() == late.state.to_bytes()
    # the next fixes start afresh, as after a gap
    nxt = Track(t0=last + 700_000, lon=float(b["lon"][-1])).drive(20, 0, 50).drive(300, 50).drive(10, 50, 0)
    r2 = step(late.state, nxt.park(300).build(), CFG)
    r3 = close_idle(r2.state, FOREVER, CFG)
    assert len(r2.trips) + len(r3.trips) == 1


def test_state_select_and_combine_per_device():
    fixes = merge(commute(Track(device=1)).build(), commute(Track(device=2, lat=48.0)).build())
    half = {k: v[fixes["ts_ms"] < T0 + 500_000] for k, v in fixes.items()}
    state = step(TripState.empty(), half, CFG).state
    parts = [TripState.from_bytes(state.select([d]).to_bytes()) for d in (1, 2)]
    again = TripState.combine(parts)
    assert again.to_bytes() == state.to_bytes()


# --- score ------------------------------------------------------------------------------------------

TOTALS = st.tuples(st.floats(0, 1e6), st.floats(0, 1), st.floats(0, 1e6),
                   st.lists(st.floats(0, 1e4), min_size=5, max_size=5))


@given(st.lists(TOTALS, min_size=1, max_size=20))
def test_score_is_bounded_and_deterministic(rows):
    dist = np.array([r[0] for r in rows])
    night = np.array([r[1] for r in rows]) * dist
    excess = np.array([r[2] for r in rows])
    sev = np.array([r[3] for r in rows])
    a = score(dist, night, excess, sev, CFG)
    b = score(dist.copy(), night.copy(), excess.copy(), sev.copy(), CFG)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    for part in (a.score, a.smoothness, a.speed, a.time_of_day):
        assert np.all((part >= 0) & (part <= 100))
    assert np.allclose(a.score, 100 - a.deductions.sum(axis=1))


def test_score_formula_by_hand():
    # 50 km, 1 harsh brake of severity 2, 2 km/h-min of speeding excess, a fifth at night
    s = score([50_000.0], [10_000.0], [120.0], [[0, 2, 0, 0, 0]], CFG)
    brake = 1.5 * 2 / 0.5             # points x severity per 100 km
    speed = 0.5 * 2 / 0.5
    night = 15 * 0.2
    assert s.score[0] == pytest.approx(100 - brake - speed - night)
    assert s.deductions[0].tolist() == pytest.approx([0, brake, 0, speed, night])
    assert s.smoothness[0] == pytest.approx(100 * (1 - brake / 50))
    clean = score([50_000.0], [0.0], [0.0], [[0] * 5], CFG)
    assert clean.score[0] == 100


def test_period_score_weighs_trips_by_distance():
    tr = brake_half_g(Track())
    tr.drive(30, 0, 90).drive(1800, 90).drive(30, 90, 0).park(300)
    trips = process_all(tr.build(), CFG).trips
    assert len(trips) == 2
    keys, s = score_periods(trips, np.zeros(len(trips), int), CFG)
    assert keys.tolist() == [0]
    assert trips.score.min() <= s.score[0] <= 100
    again = score_periods(trips, np.zeros(len(trips), int), CFG)[1]
    assert again.score[0] == s.score[0]


def test_states_are_immutable_values():
    fixes = merge(commute(Track(device=1)).build(), commute(Track(device=2, lat=48.0)).build())
    early = {k: v[fixes["ts_ms"] < T0 + 400_000] for k, v in fixes.items()}
    late = {k: v[fixes["ts_ms"] >= T0 + 400_000] for k, v in fixes.items()}
    s1 = step(TripState.empty(), early, CFG).state
    snapshot = s1.to_bytes()
    a = step(s1, late, CFG)
    b = step(s1, late, CFG)                  # the same old state again: must not disturb `a`
    assert s1.to_bytes() == snapshot
    assert a.state.to_bytes() == b.state.to_bytes()
    ca, cb = close_idle(a.state, FOREVER, CFG), close_idle(b.state, FOREVER, CFG)
    assert len(a.trips) + len(ca.trips) == 2
    assert ca.trips.start_ms.tolist() == cb.trips.start_ms.tolist()
