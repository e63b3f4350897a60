"""Points of interest of an OSM PBF (shops, cafés, restaurants, car parks, schools…) where the city's cars
drive to and from; read with pyrosm and cached as ``.npz`` beside the road graph (the only I/O here)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from roads.loader import cache_key
from vigil.errors import ConfigError

log = logging.getLogger(__name__)

#: Amenities people drive to; benches, waste baskets, vending machines and the like are not destinations.
DESTINATIONS = ("restaurant", "cafe", "fast_food", "pub", "bar", "parking", "bank", "pharmacy", "school",
                "kindergarten", "library", "cinema", "theatre", "hospital", "clinic", "doctors", "dentist",
                "fuel", "marketplace", "place_of_worship", "police", "post_office", "townhall", "university")


def read_pois(pbf: Path, *, cache_dir: Path | None) -> dict[str, np.ndarray]:
    """``lat``, ``lon`` (degrees) and ``name`` of every shop and destination amenity of ``pbf``."""
    cache = cache_dir / f"{pbf.stem}-pois-{cache_key(pbf, 'pois')}.npz" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return {"lat": z["lat"], "lon": z["lon"], "name": z["name"].astype(object)}
    try:
        import pyrosm

        pois = pyrosm.OSM(str(pbf)).get_pois(custom_filter={"amenity": list(DESTINATIONS), "shop": True})
    except ImportError as exc:  # pragma: no cover - pyrosm is a runtime dependency
        raise ConfigError("reading points of interest needs pyrosm") from exc
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot read points of interest from {pbf}: {exc}") from exc
    if pois is None or len(pois) == 0:
        return {"lat": np.empty(0), "lon": np.empty(0), "name": np.empty(0, dtype=object)}
    points = pois.geometry.representative_point()
    kind = pois["shop"].fillna(pois["amenity"]) if "shop" in pois else pois["amenity"]
    name = pois["name"].fillna(kind.fillna("place")) if "name" in pois else kind.fillna("place")
    out = {"lat": points.y.to_numpy(np.float64), "lon": points.x.to_numpy(np.float64),
           "name": name.astype(str).to_numpy(object)}
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, lat=out["lat"], lon=out["lon"], name=out["name"].astype(str))
        except OSError as exc:
            log.warning("could not cache points of interest at %s: %s", cache, exc)
    return out
