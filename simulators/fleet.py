"""Cars driving between places along the driving graph (pure, vectorised over all cars, seeded).

Every car is in one phase: DRIVING a route from one place to another, PARKED at a place (ignition off,
GPS drifting) or CRASHED (stopped for good). The model advances in steps of ``dt_s`` (1 s in the city
scenario); all randomness comes from the generator passed in, never from a clock.

Routes are ragged (one path per car), so their vertices live in one flat buffer (:class:`RouteBook`)
with a *global* running distance: car ``i`` is at distance ``s[i]`` of that axis, its route spans
vertices ``start[i]:end[i]``, and one ``searchsorted`` places every car on its segment at once.

Driving (units m, s, m/s, m/s²): the target speed is the segment's limit times the driver's speed
factor, lowered by every constraint in the next :data:`LOOKAHEAD` vertices — turn and junction caps, a
lower limit ahead, a red light or the route's end (speed 0) — as ``sqrt(cap² + 2·b·d)`` so the car
brakes in time at its comfortable deceleration ``b``. Traffic lights: each junction of a new route is
red with probability ``red_p`` (0.12) for 5–35 s; a car stops at the vertex and waits. Random traffic stops
(queues): ``jam_rate_per_h`` per driving hour, 10–60 s at rest. Drivers differ by ``roughness`` in
[0, 1]: acceleration, braking, speed and the rate of injected harsh events (brake, acceleration,
cornering) all grow with it. A crash (``crash_rate_per_h`` per driving hour) is a 2.6–6 g spike on the
accelerometer; the car stops where it is, ignition off a minute later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulators.network import Network

DRIVING, PARKED, CRASHED = 0, 1, 2
G = 9.80665
LOOKAHEAD = 16
#: m/s² (0.285 g): ordinary driving stays below the 0.3 g harsh thresholds of trips/config.py, so the
#: harsh moments in the data are the injected ones the truth lists.
ORDINARY_MAX = 2.8
RED_S = (5.0, 35.0)
JAM_S = (10.0, 60.0)
PARK_S = (120.0, 1200.0)
CRASH_IGNITION_OFF_S = 60.0
#: Harsh events by type: (deceleration/acceleration in m/s², duration in s); cornering is lateral.
HARSH_TYPES = ("harsh_brake", "harsh_accel", "harsh_corner")
HARSH_MAG = {"harsh_brake": (4.5, 7.0), "harsh_accel": (3.5, 5.0), "harsh_corner": (4.0, 6.0)}


class RouteBook:
    """Flat vertex buffer of all routes, grown by doubling; :meth:`compact` drops routes no car uses.
    ``gcum`` and ``cols`` are views of the filled part."""

    FIELDS = ("lat", "lon", "limit_ms", "cap_ms", "red_s", "segment", "bearing_deg")

    def __init__(self) -> None:
        self._gcum = np.empty(1024)
        self._cols = {k: np.empty(1024) for k in self.FIELDS}
        self.size = 0
        self.top = 0.0
        self._views()

    def _views(self) -> None:
        self.gcum = self._gcum[:self.size]
        self.cols = {k: v[:self.size] for k, v in self._cols.items()}

    def _reserve(self, size: int) -> None:
        if size <= len(self._gcum):
            return
        cap = max(size, 2 * len(self._gcum))
        self._gcum = np.concatenate([self._gcum[:self.size], np.empty(cap - self.size)])
        self._cols = {k: np.concatenate([v[:self.size], np.empty(cap - self.size)]) for k, v in self._cols.items()}

    def append(self, routes: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Add routes; return their (start, end) vertex ranges and the global distance of their start."""
        lens = np.array([len(r["cum_m"]) for r in routes], dtype=np.int64)
        start = self.size + np.concatenate([[0], np.cumsum(lens)[:-1]])
        total = np.array([r["cum_m"][-1] for r in routes])
        base = self.top + np.concatenate([[0.0], np.cumsum(total + 1.0)[:-1]])  # +1 m keeps the axis increasing
        self._reserve(self.size + int(lens.sum()))
        end = self.size + int(lens.sum())
        self._gcum[self.size:end] = np.concatenate([r["cum_m"] for r in routes]) + np.repeat(base, lens)
        for k in self.FIELDS:
            self._cols[k][self.size:end] = np.concatenate([r[k] for r in routes])
        self.size = end
        self.top = float(base[-1] + total[-1] + 1.0)
        self._views()
        return start, start + lens, base

    def compact(self, start: np.ndarray, end: np.ndarray, s: np.ndarray):
        """Keep only the ranges in use, rebased; returns the new (start, end, s) of the cars."""
        lens = end - start
        new_start = np.concatenate([[0], np.cumsum(lens)[:-1]])
        take = np.repeat(start - new_start, lens) + np.arange(lens.sum())
        base_old = self.gcum[start]
        gap = np.concatenate([[0.0], np.cumsum(self.gcum[end - 1] - base_old + 1.0)[:-1]])
        gcum = self.gcum[take] + np.repeat(gap - base_old, lens)
        cols = {k: v[take] for k, v in self.cols.items()}
        self.size = 0
        self._gcum[:len(take)] = gcum
        for k in self.FIELDS:
            self._cols[k][:len(take)] = cols[k]
        self.size = len(take)
        self.top = float(gcum[-1] + 1.0) if len(gcum) else 0.0
        self._views()
        return new_start, new_start + lens, s + (gap - base_old)


@dataclass
class Fleet:
    """All cars (arrays of shape (n,)); mutated in place by :func:`step` because the route book is ragged."""

    net: Network
    book: RouteBook
    phase: np.ndarray          # int8
    place: np.ndarray          # place index the car is at or driving to
    start: np.ndarray          # route vertex range [start, end)
    end: np.ndarray
    s: np.ndarray              # global distance, m
    v: np.ndarray              # speed, m/s
    accel: np.ndarray          # longitudinal acceleration of the last step, m/s²
    lateral: np.ndarray        # injected lateral acceleration, m/s²
    ignition: np.ndarray       # bool
    wait_s: np.ndarray         # parked, jammed or crashed time left, s
    hold: np.ndarray           # vertex index the car waits at (red light), -1 none
    jam: np.ndarray            # bool: stopped in a queue
    harsh: np.ndarray          # int8 index into HARSH_TYPES, -1 none
    harsh_s: np.ndarray
    harsh_mag: np.ndarray
    roughness: np.ndarray
    speed_factor: np.ndarray
    a_max: np.ndarray
    b_comf: np.ndarray
    drift_e: np.ndarray        # parked GPS drift, m
    drift_n: np.ndarray
    trip_start_s: np.ndarray   # sim time the current trip began, s
    trip_from: np.ndarray
    initial_trips: list = field(default_factory=list)
    red_p: float = 0.12
    jam_rate_per_h: float = 4.0
    harsh_rate_per_h: float = 2.0
    crash_rate_per_h: float = 0.01

    @property
    def n(self) -> int:
        return int(self.phase.shape[0])


def new_fleet(net: Network, n: int, rng: np.random.Generator, **rates: float) -> Fleet:
    """``n`` cars at random places, about 30 % parked (random time left), the rest starting a trip."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rough = rng.beta(2.0, 5.0, n)
    zeros = np.zeros(n)
    place = rng.integers(0, net.n_places, n)
    parked = rng.random(n) < 0.3
    fleet = Fleet(
        net=net, book=RouteBook(), phase=np.where(parked, PARKED, DRIVING).astype(np.int8), place=place,
        start=np.zeros(n, np.int64), end=np.zeros(n, np.int64), s=zeros.copy(), v=zeros.copy(),
        accel=zeros.copy(), lateral=zeros.copy(), ignition=~parked,
        wait_s=np.where(parked, rng.uniform(0, 600, n), 0.0),
        hold=np.full(n, -1, np.int64), jam=np.zeros(n, bool), harsh=np.full(n, -1, np.int8), harsh_s=zeros.copy(),
        harsh_mag=zeros.copy(), roughness=rough, speed_factor=0.9 + 0.25 * rough, a_max=1.5 + 1.3 * rough,
        b_comf=1.5 + 1.1 * rough, drift_e=zeros.copy(), drift_n=zeros.copy(), trip_start_s=zeros.copy(),
        trip_from=place.copy(), **rates,
    )
    # Every car gets a route (a parked car's is a point at its place) so positions are always defined.
    fleet.initial_trips = _assign_routes(fleet, np.ones(n, bool), rng, now_s=0.0, park_only=parked)
    return fleet


def _assign_routes(f: Fleet, mask: np.ndarray, rng: np.random.Generator, *, now_s: float,
                   park_only: np.ndarray | None = None) -> list[dict]:
    """New trips for cars in ``mask`` from their place to a random other place; returns trip records."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return []
    hop = rng.integers(1, f.net.n_places, len(idx))  # draws for all, so the stream ignores park_only
    reds = rng.random((len(idx), 1))
    routes, trips = [], []
    for k, i in enumerate(idx):
        a = int(f.place[i])
        if park_only is not None and park_only[i]:
            node = f.net.places[a]
            g = f.net.graph
            routes.append({"cum_m": np.zeros(1), "lat": g.lat[[node]], "lon": g.lon[[node]], "limit_ms": np.ones(1),
                           "cap_ms": np.zeros(1), "red_s": np.zeros(1), "segment": np.full(1, -1.0),
                           "bearing_deg": np.zeros(1)})
            continue
        b = (a + int(hop[k])) % f.net.n_places
        r = f.net.route_arrays(f.net.path(a, b))
        seed = int(reds[k, 0] * 2**31)
        local = np.random.default_rng(seed)
        red = r["junction"] & (local.random(len(r["cum_m"])) < f.red_p)
        r["red_s"] = np.where(red, local.uniform(*RED_S, len(red)), 0.0)
        routes.append(r)
        trips.append({"car": int(i), "from_place": a, "to_place": b, "distance_m": float(r["cum_m"][-1])})
        f.place[i] = b
        f.trip_from[i] = a
    start, end, base = f.book.append(routes)
    f.start[idx], f.end[idx], f.s[idx] = start, end, base
    f.hold[idx] = -1
    f.trip_start_s[idx] = now_s
    return trips


def position(f: Fleet) -> dict[str, np.ndarray]:
    """True position of every car: ``lat``/``lon`` (degrees), ``bearing_deg``, ``segment`` (graph segment
    id, -1 at a point route) and ``vertex`` (index in the route book of the segment's start)."""
    gcum = f.book.gcum
    k = np.clip(np.searchsorted(gcum, f.s, side="right") - 1, f.start, np.maximum(f.end - 2, f.start))
    k2 = np.minimum(k + 1, f.end - 1)
    seg_len = gcum[k2] - gcum[k]
    t = np.where(seg_len > 0, np.clip((f.s - gcum[k]) / np.where(seg_len > 0, seg_len, 1.0), 0.0, 1.0), 0.0)
    c = f.book.cols
    return {
        "lat": c["lat"][k] + t * (c["lat"][k2] - c["lat"][k]),
        "lon": c["lon"][k] + t * (c["lon"][k2] - c["lon"][k]),
        "bearing_deg": c["bearing_deg"][k], "segment": c["segment"][k].astype(np.int64), "vertex": k,
    }


def _lookahead(f: Fleet, k: np.ndarray):
    """Distances (m) to the next LOOKAHEAD vertices and the speed allowed at each (m/s), shape (n, L)."""
    j = k[:, None] + 1 + np.arange(LOOKAHEAD)[None, :]
    valid = j < f.end[:, None]
    jj = np.minimum(j, f.end[:, None] - 1)
    c = f.book.cols
    d = f.book.gcum[jj] - f.s[:, None]
    cap = np.minimum(c["cap_ms"][jj], c["limit_ms"][jj] * f.speed_factor[:, None])
    block = valid & ((c["red_s"][jj] > 0) | (jj == f.end[:, None] - 1))
    cap = np.where(block, 0.0, np.where(valid, cap, np.inf))
    return jj, d, cap, block


def step(f: Fleet, dt_s: float, rng: np.random.Generator, *, now_s: float) -> tuple[np.ndarray, list[dict]]:
    """Advance every car by ``dt_s`` s (≤ 2 s keeps the braking plan accurate); ``now_s`` is the sim time
    at the end of the step. Returns (mask of cars whose device reports at once: harsh event, crash,
    ignition change) and the ground-truth records of the step (trips started and ended, harsh events,
    crashes) as dicts with ``car`` and ``type``."""
    n = f.n
    u = rng.random((n, 6))
    truth: list[dict] = []
    urgent = np.zeros(n, bool)

    # Parked: GPS drift wanders (a slow random walk pulled back to the true spot), then a new trip.
    parked = f.phase == PARKED
    for drift in (f.drift_e, f.drift_n):
        drift[:] = np.where(parked, 0.995 * drift + rng.normal(0.0, 0.3 * np.sqrt(dt_s), n), 0.0)
    f.wait_s -= np.where(f.phase != DRIVING, dt_s, 0.0)
    leave = parked & (f.wait_s <= 0)
    for t in _assign_routes(f, leave, rng, now_s=now_s):
        truth.append({"type": "trip_start", **t})
    f.phase[leave], f.ignition[leave], f.wait_s[leave] = DRIVING, True, 0.0
    urgent |= leave

    crashed = f.phase == CRASHED
    off = crashed & f.ignition & (f.wait_s <= 0)
    f.ignition[off] = False
    urgent |= off

    driving = f.phase == DRIVING
    k = position(f)["vertex"]
    jj, d, cap, block = _lookahead(f, k)
    b = f.b_comf
    # Discrete braking plan: the speed chosen now is held for one step (trapezoid), then braking at b must
    # end at the cap: v·dt + (v² - cap²)/(2b) <= d - (current speed)·dt/2.
    room = np.maximum(d - 0.2 - 0.5 * f.v[:, None] * dt_s, 0.0)
    bb = b[:, None]
    allowed = (-bb * dt_s + np.sqrt((bb * dt_s) ** 2 + cap**2 + 2.0 * bb * room)).min(axis=1)
    d_end = f.book.gcum[f.end - 1] - f.s  # the route's end even when it lies beyond the lookahead
    room_end = np.maximum(d_end - 0.2 - 0.5 * f.v * dt_s, 0.0)
    allowed = np.minimum(allowed, -b * dt_s + np.sqrt((b * dt_s) ** 2 + 2.0 * b * room_end))
    target = np.minimum(f.book.cols["limit_ms"][k] * f.speed_factor, allowed)

    # Red light being waited out at f.hold.
    holding = driving & (f.hold >= 0)
    f.book.cols["red_s"][f.hold[holding]] -= dt_s
    green = holding.copy()
    green[holding] = f.book.cols["red_s"][f.hold[holding]] <= 0
    f.hold[green] = -1
    target = np.where(driving & (f.hold >= 0), 0.0, target)

    # Queues: a random stop in traffic, ignition on.
    f.jam &= driving
    f.wait_s = np.where(f.jam, f.wait_s - dt_s, np.where(driving, 0.0, f.wait_s))
    f.jam &= f.wait_s > 0
    new_jam = driving & ~f.jam & (f.v > 3.0) & (u[:, 0] < f.jam_rate_per_h * dt_s / 3600.0)
    f.jam |= new_jam
    f.wait_s = np.where(new_jam, rng.uniform(*JAM_S, n), f.wait_s)
    target = np.where(f.jam, 0.0, target)

    accel = np.clip((target - f.v) / dt_s, -np.minimum(1.6 * b, ORDINARY_MAX), f.a_max)
    f.lateral[:] = 0.0
    # Injected harsh events: a rough driver (roughness 1) has ~4x the base rate.
    f.harsh_s = np.maximum(f.harsh_s - dt_s, 0.0)
    f.harsh[f.harsh_s <= 0] = -1
    rate = f.harsh_rate_per_h * (0.2 + 4.0 * f.roughness) * dt_s / 3600.0
    start_harsh = driving & (f.harsh < 0) & (f.v > 5.0) & (f.hold < 0) & ~f.jam & (u[:, 1] < rate)
    kind = np.minimum((u[:, 2] * len(HARSH_TYPES)).astype(np.int8), len(HARSH_TYPES) - 1)
    kind = np.where((kind == 1) & (f.v > 15.0), 0, kind).astype(np.int8)  # hard launches from low speed only
    lo = np.array([HARSH_MAG[t][0] for t in HARSH_TYPES])[kind]
    hi = np.array([HARSH_MAG[t][1] for t in HARSH_TYPES])[kind]
    f.harsh = np.where(start_harsh, kind, f.harsh).astype(np.int8)
    f.harsh_mag = np.where(start_harsh, lo + u[:, 3] * (hi - lo), f.harsh_mag)
    f.harsh_s = np.where(start_harsh, np.where(kind == 2, 2.0, 1.0 + u[:, 3]), f.harsh_s)
    active = driving & (f.harsh >= 0)
    accel = np.where(active & (f.harsh == 0), -f.harsh_mag, accel)
    launch = np.minimum(f.harsh_mag, (np.minimum(target, allowed) - f.v) / dt_s)
    accel = np.where(active & (f.harsh == 1), launch, accel)
    f.lateral = np.where(active & (f.harsh == 2), f.harsh_mag * np.where(u[:, 4] < 0.5, -1.0, 1.0), 0.0)
    for i in np.flatnonzero(start_harsh):
        truth.append({"type": HARSH_TYPES[f.harsh[i]], "car": int(i), "magnitude_g": float(f.harsh_mag[i] / G)})
    urgent |= start_harsh

    v_new = np.where(driving, np.maximum(f.v + accel * dt_s, 0.0), 0.0)
    ds = 0.5 * (f.v + v_new) * dt_s
    # Never roll past a red light or the route's end: stop exactly on the vertex.
    d_block = np.where(block, d, np.inf).min(axis=1)
    j_block = jj[np.arange(n), np.where(block, d, np.inf).argmin(axis=1)]
    reach = driving & (ds >= d_block - 0.5)  # planned stops end 0.2 m short; close the gap
    ds = np.where(reach, np.maximum(d_block, 0.0), ds)
    v_new = np.where(reach, 0.0, v_new)
    v_new = np.where(driving & (target == 0.0) & (v_new < 0.05), 0.0, v_new)
    f.hold = np.where(reach & (f.book.cols["red_s"][j_block] > 0) & (j_block != f.end - 1), j_block, f.hold)
    f.accel = np.where(driving, (v_new - f.v) / dt_s, 0.0)
    f.s = f.s + np.where(driving, ds, 0.0)
    f.v = v_new

    # Crashes: a spike of 2.5-6 g on the accelerometer, the car stops where it is.
    crash = driving & (f.v > 5.0) & (u[:, 5] < f.crash_rate_per_h * dt_s / 3600.0)
    mag = 2.6 + 3.4 * rng.random(n)  # above 2.5 g even after sensor noise and rounding
    f.accel = np.where(crash, -mag * G, f.accel)
    f.lateral = np.where(crash, rng.uniform(-1.0, 1.0, n) * G, f.lateral)
    f.phase[crash], f.v[crash], f.wait_s[crash] = CRASHED, 0.0, CRASH_IGNITION_OFF_S
    f.harsh[crash] = -1
    for i in np.flatnonzero(crash):
        truth.append({"type": "crash", "car": int(i), "magnitude_g": float(mag[i])})
    urgent |= crash

    arrived = (f.phase == DRIVING) & (f.s >= f.book.gcum[f.end - 1] - 1e-6) & (f.v == 0.0)
    for i in np.flatnonzero(arrived):
        truth.append({"type": "trip_end", "car": int(i), "from_place": int(f.trip_from[i]),
                      "to_place": int(f.place[i]), "started_s": float(f.trip_start_s[i])})
    f.phase[arrived], f.ignition[arrived] = PARKED, False
    f.wait_s = np.where(arrived, rng.uniform(*PARK_S, n), f.wait_s)
    f.jam &= ~arrived
    urgent |= arrived

    in_use = int((f.end - f.start).sum())
    if f.book.size > 4 * in_use + 50_000:
        rel = f.hold - f.start
        f.start, f.end, f.s = f.book.compact(f.start, f.end, f.s)
        f.hold = np.where(f.hold >= 0, f.start + rel, -1)
    return urgent, truth
