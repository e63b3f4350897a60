"""Home kits (pure, vectorised over all kits, seeded). Units: s, %, local seconds of the day.

Each kit arms when its household leaves in the morning (07:00–09:30 local) and disarms when they come
back (15:30–19:00); half the households also arm for the night (22:30–00:30) and disarm at 06:00–07:00.
Rare events per kit-hour: a water leak (``water_rate_per_h``; restored 10–60 min later), smoke
(``smoke_rate_per_h``; cleared after 2–10 min) and, only while armed, an intrusion (``motion`` from the
hall sensor at ``intrusion_rate_per_h`` of armed time) — motion while someone is home is not reported.

The backup battery drains 0.05–0.2 %/day on mains and 4 %/h without; ``low_battery`` fires once below
15 %. An area-wide power cut (:func:`schedule_power_cut`) takes out every kit within ``radius_m`` of a
centre: each reports ``power_loss`` within ``detect_s`` of the cut and ``power_restored`` within
``detect_s`` of its end; heartbeats meanwhile say ``mains: false``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY_S = 86_400.0
SENSORS = {"water": "kitchen-water", "smoke": "hall-smoke", "motion": "hall-motion"}


@dataclass
class Homes:
    """All kits (arrays of shape (n,)), mutated in place by :func:`step`."""

    lat: np.ndarray
    lon: np.ndarray
    armed: np.ndarray          # bool
    leave_s: np.ndarray        # local seconds of the day
    return_s: np.ndarray
    night: np.ndarray          # bool: arms for the night too
    night_arm_s: np.ndarray
    night_disarm_s: np.ndarray
    battery: np.ndarray        # %
    drain: np.ndarray          # %/s on mains
    low_sent: np.ndarray       # bool
    mains: np.ndarray          # bool
    cut_at_s: np.ndarray       # sim time each kit loses mains (inf: never)
    restore_at_s: np.ndarray
    water_until_s: np.ndarray  # sim time a leak is fixed (nan: no leak)
    smoke_until_s: np.ndarray
    water_rate_per_h: float = 0.01
    smoke_rate_per_h: float = 0.005
    intrusion_rate_per_h: float = 0.01


def new_homes(lat: np.ndarray, lon: np.ndarray, rng: np.random.Generator, *, local_s: float, **rates: float) -> Homes:
    """Kits at (lat, lon); ``local_s`` is the local time of day at the start, which sets who is armed."""
    n = len(lat)
    h = Homes(
        lat=np.asarray(lat, float), lon=np.asarray(lon, float), armed=np.zeros(n, bool),
        leave_s=rng.uniform(7 * 3600, 9.5 * 3600, n), return_s=rng.uniform(15.5 * 3600, 19 * 3600, n),
        night=rng.random(n) < 0.5, night_arm_s=rng.uniform(22.5 * 3600, 24.5 * 3600, n) % DAY_S,
        night_disarm_s=rng.uniform(6 * 3600, 7 * 3600, n),  # before anyone leaves (07:00 at the earliest)
        battery=rng.uniform(60, 100, n),
        drain=rng.uniform(0.05, 0.2, n) / DAY_S, low_sent=np.zeros(n, bool), mains=np.ones(n, bool),
        cut_at_s=np.full(n, np.inf), restore_at_s=np.full(n, np.inf), water_until_s=np.full(n, np.nan),
        smoke_until_s=np.full(n, np.nan), **rates,
    )
    away = _between(local_s, h.leave_s, h.return_s)
    asleep = h.night & _between(local_s, h.night_arm_s, h.night_disarm_s)
    h.armed = away | asleep
    h.low_sent = h.battery < 15.0
    return h


def _between(t: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether time of day ``t`` lies in [a, b) on the clock (wrapping past midnight)."""
    return np.where(a <= b, (a <= t) & (t < b), (t >= a) | (t < b))


def _crossed(prev: float, now: float, at: np.ndarray) -> np.ndarray:
    """Whether the clock passed ``at`` (time of day) in (prev, now]; ``now`` may have wrapped midnight."""
    if now >= prev:
        return (at > prev) & (at <= now)
    return (at > prev) | (at <= now)


def schedule_power_cut(h: Homes, *, centre: tuple[float, float], radius_m: float, at_s: float, duration_s: float,
                       detect_s: float, rng: np.random.Generator) -> np.ndarray:
    """Cut mains for every kit within ``radius_m`` of ``centre`` (lat, lon) from sim time ``at_s`` for
    ``duration_s``; returns the mask of kits hit."""
    north = np.radians(h.lat - centre[0]) * 6_371_008.8
    east = np.radians(h.lon - centre[1]) * 6_371_008.8 * np.cos(np.radians(centre[0]))
    hit = np.hypot(east, north) <= radius_m
    n = len(hit)
    h.cut_at_s = np.where(hit, at_s + rng.uniform(0, detect_s, n), h.cut_at_s)
    h.restore_at_s = np.where(hit, at_s + duration_s + rng.uniform(0, detect_s, n), h.restore_at_s)
    return hit


def step(h: Homes, dt_s: float, rng: np.random.Generator, *, now_s: float, local_prev_s: float,
         local_s: float) -> list[tuple[int, str, str | None]]:
    """Advance every kit by ``dt_s`` s to sim time ``now_s`` (local time of day moved from
    ``local_prev_s`` to ``local_s``); returns the events of the step as (kit, type, sensor)."""
    n = len(h.armed)
    u = rng.random((n, 3))
    out: list[tuple[int, str, str | None]] = []

    def emit(mask: np.ndarray, kind: str, sensor: str | None = None) -> None:
        out.extend((int(i), kind, sensor) for i in np.flatnonzero(mask))

    arm = ~h.armed & (_crossed(local_prev_s, local_s, h.leave_s)
                      | (h.night & _crossed(local_prev_s, local_s, h.night_arm_s)))
    disarm = h.armed & (_crossed(local_prev_s, local_s, h.return_s)
                        | (h.night & _crossed(local_prev_s, local_s, h.night_disarm_s)))
    h.armed = (h.armed | arm) & ~disarm
    emit(arm, "armed")
    emit(disarm, "disarmed")

    lose = h.mains & (now_s >= h.cut_at_s) & (now_s < h.restore_at_s)
    back = ~h.mains & (now_s >= h.restore_at_s)
    h.mains = (h.mains & ~lose) | back
    emit(lose, "power_loss")
    emit(back, "power_restored")

    per_h = dt_s / 3600.0
    leak = np.isnan(h.water_until_s) & (u[:, 0] < h.water_rate_per_h * per_h)
    fixed = ~np.isnan(h.water_until_s) & (now_s >= h.water_until_s)
    h.water_until_s = np.where(leak, now_s + rng.uniform(600, 3600, n), np.where(fixed, np.nan, h.water_until_s))
    emit(leak, "water_leak", SENSORS["water"])
    emit(fixed, "water_restored", SENSORS["water"])
    smoke = np.isnan(h.smoke_until_s) & (u[:, 1] < h.smoke_rate_per_h * per_h)
    cleared = ~np.isnan(h.smoke_until_s) & (now_s >= h.smoke_until_s)
    h.smoke_until_s = np.where(smoke, now_s + rng.uniform(120, 600, n), np.where(cleared, np.nan, h.smoke_until_s))
    emit(smoke, "smoke", SENSORS["smoke"])
    emit(cleared, "smoke_cleared", SENSORS["smoke"])
    emit(h.armed & (u[:, 2] < h.intrusion_rate_per_h * per_h), "motion", SENSORS["motion"])

    h.battery = np.clip(h.battery - np.where(h.mains, h.drain, 4.0 / 3600.0) * dt_s, 0.0, 100.0)
    low = ~h.low_sent & (h.battery < 15.0)
    h.low_sent |= low
    emit(low, "low_battery")
    return out
