"""Per-fix signals of a track table, computed chunk by chunk so the temporaries stay in cache.

Row ``j`` describes fix ``j`` and the hop from fix ``j-1`` (same device) to it; at the first row of a
device the hop fields are 0 and ``first`` is set. Accelerations are not computed for every fix: a cheap
necessary test marks the rows that may hold a harsh or crash sample (``hint``) and
:func:`accelerations` evaluates those rows only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trips.config import G, TripConfig
from trips.geo import E2, _KM, _KN, _RAD, cos_lat

CHUNK = 1 << 15
_F = np.float32


@dataclass(slots=True)
class Signals:
    """Shapes (n,). Seconds, metres, km/h."""
    first: np.ndarray      # bool: first row of its device in the table
    brk: np.ndarray        # bool: the hop into this fix spans more than max_gap_s (no trip crosses it)
    dt: np.ndarray         # float32 s, hop duration
    dist: np.ndarray       # float32 m, hop length on the ellipsoid (summed in float64)
    kmh: np.ndarray        # float32: reported speed, else hop length / duration, else 0
    slow: np.ndarray       # bool: reported speed below stop_speed_kmh, or no speed reported
    dt_moving: np.ndarray  # float32 s: dt where kmh >= stop_speed_kmh, else 0
    wcut: np.ndarray       # bool: a road-class window starts here (new epoch window or new block)
    pcut: np.ndarray       # bool: wcut, or a new UTC minute or UTC offset (local minute may change)
    hint: np.ndarray       # bool: may be a harsh-driving or crash sample
    key: np.ndarray        # int64: increases along the table; devices are further apart than any window
    cos: np.ndarray        # float32: trips.geo.cos_lat of the fix, reused by every later distance


def compute_signals(t: dict[str, np.ndarray], cfg: TripConfig) -> Signals:
    """Signals of the track table ``t`` (columns of trips.state.TRACK_COLUMNS, sorted by device, ts)."""
    n = len(t["ts_ms"])
    out = Signals(*(np.empty(n, dt) for dt in (bool, bool, _F, _F, _F, bool, _F, bool, bool, bool, np.int64, _F)))
    any_accel = _any_finite(t["accel_x"]) or _any_finite(t["accel_y"])
    dev, ts = t["device"], t["ts_ms"]
    if n:
        t0 = int(ts.min())
        span = int(ts.max()) - t0 + cfg.horizon_ms + 1
        if int(dev[-1] - dev[0]) * span >= 2**62:
            raise ValueError("device codes too sparse for one table; pass dense codes or fewer devices")
        for a in range(0, n, CHUNK):
            _chunk(t, out, a, min(n, a + CHUNK), cfg, any_accel, (int(dev[0]), t0, span))
    return out


def _any_finite(col: np.ndarray) -> bool:
    if len(col) and col.strides == (0,):          # a constant filled in for an absent column
        return bool(np.isfinite(col[0]))
    return bool(np.isfinite(col).any())


def _chunk(t, out: Signals, a: int, b: int, cfg: TripConfig, any_accel: bool, lane: tuple[int, int, int]) -> None:
    p = max(a - 1, 0)      # one row of overlap for the hop into row a
    s = slice(a - p, None)
    dev, ts, lat, lon = t["device"][p:b], t["ts_ms"][p:b], t["lat"][p:b], t["lon"][p:b]
    spd = t["speed_kmh"][p:b]

    first = np.empty(b - p, bool)
    first[0] = True
    np.not_equal(dev[1:], dev[:-1], out=first[1:])
    dt = np.zeros(b - p, _F)
    np.subtract(ts[1:], ts[:-1], out=dt[1:], casting="unsafe")
    dt *= _F(1e-3)
    dt[first] = 0

    c = cos_lat(lat)
    cm = c[1:] + c[:-1]
    cm *= _F(0.5)
    s2 = _F(1) - cm * cm
    y = np.diff(lat).astype(_F)
    y *= _F(_KM) + _F(_KM * 1.5 * E2) * s2
    x = np.diff(lon).astype(_F)
    x *= (_F(_KN) + _F(_KN * 0.5 * E2) * s2) * cm
    dist = np.zeros(b - p, _F)
    np.sqrt(x * x + y * y, out=dist[1:])
    dist[first] = 0

    known = ~np.isnan(spd)
    # A receiver standing still wanders by metres each fix; summing that at every traffic light
    # inflated trip distance by about 1 % against ground truth. A hop between two fixes that both
    # report standing (below stop_speed_kmh) adds no distance.
    standing = known & (spd < _F(cfg.stop_speed_kmh))
    dist[1:][standing[1:] & standing[:-1]] = 0

    if known.all():
        kmh = spd
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            kmh = np.where(known, spd, np.where(dt > 0, dist / dt * _F(3.6), _F(0))).astype(_F)

    # Necessary tests only; trips.features.accelerations decides.
    ok = (dt > 0) & (dt <= _F(cfg.max_derivative_dt_s))
    dv = np.zeros(b - p, _F)
    np.subtract(kmh[1:], kmh[:-1], out=dv[1:])
    hint = ok & (np.abs(dv) >= _F(min(cfg.harsh_accel_g, cfg.harsh_brake_g) * G * 3.6) * dt)
    hd = t["heading_deg"][p:b]
    dh = np.zeros(b - p, _F)
    np.subtract(hd[1:], hd[:-1], out=dh[1:])
    dh = np.abs(dh)
    dh = np.minimum(dh, _F(360) - dh)
    vmax = kmh.copy()
    np.maximum(kmh[1:], kmh[:-1], out=vmax[1:])
    hint |= ok & (vmax * dh >= _F(cfg.harsh_corner_g * G * 3.6 / _RAD) * dt)
    if any_accel:
        ax, ay, az = t["accel_x"][p:b], t["accel_y"][p:b], t["accel_z"][p:b]
        hint |= np.abs(ax) >= _F(min(cfg.harsh_accel_g, cfg.harsh_brake_g))
        hint |= np.abs(ay) >= _F(cfg.harsh_corner_g)
        hint |= ax * ax + ay * ay + az * az >= _F(cfg.crash_g ** 2)

    w = int(round(cfg.road_class_window_s * 1000))
    bucket = ts // w
    wcut = first.copy()
    wcut[1:] |= bucket[1:] != bucket[:-1]
    pcut = wcut.copy()
    if w != 60000:
        minute = ts // 60000
        pcut[1:] |= minute[1:] != minute[:-1]
    off = t["utc_offset_min"][p:b]
    pcut[1:] |= off[1:] != off[:-1]

    brk = (dt > _F(cfg.max_gap_s)) & ~first
    out.first[a:b] = first[s]
    out.brk[a:b] = brk[s]
    out.dt[a:b] = dt[s]
    out.dist[a:b] = dist[s]
    out.kmh[a:b] = kmh[s]
    out.slow[a:b] = ~(spd[s] >= _F(cfg.stop_speed_kmh))
    np.multiply(dt[s], kmh[s] >= _F(cfg.stop_speed_kmh), out=out.dt_moving[a:b])   # dt >= 0, kmh not NaN
    out.wcut[a:b] = (wcut | brk)[s]
    out.pcut[a:b] = (pcut | brk)[s]
    key = out.key[a:b]
    np.subtract(dev[s], lane[0], out=key)
    key *= lane[2]
    key += ts[s]
    key -= lane[1]
    out.hint[a:b] = hint[s]
    out.cos[a:b] = c[s]


def accelerations(t: dict[str, np.ndarray], sig: Signals, rows: np.ndarray, cfg: TripConfig
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At ``rows`` (none of them a device's first row): longitudinal g (forward +), lateral g (abs),
    crash magnitude g; NaN where not measurable. Accelerometer axes are the vehicle frame (x forward,
    y left, z up, gravity removed) and win over GNSS; GNSS values need reported speeds on both fixes,
    at most max_derivative_dt_s apart, from event_min_speed_kmh."""
    prev = rows - 1
    dt = sig.dt[rows].astype(np.float64)
    spd, spd0 = t["speed_kmh"][rows].astype(np.float64), t["speed_kmh"][prev].astype(np.float64)
    usable = (dt > 0) & (dt <= cfg.max_derivative_dt_s) & np.isfinite(spd) & np.isfinite(spd0)
    with np.errstate(divide="ignore", invalid="ignore"):
        along = np.where(usable & (np.maximum(spd, spd0) >= cfg.event_min_speed_kmh),
                         (spd - spd0) / 3.6 / dt / G, np.nan)
        h, h0 = t["heading_deg"][rows].astype(np.float64), t["heading_deg"][prev].astype(np.float64)
        dh = np.abs((h - h0 + 180.0) % 360.0 - 180.0) * (np.pi / 180.0)
        vmid = (spd + spd0) / 7.2
        alat = np.where(usable & (vmid * 3.6 >= cfg.event_min_speed_kmh), vmid * dh / dt / G, np.nan)
    ax, ay, az = (t[k][rows].astype(np.float64) for k in ("accel_x", "accel_y", "accel_z"))
    along = np.where(np.isfinite(ax), ax, along)
    alat = np.where(np.isfinite(ay), np.abs(ay), alat)
    return along, alat, np.sqrt(ax * ax + ay * ay + az * az)
