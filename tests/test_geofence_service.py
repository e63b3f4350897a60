"""Geofences end to end: fences made through the API, fixes published over MQTT to a full runtime, events
and notices read back from PostgreSQL. Expected events are the pure core's on the same fixes, so the
service is checked for losing, repeating or misattributing none of them."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import numpy as np
import pytest

from geofence import FenceSet, GeofenceState, step
from geofence.scope import fence_of
from storage import devices
from storage.geofences import fence_set_version
from tests.geofence_tracks import fixes, offset, publish, square
from tests.helpers import add_account, login, make_settings, wait_for_rows
from vigil.errors import RejectedInput

LAT0, LON0 = 45.4642, 9.19   # Milan
#: Logins: two customers (customer id = the name, the owner of their devices) and an operator.
ALICE, BOB, OLGA = "alice", "bob", "olga"


def now_ms() -> int:
    return int(time.time() * 1000)


async def start(runtime_factory, mqtt_url, database_url, settings=None, **processor):
    runtime = await runtime_factory(settings or make_settings(mqtt_url, database_url))
    for name, value in processor.items():
        setattr(runtime.geofence_processor, name, value)
    for name, role in ((ALICE, "customer"), (BOB, "customer"), (OLGA, "operator")):
        try:
            await add_account(runtime.db, name, role=role)
        except RejectedInput as exc:     # a restarted runtime on the same database
            assert exc.reason == "username_taken"
    return runtime


async def make_fence(runtime, path: str, feature: dict, user: str) -> dict:
    async with httpx.AsyncClient(base_url=runtime.http_url, timeout=10) as http:
        answer = await http.post(path, json=feature, headers=await login(http, user))
    assert answer.status_code == 201, answer.text
    return answer.json()


async def fences_loaded(runtime, timeout: float = 20.0) -> None:
    """Until the processor runs on the fence set as it is now in the database."""
    want = await fence_set_version(runtime.db)
    for _ in range(int(timeout / 0.05)):
        if runtime.geofence_processor.fence_version >= want:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("fence set not reloaded")


async def settled(runtime, code: int, last_ts: int, timeout: float = 60.0) -> None:
    """Until the processor has stepped over the device's fix at ``last_ts``."""
    for _ in range(int(timeout / 0.05)):
        st = runtime.geofence_processor.state
        at = np.searchsorted(st.device, code)
        if at < len(st.device) and st.device[at] == code and st.last_ts[at] >= last_ts:
            await asyncio.sleep(0.3)   # the events of that step are written after the state moves
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"device {code} not processed up to {last_ts}")


async def stored_events(db, code: int | None = None) -> list[tuple]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT device_id, fence_id, kind, (extract(epoch FROM ts) * 1000)::bigint,"
            " (extract(epoch FROM since) * 1000)::bigint, lat, lon, notified FROM geofence_events"
            " WHERE %s::bigint IS NULL OR device_id = %s ORDER BY device_id, ts, fence_id, kind", (code, code))
        return await cur.fetchall()


async def notices(db) -> list[tuple]:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT dedup_key, recipient, channel, status, subject FROM notifications"
                                 " ORDER BY dedup_key")
        return await cur.fetchall()


def expected(code: int, track: list[dict], rows: list[dict]) -> list[tuple]:
    """The pure core's events for one device's fixes (as published: 7 decimals) against ``rows``."""
    fs = FenceSet.compile([fence_of(fence_id=r["id"], kind="circle" if r["geometry"]["type"] == "Point" else "polygon",
                                    geometry=r["geometry"], radius_m=r["properties"].get("radius_m"),
                                    name=r["properties"]["name"], anti_flap=r["properties"]["anti_flap"])
                           for r in rows])
    batch = {"device": np.full(len(track), code, np.int64), "ts_ms": np.array([f["ts"] for f in track], np.int64),
             "lat": np.array([round(f["lat"], 7) for f in track]), "lon": np.array([round(f["lon"], 7) for f in track]),
             "accuracy_m": np.array([round(f["accuracy_m"], 2) for f in track])}
    _, ev = step(GeofenceState.empty(), batch, fs)
    return [(int(d), int(f), k, int(t), int(s)) for (d, f, k, t), s in zip(ev.rows(), ev.since_ms)]


def key(rows) -> list[tuple]:
    """(device, fence, kind, ts, since) of events, ordered by device, time, fence, kind."""
    return sorted((tuple(r[:5]) for r in rows), key=lambda r: (r[0], r[3], r[1], r[2]))


def line(t0_ms: int, lat, lon, east_m, north_m, every_s: float, **kw) -> list[dict]:
    la, lo = offset(lat, lon, east_m, north_m)
    return fixes(t0_ms, la, lo, every_s=every_s, **kw)


async def test_car_fences_from_the_api_give_exact_events_and_notices(mqtt_url, database_url, runtime_factory):
    runtime = await start(runtime_factory, mqtt_url, database_url)
    car_a, = await devices.provision(runtime.db, ["car-alice"], kind="car", owner="alice")
    car_b, = await devices.provision(runtime.db, ["car-bob"], kind="car", owner="bob")
    ztl = {"type": "Feature", "properties": {"name": "ZTL"},
           "geometry": {"type": "Polygon", "coordinates": [square(LAT0, LON0, 1000), square(LAT0, LON0, 300)[::-1]]}}
    alice_ztl = await make_fence(runtime, "/v1/geofences", ztl, ALICE)
    bob_ztl = await make_fence(runtime, "/v1/geofences", ztl, BOB)
    await fences_loaded(runtime)

    east = np.arange(-1475.0, 1500.0, 50.0)          # 5 m/s, a fix every 10 s: 10 minutes
    t0 = now_ms() - 11 * 60_000
    through_hole = line(t0, LAT0, LON0, east, np.zeros_like(east), 10)
    north_of_hole = line(t0, LAT0, LON0, east, np.full_like(east, 600.0), 10)
    await publish(mqtt_url, "car", "car-alice", through_hole)
    await publish(mqtt_url, "car", "car-bob", north_of_hole)
    await settled(runtime, car_a.id, through_hole[-1]["ts"])
    await settled(runtime, car_b.id, north_of_hole[-1]["ts"])

    want_a = expected(car_a.id, through_hole, [alice_ztl])
    want_b = expected(car_b.id, north_of_hole, [bob_ztl])
    assert [w[2] for w in want_a] == ["enter", "exit", "enter", "exit"] and [w[2] for w in want_b] == ["enter", "exit"]
    rows = await stored_events(runtime.db)
    assert key(rows) == key(want_a + want_b)        # each car only its owner's fence
    at = {(car_a.id, f["ts"]): f for f in through_hole} | {(car_b.id, f["ts"]): f for f in north_of_hole}
    for r in rows:   # the position of the confirming fix
        fix = at[r[0], r[3]]
        assert (r[5], r[6]) == pytest.approx((fix["lat"], fix["lon"]), abs=1e-6) and r[7] is True

    # Six events, three channels each, to the fence's owner; the dispatcher sends them.
    for _ in range(100):
        sent = await notices(runtime.db)
        if len(sent) == 18 and all(n[3] == "sent" for n in sent):
            break
        await asyncio.sleep(0.1)
    assert len(sent) == 18 and {n[3] for n in sent} == {"sent"}
    assert sorted((n[1], n[2]) for n in sent) == sorted([("alice", c) for c in ("push", "sms", "email")] * 4
                                                       + [("bob", c) for c in ("push", "sms", "email")] * 2)
    assert {n[4] for n in sent if n[1] == "bob"} == {"car-bob entered ZTL", "car-bob left ZTL"}

    async with httpx.AsyncClient(base_url=runtime.http_url, timeout=10) as http:
        alice, bob, olga = [await login(http, name) for name in (ALICE, BOB, OLGA)]
        page = (await http.get("/v1/geofence-events", headers=alice, params={"limit": 3})).json()
        assert [e["kind"] for e in page["items"]] == ["enter", "exit", "enter"] and page["next_offset"] == 3
        assert {e["device"] for e in page["items"]} == {"car-alice"}
        rest = (await http.get("/v1/geofence-events", headers=alice, params={"offset": 3})).json()
        assert [e["kind"] for e in rest["items"]] == ["exit"]
        window = {"device": "car-alice", "from": _iso(want_a[1][3]), "to": _iso(want_a[3][3])}
        assert [e["kind"] for e in (await http.get("/v1/geofence-events", params=window, headers=olga)).json()[
            "items"]] == ["exit", "enter"]
        # Another customer's car is not found, exactly like a car that does not exist.
        assert (await http.get("/v1/geofence-events", headers=bob, params={"device": "car-alice"})).status_code == 404


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def parked_drift(t0_ms: int, n: int, seed: int = 1) -> list[dict]:
    """A car parked 5 m inside a 200 m circle's edge; each fix off by 20-100 m, reported honestly."""
    rng = np.random.default_rng(seed)
    base = offset(LAT0, LON0, 195.0, 0.0)
    drift, ang = rng.uniform(20, 100, n), rng.uniform(0, 2 * np.pi, n)
    lat, lon = offset(base[0], base[1], drift * np.cos(ang), drift * np.sin(ang))
    return fixes(t0_ms, lat, lon, every_s=60, accuracy_m=drift)


async def test_parked_car_for_24_hours_next_to_an_edge_gives_no_event(mqtt_url, database_url, runtime_factory):
    """The same stream flaps without anti-flap (a second, identical fence with it turned off)."""
    runtime = await start(runtime_factory, mqtt_url, database_url)
    car, = await devices.provision(runtime.db, ["parked"], kind="car", owner="alice")
    circle = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [LON0, LAT0]},
              "properties": {"name": "home", "radius_m": 200.0}}
    guarded = await make_fence(runtime, "/v1/geofences", circle, ALICE)
    circle["properties"]["anti_flap"] = {"enabled": False}
    naive = await make_fence(runtime, "/v1/geofences", circle, ALICE)
    await fences_loaded(runtime)
    track = parked_drift(now_ms() - 86_400_000, 1440)      # 24 h, one fix a minute
    await publish(mqtt_url, "car", "parked", track, per_message=60)
    await settled(runtime, car.id, track[-1]["ts"])
    rows = await stored_events(runtime.db)
    assert [r for r in rows if r[1] == guarded["id"]] == []
    assert len([r for r in rows if r[1] == naive["id"]]) > 10
    assert key(rows) == key(expected(car.id, track, [guarded, naive]))


@pytest.mark.parametrize("inside_m", [5.0, -10.0], ids=["5m-inside", "10m-outside"])
async def test_parked_car_with_gaussian_15m_jitter_at_the_edge(mqtt_url, database_url, runtime_factory, inside_m):
    runtime = await start(runtime_factory, mqtt_url, database_url)
    car, = await devices.provision(runtime.db, ["jitter"], kind="car", owner="alice")
    fence = await make_fence(runtime, "/v1/geofences", {"type": "Feature", "properties": {"name": "home", "radius_m": 200.0},
                                                "geometry": {"type": "Point", "coordinates": [LON0, LAT0]}}, ALICE)
    await fences_loaded(runtime)
    rng = np.random.default_rng(7)
    base = offset(LAT0, LON0, 200.0 - inside_m, 0.0)
    lat, lon = offset(base[0], base[1], rng.normal(0, 15, 1440), rng.normal(0, 15, 1440))
    track = fixes(now_ms() - 86_400_000, lat, lon, every_s=60, accuracy_m=15.0)
    await publish(mqtt_url, "car", "jitter", track, per_message=60)
    await settled(runtime, car.id, track[-1]["ts"])
    rows = await stored_events(runtime.db)
    if key(rows) != key(expected(car.id, track, [fence])):
        pytest.fail("the service disagrees with the core")   # a service fault, not the known core limit
    assert rows == []


async def test_pet_walks_out_of_its_fence_and_back(mqtt_url, database_url, runtime_factory):
    runtime = await start(runtime_factory, mqtt_url, database_url)
    pet, = await devices.provision(runtime.db, ["rex"], kind="pet", owner="alice")
    home = await make_fence(runtime, "/v1/pets/rex/fences", {
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [LON0, LAT0]},
        "properties": {"name": "garden", "radius_m": 200.0}}, ALICE)
    await fences_loaded(runtime)
    speed, every, sigma = 1.2, 15, 5.0                 # m/s walking, a fix every 15 s, 5 m GPS noise
    back_at = 370.0                                    # out to 300 m, 2 min there, back home
    t = np.arange(0, 690, every, dtype=float)
    east = np.minimum(np.minimum(t * speed, 300.0), np.maximum(300.0 - (t - back_at) * speed, 0))
    rng = np.random.default_rng(3)
    lat, lon = offset(LAT0, LON0, east + rng.normal(0, sigma, len(t)), rng.normal(0, sigma, len(t)))
    t0 = now_ms() - 12 * 60_000
    track = fixes(t0, lat, lon, every_s=every, accuracy_m=8.0)
    await publish(mqtt_url, "pet", "rex", track)
    await settled(runtime, pet.id, track[-1]["ts"])
    rows = await stored_events(runtime.db)
    assert [r[2] for r in rows] == ["exit", "enter"] and {r[1] for r in rows} == {home["id"]}
    assert key(rows) == key(expected(pet.id, track, [home]))
    # True crossings of the 200 m edge; one confirmation window: walking through the hysteresis band
    # plus 3 σ of noise, then the three confirming fixes.
    true_exit, true_return = t0 + 200 / speed * 1000, t0 + (back_at + 100 / speed) * 1000
    window_ms = ((30.0 + 3 * sigma) / speed + 3 * every) * 1000
    assert abs(rows[0][3] - true_exit) <= window_ms and abs(rows[1][3] - true_return) <= window_ms
    for _ in range(50):
        if len(await notices(runtime.db)) == 6:
            break
        await asyncio.sleep(0.1)
    assert {(n[1], n[4]) for n in await notices(runtime.db)} == {("alice", "rex left garden"),
                                                                 ("alice", "rex entered garden")}


async def test_sparse_fixes_through_a_ztl_give_one_cross(mqtt_url, database_url, runtime_factory):
    runtime = await start(runtime_factory, mqtt_url, database_url)
    car, = await devices.provision(runtime.db, ["sparse"], kind="car", owner="alice")
    ztl = await make_fence(runtime, "/v1/geofences", {"type": "Feature", "properties": {"name": "ZTL"},
                           "geometry": {"type": "Polygon", "coordinates": [square(LAT0, LON0, 150)]}}, ALICE)
    await fences_loaded(runtime)
    east = np.array([-2650.0, -1650, -650, 350, 1350, 2350])    # 60 km/h, a fix a minute, none inside
    track = line(now_ms() - 10 * 60_000, LAT0, LON0, east, np.zeros_like(east), 60)
    await publish(mqtt_url, "car", "sparse", track)
    await settled(runtime, car.id, track[-1]["ts"])
    rows = await stored_events(runtime.db)
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [(ztl["id"], "cross", track[3]["ts"], track[2]["ts"])]


async def test_fences_at_70_degrees_and_across_the_antimeridian(mqtt_url, database_url, runtime_factory):
    runtime = await start(runtime_factory, mqtt_url, database_url)
    north, = await devices.provision(runtime.db, ["tromso"], kind="car", owner="alice")
    fiji, = await devices.provision(runtime.db, ["taveuni"], kind="car", owner="alice")
    ring = await make_fence(runtime, "/v1/geofences", {"type": "Feature", "properties": {"name": "N", "radius_m": 500.0},
                            "geometry": {"type": "Point", "coordinates": [18.95, 70.0]}}, ALICE)
    dateline = await make_fence(runtime, "/v1/geofences", {"type": "Feature", "properties": {"name": "D"},
        "geometry": {"type": "Polygon", "coordinates": [[[179.99, -16.6], [-179.99, -16.6], [-179.99, -16.5],
                                                         [179.99, -16.5], [179.99, -16.6]]]}}, ALICE)
    await fences_loaded(runtime)
    east = np.arange(-1475.0, 1500.0, 50.0)
    t0 = now_ms() - 10 * 60_000
    at70 = line(t0, 70.0, 18.95, east, np.zeros_like(east), 10)          # west to east through the circle
    across = line(t0, -16.55, 180.0, east, np.zeros_like(east), 10)     # across ±180 through the polygon
    await publish(mqtt_url, "car", "tromso", at70)
    await publish(mqtt_url, "car", "taveuni", across)
    await settled(runtime, north.id, at70[-1]["ts"])
    await settled(runtime, fiji.id, across[-1]["ts"])
    rows = await stored_events(runtime.db)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (north.id, ring["id"], "enter"), (north.id, ring["id"], "exit"),
        (fiji.id, dateline["id"], "enter"), (fiji.id, dateline["id"], "exit")]
    # The circle is 500 m of geodesic radius at 70°N (not 500 m of degrees): entered about 500 m west,
    # confirmed once three fixes 50 m apart are 30 m (the margin) inside.
    enter_east = east[[f["ts"] for f in at70].index(rows[0][3])]
    assert -500 + 30 <= enter_east <= -500 + 30 + 3 * 50
    half_width = 0.01 * 111_320 * np.cos(np.radians(16.55))             # the polygon spans 0.02° of longitude
    enter_east = east[[f["ts"] for f in across].index(rows[2][3])]
    assert -half_width + 30 <= enter_east <= -half_width + 30 + 3 * 50


def through_hole(t0_ms: int) -> list[dict]:
    east = np.arange(-1475.0, 1500.0, 50.0)
    return line(t0_ms, LAT0, LON0, east, np.zeros_like(east), 10)


async def ztl_with_hole(runtime) -> dict:
    return await make_fence(runtime, "/v1/geofences", {
        "type": "Feature", "properties": {"name": "ZTL"},
        "geometry": {"type": "Polygon", "coordinates": [square(LAT0, LON0, 1000), square(LAT0, LON0, 300)[::-1]]}},
        ALICE)


@pytest.mark.parametrize("kafka, crash", [(False, False), (False, True), (True, True)],
                         ids=["clean-stop", "crash-without-saving", "kafka-crash-without-saving"])
async def test_restart_mid_stream_neither_repeats_nor_misses(mqtt_url, database_url, runtime_factory, request,
                                                             kafka, crash):
    """A crash on Kafka also leaves the offsets uncommitted: the batches come again from the bus."""
    settings = make_settings(mqtt_url, database_url, request.getfixturevalue("kafka_bootstrap") if kafka else None)
    runtime = await start(runtime_factory, mqtt_url, database_url, settings, save_every_s=3600.0 if crash else 5.0)
    car, = await devices.provision(runtime.db, ["restart"], kind="car", owner="alice")
    fence = await ztl_with_hole(runtime)
    await fences_loaded(runtime)
    track = through_hole(now_ms() - 11 * 60_000)
    want = key(expected(car.id, track, [fence]))
    # Split right after the first fix outside the hole's edge: that exit is pending across the restart.
    exit_ts = want[1][4]
    half = [f["ts"] for f in track].index(exit_ts) + 1
    seq = await publish(mqtt_url, "car", "restart", track[:half])
    await settled(runtime, car.id, track[half - 1]["ts"])
    assert key(await stored_events(runtime.db)) == want[:1]
    assert await wait_for_rows(runtime.db, "fixes", half) == half
    if crash:
        runtime.geofence_processor = None       # stop() then saves nothing: as if the process died
    await runtime.stop()

    runtime = await start(runtime_factory, mqtt_url, database_url, settings)
    if crash:   # the first half's fixes after the one save at start-up come from storage again
        assert runtime.geofence_processor.replayed_fixes >= half - 3
    await publish(mqtt_url, "car", "restart", track[half:], seq0=seq)
    await settled(runtime, car.id, track[-1]["ts"])
    assert key(await stored_events(runtime.db)) == want
    keys = [n[0] for n in await notices(runtime.db)]
    assert len(keys) == 3 * len(want) == len(set(keys))


async def test_late_data_is_stored_but_its_notices_suppressed(mqtt_url, database_url, runtime_factory):
    runtime = await start(runtime_factory, mqtt_url, database_url)
    car, = await devices.provision(runtime.db, ["late"], kind="car", owner="alice")
    fence = await ztl_with_hole(runtime)
    await fences_loaded(runtime)
    track = through_hole(now_ms() - 3 * 3_600_000)        # a box flushing a buffer from three hours ago
    await publish(mqtt_url, "car", "late", track)
    await settled(runtime, car.id, track[-1]["ts"])
    rows = await stored_events(runtime.db)
    assert key(rows) == key(expected(car.id, track, [fence])) and len(rows) == 4
    assert {r[7] for r in rows} == {False}
    await asyncio.sleep(1.5)                             # the dispatcher has had its rounds
    assert [n[3] for n in await notices(runtime.db)] == ["suppressed"] * 12


async def test_track_stream_yields_a_newly_published_fix(mqtt_url, database_url, runtime_factory):
    runtime = await start(runtime_factory, mqtt_url, database_url)
    await devices.provision(runtime.db, ["stream-pet"], kind="pet", owner="alice")
    old = fixes(now_ms() - 60_000, 45.1, 9.1, every_s=1)
    await publish(mqtt_url, "pet", "stream-pet", old)
    assert await wait_for_rows(runtime.db, "device_last_fix", 1) == 1
    async with httpx.AsyncClient(base_url=runtime.http_url, timeout=30) as http:
        alice, bob = await login(http, ALICE), await login(http, BOB)
        async with http.stream("GET", "/v1/pets/stream-pet/track/stream", headers=alice) as stream:
            assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert await anext(lines) == ": tracking"
            new = fixes(now_ms() - 1000, [45.2, 45.3], [9.2, 9.3], every_s=0.5, accuracy_m=7.0)
            await publish(mqtt_url, "pet", "stream-pet", new)
            got = []
            while len(got) < 2:
                text = await asyncio.wait_for(anext(lines), 20)
                if text.startswith("data: "):
                    got.append(json.loads(text[6:]))
                elif text.startswith("id: "):
                    assert int(text[4:]) in (new[0]["ts"], new[1]["ts"])
    assert [(g["lat"], g["lon"], g["accuracy_m"]) for g in got] == [(45.2, 9.2, 7.0), (45.3, 9.3, 7.0)]
    # A client reconnecting with Last-Event-ID gets what came after that fix, at once; here as a browser's
    # EventSource does it, with the token in the query.
    async with httpx.AsyncClient(base_url=runtime.http_url, timeout=30) as http:
        resume, token = {"Last-Event-ID": str(old[-1]["ts"])}, alice["Authorization"].removeprefix("Bearer ")
        async with http.stream("GET", "/v1/pets/stream-pet/track/stream", headers=resume,
                               params={"access_token": token}) as stream:
            lines = stream.aiter_lines()
            data = []
            while len(data) < 2:
                text = await asyncio.wait_for(anext(lines), 20)
                if text.startswith("data: "):
                    data.append(json.loads(text[6:])["lat"])
    assert data == [45.2, 45.3]
    async with httpx.AsyncClient(base_url=runtime.http_url, timeout=10) as http:
        assert (await http.get("/v1/pets/stream-pet/track/stream", headers=bob)).status_code == 404
        

async def test_fence_edits_apply_to_the_running_processor(mqtt_url, database_url, runtime_factory):
    runtime = await start(runtime_factory, mqtt_url, database_url)
    car, = await devices.provision(runtime.db, ["editor"], kind="car", owner="alice")
    first = await make_fence(runtime, "/v1/geofences", {"type": "Feature", "properties": {"name": "A", "radius_m": 300.0},
                             "geometry": {"type": "Point", "coordinates": [LON0, LAT0]}}, ALICE)
    await fences_loaded(runtime)
    east = np.arange(-975.0, 1000.0, 50.0)
    t0 = now_ms() - 10 * 60_000
    one = line(t0, LAT0, LON0, east, np.zeros_like(east), 5)
    await publish(mqtt_url, "car", "editor", one)
    await settled(runtime, car.id, one[-1]["ts"])
    assert [(r[1], r[2]) for r in await stored_events(runtime.db)] == [(first["id"], "enter"), (first["id"], "exit")]

    async with httpx.AsyncClient(base_url=runtime.http_url, timeout=10) as http:
        assert (await http.delete(f"/v1/geofences/{first['id']}", headers=await login(http, ALICE))).status_code == 204
    second = await make_fence(runtime, "/v1/geofences", {"type": "Feature", "properties": {"name": "B", "radius_m": 300.0},
                              "geometry": {"type": "Point", "coordinates": [LON0, LAT0]}}, ALICE)
    await fences_loaded(runtime)
    back = line(one[-1]["ts"] + 5000, LAT0, LON0, east[::-1], np.zeros_like(east), 5)   # the same way back
    await publish(mqtt_url, "car", "editor", back, seq0=len(one) + 1)
    await settled(runtime, car.id, back[-1]["ts"])
    assert [(r[1], r[2]) for r in await stored_events(runtime.db)] == [
        (first["id"], "enter"), (first["id"], "exit"), (second["id"], "enter"), (second["id"], "exit")]
