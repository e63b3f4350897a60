"""The clearance map (geofence.clear) and the step's shortcut over it: fixes and segments the map shows clear
of every fence skip the candidate search, and the events and state are exactly those of the full path."""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geofence import CircleFence, FenceSet, GeofenceState, step
from geofence.clear import Clearance
from geofence.splice import splice
from geofence.transitions import StepConfig
from tests.geofence_tracks import offset
from tests.test_geofence_splice import LAT0, LON0, T0, edited_world, make_fence, run

EXAMPLES = int(os.environ.get("VIGIL_CLEAR_EXAMPLES", "60"))
FULL, SHORT = StepConfig(shortcut=False), StepConfig(shortcut=True)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_world())
def test_shortcut_gives_the_full_paths_events_and_state(world):
    """Random fences edited (added, moved, deleted) between batches, random tracks and accuracies: the step
    with the shortcut gives bit-identical events and state to the step without it."""
    full, state_full, _ = run(world, config=FULL)
    short, state_short, _ = run(world, config=SHORT)
    assert np.array_equal(full, short)
    assert state_full.equals(state_short)


def test_property_world_exercises_the_shortcut():
    """The property above is not vacuous: its kind of world has fixes in clear cells."""
    fences = [make_fence(1, 0.0, 0.0, 200.0, 0, 0), make_fence(2, 1000.0, 0.0, 200.0, 1, 0)]
    fs = FenceSet.compile(fences)
    lat, lon = offset(LAT0, LON0, np.array([0.0, 500.0, 1000.0, 500.0]), np.array([0.0, 0.0, 0.0, 600.0]))
    d = fs.clear.lookup(lat, lon)
    assert d[0] == 0 and d[2] == 0 and d[3] > 0


def fix(device, t_s, east, north, acc=5.0):
    lat, lon = offset(LAT0, LON0, np.array([east], float), np.array([north], float))
    return {"device": np.array([device], np.int64), "ts_ms": np.array([T0 + 1000 * t_s], np.int64),
            "lat": lat, "lon": lon, "accuracy_m": np.array([acc])}


def test_fence_added_next_to_a_clear_device_is_seen_at_its_next_fix():
    """A device parked far from every fence (its cell clear) gets a fence added round it: its next fix,
    moved by a metre, sees the fence at once (pending entry, then the enter) under the shortcut as without."""
    far = make_fence(1, 3000.0, 3000.0, 100.0, 0, 0)
    fs = FenceSet.compile([far])
    first = fix(7, 0, 0.0, 0.0)
    assert fs.clear.lookup(first["lat"], first["lon"])[0] > 0
    added = splice(fs, [far, CircleFence(2, float(first["lat"][0]), float(first["lon"][0]), 150.0)])
    assert added.clear.lookup(first["lat"], first["lon"])[0] == 0
    for config in (SHORT, FULL):
        state, ev = step(GeofenceState.empty(), first, fs, config)
        assert len(ev) == 0 and len(state.key_device) == 0
        state, ev = step(state, fix(7, 10, 1.0, 0.0), added, config)
        assert len(ev) == 0
        assert (state.key_fence.tolist(), state.pending.tolist(), state.pending_count.tolist()) == ([2], [1], [1])
        for t in (20, 30):
            state, ev = step(state, fix(7, t, 0.0, 1.0), added, config)
        assert ev.rows() == [(7, 2, "enter", T0 + 30_000)]


def test_segment_past_a_new_fence_crosses_it():
    """A fast device whose cell was clear, then a fence added across its path: the next segment crosses it."""
    far = make_fence(1, -3000.0, -3000.0, 100.0, 0, 0)
    fs = FenceSet.compile([far])
    start = fix(3, 0, 0.0, 0.0)
    assert fs.clear.lookup(start["lat"], start["lon"])[0] > 0
    lat, lon = offset(LAT0, LON0, np.array([250.0]), np.array([0.0]))
    added = splice(fs, [far, CircleFence(5, float(lat[0]), float(lon[0]), 40.0)])
    for config in (SHORT, FULL):
        state, _ = step(GeofenceState.empty(), start, fs, config)
        _, ev = step(state, fix(3, 20, 500.0, 0.0), added, config)
        assert ev.rows() == [(3, 5, "cross", T0 + 20_000)]


boxes = st.lists(st.tuples(st.floats(-0.05, 0.05), st.floats(-0.05, 0.05), st.floats(1e-5, 0.02),
                           st.floats(1e-5, 0.02)), min_size=1, max_size=8)


@settings(max_examples=EXAMPLES, deadline=None)
@given(boxes, st.lists(st.tuples(st.floats(-0.12, 0.12), st.floats(-0.12, 0.12), st.floats(-0.01, 0.01),
                                 st.floats(-0.01, 0.01)), min_size=1, max_size=30))
def test_clear_cells_and_segments_meet_no_box(raw_boxes, raw_segments):
    """Brute force: a point in a clear cell is in no box; a segment called clear has a box meeting no box."""
    b = np.array(raw_boxes)
    grown = np.column_stack([LAT0 + b[:, 0], LAT0 + b[:, 0] + b[:, 2], LON0 + b[:, 1], b[:, 3]])
    c = Clearance.build(grown)
    assert c.enabled
    s = np.array(raw_segments)
    lat_b, lon_b = LAT0 + s[:, 0], LON0 + s[:, 1]
    lat_a, lon_a = lat_b + s[:, 2], lon_b + s[:, 3]
    d = c.lookup(lat_b, lon_b)
    inside = ((lat_b[:, None] >= grown[:, 0]) & (lat_b[:, None] <= grown[:, 1])
              & (np.abs(lon_b[:, None] - grown[:, 2]) <= grown[:, 3])).any(axis=1)
    assert not (inside & (d > 0)).any()
    meets = ((np.minimum(lat_a, lat_b)[:, None] <= grown[:, 1]) & (np.maximum(lat_a, lat_b)[:, None] >= grown[:, 0])
             & (np.minimum(lon_a, lon_b)[:, None] <= (grown[:, 2] + grown[:, 3]))
             & (np.maximum(lon_a, lon_b)[:, None] >= (grown[:, 2] - grown[:, 3]))).any(axis=1)
    assert not (meets & c.segments_clear(d, lat_a, lon_a, lat_b, lon_b)).any()


def test_no_map_near_the_antimeridian_or_poles_and_invalid_positions_never_clear():
    assert not Clearance.build(np.array([[0.0, 0.1, 179.95, 0.1]])).enabled     # a box across ±180
    assert not Clearance.build(np.array([[85.0, 85.1, 10.0, 0.5]])).enabled
    c = Clearance.build(np.array([[LAT0, LAT0 + 0.01, LON0, 0.01]]))
    d = c.lookup(np.array([LAT0 + 0.05, LAT0 + 40.0, np.nan, LAT0 + 0.005, LAT0]),
                 np.array([LON0, LON0, LON0, LON0, LON0 + 360.0]))
    assert d[0] > 0 and d[1] > 0 and d[2:].tolist() == [0, 0, 0]
    assert not c.segments_clear(d, np.array([np.nan] * 5), np.array([LON0] * 5), np.full(5, LAT0 + 0.05),
                                np.full(5, LON0)).any()
