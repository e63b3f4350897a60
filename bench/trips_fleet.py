"""Synthetic fleet for bench/trips.py: 10k cars, 1-30 s sampling, drives, lights, stops with GPS
noise, data gaps, ignition on some devices and no speed on others; with the true trips."""

from __future__ import annotations

import numpy as np

T0_MS = 1_740_960_000_000          # 2025-03-03 00:00 UTC; device starts spread over that day
DRIVE, LIGHT, STOP = 0, 1, 2
M_PER_DEG = 6_371_000.0 * np.pi / 180.0
IGNITION_SHARE, NO_SPEED_SHARE = 0.4, 0.1
GAPS_PER_DEVICE = 0.3              # Poisson mean of silent periods per device
SIGMA_DRIVE_M = 3.0                # GPS noise while moving; stops get 5..15 m per device
HEADING_WALK_DEG = 3.0             # heading random walk, degrees per sqrt(s) of driving


# ---------------------------------------------------------------------------------------------- fleet


def _dev_cumsum(x: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each device (rows grouped by device, ``counts`` rows each)."""
    c = np.cumsum(x)
    first = np.cumsum(counts) - counts
    return c - np.repeat(c[first] - x[first], counts)


def simulate(n_fixes: int, n_devices: int, seed: int) -> tuple[dict, dict, dict]:
    """(columns sorted by device, ts; per-device properties; true trips {device, start_ms, end_ms})."""
    rng = np.random.default_rng(seed)
    d = n_devices
    dt_s = rng.integers(1, 31, d)
    has_ign = rng.random(d) < IGNITION_SHARE
    no_speed = rng.random(d) < NO_SPEED_SHARE
    sigma_stop = rng.uniform(5.0, 15.0, d)
    accel = rng.uniform(1.2, 3.5, d)
    weight = rng.uniform(0.5, 1.5, d)
    active_ms = (weight * n_fixes / np.sum(weight / dt_s) * 1000).astype(np.int64)  # sum(active/dt) ~ n_fixes

    # Legs, one slot per loop turn for all devices: STOP -> DRIVE -> (LIGHT -> DRIVE)* -> STOP ...
    kinds, durs, vmax = [], [], []
    cur = np.full(d, STOP)
    total = np.zeros(d, np.int64)
    while True:
        if kinds:
            cur = np.where(cur == DRIVE, np.where(rng.random(d) < 0.55, LIGHT, STOP), DRIVE)
        dur = np.select([cur == DRIVE, cur == LIGHT], [rng.uniform(60, 900, d), rng.uniform(15, 90, d)],
                        rng.uniform(300, 1800, d))
        kinds.append(cur)
        durs.append(np.round(dur * 1000).astype(np.int64))
        vmax.append(np.where(cur == DRIVE, rng.uniform(20, 120, d) / 3.6, 0.0))
        total += durs[-1]
        if (total >= active_ms).all():
            break
    kind, dur_ms, vmax = np.stack(kinds, 1), np.stack(durs, 1), np.stack(vmax, 1)
    n_legs = kind.shape[1]
    leg_end = np.cumsum(dur_ms, 1)
    leg_start = leg_end - dur_ms
    dur = dur_ms / 1000.0
    a = accel[:, None]
    vp = np.minimum(vmax, a * dur / 2)                       # peak speed, m/s (no cruise if the leg is short)
    leg_dist = np.where(kind == DRIVE, vp * dur - vp * vp / a, 0.0)
    dist_before = np.cumsum(leg_dist, 1) - leg_dist

    # Fixes every dt_s of active time, from a random phase.
    counts = (active_ms - 1) // (dt_s * 1000) + 1
    n = int(counts.sum())
    dev = np.repeat(np.arange(d), counts)
    k = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    phase = rng.integers(0, dt_s * 1000)
    tau = phase[dev] + k * (dt_s[dev] * 1000)                # active time, ms
    big = np.int64(1) << 40
    g = np.searchsorted((np.arange(d)[:, None] * big + leg_end).ravel(), dev * big + tau, side="right")
    kf, vpf, af = kind.ravel()[g], vp.ravel()[g], accel[dev]
    u = (tau - leg_start.ravel()[g]) / 1000.0
    du = dur.ravel()[g]
    tacc = vpf / af
    drive = kf == DRIVE
    v = np.where(drive, np.minimum(np.minimum(af * u, af * (du - u)), vpf), 0.0)
    s_in = np.where(u < tacc, af * u * u / 2,
                    np.where(u <= du - tacc, vpf * vpf / (2 * af) + vpf * (u - tacc),
                             leg_dist.ravel()[g] - af * (du - u) ** 2 / 2))
    route = dist_before.ravel()[g] + np.where(drive, s_in, 0.0)
    hop = np.diff(route, prepend=0.0)
    first = np.cumsum(counts) - counts
    hop[first] = 0.0
    turn = rng.normal(0.0, HEADING_WALK_DEG, n) * np.sqrt(dt_s[dev]) * (hop > 0)
    heading = rng.uniform(0, 360, d)[dev] + _dev_cumsum(turn, counts)
    rad = np.radians(heading)
    sigma = np.where(kf == STOP, sigma_stop[dev], SIGMA_DRIVE_M)
    north = _dev_cumsum(hop * np.cos(rad), counts) + rng.normal(0.0, 1.0, n) * sigma
    east = _dev_cumsum(hop * np.sin(rad), counts) + rng.normal(0.0, 1.0, n) * sigma
    lat0, lon0 = rng.uniform(36.0, 55.0, d), rng.uniform(-5.0, 25.0, d)
    lat = lat0[dev] + north / M_PER_DEG
    lon = lon0[dev] + east / (M_PER_DEG * np.cos(np.radians(lat0[dev])))

    # Silent periods: active time stops, wall time goes on (a sentinel gap of 0 per device first).
    n_gaps = rng.poisson(GAPS_PER_DEVICE, d)
    gdev = np.concatenate([np.arange(d), np.repeat(np.arange(d), n_gaps)])
    gtau = np.concatenate([np.full(d, -1), (rng.random(int(n_gaps.sum())) * active_ms[gdev[d:]]).astype(np.int64)])
    glen = np.concatenate([np.zeros(d, np.int64), rng.integers(3_780_000, 18_000_000, int(n_gaps.sum()))])
    order = np.lexsort((gtau, gdev))
    gkey, glen = gdev[order] * big + gtau[order], glen[order]
    gcum = np.cumsum(glen)
    base = gcum[np.searchsorted(gkey, np.arange(d) * big - 1)]  # the sentinels

    day_ms = rng.integers(0, 86_400_000, d)

    def wall(dv, t, side):
        return T0_MS + day_ms[dv] + t + gcum[np.searchsorted(gkey, dv * big + t, side=side) - 1] - base[dv]

    kmh = np.where(drive, np.maximum(v * 3.6 + rng.normal(0.0, 1.0, n), 0.0), np.abs(rng.normal(0.0, 0.8, n)))
    cols = {
        "device": dev.astype(np.int64),
        "ts_ms": wall(dev, tau, "right"),
        "lat": lat, "lon": lon,
        "speed_kmh": np.where(no_speed[dev], np.nan, kmh).astype(np.float32),
        "heading_deg": np.where(no_speed[dev], np.nan, np.mod(heading, 360.0)).astype(np.float32),
        "ignition": np.where(has_ign[dev], np.where(kf == STOP, 0, 1), -1).astype(np.int8),
    }

    # True trips: runs of non-STOP legs, cut at the end of the data and at silent periods.
    moving = kind != STOP
    begin = moving & ~np.pad(moving, ((0, 0), (1, 0)))[:, :-1]
    end = moving & ~np.pad(moving, ((0, 0), (0, 1)))[:, 1:]
    last_tau = tau[np.cumsum(counts) - 1]
    tdev = np.repeat(np.arange(d), begin.sum(1))
    ts0 = leg_start[begin]
    ts1 = np.minimum(leg_end[end], last_tau[tdev])
    keep = ts0 < ts1
    tdev, ts0, ts1 = tdev[keep], ts0[keep], ts1[keep]
    gd, gt = gkey // big, gkey % big
    inside = np.searchsorted(tdev * big + ts0, gkey, side="right") - 1
    ok = (inside >= 0) & (glen > 0)
    ok[ok] = (tdev[inside[ok]] == gd[ok]) & (ts1[inside[ok]] > gt[ok])
    sk = np.sort(np.concatenate([tdev * big + ts0, gkey[ok]]))
    ek = np.sort(np.concatenate([tdev * big + ts1, gkey[ok]]))
    sd, ed = sk // big, ek // big
    start, stop = wall(sd, sk % big, "right"), wall(ed, ek % big, "left")
    long_enough = stop - start >= 60_000
    truth = {"device": sd[long_enough], "start_ms": start[long_enough], "end_ms": stop[long_enough]}
    props = {"dt_s": dt_s, "ignition": has_ign, "no_speed": no_speed, "legs": n_legs}
    return cols, props, truth


def subset(cols: dict, devices: int) -> dict:
    """The rows of devices 0..devices-1 (a prefix, rows being sorted by device)."""
    end = int(np.searchsorted(cols["device"], devices))
    return {k: np.ascontiguousarray(v[:end]) for k, v in cols.items()}
