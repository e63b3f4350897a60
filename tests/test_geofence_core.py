"""Pure geofence core: shapes, membership, transitions (enter / exit / cross, anti-flap, state)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod

from geofence import (OFF, AntiFlap, CircleFence, FenceSet, GeofenceState, PolygonFence, add_pet_fence,
                      check_pet_fences, inside, near, step)
from vigil.errors import RejectedInput

GEOD = Geod(ellps="WGS84")
T0 = 1_700_000_000_000


def offset(lat, lon, east_m, north_m):
    """Point ``east_m``/``north_m`` metres from (lat, lon), geodesically (m)."""
    dist = np.hypot(east_m, north_m)
    az = np.degrees(np.arctan2(east_m, north_m))
    lon2, lat2, _ = GEOD.fwd(np.broadcast_to(lon, np.shape(dist)), np.broadcast_to(lat, np.shape(dist)), az, dist)
    return np.asarray(lat2, float), np.asarray(lon2, float)


def square(lat, lon, half_m):
    ring = [offset(lat, lon, e, n) for e, n in
            [(-half_m, -half_m), (half_m, -half_m), (half_m, half_m), (-half_m, half_m), (-half_m, -half_m)]]
    return [[float(lo), float(la)] for la, lo in ring]


def fixes(lat, lon, device=1, acc=5.0, dt_ms=10_000, t0=T0):
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    n = len(lat)
    return {"device": np.full(n, device, np.int64), "ts_ms": t0 + dt_ms * np.arange(n, dtype=np.int64),
            "lat": lat, "lon": lon, "accuracy_m": np.broadcast_to(np.asarray(acc, float), (n,)).copy()}


def concat(*batches):
    out = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    o = np.lexsort((out["ts_ms"], out["device"]))
    return {k: v[o] for k, v in out.items()}


LAT0, LON0 = 45.4642, 9.19   # Milan
ZTL = PolygonFence(7, {"type": "Polygon",
                       "coordinates": [square(LAT0, LON0, 1000), square(LAT0, LON0, 300)[::-1]]}, name="ztl")


# --- shapes -------------------------------------------------------------------------------------------------

def pet(i, radius=100.0):
    return CircleFence(100 + i, LAT0, LON0 + 0.01 * i, radius, name=f"zone {i}")


def test_pet_sixth_fence_refused():
    fences = []
    for i in range(5):
        fences = add_pet_fence(fences, pet(i))
    with pytest.raises(RejectedInput) as exc:
        add_pet_fence(fences, pet(5))
    assert exc.value.reason == "too_many_fences"


@pytest.mark.parametrize("radius,ok", [(19.9, False), (20, True), (50_000, True), (50_001, False)])
def test_pet_radius_bounds(radius, ok):
    if ok:
        check_pet_fences([pet(0, radius)])
    else:
        with pytest.raises(RejectedInput) as exc:
            check_pet_fences([pet(0, radius)])
        assert exc.value.reason == "radius_out_of_range"


def test_pet_fence_needs_name():
    with pytest.raises(RejectedInput) as exc:
        check_pet_fences([CircleFence(1, LAT0, LON0, 100)])
    assert exc.value.reason == "missing_name"


def test_invalid_polygon_refused():
    bow_tie = [[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]
    with pytest.raises(RejectedInput) as exc:
        FenceSet.compile([PolygonFence(1, {"type": "Polygon", "coordinates": [bow_tie]})])
    assert exc.value.reason == "invalid_geometry"
    with pytest.raises(RejectedInput):
        FenceSet.compile([PolygonFence(1, {"type": "Point", "coordinates": [0, 0]})])


# --- membership ---------------------------------------------------------------------------------------------

def test_polygon_hole_not_inside():
    fs = FenceSet.compile([ZTL])
    lat, lon = offset(LAT0, LON0, np.array([0.0, 600, 1200]), np.array([0.0, 0, 0]))
    fix, fence = inside(fs, lat, lon)
    assert fix.tolist() == [1] and fence.tolist() == [0]
    fix, _, d = near(fs, lat, lon, 350.0)
    assert fix.tolist() == [0, 1, 2] and d[0] == pytest.approx(300, abs=2) and d[1] < 0 and d[2] == pytest.approx(200, abs=2)


@pytest.mark.parametrize("lat", [0.0, 45.0, 80.0, -80.0, 89.99])
def test_circle_exact_at_any_latitude(lat):
    fs = FenceSet.compile([CircleFence(1, lat, 30.0, 1000.0)])
    east_in, east_out = offset(lat, 30.0, np.array([990.0, 1010.0]), np.zeros(2))
    north = offset(lat, 30.0, np.zeros(2), np.array([990.0, 1010.0]))
    la = np.concatenate([east_in, north[0]])
    lo = np.concatenate([east_out, north[1]])
    fix, _ = inside(fs, la, lo)
    assert fix.tolist() == [0, 2]


def test_circle_across_antimeridian():
    fs = FenceSet.compile([CircleFence(1, 0.0, 179.99, 3000.0), CircleFence(2, 60.0, -179.99, 1500.0)])
    fix, fence = inside(fs, [0.0, 0.0, 60.0, 60.0], [-179.99, -179.96, 179.99, 179.97])
    # 2.2 km, 4.5 km, 1.1 km, 2.2 km from their centres
    assert list(zip(fix.tolist(), fence.tolist())) == [(0, 0), (2, 1)]


# --- transitions --------------------------------------------------------------------------------------------

def drive(fs, batch, state=None):
    state, ev = step(state or GeofenceState.empty(), batch, fs)
    return state, ev


def test_car_through_ztl_enter_then_exit():
    fs = FenceSet.compile([ZTL])
    east = np.arange(-1500.0, 1501.0, 50.0)
    lat, lon = offset(LAT0, LON0, east, np.full_like(east, 600.0))   # north of the hole
    _, ev = drive(fs, fixes(lat, lon))
    assert [r[2] for r in ev.rows()] == ["enter", "exit"]
    assert ev.fence.tolist() == [7, 7]


def test_car_through_hole_gives_two_visits():
    fs = FenceSet.compile([ZTL])
    east = np.arange(-1500.0, 1501.0, 50.0)
    lat, lon = offset(LAT0, LON0, east, np.zeros_like(east))
    _, ev = drive(fs, fixes(lat, lon))
    assert [r[2] for r in ev.rows()] == ["enter", "exit", "enter", "exit"]


def parked(seed=1, n=200):
    rng = np.random.default_rng(seed)
    fence = dict(fence_id=3, lat=LAT0, lon=LON0, radius_m=200.0)
    base = offset(LAT0, LON0, 195.0, 0.0)           # parked 5 m inside the boundary
    drift = rng.uniform(20, 100, n)
    ang = rng.uniform(0, 2 * np.pi, n)
    lat, lon = offset(base[0], base[1], drift * np.cos(ang), drift * np.sin(ang))
    return fence, fixes(lat, lon, acc=drift)         # the device reports its own error honestly


def test_parked_drift_no_flapping_with_anti_flap():
    fence, batch = parked()
    _, ev = drive(FenceSet.compile([CircleFence(**fence)]), batch)
    assert len(ev) == 0
    _, ev = drive(FenceSet.compile([CircleFence(**fence, anti_flap=OFF)]), batch)
    assert len(ev) > 10   # the same stream flaps without anti-flap


@pytest.mark.parametrize("depth_m", [5.0, -5.0, 0.0])
@pytest.mark.parametrize("shape", ["circle", "polygon"])
def test_gaussian_jitter_at_the_edge_for_24h_gives_no_event(depth_m, shape):
    """Parked 5 m inside, 5 m outside or on the edge; 15 m σ per axis, a fix every 10 s for 24 h."""
    if shape == "circle":
        fence = CircleFence(1, LAT0, LON0, 200.0)
    else:
        fence = PolygonFence(1, {"type": "Polygon", "coordinates": [square(LAT0, LON0, 200.0)]})
    rng = np.random.default_rng(11)
    n = 8_640
    centre = offset(LAT0, LON0, 200.0 - depth_m, 0.0)
    lat, lon = offset(centre[0], centre[1], rng.normal(0, 15, n), rng.normal(0, 15, n))
    fs = FenceSet.compile([fence])
    state, events = GeofenceState.empty(), []
    for part in np.array_split(np.arange(n), 24):      # hourly batches, state carried
        state, ev = step(state, fixes(lat[part], lon[part], acc=15.0, t0=T0 + int(part[0]) * 10_000), fs)
        events += ev.rows()
    assert events == []
    _, ev = step(GeofenceState.empty(), fixes(lat, lon, acc=15.0), FenceSet.compile([
        CircleFence(1, LAT0, LON0, 200.0, anti_flap=OFF) if shape == "circle" else
        PolygonFence(1, fence.geometry, anti_flap=OFF)]))
    assert len(ev) > 100   # the same fixes flap without anti-flap


def test_sparse_fixes_cross_small_polygon():
    fs = FenceSet.compile([PolygonFence(9, {"type": "Polygon", "coordinates": [square(LAT0, LON0, 50)]})])
    lat, lon = offset(LAT0, LON0, np.array([-400.0, 400.0, 1200.0]), np.zeros(3))
    _, ev = drive(fs, fixes(lat, lon, dt_ms=30_000))
    assert [r[1:3] for r in ev.rows()] == [(9, "cross")]
    assert ev.ts_ms.tolist() == [T0 + 30_000] and ev.since_ms.tolist() == [T0]


def test_cross_across_antimeridian_and_gap_limit():
    fs = FenceSet.compile([CircleFence(4, 10.0, 180.0, 100.0)])
    _, ev = drive(fs, fixes([10.0, 10.0], [179.99, -179.99], dt_ms=60_000))
    assert [r[2] for r in ev.rows()] == ["cross"]
    _, ev = drive(fs, fixes([10.0, 10.0], [179.99, -179.99], dt_ms=3_600_000))
    assert len(ev) == 0


def test_pet_leaves_fifth_fence():
    fences = []
    for i in range(5):
        fences = add_pet_fence(fences, pet(i, radius=50.0))
    fs = FenceSet.compile(fences)
    home = (LAT0, LON0 + 0.04)                       # centre of fence 104
    east = np.array([0, 5, 10, 20, 200, 250, 300.0])
    lat, lon = offset(*home, east, np.zeros_like(east))
    _, ev = drive(fs, fixes(lat, lon))
    assert [r[1:3] for r in ev.rows()] == [(104, "exit")]


def test_poor_accuracy_does_not_trigger():
    fs = FenceSet.compile([CircleFence(5, LAT0, LON0, 300.0)])
    east = np.arange(-1000.0, 1001.0, 50.0)
    lat, lon = offset(LAT0, LON0, east, np.zeros_like(east))
    _, ev = drive(fs, fixes(lat, lon, acc=500.0))
    assert len(ev) == 0
    _, ev = drive(fs, fixes(lat, lon, acc=5.0))
    assert [r[2] for r in ev.rows()] == ["enter", "exit"]


def test_min_dwell_time():
    fs = FenceSet.compile([CircleFence(5, LAT0, LON0, 300.0, anti_flap=AntiFlap(min_fixes=1, min_dwell_ms=60_000))])
    lat, lon = offset(LAT0, LON0, np.array([-1000.0, 0, 0, -1000, 0, 0, 0, 0, 0, 0, 0]), np.zeros(11))
    _, ev = drive(fs, fixes(lat, lon, dt_ms=20_000))
    assert [(r[2], r[3] - T0) for r in ev.rows()] == [("enter", 140_000)]
    assert ev.since_ms.tolist() == [T0 + 80_000]


def test_replay_after_restart_does_not_refire():
    fs = FenceSet.compile([ZTL])
    east = np.arange(-1500.0, 0.0, 50.0)
    lat, lon = offset(LAT0, LON0, east, np.full_like(east, 600.0))
    batch = fixes(lat, lon)
    state, ev = drive(fs, batch)
    assert [r[2] for r in ev.rows()] == ["enter"]
    state = GeofenceState.from_bytes(state.to_bytes())
    _, ev = drive(fs, batch, state)
    assert len(ev) == 0


def test_unsorted_refused():
    fs = FenceSet.compile([ZTL])
    b = fixes([LAT0, LAT0], [LON0, LON0])
    b["ts_ms"] = b["ts_ms"][::-1].copy()
    with pytest.raises(RejectedInput):
        step(GeofenceState.empty(), b, fs)


# --- properties ---------------------------------------------------------------------------------------------

FLEET = FenceSet.compile([
    ZTL,
    PolygonFence(8, {"type": "Polygon", "coordinates": [square(LAT0, LON0 + 0.02, 60)]}),
    CircleFence(1, LAT0 + 0.01, LON0, 150.0),
    CircleFence(2, LAT0 - 0.01, LON0, 80.0, anti_flap=OFF),
    CircleFence(3, LAT0, LON0 - 0.02, 120.0, anti_flap=AntiFlap(min_fixes=3, min_dwell_ms=15_000)),
])


@st.composite
def fleet_stream(draw):
    devices = draw(st.integers(1, 3))
    parts = []
    for d in range(devices):
        n = draw(st.integers(1, 40))
        steps = np.array(draw(st.lists(st.tuples(st.floats(-400, 400), st.floats(-400, 400)),
                                       min_size=n, max_size=n)))
        start = (draw(st.floats(-2500, 2500)), draw(st.floats(-1500, 1500)))
        east, north = start[0] + np.cumsum(steps[:, 0]), start[1] + np.cumsum(steps[:, 1])
        lat, lon = offset(LAT0, LON0, east, north)
        acc = np.array(draw(st.lists(st.sampled_from([3.0, 10.0, 40.0, 300.0, np.nan]), min_size=n, max_size=n)))
        dt = np.array(draw(st.lists(st.integers(1_000, 120_000), min_size=n, max_size=n)), np.int64)
        b = fixes(lat, lon, device=d * 7 + 2, acc=acc)
        b["ts_ms"] = T0 + np.cumsum(dt)
        parts.append(b)
    stream = concat(*parts)
    cuts = sorted(draw(st.lists(st.integers(0, 1_000), max_size=4)))
    return stream, cuts


def run_split(stream, cuts, via_bytes=False):
    n = len(stream["device"])
    bounds = [0] + [c % (n + 1) for c in cuts] + [n]
    # Batches are cut in time, as a bus delivers them: every device's fixes up to each cut time.
    ts_sorted = np.sort(stream["ts_ms"])
    limits = [ts_sorted[b - 1] if b else stream["ts_ms"].min() - 1 for b in sorted(bounds)]
    state, rows = GeofenceState.empty(), []
    for lo_t, hi_t in zip(limits[:-1], limits[1:]):
        sel = (stream["ts_ms"] > lo_t) & (stream["ts_ms"] <= hi_t)
        state, ev = step(state, {k: v[sel] for k, v in stream.items()}, FLEET)
        rows += ev.rows()
        if via_bytes:
            state = GeofenceState.from_bytes(state.to_bytes())
    return state, sorted(rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet_stream())
def test_split_batches_same_events(data):
    stream, cuts = data
    whole_state, whole = run_split(stream, [])
    split_state, split = run_split(stream, cuts, via_bytes=True)
    assert split == whole
    assert split_state.equals(whole_state)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet_stream())
def test_state_round_trips_through_bytes(data):
    stream, _ = data
    state, _ = step(GeofenceState.empty(), stream, FLEET)
    back = GeofenceState.from_bytes(state.to_bytes())
    assert back.equals(state)
    assert back.to_bytes() == state.to_bytes()


@settings(max_examples=200, deadline=None)
@given(st.floats(-89.9, 89.9), st.floats(-180, 180), st.floats(20, 50_000),
       st.floats(0, 360), st.floats(0.5, 1.5))
def test_circle_membership_matches_geodesic(lat, lon, radius, az, frac):
    """Prefilter + exact test agree with the WGS84 geodesic distance, any latitude, across ±180."""
    fs = FenceSet.compile([CircleFence(1, lat, lon, radius)])
    lon2, lat2, _ = GEOD.fwd(lon, lat, az, radius * frac)
    d = GEOD.inv(lon, lat, lon2, lat2)[2]
    fix, _, sd = near(fs, [lat2], [lon2], 0.0)
    if d < radius * (1 - 1e-6):
        assert fix.tolist() == [0] and sd[0] == pytest.approx(d - radius, abs=0.01)
    elif d > radius * (1 + 1e-6):
        assert fix.tolist() == []


def test_accepts_fix_batch_and_keeps_state_of_removed_fences():
    from vigil.batch import COLUMNS, FixBatch
    east = np.arange(-1500.0, 0.0, 50.0)
    lat, lon = offset(LAT0, LON0, east, np.full_like(east, 600.0))
    f = fixes(lat, lon)
    n = len(lat)
    cols = {name: np.zeros(n, dt) for name, dt in COLUMNS}
    cols.update(f)
    state, ev = step(GeofenceState.empty(), FixBatch(**cols), FenceSet.compile([ZTL]))
    assert [r[2] for r in ev.rows()] == ["enter"]
    other = FenceSet.compile([CircleFence(1, 0.0, 0.0, 100.0)])
    state2, ev = step(state, fixes(lat[-1:], lon[-1:], t0=T0 + 10**7), other)
    assert len(ev) == 0 and state2.key_fence.tolist() == [7] and state2.side.tolist() == [1]


def test_polygon_across_antimeridian():
    ring = [[179.9, -0.1], [-179.9, -0.1], [-179.9, 0.1], [179.9, 0.1], [179.9, -0.1]]
    fs = FenceSet.compile([PolygonFence(1, {"type": "Polygon", "coordinates": [ring]})])
    fix, _ = inside(fs, [0.0, 0.0, 0.0, 0.0], [180.0, -179.95, 179.95, 0.0])
    assert fix.tolist() == [0, 1, 2]
    _, ev = step(GeofenceState.empty(), fixes([0.0] * 8, [179.5, 179.92, 179.96, -179.96, -179.92, -179.5, -179.3, -179.0]), fs)
    assert [r[2] for r in ev.rows()] == ["enter", "exit"]


def test_empty_fence_set():
    fs = FenceSet.compile([])
    assert inside(fs, [LAT0], [LON0])[0].tolist() == []
    state, ev = step(GeofenceState.empty(), fixes([LAT0, LAT0], [LON0, LON0 + 0.1]), fs)
    assert len(ev) == 0 and state.device.tolist() == [1]


ORACLE_EXAMPLES = int(os.environ.get("VIGIL_ORACLE_EXAMPLES", "150"))


def assert_matches_oracle(stream, masks):
    """Step the vectorised core and the loop oracle over the batches ``stream[mask]``; same events and state."""
    from tests.geofence_reference import reference_step
    fast = slow = GeofenceState.empty()
    for sel in masks:
        part = {k: v[sel] for k, v in stream.items()}
        fast, ev_fast = step(fast, part, FLEET)
        slow, ev_slow = reference_step(slow, part, FLEET)
        assert ev_fast.rows() == ev_slow.rows()
        assert np.allclose(ev_fast.lat, ev_slow.lat) and (ev_fast.since_ms == ev_slow.since_ms).all()
        for name in ("device", "key_device", "key_fence", "side", "pending", "pending_count"):
            assert getattr(fast, name).tolist() == getattr(slow, name).tolist(), name


@settings(max_examples=ORACLE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet_stream())
def test_vectorised_step_matches_loop_oracle(data):
    """The vectorised step gives the same events and state as the loop it replaced, batch after batch."""
    stream, cuts = data
    n = len(stream["device"])
    bounds = sorted({0, n, *(c % (n + 1) for c in cuts)})
    ts_sorted = np.sort(stream["ts_ms"])
    limits = [ts_sorted[b - 1] if b else stream["ts_ms"].min() - 1 for b in bounds]
    assert_matches_oracle(stream, [(stream["ts_ms"] > lo_t) & (stream["ts_ms"] <= hi_t)
                                   for lo_t, hi_t in zip(limits[:-1], limits[1:])])


@settings(max_examples=ORACLE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet_stream())
def test_one_fix_per_device_batches_match_loop_oracle(data):
    """Batches of one fix per device (the usual live batch, which takes the step's shorter paths) give the
    loop oracle's events and state too."""
    stream, _ = data
    dev = stream["device"]
    rank = np.arange(len(dev)) - np.searchsorted(dev, dev, "left")
    assert_matches_oracle(stream, [rank == r for r in range(int(rank.max()) + 1)])
