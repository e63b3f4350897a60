"""Fence edits reach the running processor as splices: the changed fence is recompiled, the others copied,
and events follow the new geometry from the next step (real MQTT, PostgreSQL and API)."""

from __future__ import annotations

import httpx
import numpy as np

from storage import devices
from tests.geofence_tracks import publish, square
from tests.helpers import login
from tests.test_geofence_service import (ALICE, LAT0, LON0, expected, fences_loaded, line, make_fence, now_ms,
                                         settled, start, stored_events)


def circle(name: str, lat: float, lon: float, radius_m: float) -> dict:
    return {"type": "Feature", "properties": {"name": name, "radius_m": radius_m},
            "geometry": {"type": "Point", "coordinates": [lon, lat]}}


async def test_changed_fence_is_spliced_in_and_stops_matching_at_once(mqtt_url, database_url, runtime_factory):
    runtime = await start(runtime_factory, mqtt_url, database_url)
    proc = runtime.geofence_processor
    car, = await devices.provision(runtime.db, ["splicer"], kind="car", owner="alice")
    a = await make_fence(runtime, "/v1/geofences", circle("A", LAT0, LON0, 300.0), ALICE)
    far = {"type": "Feature", "properties": {"name": "far"},
           "geometry": {"type": "Polygon", "coordinates": [square(LAT0 + 0.1, LON0, 500)]}}
    b = await make_fence(runtime, "/v1/geofences", far, ALICE)
    await fences_loaded(runtime)
    east = np.arange(-975.0, 1000.0, 50.0)
    out = line(now_ms() - 10 * 60_000, LAT0, LON0, east, np.zeros_like(east), 5)
    await publish(mqtt_url, "car", "splicer", out)
    await settled(runtime, car.id, out[-1]["ts"])
    assert [(r[1], r[2]) for r in await stored_events(runtime.db)] == [(a["id"], "enter"), (a["id"], "exit")]
    before, b_at = proc.fences, int(proc.fences.index_of([b["id"]])[0])

    # A moves 2 km north, off the car's way back; a new fence C takes its old place.
    moved = circle("A", LAT0 + 0.018, LON0, 300.0)
    async with httpx.AsyncClient(base_url=runtime.http_url, timeout=10) as http:
        answer = await http.put(f"/v1/geofences/{a['id']}", json=moved, headers=await login(http, ALICE))
    assert answer.status_code == 200, answer.text
    c = await make_fence(runtime, "/v1/geofences", circle("C", LAT0, LON0, 200.0), ALICE)
    await fences_loaded(runtime)
    now = proc.fences
    assert now.fence_id.tolist() == [a["id"], b["id"], c["id"]]
    at = int(now.index_of([b["id"]])[0])
    # The unchanged polygon's compiled shapes are the very objects of the set before: copied, not rebuilt.
    assert now.shape[at] is before.shape[b_at] and now.grown[at] is before.grown[b_at]
    assert now.centre[int(now.index_of([a["id"]])[0]), 0] > LAT0 + 0.017

    back = line(out[-1]["ts"] + 5000, LAT0, LON0, east[::-1], np.zeros_like(east), 5)
    await publish(mqtt_url, "car", "splicer", back, seq0=len(out) + 1)
    await settled(runtime, car.id, back[-1]["ts"])
    got = [(r[1], r[2]) for r in await stored_events(runtime.db)]
    assert got == [(a["id"], "enter"), (a["id"], "exit"), (c["id"], "enter"), (c["id"], "exit")]
    # The same fixes through a fresh compile of the fences as stored now give the same second visit.
    rows = [answer.json(), b, c]
    want = [w for w in expected(car.id, back, rows)]
    assert [(w[1], w[2]) for w in want] == [(c["id"], "enter"), (c["id"], "exit")]
    assert [r[:5] for r in (await stored_events(runtime.db))[2:]] == [tuple(w) for w in want]
