"""Postal addresses for simulated homes, from an OSM PBF.

:func:`read_address_book` (the only I/O here; read with pyrosm, cached as ``.npz`` beside the road graph)
keeps the buildings that carry ``addr:street`` + ``addr:housenumber`` and the vertices of named streets.
:func:`nearest_addresses` (pure, vectorised over all homes) gives each home the address of the nearest
addressed building within ``building_radius_m``, otherwise the nearest named street with a house number
drawn from the seed — OSM extracts tag only some buildings with an address (the bundled Helsinki sample:
87 of 486), but name nearly every street. The postal code is that of the nearest building that has one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from roads.loader import cache_key
from vigil.errors import ConfigError

log = logging.getLogger(__name__)

EARTH_RADIUS_M = 6_371_008.8
#: Highway classes people live on (no footways, steps, cycleways, service roads).
STREET_CLASSES = ("primary", "secondary", "tertiary", "unclassified", "residential", "living_street", "pedestrian")
_KEYS = ("b_lat", "b_lon", "b_street", "b_number", "b_postcode", "b_city", "s_lat", "s_lon", "s_name")


@dataclass(frozen=True)
class AddressBook:
    """Addressed buildings (``b_*``, shape (B,); postcode and city "" when untagged) and named street
    vertices (``s_*``, shape (S,)). Degrees for positions."""

    b_lat: np.ndarray
    b_lon: np.ndarray
    b_street: np.ndarray
    b_number: np.ndarray
    b_postcode: np.ndarray
    b_city: np.ndarray
    s_lat: np.ndarray
    s_lon: np.ndarray
    s_name: np.ndarray


@dataclass(frozen=True)
class Addresses:
    """One address per home, shape (n,) each: ``street`` ("Unioninkatu 29"), ``postal_code``, ``city``
    ("" when the map did not say), ``source`` ("building", "street" or "none")."""

    street: np.ndarray
    postal_code: np.ndarray
    city: np.ndarray
    source: np.ndarray


def _column(frame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    return frame[name].fillna("").astype(str).to_numpy(object)


def read_address_book(pbf: Path, *, cache_dir: Path | None) -> AddressBook:
    """The addressed buildings and named streets of ``pbf``."""
    cache = cache_dir / f"{pbf.stem}-addresses-{cache_key(pbf, 'addresses')}.npz" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return AddressBook(**{k: z[k] if k.endswith(("lat", "lon")) else z[k].astype(object) for k in _KEYS})
    try:
        import pyrosm
        import shapely

        osm = pyrosm.OSM(str(pbf))
        buildings = osm.get_buildings()
        edges = osm.get_network(network_type="all")
    except ImportError as exc:  # pragma: no cover - pyrosm is a runtime dependency
        raise ConfigError("reading addresses needs pyrosm") from exc
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot read addresses from {pbf}: {exc}") from exc
    out = {k: np.empty(0, float if k.endswith(("lat", "lon")) else object) for k in _KEYS}
    if buildings is not None and len(buildings):
        b = buildings[(_column(buildings, "addr:street") != "") & (_column(buildings, "addr:housenumber") != "")]
        points = b.geometry.representative_point()
        out.update(b_lat=points.y.to_numpy(np.float64), b_lon=points.x.to_numpy(np.float64),
                   b_street=_column(b, "addr:street"), b_number=_column(b, "addr:housenumber"),
                   b_postcode=_column(b, "addr:postcode"), b_city=_column(b, "addr:city"))
    if edges is not None and len(edges) and "name" in edges.columns:
        named = edges[(_column(edges, "name") != "") & np.isin(_column(edges, "highway"), STREET_CLASSES)]
        xy, which = shapely.get_coordinates(named.geometry.to_numpy(), return_index=True)
        out.update(s_lat=xy[:, 1].copy(), s_lon=xy[:, 0].copy(), s_name=_column(named, "name")[which])
    book = AddressBook(**out)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, **{k: v.astype(str) if v.dtype == object else v for k, v in out.items()})
        except OSError as exc:
            log.warning("could not cache addresses at %s: %s", cache, exc)
    return book


def _metres(lat: np.ndarray, lon: np.ndarray, lat0: float) -> np.ndarray:
    """Equirectangular east/north metres: exact enough within a city for nearest-neighbour search."""
    return np.column_stack([np.radians(lon) * EARTH_RADIUS_M * np.cos(np.radians(lat0)),
                            np.radians(lat) * EARTH_RADIUS_M])


def nearest_addresses(lat, lon, book: AddressBook, rng: np.random.Generator, *,
                      building_radius_m: float = 80.0) -> Addresses:
    """An address for each home at (``lat``, ``lon``) degrees, shape (n,); see the module docstring.
    Homes farther than ``building_radius_m`` from an addressed building take the nearest named street
    and a house number 1-79 from ``rng``; with no named street, ``source`` is "none" and street ""."""
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    n = len(lat)
    street = np.full(n, "", dtype=object)
    postal = np.full(n, "", dtype=object)
    city = np.full(n, "", dtype=object)
    source = np.full(n, "none", dtype=object)
    numbers = rng.integers(1, 80, n)  # drawn for every home, so one home's number does not shift another's
    if n == 0:
        return Addresses(street, postal, city, source)
    lat0 = float(np.mean(lat))
    here = _metres(lat, lon, lat0)
    if len(book.s_lat):
        _, near = cKDTree(_metres(book.s_lat, book.s_lon, lat0)).query(here)
        street = np.char.add(np.char.add(book.s_name[near].astype(str), " "), numbers.astype(str)).astype(object)
        source[:] = "street"
    if len(book.b_lat):
        dist, near = cKDTree(_metres(book.b_lat, book.b_lon, lat0)).query(here)
        hit = dist <= building_radius_m
        street[hit] = np.char.add(np.char.add(book.b_street[near[hit]].astype(str), " "),
                                  book.b_number[near[hit]].astype(str))
        source[hit] = "building"
        city[hit] = book.b_city[near[hit]]
        coded = np.flatnonzero(book.b_postcode != "")
        if len(coded):
            _, near_code = cKDTree(_metres(book.b_lat[coded], book.b_lon[coded], lat0)).query(here)
            postal = book.b_postcode[coded][near_code]
    return Addresses(street, postal, city, source)
