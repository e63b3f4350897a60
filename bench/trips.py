"""Trip core benchmark: segmentation + metrics + events + score over a simulated fleet, beside MovingPandas.

In one run, on one core (the process pins itself to CPU 0, BLAS/OpenMP pools at 1 thread), with the same
simulated fixes:

* **Vigil, whole history**: ``trips.process_all(columns, TripConfig())`` over every fix (default 10M fixes of
  10k devices), then ``score_periods`` per device; best of ``--repeat``. Its fixes/s is the headline
  (wall clock); ``fixes_per_cpu_s`` gives the same from the process's CPU time, which other processes
  on a shared machine inflate less.
* **Vigil, streaming**: the same fixes cut into ``--batch-s`` batches of all devices (1 minute of fleet
  time each), each fed to ``trips.step`` and followed by ``close_idle(now)`` as the trip processor does,
  then a final ``close_idle``; the trips must equal the whole-history ones.
* **peer, MovingPandas**: the first ``--mp-devices`` devices of the same data as a TrajectoryCollection, then
  ``ObservationGapSplitter(gap=1 h)`` and ``StopSplitter(max_diameter=200 m, min_duration=180 s,
  min_length=200 m)`` -- Traccar's stop rule (stay within ~200 m for >= 180 s) in MovingPandas terms. Vigil
  runs on exactly that subset too, so ``ratio`` compares the same fixes. MovingPandas runs twice: on lat/lon
  as given (geodesic distances, the headline) and projected to EPSG:3035 first (its faster configuration).
* **boundary agreement** on that subset, for devices without ignition (where both use the motion rule):
  the share of Vigil trip starts/ends within max(60 s, the device's sampling interval) of a MovingPandas
  boundary of the same kind, and vice versa; both are also scored against the simulator's true trips.

The fleet (seeded, vectorised): per device a sampling interval of 1..30 s, an active time of driving legs
(20..120 km/h, accelerating and braking at the driver's own 1.2..3.5 m/s², heading on a random walk) with
traffic-light halts of 15..90 s, parked stops of 5..30 min with GPS noise of sigma 5..15 m, occasional data
gaps of 1..5 h; 40 % of the devices report ignition, 10 % report no speed or heading.

Run from the repository root: ``python bench/trips.py [--quick]`` (needs the ``bench`` extra). The last
line is ``RESULT {json}``.
"""

from __future__ import annotations

import os

# Before NumPy loads: "per core" must not hide a multi-threaded BLAS or OpenMP pool.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# This file is named like the package it measures: its own folder must not shadow the package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")]

import numpy as np  # noqa: E402

import trips  # noqa: E402
from trips import TripConfig, TripState, close_idle, process_all, score_periods, step  # noqa: E402

from bench.trips_fleet import simulate, subset  # noqa: E402

TARGETS = {"fixes_per_s": 10_000_000, "ratio": 100}
TOL_MS = 60_000                    # boundary tolerance (or the sampling interval, if longer)


# ---------------------------------------------------------------------------------------------- vigil


def vigil_once(cols: dict, cfg: TripConfig):
    r = process_all(cols, cfg)
    score_periods(r.trips, r.trips.device, cfg)
    return r


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        out = None
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def minute_batches(cols: dict, batch_ms: int) -> list[dict]:
    """The fixes as consecutive batches of ``batch_ms`` of fleet time, each sorted by (device, ts)."""
    slot = cols["ts_ms"] // batch_ms
    order = np.lexsort((cols["ts_ms"], cols["device"], slot))
    perm = {k: v[order] for k, v in cols.items()}
    cuts = np.flatnonzero(np.diff(slot[order])) + 1
    bounds = np.concatenate([[0], cuts, [len(order)]])
    return [{k: v[a:b] for k, v in perm.items()} for a, b in zip(bounds[:-1], bounds[1:])]


def vigil_stream(batches: list[dict], batch_ms: int, cfg: TripConfig):
    state = TripState.empty()
    parts = []
    for b in batches:
        r = step(state, b, cfg)
        c = close_idle(r.state, int(b["ts_ms"].max() // batch_ms + 1) * batch_ms, cfg)
        state = c.state
        parts += [r.trips, c.trips]
    last = close_idle(state, 2**62, cfg)
    out = trips.Trips.concat(parts + [last.trips])
    return out.take(np.lexsort((out.start_ms, out.device)))


def profile_top(cols: dict, cfg: TripConfig, limit: int = 18) -> list[dict]:
    """cProfile of one whole-history run: the functions with the most own time."""
    prof = cProfile.Profile()
    prof.enable()
    vigil_once(cols, cfg)
    prof.disable()
    st = pstats.Stats(prof, stream=io.StringIO())
    total = st.total_tt
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:limit]
    return [{"function": f"{Path(f).name}:{ln}:{name}" if f != "~" else name, "calls": cc,
             "own_s": round(tt, 3), "own_pct": round(100 * tt / total, 1), "cum_s": round(ct, 3)}
            for (f, ln, name), (cc, _, tt, ct, _) in rows]


# ---------------------------------------------------------------------------------------------- movingpandas


def movingpandas_trips(cols: dict, projected: bool = False) -> tuple[float, dict]:
    """Seconds for DataFrame -> TrajectoryCollection -> ObservationGapSplitter -> StopSplitter, and the
    resulting trajectories as {device, start_ms, end_ms}. ``projected``: first project to EPSG:3035 (LAEA
    Europe, metres; the simulated fleet is in Europe), which spares MovingPandas its geodesic distances."""
    from datetime import timedelta

    import movingpandas as mpd
    import pandas as pd

    t0 = time.perf_counter()
    x, y, crs = cols["lon"], cols["lat"], "EPSG:4326"
    if projected:
        from pyproj import Transformer

        x, y = Transformer.from_crs(4326, 3035, always_xy=True).transform(x, y)
        crs = "EPSG:3035"
    df = pd.DataFrame({"tid": cols["device"], "dev": cols["device"], "x": x, "y": y,
                       "t": pd.to_datetime(cols["ts_ms"], unit="ms")})
    tc = mpd.TrajectoryCollection(df, traj_id_col="tid", t="t", x="x", y="y", crs=crs)
    tc = mpd.ObservationGapSplitter(tc).split(gap=timedelta(seconds=3600))
    tc = mpd.StopSplitter(tc).split(max_diameter=200, min_duration=timedelta(seconds=180), min_length=200)
    elapsed = time.perf_counter() - t0
    dev, start, end = [], [], []
    for tr in tc.trajectories:
        dev.append(int(tr.df["dev"].iloc[0]))
        t_first, t_last = tr.df.index[[0, -1]].as_unit("ms").asi8
        start.append(int(t_first))
        end.append(int(t_last))
    order = np.lexsort((start, dev))
    return elapsed, {"device": np.asarray(dev, np.int64)[order], "start_ms": np.asarray(start, np.int64)[order],
                     "end_ms": np.asarray(end, np.int64)[order]}


# ---------------------------------------------------------------------------------------------- agreement


def _near(a_dev, a_ts, b_dev, b_ts, tol_ms) -> tuple[np.ndarray, np.ndarray]:
    """Per a: whether some b of the same device lies within tol_ms[a_dev], and a minus the nearest b (ms)."""
    if len(b_ts) == 0:
        return np.zeros(len(a_ts), bool), np.zeros(len(a_ts), np.int64)
    big = np.int64(1) << 44
    bk = np.sort(b_dev * big + b_ts)
    ak = a_dev * big + a_ts
    i = np.searchsorted(bk, ak)
    diff = np.full(len(ak), np.iinfo(np.int64).max // 2)
    for j in (i - 1, i):
        ok = (j >= 0) & (j < len(bk))
        d = ak[ok] - bk[j[ok]]
        closer = np.abs(d) < np.abs(diff[ok])
        diff[np.flatnonzero(ok)[closer]] = d[closer]
    return np.abs(diff) <= tol_ms[a_dev], diff


def agreement(a: dict, b: dict, tol_ms: np.ndarray) -> dict:
    """Starts matched to starts and ends to ends within tolerance, both ways: precision = share of a's
    boundaries near one of b, recall = share of b's near one of a, f1; the median of a minus b (s) over
    matched starts and ends; trips that overlap exactly one trip of the other side, each way."""
    na, nb = len(a["device"]), len(b["device"])
    out = {"a_trips": int(na), "b_trips": int(nb)}
    ma = mb = 0
    for k in ("start_ms", "end_ms"):
        hit, diff = _near(a["device"], a[k], b["device"], b[k], tol_ms)
        ma += int(hit.sum())
        mb += int(_near(b["device"], b[k], a["device"], a[k], tol_ms)[0].sum())
        out[f"{k[:-3]}_offset_s_median"] = round(float(np.median(diff[hit])) / 1000, 1) if hit.any() else None
    p = ma / (2 * na) if na else 1.0
    r = mb / (2 * nb) if nb else 1.0
    out.update({"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
                "a_one_to_one": round(_one_to_one(a, b), 4), "b_one_to_one": round(_one_to_one(b, a), 4)})
    return out


def _one_to_one(a: dict, b: dict) -> float:
    """Share of a's trips overlapping exactly one of b's in time (same device)."""
    if len(a["device"]) == 0:
        return 1.0
    big = np.int64(1) << 44
    bs, be = b["device"] * big + b["start_ms"], b["device"] * big + b["end_ms"]
    lo = np.searchsorted(be, a["device"] * big + a["start_ms"], side="right")   # b ending after a starts
    hi = np.searchsorted(bs, a["device"] * big + a["end_ms"], side="left")      # b starting before a ends
    return float(np.mean(hi - lo == 1))


def select_devices(t: dict, keep: np.ndarray) -> dict:
    m = keep[t["device"]]
    return {k: v[m] for k, v in t.items()}


# ---------------------------------------------------------------------------------------------- driver


DEFINITIONS = (
    "Where the definitions differ (not errors of either side; 'median a-b' above shows their size):",
    "  - stop extent: MovingPandas needs every fix inside a rotated rectangle of 200 m diagonal (a diameter);",
    "    Vigil (Traccar's rule) needs every fix of the last 180 s within 200 m of the newest one (a radius,",
    "    up to 400 m across) *and* a reported speed below 5 km/h where one is reported. Vigil's trip runs",
    "    from the last stopped fix before moving to the first stopped fix (one sample outside the motion);",
    "    MovingPandas' starts once the car has left the rectangle and ends at the first fix of the approach",
    "    inside it (inside the motion).",
    "  - trip minimum: MovingPandas keeps pieces of >= 200 m path length; Vigil needs >= 200 m of path,",
    "    >= 200 m away from the start and >= 60 s.",
    "  - MovingPandas' stop takes in the approach and then grows with every fix: on a long noisy stop the",
    "    rectangle can pass 200 m, ending the stop early; the fixes until the next stop make a 'trip' whose",
    "    zig-zag of noise passes min_length. Vigil's 200 m displacement test drops such noise.",
    "  - devices with ignition are left out: Vigil ends their trips on ignition off, MovingPandas cannot.",
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fixes", type=int, default=10_000_000)
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--mp-devices", type=int, default=50, help="devices of the MovingPandas subset")
    p.add_argument("--quick", action="store_true", help="~1M fixes of 1000 devices, MovingPandas on 30")
    p.add_argument("--repeat", type=int, default=3, help="Vigil runs per measurement; the best counts")
    p.add_argument("--batch-s", type=float, default=60.0, help="fleet time per streaming batch")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-stream", action="store_true")
    p.add_argument("--no-movingpandas", action="store_true")
    p.add_argument("--profile", action="store_true", help="also cProfile one whole-history run")
    args = p.parse_args(argv)
    if args.quick:
        args.fixes, args.devices, args.mp_devices = 1_000_000, 1_000, 30
    return args


def run(args) -> dict:
    pinned = None
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {0})
            pinned = sorted(os.sched_getaffinity(0))
        except OSError:
            pass
    cfg = TripConfig()
    t0 = time.perf_counter()
    cols, props, truth = simulate(args.fixes, args.devices, args.seed)
    n = len(cols["ts_ms"])
    r = {"fixes": n, "devices": args.devices, "seed": args.seed, "pinned_cpus": pinned,
         "simulate_s": round(time.perf_counter() - t0, 2), "legs_per_device": props["legs"],
         "devices_with_ignition": int(props["ignition"].sum()), "devices_without_speed": int(props["no_speed"].sum()),
         "sampling_s_mean": round(float(props["dt_s"].mean()), 1),
         "span_h": round(float(cols["ts_ms"].max() - cols["ts_ms"].min()) / 3.6e6, 1)}

    cpu: list[float] = []

    def timed():  # also the process's CPU time, which other load on a shared machine does not inflate
        c0 = time.process_time()
        out = vigil_once(cols, cfg)
        cpu.append(time.process_time() - c0)
        return out

    secs, res = best_of(timed, args.repeat)
    tr = res.trips
    r.update({"vigil_s": round(secs, 3), "fixes_per_s": round(n / secs), "vigil_cpu_s": round(min(cpu), 3),
              "fixes_per_cpu_s": round(n / min(cpu)), "trips": len(tr), "stops": len(res.stops),
              "events": len(res.events),
              "events_by_kind": dict(zip(trips.EVENT_NAMES, np.bincount(res.events.kind, minlength=5).tolist())),
              "distance_km": round(float(tr.distance_m.sum()) / 1000, 1),
              "mean_score": round(float(tr.score.mean()), 2) if len(tr) else None,
              "true_trips": len(truth["device"])})
    tol = np.maximum(TOL_MS, props["dt_s"] * 1000)
    r["vigil_vs_truth_all_devices"] = agreement(
        {k: getattr(tr, k) for k in ("device", "start_ms", "end_ms")}, truth, tol)

    if not args.no_stream:
        batch_ms = int(args.batch_s * 1000)
        batches = minute_batches(cols, batch_ms)
        s_secs, s_trips = best_of(lambda: vigil_stream(batches, batch_ms, cfg), max(1, min(args.repeat, 2)))
        same = (len(s_trips) == len(tr) and all(np.array_equal(getattr(s_trips, k), getattr(tr, k))
                                                for k in ("device", "start_ms", "end_ms", "n_fixes")))
        r.update({"streaming_s": round(s_secs, 3), "streaming_fixes_per_s": round(n / s_secs),
                  "streaming_batches": len(batches), "streaming_batch_fixes_mean": round(n / len(batches)),
                  "streaming_trips": len(s_trips), "streaming_equals_batch": bool(same)})
        del batches

    if args.profile:
        r["profile_top"] = profile_top(cols, cfg)

    if not args.no_movingpandas:
        sub = subset(cols, args.mp_devices)
        m = len(sub["ts_ms"])
        v_secs, v_res = best_of(lambda: vigil_once(sub, cfg), max(args.repeat, 5))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mp_secs, mp = movingpandas_trips(sub)
            pj_secs, pj = movingpandas_trips(sub, projected=True)
        vt = {k: getattr(v_res.trips, k) for k in ("device", "start_ms", "end_ms")}
        motion = ~props["ignition"].copy()
        motion[args.mp_devices:] = False
        sub_truth = select_devices(truth, motion)
        r.update({
            "mp_devices": args.mp_devices, "mp_fixes": m, "movingpandas_s": round(mp_secs, 3),
            "movingpandas_fixes_per_s": round(m / mp_secs), "movingpandas_trips": len(mp["device"]),
            "vigil_subset_s": round(v_secs, 5), "vigil_subset_fixes_per_s": round(m / v_secs),
            "vigil_subset_trips": len(vt["device"]),
        })
        r.update({"movingpandas_projected_s": round(pj_secs, 3),
                  "movingpandas_projected_fixes_per_s": round(m / pj_secs),
                  "movingpandas_projected_trips": len(pj["device"])})
        r["ratio"] = round(r["vigil_subset_fixes_per_s"] / r["movingpandas_fixes_per_s"], 1)
        r["ratio_vs_projected"] = round(r["vigil_subset_fixes_per_s"] / r["movingpandas_projected_fixes_per_s"], 1)
        r["ratio_full_run"] = round(r["fixes_per_s"] / r["movingpandas_fixes_per_s"], 1)
        r["ratio_basis"] = ("ratio: Vigil and MovingPandas (lat/lon, geodesic) on the same subset; ratio_full_run:"
                            " Vigil's full run; ratio_vs_projected: same subset, MovingPandas on EPSG:3035")
        r["boundary_agreement_detail"] = {
            "devices": int(motion.sum()), "tolerance": "max(60 s, sampling interval)",
            "vigil_vs_movingpandas": agreement(select_devices(vt, motion), select_devices(mp, motion), tol),
            "vigil_vs_truth": agreement(select_devices(vt, motion), sub_truth, tol),
            "movingpandas_vs_truth": agreement(select_devices(mp, motion), sub_truth, tol),
        }
        r["boundary_agreement"] = r["boundary_agreement_detail"]["vigil_vs_movingpandas"]["f1"]

    r["targets"] = TARGETS
    r["met"] = {"fixes_per_s": r["fixes_per_s"] >= TARGETS["fixes_per_s"],
                "ratio": bool(r.get("ratio") and r["ratio"] >= TARGETS["ratio"]),
                "ratio_vs_projected": bool(r.get("ratio_vs_projected") and r["ratio_vs_projected"] >= TARGETS["ratio"])}
    r["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    r["numpy"] = np.__version__
    r["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    return r


def print_table(r: dict) -> None:
    print(f"\nTrip core benchmark: {r['fixes']:,} fixes of {r['devices']:,} devices over {r['span_h']} h "
          f"(mean sampling {r['sampling_s_mean']} s; {r['devices_with_ignition']} with ignition, "
          f"{r['devices_without_speed']} without speed), CPUs {r['pinned_cpus']}")
    print(f"\n  {'':46}{'fixes':>11}{'seconds':>10}{'fixes/s':>13}{'trips':>8}")
    print(f"  {'Vigil process_all + score_periods':46}{r['fixes']:>11,}{r['vigil_s']:>10.3f}"
          f"{r['fixes_per_s']:>13,}{r['trips']:>8,}   CPU {r['vigil_cpu_s']:.3f} s: {r['fixes_per_cpu_s']:,}/s")
    if "streaming_s" in r:
        label = f"Vigil step, {r['streaming_batches']} batches (+ close_idle)"
        print(f"  {label:46}{r['fixes']:>11,}{r['streaming_s']:>10.3f}{r['streaming_fixes_per_s']:>13,}"
              f"{r['streaming_trips']:>8,}   same trips as whole: {r['streaming_equals_batch']}")
    if "movingpandas_s" in r:
        label = f"Vigil process_all, first {r['mp_devices']} devices"
        print(f"  {label:46}{r['mp_fixes']:>11,}"
              f"{r['vigil_subset_s']:>10.4f}{r['vigil_subset_fixes_per_s']:>13,}{r['vigil_subset_trips']:>8,}")
        for label, key in (("MovingPandas gap + stop split, same devices", "movingpandas"),
                           ("MovingPandas, same, projected to EPSG:3035", "movingpandas_projected")):
            print(f"  {label:46}{r['mp_fixes']:>11,}{r[key + '_s']:>10.3f}{r[key + '_fixes_per_s']:>13,}"
                  f"{r[key + '_trips']:>8,}")
        print(f"\n  ratio {r['ratio']}x on the same subset ({r['ratio_full_run']}x against Vigil's full run;"
              f" {r['ratio_vs_projected']}x against MovingPandas projected)")
    print(f"  events {r['events']:,} {r['events_by_kind']}; stops {r['stops']:,}; {r['distance_km']:,} km;"
          f" mean trip score {r['mean_score']}; simulator's true trips {r['true_trips']:,}")
    vt = r["vigil_vs_truth_all_devices"]
    print(f"  Vigil vs simulator truth, all devices: boundaries P {vt['precision']} R {vt['recall']} F1 {vt['f1']}")
    if "boundary_agreement_detail" in r:
        d = r["boundary_agreement_detail"]
        print(f"\n  Boundary agreement on {d['devices']} devices without ignition, tolerance {d['tolerance']}:")
        print(f"  {'':28}{'trips a/b':>12}{'P':>8}{'R':>8}{'F1':>8}{'1:1 a':>8}{'1:1 b':>8}"
              f"  median a-b s: start, end")
        for name, key in (("Vigil vs MovingPandas", "vigil_vs_movingpandas"), ("Vigil vs truth", "vigil_vs_truth"),
                          ("MovingPandas vs truth", "movingpandas_vs_truth")):
            x = d[key]
            sizes = f"{x['a_trips']}/{x['b_trips']}"
            print(f"  {name:28}{sizes:>12}{x['precision']:>8}{x['recall']:>8}{x['f1']:>8}{x['a_one_to_one']:>8}"
                  f"{x['b_one_to_one']:>8}  {x['start_offset_s_median']}, {x['end_offset_s_median']}")
        print()
        print("\n".join("  " + line for line in DEFINITIONS))
    if "profile_top" in r:
        print("\n  cProfile of one process_all + score_periods, by own time:")
        for p in r["profile_top"]:
            print(f"    {p['own_s']:>8.3f} s {p['own_pct']:>5.1f} %  {p['calls']:>7}  {p['function']}")
    print(f"\n  targets {r['targets']}; met {r['met']}; peak RSS {r['max_rss_mb']} MB\n")


def main(argv=None) -> None:
    args = parse_args(argv)
    result = run(args)
    print_table(result)
    print("RESULT " + json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
