"""The content of each certificate kind: pure functions from fixes, trips and events to plain dicts.

Every value is rounded to what it can honestly claim (positions 1e-6°, distances 0.1 m, shares 1e-4), so
the canonical JSON is stable and short. Times are ISO 8601 UTC with milliseconds. Period maps round
coordinates to 1e-3° (about 100 m): enough to show where a car is used, not where it stops at night.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from pyproj import Geod

from certificates.position import CANNOT_ATTEST, STATUS_NAMES, FineAssistConfig, estimate_positions

FORMAT = "vigil-certificate/1"
KINDS = ("fine_assist", "driving_style", "vehicle_usage")
_GEOD = Geod(ellps="WGS84")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MAX_MAP_POINTS = 600


def iso_ms(ms: int) -> str:
    """ISO 8601 UTC with milliseconds and a Z: 2024-03-01T08:15:00.000Z."""
    return (_EPOCH + dt.timedelta(milliseconds=int(ms))).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _r(x, digits: int):
    """Round for JSON; NaN becomes None."""
    x = float(x)
    return None if x != x else round(x, digits)


def _thin(idx: np.ndarray, limit: int) -> np.ndarray:
    if len(idx) <= limit:
        return idx
    return idx[np.unique(np.linspace(0, len(idx) - 1, limit).round().astype(np.int64))]


def certificate(*, cert_id: str, kind: str, vehicle_id: str, issued_at_ms: int, key_id: str,
                verification_url: str, body: dict) -> dict:
    """The signed object: identity, issuer and key, plus the kind's ``subject``, ``findings`` and ``map``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    return {"format": FORMAT, "id": cert_id, "kind": kind, "vehicle_id": vehicle_id, "issuer": "Vigil",
            "issued_at": iso_ms(issued_at_ms), "key_id": key_id, "verification_url": verification_url, **body}


def fine_assist(fixes: dict, at_ms: int, place: tuple[float, float] | None, cfg: FineAssistConfig,
                context_s: float = 300.0) -> dict:
    """Where the car was at ``at_ms``. ``fixes``: one device's columns ts_ms, lat, lon, speed_kmh,
    heading_deg, accuracy_m (NaN = not reported), ignition (1 on, 0 off, -1 not reported), sorted by ts_ms
    and covering at least ``max_gap_s`` and ``context_s`` around the moment."""
    ts = np.asarray(fixes["ts_ms"], np.int64)
    est = estimate_positions(ts, fixes["lat"], fixes["lon"], fixes["speed_kmh"], fixes["accuracy_m"],
                             [at_ms], cfg)
    status, before, after = int(est.status[0]), int(est.before[0]), int(est.after[0])
    attested = status != CANNOT_ATTEST
    # Only fixes within the max gap count as evidence, for the position and for the ignition alike.
    used = [(i, role) for i, role in ((before, "before"), (after, "after"))
            if i >= 0 and abs(int(ts[i]) - at_ms) <= cfg.max_gap_s * 1000]
    ignition = {role: _ignition(fixes["ignition"][i]) for i, role in used}
    ign_b, ign_a = ignition.get("before"), ignition.get("after")
    findings: dict = {
        "attested": attested,
        "method": STATUS_NAMES[status],
        "gap_before_s": _r(est.gap_before_s[0], 3),
        "gap_after_s": _r(est.gap_after_s[0], 3),
        "position": ({"lat": _r(est.lat[0], 6), "lon": _r(est.lon[0], 6), "radius_m": _r(est.radius_m[0], 1)}
                     if attested else None),
        "statement": _statement(attested, est, cfg),
        "ignition": {"before": ign_b, "after": ign_a,
                     "at_moment": ign_b if attested and ign_b is not None and ign_b == ign_a else "unknown"},
        "fixes_used": [_fix(fixes, i, role) for i, role in used],
        "alleged_place": _place(place, est) if place is not None else None,
    }
    near = np.flatnonzero(np.abs(ts - at_ms) <= context_s * 1000)
    near = _thin(near, MAX_MAP_POINTS)
    points = [{"lat": _r(fixes["lat"][i], 6), "lon": _r(fixes["lon"][i], 6), "label": role}
              for i, role in used]
    if place is not None:
        points.append({"lat": _r(place[0], 6), "lon": _r(place[1], 6), "label": "alleged place"})
    view = None
    if attested:
        half = max(3.0 * float(est.radius_m[0]), 250.0)
        dist = (findings["alleged_place"] or {}).get("distance_m")
        if dist is not None and dist < 5_000.0:
            half = max(half, 1.2 * dist)
        view = {"lat": _r(est.lat[0], 6), "lon": _r(est.lon[0], 6), "radius_m": _r(half, 1)}
    return {
        "subject": {"moment": iso_ms(at_ms),
                    "alleged_place": {"lat": _r(place[0], 6), "lon": _r(place[1], 6)} if place else None},
        "parameters": {"max_gap_s": cfg.max_gap_s, "max_accel_mps2": cfg.max_accel_mps2,
                       "max_speed_kmh": cfg.max_speed_kmh, "gnss_k": cfg.gnss_k,
                       "default_accuracy_m": cfg.default_accuracy_m, "speed_margin_mps": cfg.speed_margin_mps},
        "findings": findings,
        "map": {"lines": [[[_r(fixes["lat"][i], 6), _r(fixes["lon"][i], 6)] for i in near]] if len(near) else [],
                "points": points, "circle": dict(findings["position"]) if attested else None, "view": view},
    }


def _ignition(code) -> str | None:
    code = int(code)
    return None if code < 0 else ("on" if code else "off")


def _fix(fixes: dict, i: int, role: str) -> dict:
    return {"role": role, "ts": iso_ms(fixes["ts_ms"][i]), "lat": _r(fixes["lat"][i], 6),
            "lon": _r(fixes["lon"][i], 6), "speed_kmh": _r(fixes["speed_kmh"][i], 1),
            "heading_deg": _r(fixes["heading_deg"][i], 1), "accuracy_m": _r(fixes["accuracy_m"][i], 1),
            "ignition": _ignition(fixes["ignition"][i])}


def _statement(attested: bool, est, cfg: FineAssistConfig) -> str:
    if not attested:
        gaps = [f"{g:.0f} s {w}" for g, w in ((est.gap_before_s[0], "before"), (est.gap_after_s[0], "after"))
                if g == g]
        nearest = ", ".join(gaps) if gaps else "none"
        return (f"Cannot attest a position: no fix within {cfg.max_gap_s:.0f} s of the moment "
                f"(nearest fixes: {nearest}).")
    return (f"The vehicle was within {est.radius_m[0]:.0f} m of {est.lat[0]:.6f}, {est.lon[0]:.6f} "
            f"at the moment ({STATUS_NAMES[int(est.status[0])].replace('_', ' ')}).")


def _place(place: tuple[float, float], est) -> dict:
    lat, lon = float(place[0]), float(place[1])
    if est.status[0] == CANNOT_ATTEST:
        return {"distance_m": None, "beyond_radius_m": None, "within_radius": None}
    _, _, dist = _GEOD.inv(lon, lat, float(est.lon[0]), float(est.lat[0]))
    radius = float(est.radius_m[0])
    return {"distance_m": _r(dist, 1), "beyond_radius_m": _r(max(0.0, dist - radius), 1),
            "within_radius": bool(dist <= radius)}


def period_map(trip_start_ms, trip_end_ms, ts_ms, lat, lon) -> dict:
    """One line per trip from thinned fixes (sorted by ts_ms), coordinates rounded to 1e-3 degrees."""
    ts = np.asarray(ts_ms, np.int64)
    starts, ends = np.asarray(trip_start_ms, np.int64), np.asarray(trip_end_ms, np.int64)
    k = np.searchsorted(starts, ts, side="right") - 1
    inside = (k >= 0) & (ts <= ends[np.maximum(k, 0)])
    idx = _thin(np.flatnonzero(inside), MAX_MAP_POINTS * 3)
    lines = []
    for trip in np.unique(k[idx]):
        sel = idx[k[idx] == trip]
        lines.append([[_r(lat[i], 3), _r(lon[i], 3)] for i in sel])
    return {"lines": lines, "points": [], "circle": None, "view": None}


def driving_style(style: dict, start_ms: int | None, end_ms: int | None, trip_map: dict) -> dict:
    """A driving-style certificate from a period summary (trips.period.period_style)."""
    return {"subject": _period(start_ms, end_ms), "findings": style, "map": trip_map}


def _period(start_ms, end_ms) -> dict:
    return {"from": iso_ms(start_ms) if start_ms is not None else None,
            "to": iso_ms(end_ms) if end_ms is not None else None}


def vehicle_usage(usage: dict, start_ms: int | None, end_ms: int | None, trip_map: dict) -> dict:
    """A vehicle-usage certificate from certificates.usage.usage_summary."""
    return {"subject": _period(start_ms, end_ms), "findings": usage, "map": trip_map}
