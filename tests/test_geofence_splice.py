"""Incremental recompiles (geofence.splice): a set kept up to date by splicing edits in gives the same
events and state as compiling the fence list afresh after every edit."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geofence import OFF, AntiFlap, CircleFence, FenceSet, GeofenceState, PolygonFence, step
from geofence import raster
from geofence.splice import splice
from geofence.transitions import StepConfig
from tests.geofence_tracks import offset, square
from vigil.errors import RejectedInput

LAT0, LON0 = 45.4642, 9.19
T0 = 1_700_000_000_000
FLAPS = (AntiFlap(), OFF, AntiFlap(hysteresis_m=10.0, min_fixes=2), AntiFlap(min_fixes=2, min_dwell_ms=20_000))
EXAMPLES = int(os.environ.get("VIGIL_SPLICE_EXAMPLES", "40"))


def make_fence(fence_id: int, east: float, north: float, size: float, shape: int, flap: int):
    """A circle (shape 0), a square (1) or a square with a square hole (2), ``size`` m, at east/north of Milan."""
    lat, lon = (float(v) for v in offset(LAT0, LON0, east, north))
    if shape == 0:
        return CircleFence(fence_id, lat, lon, size, anti_flap=FLAPS[flap])
    rings = [square(lat, lon, size)] + ([square(lat, lon, size / 3)[::-1]] if shape == 2 else [])
    return PolygonFence(fence_id, {"type": "Polygon", "coordinates": rings}, anti_flap=FLAPS[flap])


fence_args = st.tuples(st.floats(-1500, 1500), st.floats(-1500, 1500), st.floats(60, 700), st.integers(0, 2),
                       st.integers(0, len(FLAPS) - 1))


@st.composite
def edited_world(draw):
    """(fences, edits, stream): edits are ("add"|"change"|"delete", fence id, args), applied one per window."""
    ids = draw(st.lists(st.integers(1, 60), min_size=1, max_size=12, unique=True))
    fences = [make_fence(i, *draw(fence_args)) for i in ids]
    edits, live, next_id = [], set(ids), 61
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["add", "change", "delete"] if live else ["add"]))
        if op == "add":
            fid = draw(st.sampled_from([next_id, 0]))      # 0: a low id, so the new fence goes in front
            fid = fid if fid not in live else next_id
            next_id += 1
        else:
            fid = draw(st.sampled_from(sorted(live)))
        edits.append((op, fid, draw(fence_args)))
        live = live - {fid} if op == "delete" else live | {fid}
    parts = []
    for d in range(draw(st.integers(1, 3))):
        n = draw(st.integers(4, 40))
        steps = np.array(draw(st.lists(st.tuples(st.floats(-300, 300), st.floats(-300, 300)), min_size=n, max_size=n)))
        start = draw(st.tuples(st.floats(-1500, 1500), st.floats(-1500, 1500)))
        lat, lon = offset(LAT0, LON0, start[0] + np.cumsum(steps[:, 0]), start[1] + np.cumsum(steps[:, 1]))
        acc = np.array(draw(st.lists(st.sampled_from([3.0, 20.0, 60.0, np.nan]), min_size=n, max_size=n)))
        parts.append({"device": np.full(n, 3 * d + 1, np.int64), "ts_ms": T0 + 10_000 * np.arange(1, n + 1),
                      "lat": lat, "lon": lon, "accuracy_m": acc})
    stream = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((stream["ts_ms"], stream["device"]))
    return fences, edits, {k: v[order] for k, v in stream.items()}


def apply(fences: list, edit) -> list:
    op, fid, args = edit
    rest = [f for f in fences if f.fence_id != fid]
    return sorted(rest + ([] if op == "delete" else [make_fence(fid, *args)]), key=lambda f: f.fence_id)


def run(world, incremental: bool = True, config: StepConfig = StepConfig()):
    """Events (one int64 table), final state and fence set of the stream, the fence set edited between
    equal time windows: spliced (``incremental``) or compiled afresh."""
    fences, edits, stream = world
    fences = sorted(fences, key=lambda f: f.fence_id)
    fs = FenceSet.compile(fences)
    ts = np.unique(stream["ts_ms"])
    cuts = [ts[0] - 1] + [ts[len(ts) * (i + 1) // (len(edits) + 1) - 1] for i in range(len(edits))] + [ts[-1]]
    state, rows = GeofenceState.empty(), []
    for w, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:])):
        if w:
            fences = apply(fences, edits[w - 1])
            fs = splice(fs, fences) if incremental else FenceSet.compile(fences)
        sel = (stream["ts_ms"] > lo) & (stream["ts_ms"] <= hi)
        state, ev = step(state, {k: v[sel] for k, v in stream.items()}, fs, config)
        rows.append(np.column_stack([ev.device, ev.fence, ev.kind, ev.ts_ms, ev.since_ms,
                                     np.column_stack([ev.lat, ev.lon]).view(np.int64)]))
    return np.concatenate(rows), state, fs


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_world())
def test_spliced_set_gives_the_events_and_state_of_a_fresh_compile(world):
    ev_inc, st_inc, fs_inc = run(world, incremental=True)
    ev_full, st_full, fs_full = run(world, incremental=False)
    assert np.array_equal(ev_inc, ev_full)
    assert st_inc.equals(st_full)
    assert_same_set(fs_inc, fs_full)


@settings(max_examples=max(EXAMPLES // 2, 10), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(edited_world())
def test_raster_size_kept_across_splices_changes_no_event(small_budget, world):
    """With a tiny cell budget the raster size moves with every polygon added or removed: splices keep
    theirs (see splice.raster_size) where a fresh compile picks another, and rasters are exact, so the
    events stay the same."""
    ev_inc, st_inc, _ = run(world, incremental=True)
    ev_full, st_full, _ = run(world, incremental=False)
    assert np.array_equal(ev_inc, ev_full) and st_inc.equals(st_full)


@pytest.fixture
def small_budget(monkeypatch):
    monkeypatch.setattr(raster, "BUDGET_CELLS", 900)      # 30 × 30 for one polygon, 10 × 10 for nine


def assert_same_set(a: FenceSet, b: FenceSet) -> None:
    """Field by field (geometries by value), the raster codes too when both have one size."""
    for f in dataclasses.fields(FenceSet):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "fences":
            assert x == y
        elif isinstance(x, np.ndarray) and x.dtype == object:
            assert all((p is None and q is None) or bool(p.equals(q)) for p, q in zip(x, y)), f.name
        elif isinstance(x, np.ndarray):
            assert np.array_equal(x, y, equal_nan=True), f.name
    for part in ("edges", "rasters"):
        if part == "rasters" and a.rasters.size != b.rasters.size:
            continue
        for f in dataclasses.fields(getattr(a, part)):
            assert np.array_equal(getattr(getattr(a, part), f.name), getattr(getattr(b, part), f.name)), f.name
    for name in ("grid", "seg_grid"):
        for la, lb in zip(getattr(a, name).levels, getattr(b, name).levels, strict=True):
            assert la.cell_deg == lb.cell_deg and np.array_equal(la.keys, lb.keys)
            assert np.array_equal(la.offsets, lb.offsets) and np.array_equal(la.items, lb.items)


def test_unchanged_fences_are_copied_not_recompiled():
    fences = [make_fence(i, 300.0 * i, 0.0, 100.0, i % 3, 0) for i in range(1, 9)]
    base = FenceSet.compile(fences)
    changed = make_fence(4, 0.0, 900.0, 150.0, 1, 1)
    edited = [changed if f.fence_id == 4 else f for f in fences if f.fence_id != 6]
    fs = splice(base, edited)
    assert fs.fence_id.tolist() == [1, 2, 3, 4, 5, 7, 8]
    for i, fid in enumerate(fs.fence_id.tolist()):
        j = int(base.index_of([fid])[0])
        if fid == 4:
            assert fs.shape[i] is not base.shape[j] and fs.fences[i] is changed
        elif fs.kind[i] == 1:
            assert fs.shape[i] is base.shape[j] and fs.grown[i] is base.grown[j]   # the same objects: no recompile
    assert_same_set(fs, FenceSet.compile(edited))


def test_state_follows_fence_ids_when_indices_shift():
    """A device inside fence 10 (index 1); fence 5 in front of it is deleted and fence 2 added, so 10 moves
    index twice over: the device's exit is still fence 10's, and the new fence at 10's old index is
    entered afresh, never inherited."""
    here = make_fence(10, 0.0, 0.0, 200.0, 0, 1)
    base = FenceSet.compile([make_fence(5, 3000.0, 0.0, 100.0, 0, 1), here])
    east = np.array([0.0, 10.0, 1000.0, 1010.0])
    lat, lon = offset(LAT0, LON0, east, np.zeros(4))
    fix = {"device": np.ones(4, np.int64), "ts_ms": T0 + 1000 * np.arange(4), "lat": lat, "lon": lon,
           "accuracy_m": np.full(4, 5.0)}
    first = {k: v[:2] for k, v in fix.items()}
    state, ev = step(GeofenceState.empty(), first, base)
    assert ev.rows() == [] and state.key_fence.tolist() == [10] and state.side.tolist() == [1]
    moved = splice(base, [make_fence(2, 1000.0, 0.0, 100.0, 0, 1), here])
    assert moved.fence_id.tolist() == [2, 10]
    _, ev = step(state, {k: v[2:] for k, v in fix.items()}, moved)
    assert ev.rows() == [(1, 2, "enter", T0 + 2000), (1, 10, "exit", T0 + 2000)]


def test_splice_refuses_what_compile_refuses():
    base = FenceSet.compile([make_fence(1, 0.0, 0.0, 100.0, 0, 0)])
    bowtie = PolygonFence(2, {"type": "Polygon", "coordinates": [[[9.19, 45.46], [9.20, 45.47], [9.20, 45.46],
                                                                  [9.19, 45.47], [9.19, 45.46]]]})
    with pytest.raises(RejectedInput) as err:
        splice(base, [base.fences[0], bowtie])
    assert err.value.reason == "invalid_geometry"
    with pytest.raises(RejectedInput) as err:
        splice(base, [base.fences[0], make_fence(1, 50.0, 0.0, 100.0, 0, 0)])
    assert err.value.reason == "duplicate_fence_id"


def test_processor_reload_splices_and_leaves_out_a_refused_row():
    """The processor's reload (geofence.processor._compile): unchanged rows keep their compiled fences, a
    hand-edited row the core refuses is left out (logged), the others are spliced in."""
    from geofence.processor import _compile

    def row(fid, east, name="f", geometry=None):
        lat, lon = (float(v) for v in offset(LAT0, LON0, east, 0.0))
        return {"id": fid, "kind": "polygon" if geometry else "circle", "name": name, "anti_flap": None,
                "geometry": geometry or {"type": "Point", "coordinates": [lon, lat]},
                "radius_m": None if geometry else 100.0}

    square_row = row(3, 0.0, geometry={"type": "Polygon", "coordinates": [square(LAT0, LON0 + 0.01, 200)]})
    rows = [row(1, 0.0), row(2, 500.0), square_row]
    built: dict = {}
    base = _compile(rows, FenceSet.compile([]), built)
    assert base.fence_id.tolist() == [1, 2, 3]
    bowtie = {"type": "Polygon", "coordinates": [[[9.19, 45.46], [9.20, 45.47], [9.20, 45.46], [9.19, 45.47],
                                                  [9.19, 45.46]]]}
    edited = [row(1, 0.0), row(2, 900.0, name="moved"), square_row, row(4, 0.0, geometry=bowtie)]
    fs = _compile(edited, base, built)
    assert fs.fence_id.tolist() == [1, 2, 3]
    assert fs.fences[0] is base.fences[0] and fs.shape[2] is base.shape[2]      # copied
    assert fs.fences[1] is not base.fences[1] and fs.fences[1].name == "moved"
    assert_same_set(fs, FenceSet.compile([base.fences[0], fs.fences[1], base.fences[2]]))
