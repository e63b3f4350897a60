"""Pure, vectorised model of N cars driving straight legs around a centre point, and the car payload v1.

All cars advance together with array operations; the model never reads a clock and all randomness comes
from the ``numpy.random.Generator`` passed in, so a seed reproduces a run exactly. Units inside the model:
m, s, m/s, m/s²; the sample and the payload use km/h and g, as at every Vigil edge.

Each car drives a leg (200 m to ~3.5 km) at a target speed, then either turns to a new heading, stops at a
traffic light (10–60 s, ignition on) or parks (2–10 min, ignition off). Before a stop the car brakes so it
comes to rest at the end of the leg; before a turn it slows to turning speed. A car beyond ``radius_m`` from
the centre cuts its leg short when heading outwards and its next leg points back towards the centre.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import msgspec
import numpy as np

HELSINKI: tuple[float, float] = (60.1699, 24.9384)
EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius; equirectangular steps of metres are exact enough here
G = 9.80665  # m/s² per g

DRIVING, STOPPED, PARKED = 0, 1, 2  # values of CarState.phase
END_TURN, END_LIGHT, END_PARK = 0, 1, 2  # values of CarState.leg_end: what happens when the leg ends

ACCEL_MAX = 2.5  # m/s²: brisk but ordinary urban acceleration
DECEL_MAX = 2.5  # m/s²: firm ordinary braking, far from an emergency stop (~8 m/s²)
DECEL_PLAN = 2.0  # m/s²: planned braking; below DECEL_MAX so a planned stop always fits
TURN_SPEED = 20 / 3.6  # m/s when taking a corner
LEG_END_P = (0.65, 0.30, 0.05)  # turn, traffic light, park
LIGHT_S = (10.0, 60.0)
PARK_S = (120.0, 600.0)
OUTWARD_CUT_M = 300.0  # a car beyond the radius heading outwards turns within this distance

FIX_TOPIC = "vigil/v1/car/{device_id}/fix"
PAYLOAD_VERSION = 1
_TOPIC_FORBIDDEN = frozenset("/+#\x00")
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class CarState:
    """All cars at one instant; every array has shape (n,).

    ``speed_ms``/``target_ms`` in m/s, ``accel_ms2`` the longitudinal acceleration of the last step in
    m/s², ``stop_remaining_s`` in s (0 while driving), ``leg_remaining_m`` in m, ``heading_deg`` clockwise
    from north in [0, 360). ``centre`` (lat, lon degrees) and ``radius_m`` are the driving area.
    """

    lat: np.ndarray
    lon: np.ndarray
    heading_deg: np.ndarray
    speed_ms: np.ndarray
    target_ms: np.ndarray
    accel_ms2: np.ndarray
    phase: np.ndarray  # int8: DRIVING, STOPPED, PARKED
    stop_remaining_s: np.ndarray
    leg_remaining_m: np.ndarray
    leg_end: np.ndarray  # int8: END_TURN, END_LIGHT, END_PARK
    ignition: np.ndarray  # bool
    centre: tuple[float, float] = HELSINKI
    radius_m: float = 5000.0

    @property
    def n(self) -> int:
        return int(self.lat.shape[0])

    @property
    def speed_kmh(self) -> np.ndarray:
        return self.speed_ms * 3.6


def _wrap_deg(deg: np.ndarray) -> np.ndarray:
    """Angles in [0, 360); guards the float case where ``x % 360`` rounds to 360.0."""
    wrapped = np.mod(deg, 360.0)
    return np.where(wrapped >= 360.0, 0.0, wrapped)


def _offset_m(lat: np.ndarray, lon: np.ndarray, centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(east, north) in m of each point from ``centre``, local equirectangular."""
    lat0, lon0 = centre
    north = np.radians(lat - lat0) * EARTH_RADIUS_M
    east = np.radians(lon - lon0) * EARTH_RADIUS_M * np.cos(np.radians(lat0))
    return east, north


def _move(lat: np.ndarray, lon: np.ndarray, heading_deg: np.ndarray, dist_m: np.ndarray):
    """Points ``dist_m`` metres along ``heading_deg`` from (lat, lon), local equirectangular."""
    h = np.radians(heading_deg)
    dlat = np.degrees(dist_m * np.cos(h) / EARTH_RADIUS_M)
    dlon = np.degrees(dist_m * np.sin(h) / (EARTH_RADIUS_M * np.cos(np.radians(lat))))
    return lat + dlat, lon + dlon


def _new_legs(state: CarState, mask: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Fresh legs (heading, length, target speed, end) for cars in ``mask``; others keep theirs.

    Draws for all n cars so the random stream does not depend on which cars need a leg.
    """
    n = state.n
    east, north = _offset_m(state.lat, state.lon, state.centre)
    outside = np.hypot(east, north) > state.radius_m
    home = np.degrees(np.arctan2(-east, -north)) + rng.uniform(-30.0, 30.0, n)
    turn = rng.choice(np.array([-90.0, -45.0, 45.0, 90.0]), n) + rng.normal(0.0, 8.0, n)
    heading = _wrap_deg(np.where(outside, home, state.heading_deg + turn))
    length = np.minimum(200.0 + rng.exponential(900.0, n), 3500.0)
    arterial = rng.random(n) < 0.2
    target = np.where(arterial, rng.uniform(60.0, 100.0, n), rng.uniform(30.0, 60.0, n)) / 3.6
    end = rng.choice(np.array([END_TURN, END_LIGHT, END_PARK], dtype=np.int8), n, p=LEG_END_P)
    return {
        "heading_deg": np.where(mask, heading, state.heading_deg),
        "leg_remaining_m": np.where(mask, length, state.leg_remaining_m),
        "target_ms": np.where(mask, target, state.target_ms),
        "leg_end": np.where(mask, end, state.leg_end).astype(np.int8),
    }


def initial_state(
    n: int, *, seed: int, centre: tuple[float, float] = HELSINKI, radius_m: float = 5000.0
) -> CarState:
    """``n`` cars placed uniformly within ``radius_m`` (m) of ``centre`` (lat, lon degrees).

    About 20 % start parked (ignition off, 0–10 min left); the rest start a leg from rest.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not radius_m > 0:
        raise ValueError(f"radius_m must be positive, got {radius_m}")
    rng = np.random.default_rng(seed)
    r = radius_m * np.sqrt(rng.random(n))
    bearing = rng.uniform(0.0, 360.0, n)
    lat, lon = _move(np.full(n, float(centre[0])), np.full(n, float(centre[1])), bearing, r)
    parked = rng.random(n) < 0.2
    zeros = np.zeros(n)
    state = CarState(
        lat=lat, lon=lon, heading_deg=_wrap_deg(rng.uniform(0.0, 360.0, n)),
        speed_ms=zeros, target_ms=zeros, accel_ms2=zeros,
        phase=np.where(parked, PARKED, DRIVING).astype(np.int8),
        stop_remaining_s=np.where(parked, rng.uniform(0.0, PARK_S[1], n), 0.0),
        leg_remaining_m=zeros, leg_end=np.zeros(n, np.int8), ignition=~parked,
        centre=(float(centre[0]), float(centre[1])), radius_m=float(radius_m),
    )
    return replace(state, **_new_legs(state, np.ones(n, bool), rng))


def step(state: CarState, dt_s: float, rng: np.random.Generator) -> CarState:
    """Advance all cars by ``dt_s`` seconds (intended for 0.1–10 s)."""
    if not dt_s > 0:
        raise ValueError(f"dt_s must be positive, got {dt_s}")
    n = state.n
    # Stops whose time is up: ignition on, a fresh leg from rest.
    remaining = np.where(state.phase != DRIVING, state.stop_remaining_s - dt_s, 0.0)
    released = (state.phase != DRIVING) & (remaining <= 0.0)
    phase = np.where(released, DRIVING, state.phase).astype(np.int8)
    state = replace(state, phase=phase, stop_remaining_s=np.maximum(remaining, 0.0),
                    ignition=state.ignition | released)
    state = replace(state, **_new_legs(state, released, rng))

    driving = state.phase == DRIVING
    v = state.speed_ms
    # Begin slowing once the distance needed (plus one step of travel) reaches the end of the leg.
    v_end = np.where(state.leg_end == END_TURN, TURN_SPEED, 0.0)
    needed = np.maximum(v * v - v_end * v_end, 0.0) / (2.0 * DECEL_PLAN) + v * dt_s
    approach = driving & (state.leg_remaining_m <= needed)
    target = np.where(approach, np.minimum(state.target_ms, v_end), state.target_ms)
    jitter = np.where(target > 0.0, rng.normal(0.0, 0.25, n), 0.0)
    accel = np.clip((target - v) / dt_s + jitter, -DECEL_MAX, ACCEL_MAX)
    v_new = np.maximum(v + accel * dt_s, 0.0)
    # Snap the float residue of braking to a standstill so a stopped car reports exactly 0.
    v_new = np.where(driving & ~((target == 0.0) & (v_new < 1e-6)), v_new, 0.0)
    dist = np.where(driving, 0.5 * (v + v_new) * dt_s, 0.0)
    lat, lon = _move(state.lat, state.lon, state.heading_deg, dist)
    leg_remaining = state.leg_remaining_m - dist

    # Cars beyond the radius heading outwards cut the leg short so the next one can point home.
    east, north = _offset_m(lat, lon, state.centre)
    h = np.radians(state.heading_deg)
    outward = (np.hypot(east, north) > state.radius_m) & (east * np.sin(h) + north * np.cos(h) > 0.0)
    leg_remaining = np.where(driving & outward, np.minimum(leg_remaining, OUTWARD_CUT_M), leg_remaining)

    state = replace(
        state, lat=lat, lon=lon, speed_ms=v_new, target_ms=target, leg_remaining_m=leg_remaining,
        accel_ms2=np.where(driving, (v_new - v) / dt_s, 0.0),
    )
    # Leg ends: a stop once the car is at rest, a turn once the leg is used up.
    stopping = driving & (state.leg_end != END_TURN) & (target == 0.0) & (v_new == 0.0)
    parking = stopping & (state.leg_end == END_PARK)
    stop_s = np.where(parking, rng.uniform(*PARK_S, n), rng.uniform(*LIGHT_S, n))
    state = replace(
        state,
        phase=np.where(stopping, np.where(parking, PARKED, STOPPED), state.phase).astype(np.int8),
        stop_remaining_s=np.where(stopping, stop_s, state.stop_remaining_s),
        ignition=state.ignition & ~parking,
    )
    turning = driving & (state.leg_end == END_TURN) & (leg_remaining <= 0.0)
    return replace(state, **_new_legs(state, turning, rng))


def sample(state: CarState, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """What each car's black box reports now: arrays of shape (n,) unless noted.

    ``lat``/``lon`` degrees with GPS noise, ``accuracy_m`` (3–15 m) the reported horizontal accuracy,
    ``speed_kmh`` (exactly 0 when at rest), ``heading_deg`` in [0, 360), ``ignition`` bool,
    ``accel_g`` shape (n, 3): longitudinal on x, lateral noise on y, ~1.0 (gravity) on z, in g.
    """
    n = state.n
    accuracy = rng.uniform(3.0, 15.0, n)
    noise_bearing = rng.uniform(0.0, 360.0, n)
    noise_m = np.abs(rng.normal(0.0, accuracy / 2.0))
    lat, lon = _move(state.lat, state.lon, noise_bearing, noise_m)
    moving = state.speed_ms > 0.0
    speed = np.where(moving, np.maximum(state.speed_ms * 3.6 + rng.normal(0.0, 0.3, n), 0.0), 0.0)
    heading = _wrap_deg(state.heading_deg + np.where(moving, rng.normal(0.0, 1.0, n), 0.0))
    accel = np.column_stack([
        state.accel_ms2 / G + rng.normal(0.0, 0.01, n),
        rng.normal(0.0, 0.02, n),
        1.0 + rng.normal(0.0, 0.01, n),
    ])
    return {
        "lat": lat, "lon": lon, "accuracy_m": accuracy, "speed_kmh": speed, "heading_deg": heading,
        "ignition": state.ignition.copy(), "accel_g": accel,
    }


def fixes_from_sample(smp: dict[str, np.ndarray], ts_ms: int) -> list[dict[str, Any]]:
    """One payload fix dict per car from a :func:`sample`, all stamped ``ts_ms`` (UTC ms), rounded."""
    heading = np.round(smp["heading_deg"], 2)
    cols = (
        np.round(smp["lat"], 7).tolist(), np.round(smp["lon"], 7).tolist(),
        np.round(smp["speed_kmh"], 2).tolist(), np.where(heading >= 360.0, 0.0, heading).tolist(),
        np.round(smp["accuracy_m"], 2).tolist(), np.asarray(smp["ignition"], bool).tolist(),
        np.round(smp["accel_g"], 2).tolist(),
    )
    ts = int(ts_ms)
    return [
        {"ts": ts, "lat": la, "lon": lo, "speed_kmh": sp, "heading_deg": hd, "accuracy_m": ac,
         "ignition": ig, "accel_g": ag}
        for la, lo, sp, hd, ac, ig, ag in zip(*cols)
    ]


def _check_device_id(device_id: str) -> None:
    if not isinstance(device_id, str) or not device_id or _TOPIC_FORBIDDEN & set(device_id):
        raise ValueError(f"device id must be a non-empty string without '/', '+', '#', got {device_id!r}")


def fix_topic(device_id: str) -> str:
    """MQTT topic of a car's fixes: ``vigil/v1/car/{device_id}/fix``."""
    _check_device_id(device_id)
    return FIX_TOPIC.format(device_id=device_id)


def encode_fix_message(device_id: str, seq: int, fixes: list[dict[str, Any]]) -> bytes:
    """Vigil car payload v1 as JSON bytes.

    Each fix: ``ts`` UTC ms (int), ``lat``/``lon`` degrees (7 decimals), ``speed_kmh``, ``heading_deg``
    in [0, 360), ``accuracy_m`` m, ``ignition`` bool, ``accel_g`` [x, y, z] g (all 2 decimals).
    """
    _check_device_id(device_id)
    if isinstance(seq, bool) or not isinstance(seq, (int, np.integer)) or seq < 0:
        raise ValueError(f"seq must be a non-negative integer, got {seq!r}")
    out = []
    for f in fixes:
        heading = round(float(f["heading_deg"]) % 360.0, 2)
        out.append({
            "ts": int(f["ts"]),
            "lat": round(float(f["lat"]), 7),
            "lon": round(float(f["lon"]), 7),
            "speed_kmh": round(float(f["speed_kmh"]), 2),
            "heading_deg": 0.0 if heading >= 360.0 else heading,
            "accuracy_m": round(float(f["accuracy_m"]), 2),
            "ignition": bool(f["ignition"]),
        })
        if f.get("accel_g") is not None:  # optional in the payload: many boxes have no accelerometer
            out[-1]["accel_g"] = [round(float(a), 2) for a in f["accel_g"]]
    return _encoder.encode({"v": PAYLOAD_VERSION, "device": device_id, "seq": int(seq), "fixes": out})
