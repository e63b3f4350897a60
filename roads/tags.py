"""Which OSM ways a mode of travel may use, decided per way segment from its tags (vectorised).

Tag values arrive as one array per key with one entry per way segment, missing values as ``""`` (``None``
and NaN are read as missing too), so every rule is a NumPy set-membership test, never a loop over segments.

Walking (``mode="walking"``):
  * Walkable by class: footway, path, pedestrian, steps, living_street, residential, service, unclassified,
    road, tertiary/secondary/primary and their links, track, trail, bridleway, corridor, elevator,
    escalator. Streets count as walkable because in OSM a street's pavement is usually part of the street
    way; where the pavement is drawn separately, both are kept (the lengths differ by a few metres and
    dropping the street would cut the graph wherever the pavement mapping is incomplete).
  * Walkable only when a ``foot`` tag allows it (yes, designated, permissive): cycleway, trunk,
    trunk_link, busway. A Finnish shared path is ``highway=cycleway`` + ``foot=designated``; a bare
    cycleway is closed to walkers.
  * Never: motorway and motorway_link (walking there is illegal and lethal, whatever the tags say), and
    the not-a-way classes (proposed, construction, abandoned, platform, raceway, ...) and ``area=yes``.
  * Closed: ``foot`` in (no, private, use_sidepath); or ``access`` in (no, private) — also as one of
    several values such as ``private;delivery`` — unless ``foot`` allows it.
  * Road tunnels (``tunnel`` set, not "no") are closed unless the way is a pedestrian class or ``foot``
    allows it: central Helsinki has a four-level underground service-road network for lorries that is
    tagged ``highway=service`` and would otherwise pull walking routes underground.
  * Walkers ignore ``oneway``: every walkable segment is usable in both directions.

Snapping (both modes): people and parked cars are at street level, so a point snaps only to segments
that are not in a tunnel, not on a negative ``layer`` and not indoor vertical links (corridor, elevator,
escalator); routes may still pass through those.

Driving (``mode="driving"``), for the city simulator:
  * Drivable classes: motorway, trunk, primary, secondary, tertiary (and their links), unclassified,
    residential, living_street, service, road.
  * Closed: the most specific of ``motorcar``, ``motor_vehicle``, ``vehicle``, ``access`` that the way
    carries is no or private (OSM's access hierarchy).
  * One way: ``oneway`` yes/true/1 (forward), -1/reverse (backward); motorways, motorway links and
    ``junction=roundabout`` are one way forward unless ``oneway=no``.
  * ``maxspeed`` is parsed to km/h (a plain number, or "N mph"); anything else (zone codes, "none",
    "signals") is NaN so the caller picks a default by class.
"""

from __future__ import annotations

import numpy as np

MODES = ("walking", "driving")

#: Highway classes kept as a small integer code per segment; anything else is ``other``.
HIGHWAY_CLASSES = (
    "other", "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary",
    "secondary_link", "tertiary", "tertiary_link", "unclassified", "residential", "living_street", "service",
    "road", "pedestrian", "footway", "path", "steps", "cycleway", "track", "trail", "bridleway", "corridor",
    "elevator", "escalator", "busway",
)

_WALK_ALWAYS = (
    "footway", "path", "pedestrian", "steps", "living_street", "residential", "service", "unclassified", "road",
    "tertiary", "tertiary_link", "secondary", "secondary_link", "primary", "primary_link", "track", "trail",
    "bridleway", "corridor", "elevator", "escalator",
)
_WALK_IF_FOOT = ("cycleway", "trunk", "trunk_link", "busway")
_PEDESTRIAN = ("footway", "path", "pedestrian", "steps", "corridor", "elevator", "escalator")
_NOT_AT_STREET_LEVEL = ("corridor", "elevator", "escalator")
_FOOT_OK = ("yes", "designated", "permissive")
_FOOT_CLOSED = ("no", "private", "use_sidepath")
_CLOSED = ("no", "private")
_DRIVE = (
    "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary", "secondary_link",
    "tertiary", "tertiary_link", "unclassified", "residential", "living_street", "service", "road",
)
_IMPLIED_ONEWAY = ("motorway", "motorway_link")


def _col(values, n: int) -> np.ndarray:
    """A unicode array of length ``n``, ``""`` where the tag is missing."""
    if values is None:
        return np.full(n, "", dtype="<U1")
    arr = np.asarray(values, dtype=object).astype(str)
    return np.where(np.isin(arr, ("None", "nan")), "", arr)


def _is(values: np.ndarray, allowed: tuple[str, ...]) -> np.ndarray:
    """Membership that also matches one value of a multi-value tag (``private;delivery``)."""
    hit = np.isin(values, allowed)
    multi = np.flatnonzero(np.char.find(values, ";") >= 0)
    for i in multi:  # rare: a handful of ways per city carry multi-value access tags
        hit[i] = any(part.strip() in allowed for part in values[i].split(";"))
    return hit


def highway_codes(highway) -> np.ndarray:
    """uint8 code of each segment's highway class (index into :data:`HIGHWAY_CLASSES`)."""
    hw = _col(highway, len(highway))
    names = np.array(HIGHWAY_CLASSES)
    order = np.argsort(names)
    pos = np.clip(np.searchsorted(names[order], hw), 0, len(names) - 1)
    code = order[pos]
    return np.where(names[code] == hw, code, 0).astype(np.uint8)


def walkable(tags: dict[str, object], n: int) -> np.ndarray:
    """Boolean mask of segments a pedestrian may use. ``tags``: key -> array of values (see module doc)."""
    hw, foot, access, area = (_col(tags.get(k), n) for k in ("highway", "foot", "access", "area"))
    foot_ok = np.isin(foot, _FOOT_OK)
    by_class = np.isin(hw, _WALK_ALWAYS) | (np.isin(hw, _WALK_IF_FOOT) & foot_ok)
    closed = _is(foot, _FOOT_CLOSED) | (_is(access, _CLOSED) & ~foot_ok)
    road_tunnel = _tunnel(tags, n) & ~np.isin(hw, _PEDESTRIAN) & ~foot_ok
    return by_class & ~closed & ~road_tunnel & (area != "yes")


def _tunnel(tags: dict[str, object], n: int) -> np.ndarray:
    tunnel = _col(tags.get("tunnel"), n)
    return (tunnel != "") & (tunnel != "no")


def street_level(tags: dict[str, object], n: int) -> np.ndarray:
    """Segments a point may snap to: not in a tunnel, not below ground (``layer`` < 0), not an indoor
    vertical link."""
    layer = _col(tags.get("layer"), n)
    below = np.char.startswith(layer, "-")
    return ~_tunnel(tags, n) & ~below & ~np.isin(_col(tags.get("highway"), n), _NOT_AT_STREET_LEVEL)


def drivable(tags: dict[str, object], n: int) -> np.ndarray:
    """Boolean mask of segments a car may use (either direction; see :func:`directions`)."""
    hw, area = _col(tags.get("highway"), n), _col(tags.get("area"), n)
    decided = np.zeros(n, dtype=bool)
    closed = np.zeros(n, dtype=bool)
    for key in ("motorcar", "motor_vehicle", "vehicle", "access"):
        value = _col(tags.get(key), n)
        present = (value != "") & ~decided
        closed |= present & _is(value, _CLOSED)
        decided |= present
    return np.isin(hw, _DRIVE) & ~closed & (area != "yes")


def directions(tags: dict[str, object], n: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(forward, backward) boolean arrays: may the segment be travelled from its first node to its second,
    and back. Walking: always both."""
    if mode == "walking":
        return np.ones(n, dtype=bool), np.ones(n, dtype=bool)
    hw, oneway, junction = (_col(tags.get(k), n) for k in ("highway", "oneway", "junction"))
    forward_only = np.isin(oneway, ("yes", "true", "1")) | (
        (np.isin(hw, _IMPLIED_ONEWAY) | (junction == "roundabout")) & (oneway != "no"))
    backward_only = np.isin(oneway, ("-1", "reverse"))
    return ~backward_only, ~forward_only | backward_only


def maxspeed_kmh(values, n: int) -> np.ndarray:
    """float32 km/h from ``maxspeed`` tag values; NaN where missing or not a number."""
    raw = _col(values, n)
    out = np.full(n, np.nan, dtype=np.float32)
    number = np.char.isdigit(raw)
    out[number] = raw[number].astype(np.float32)
    mph = np.char.endswith(raw, " mph")
    if mph.any():
        head = np.char.replace(raw[mph], " mph", "")
        ok = np.char.isdigit(head)
        out[np.flatnonzero(mph)[ok]] = head[ok].astype(np.float32) * np.float32(1.609344)
    return out
