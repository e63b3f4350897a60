"""Pets roaming around home (pure, vectorised over all pets, seeded). Units: m, s, m/s, %.

Each pet lives at a home with a circular fence (``fence_m``, 60–120 m). Modes:

* REST: lying still for 2–20 min;
* ROAM: a correlated random walk at 0.3–1.2 m/s (heading wanders ~25° per √s), turned towards home
  once beyond 60 % of the fence, for 1–10 min, then REST;
* ESCAPE: at ``escape_rate_per_h`` per pet-hour the pet runs off at 1.5–3 m/s to 100–500 m beyond the
  fence, roams there for 5–30 min (OUT), then RETURN heads home at ~1 m/s until well inside, then ROAM.
  With probability ``sos_p`` a finder presses the tracker's SOS button at a random moment while it is out;
  besides, a stray SOS press happens at ``sos_rate_per_h``.

The tracker's battery drains 0.5–2 %/h and is recharged to 100 % below 10 % (an evening at the charger).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REST, ROAM, ESCAPE, OUT, RETURN = 0, 1, 2, 3, 4
EARTH_RADIUS_M = 6_371_008.8


@dataclass
class Pets:
    """All pets (arrays of shape (n,)), mutated in place by :func:`step`."""

    home_lat: np.ndarray
    home_lon: np.ndarray
    fence_m: np.ndarray
    east: np.ndarray          # offset from home, m
    north: np.ndarray
    heading: np.ndarray       # radians, clockwise from north
    speed: np.ndarray         # m/s
    mode: np.ndarray          # int8
    mode_s: np.ndarray        # time left in the mode, s
    out_m: np.ndarray         # how far beyond the fence an escape goes, m
    sos_at_s: np.ndarray      # sim time of a pending SOS press, inf none
    battery: np.ndarray       # %
    drain: np.ndarray         # %/s
    outside: np.ndarray       # bool: beyond the fence at the last step
    escape_rate_per_h: float = 0.3
    sos_p: float = 0.5
    sos_rate_per_h: float = 0.01

    @property
    def n(self) -> int:
        return int(self.mode.shape[0])

    def position(self) -> tuple[np.ndarray, np.ndarray]:
        """True (lat, lon) degrees."""
        lat = self.home_lat + np.degrees(self.north / EARTH_RADIUS_M)
        lon = self.home_lon + np.degrees(self.east / (EARTH_RADIUS_M * np.cos(np.radians(self.home_lat))))
        return lat, lon


def new_pets(home_lat: np.ndarray, home_lon: np.ndarray, rng: np.random.Generator, **rates: float) -> Pets:
    n = len(home_lat)
    r = 20.0 * np.sqrt(rng.random(n))
    b = rng.uniform(0, 2 * np.pi, n)
    return Pets(
        home_lat=np.asarray(home_lat, float), home_lon=np.asarray(home_lon, float), fence_m=rng.uniform(60, 120, n),
        east=r * np.sin(b), north=r * np.cos(b), heading=rng.uniform(0, 2 * np.pi, n), speed=np.zeros(n),
        mode=np.full(n, REST, np.int8), mode_s=rng.uniform(0, 600, n), out_m=np.zeros(n), sos_at_s=np.full(n, np.inf),
        battery=rng.uniform(40, 100, n), drain=rng.uniform(0.5, 2.0, n) / 3600.0, outside=np.zeros(n, bool), **rates,
    )


def step(p: Pets, dt_s: float, rng: np.random.Generator, *, now_s: float) -> list[dict]:
    """Advance every pet by ``dt_s`` s; returns ground-truth records (``pet``, ``type``: escape,
    fence_exit, fence_enter, sos), the sos ones to be sent by the caller."""
    n = p.n
    u = rng.random((n, 4))
    truth: list[dict] = []
    dist = np.hypot(p.east, p.north)
    p.mode_s -= dt_s

    escape = (p.mode != ESCAPE) & (p.mode != OUT) & (p.mode != RETURN) & (
        u[:, 0] < p.escape_rate_per_h * dt_s / 3600.0)
    p.mode[escape] = ESCAPE
    p.out_m[escape] = rng.uniform(100, 500, n)[escape]
    p.heading[escape] = np.arctan2(p.east, p.north)[escape] + rng.normal(0, 0.3, n)[escape]
    p.speed[escape] = rng.uniform(1.5, 3.0, n)[escape]
    finder = escape & (u[:, 1] < p.sos_p)
    # The finder presses while the pet is out: after the run (≤ 6 min at 1.5 m/s) and before it heads home.
    p.sos_at_s = np.where(finder, now_s + rng.uniform(400, 1200, n), p.sos_at_s)
    for i in np.flatnonzero(escape):
        truth.append({"type": "escape", "pet": int(i)})

    arrived_out = (p.mode == ESCAPE) & (dist >= p.fence_m + p.out_m)
    p.mode[arrived_out], p.mode_s[arrived_out] = OUT, rng.uniform(300, 1800, n)[arrived_out]
    go_home = (p.mode == OUT) & (p.mode_s <= 0)
    p.mode[go_home] = RETURN
    home_again = (p.mode == RETURN) & (dist < 0.4 * p.fence_m)
    p.mode[home_again], p.mode_s[home_again] = ROAM, rng.uniform(60, 600, n)[home_again]

    done = (p.mode <= ROAM) & (p.mode_s <= 0)
    to_roam = done & (p.mode == REST)
    to_rest = done & (p.mode == ROAM)
    p.mode[to_roam], p.mode_s[to_roam] = ROAM, rng.uniform(60, 600, n)[to_roam]
    p.mode[to_rest], p.mode_s[to_rest] = REST, rng.uniform(120, 1200, n)[to_rest]

    wander = rng.normal(0.0, np.radians(25.0) * np.sqrt(dt_s), n)
    home_dir = np.arctan2(-p.east, -p.north)
    pull = ((p.mode == ROAM) & (dist > 0.6 * p.fence_m)) | (p.mode == RETURN)
    p.heading = np.where(pull, home_dir + 0.3 * wander, p.heading + np.where(p.mode == ESCAPE, 0.2, 1.0) * wander)
    roam_speed = np.clip(p.speed + rng.normal(0, 0.1, n), 0.3, 1.2)
    p.speed = np.select([p.mode == REST, p.mode == RETURN, (p.mode == ROAM) | (p.mode == OUT)],
                        [0.0, 1.0, roam_speed], p.speed)
    p.east = p.east + p.speed * dt_s * np.sin(p.heading)
    p.north = p.north + p.speed * dt_s * np.cos(p.heading)

    dist = np.hypot(p.east, p.north)
    outside = dist > p.fence_m
    for i in np.flatnonzero(outside != p.outside):
        truth.append({"type": "fence_exit" if outside[i] else "fence_enter", "pet": int(i)})
    p.outside = outside

    stray = u[:, 2] < p.sos_rate_per_h * dt_s / 3600.0
    press = stray | (p.sos_at_s <= now_s)
    p.sos_at_s = np.where(p.sos_at_s <= now_s, np.inf, p.sos_at_s)
    for i in np.flatnonzero(press):
        truth.append({"type": "sos", "pet": int(i), "finder": bool(not stray[i])})

    p.battery = p.battery - p.drain * dt_s
    p.battery = np.where(p.battery < 10.0, 100.0, p.battery)
    return truth
