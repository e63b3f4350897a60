"""Geofence benchmark: fix-updates/s with transitions against 100, 10k and 100k fences, beside a shapely loop.

In one run, on one core (BLAS/OpenMP pools at 1 thread), with the same seeded data (bench/geofence_world.py):

* **Vigil**: ``FenceSet.compile`` of N mixed circles and polygons, then ``geofence.step`` over ``--rounds``
  batches of one fix from each of ``--devices`` devices (default 10 × 100k = 1M fix updates), state carried
  from batch to batch: membership, anti-flap evidence, enter/exit/cross. Its fix-updates/s is the headline,
  best of ``--repeat`` (wall clock); ``fix_updates_per_cpu_s`` gives the same from the process's CPU time,
  which other processes on a shared machine disturb less.
* **peer, a plain shapely loop**: what a per-point implementation does (Traccar-style): for each fix a
  shapely ``Point``, candidate fences from an ``STRtree`` over the fences' lon/lat geometries (circles as
  64-gons from geodesic offsets), then ``fence.contains(point)`` per candidate. Membership only, no
  transitions; on the first ``--loop-fixes`` fixes, at 10k fences.
* **edit**: the time to apply one changed fence (a polygon given another's shape) at each size: an
  incremental recompile (``geofence.splice``, what the processor does) beside a full ``FenceSet.compile``
  of the edited list, both best of 3 on the same edit.
* **agreement**: on that subset, the share of (fix, fence) memberships both agree on (Vigil's exact tests vs
  the 64-gon approximation; disagreements sit within metres of circle edges).

Run from the repository root: ``python bench/geofence.py [--quick]``. The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")]

import numpy as np  # noqa: E402
import shapely  # noqa: E402

from geofence import CircleFence, FenceSet, GeofenceState, PolygonFence, inside, step  # noqa: E402
from geofence.splice import splice  # noqa: E402

from bench.geofence_world import GEOD, fences, rounds  # noqa: E402

TARGETS = {"fix_updates_per_s_10k": 2_000_000, "ratio": 50}


def run_vigil(fence_list, batches, repeat: int) -> dict:
    t = time.perf_counter()
    fs = FenceSet.compile(fence_list)
    compile_s = time.perf_counter() - t
    best, best_cpu, events = float("inf"), float("inf"), None
    for _ in range(repeat):
        gc.collect()
        state, counts = GeofenceState.empty(), {"enter": 0, "exit": 0, "cross": 0}
        t, c = time.perf_counter(), time.process_time()
        for b in batches:
            state, ev = step(state, b, fs)
            for k, name in ((1, "enter"), (2, "exit"), (3, "cross")):
                counts[name] += int((ev.kind == k).sum())
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
        events = counts
    n = sum(len(b["device"]) for b in batches)
    return {"fences": len(fence_list), "fix_updates": n, "seconds": round(best, 3),
            "fix_updates_per_s": round(n / best), "cpu_s": round(best_cpu, 3),
            "fix_updates_per_cpu_s": round(n / best_cpu), "compile_s": round(compile_s, 2), "events": events,
            "state_keys": int(len(state.key_device))}


def run_edit(fence_list, fs: FenceSet) -> dict:
    """Seconds to apply one changed fence: splice into ``fs`` vs a full compile of the edited list."""
    polys = [i for i, f in enumerate(fence_list) if isinstance(f, PolygonFence)]
    at, shape_of = polys[len(polys) // 2], polys[len(polys) // 3]
    edited = list(fence_list)
    edited[at] = PolygonFence(fence_list[at].fence_id, fence_list[shape_of].geometry)
    timings = {}
    for name, fn in (("splice_s", lambda: splice(fs, edited)), ("full_s", lambda: FenceSet.compile(edited))):
        best = float("inf")
        for _ in range(3):
            gc.collect()
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        timings[name] = round(best, 3)
    return timings


def lonlat_geometry(f):
    if isinstance(f, CircleFence):
        az = np.linspace(0, 360, 64, endpoint=False)
        lon, lat, _ = GEOD.fwd(np.full(64, f.lon), np.full(64, f.lat), az, np.full(64, f.radius_m))
        return shapely.Polygon(np.column_stack([lon, lat]))
    rings = f.geometry["coordinates"]
    return shapely.Polygon(rings[0], rings[1:])


def run_loop(fence_list, lat, lon) -> dict:
    geoms = [lonlat_geometry(f) for f in fence_list]
    tree = shapely.STRtree(geoms)
    t = time.perf_counter()
    pairs = []
    for i in range(len(lat)):
        pt = shapely.Point(lon[i], lat[i])
        for c in tree.query(pt):
            if geoms[c].contains(pt):
                pairs.append((i, int(c)))
    sec = time.perf_counter() - t
    return {"fixes": len(lat), "seconds": round(sec, 3), "fixes_per_s": round(len(lat) / sec), "pairs": pairs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--fences", default="100,10000,100000")
    ap.add_argument("--loop-fixes", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="10k devices, 100 and 10k fences, 2k loop fixes")
    args = ap.parse_args()
    if args.quick:
        args.devices, args.fences, args.loop_fixes, args.repeat = 10_000, "100,10000", 2_000, 1
    try:
        os.sched_setaffinity(0, {0})
    except (AttributeError, OSError):
        pass
    batches = list(rounds(args.devices, args.rounds))
    print(f"{args.devices} devices × {args.rounds} rounds = {args.devices * args.rounds} fix updates")
    results, loop = [], None
    for n in (int(x) for x in args.fences.split(",")):
        fl = fences(n)
        r = run_vigil(fl, batches, args.repeat)
        r["edit"] = run_edit(fl, FenceSet.compile(fl))
        results.append(r)
        print(f"vigil  {n:>7} fences: {r['fix_updates_per_s']:>12,} fix-updates/s  ({r['seconds']} s; CPU "
              f"{r['cpu_s']} s: {r['fix_updates_per_cpu_s']:,}/s; "
              f"compile {r['compile_s']} s, events {r['events']}, state keys {r['state_keys']})")
        print(f"       one changed fence: splice {r['edit']['splice_s']} s vs full compile {r['edit']['full_s']} s")
        if n == 10_000:
            b0 = batches[0]
            lat, lon = b0["lat"][:args.loop_fixes], b0["lon"][:args.loop_fixes]
            loop = run_loop(fl, lat, lon)
            fs = FenceSet.compile(fl)
            fix, fence = inside(fs, lat, lon)
            ours = set(zip(fix.tolist(), fence.tolist()))
            theirs = set(loop.pop("pairs"))
            union = ours | theirs
            loop["agreement"] = round(len(ours & theirs) / len(union), 4) if union else 1.0
            print(f"shapely loop at 10k fences: {loop['fixes_per_s']:,} fixes/s on {loop['fixes']} fixes, "
                  f"membership agreement {loop['agreement']}")
    at10k = next((r for r in results if r["fences"] == 10_000), None)
    ratio = round(at10k["fix_updates_per_s"] / loop["fixes_per_s"], 1) if at10k and loop else None
    out = {"fix_updates_per_s": {str(r["fences"]): r["fix_updates_per_s"] for r in results},
           "fix_updates_per_cpu_s": {str(r["fences"]): r["fix_updates_per_cpu_s"] for r in results},
           "loop_fixes_per_s": loop and loop["fixes_per_s"], "ratio_at_10k": ratio,
           "agreement": loop and loop["agreement"],
           "edit_one_fence_s": {str(r["fences"]): r["edit"] for r in results}, "events": {str(r["fences"]): r["events"] for r in results},
           "targets": TARGETS,
           "met": bool(at10k and at10k["fix_updates_per_s"] >= TARGETS["fix_updates_per_s_10k"]
                       and ratio and ratio >= TARGETS["ratio"])}
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
