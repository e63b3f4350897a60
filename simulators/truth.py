"""A seeded, vectorised fleet-day simulator that also returns the ground truth, to judge the trip core.

Pure: no clock, no I/O; every random draw comes from ``numpy.random.default_rng(seed)``, so a seed
reproduces the columns and the truth bit for bit. Units inside: s, m, m/s, m/s², rad; the columns use
the FixBatch edge units (UTC ms, degrees, km/h, g).

The model. Each car alternates parking (10–120 min) and trips (3–50 min: the leg that crosses a 3–40 min
target is the last). Every car starts the day parked and ends it parked. A trip is a chain of
*legs*; a leg is: standstill (the park before the trip, or a traffic light of 10–90 s, shorter than
any stop rule), accelerate at 0.8–2 m/s² to a cruise speed of its trip's road class (urban 30–50,
extra-urban 60–85, highway 100–125 km/h), cruise straight, take a gentle curve (10–90°, lateral
0.3–1.5 m/s²), cruise straight, brake at 0.8–2 m/s² to a standstill. Each piece has a constant
longitudinal acceleration and a constant turn rate (never both), so positions are closed-form. Normal
driving stays below 0.21 g on every axis. About ``event_share`` of the legs carry one harsh event of
0.45–0.6 g lasting 2–4 s: the leg's start (harsh acceleration from rest), its end (harsh braking to
rest; either way the cruise speed is then a·D) or its curve (harsh cornering at cruise speed).
``crash_share`` of the devices with an accelerometer are hit once (3–8 g) while standing at a light
or parked.

Sensors. Each device reports every ``interval_s`` seconds (one integer period per device, drawn from
the range, random phase) and loses a few % of its fixes at random, plus 10–60 s tunnel outages in
``tunnel_share`` of the straights. Position error per axis has a per-device σ (``gps_sigma_m``): a
white fix-to-fix jitter of σ/10 (``white_share`` = 1 % of the variance) and a smooth wander (six
sinusoids with periods of 1–15 min and random phases) for the rest, as a receiver's filtered solution
wanders with multipath and atmosphere; it applies whether the car moves or not, so a car standing at a
light or parked drifts (no "static hold"). ``accuracy_m`` reports σ·√2 (the 1-σ
horizontal radius) within ±20 %. Speed is the Doppler speed (noise 0.3 km/h, never negative), heading
the course with 1° noise, worse below 30 km/h. Devices with an accelerometer report, in the vehicle
frame with gravity removed, the largest-magnitude value of each axis since their previous fix (peak
hold, noise 0.02 g), so a short pulse is never missed; the others report NaN. Devices with ignition
report it (off 3–20 s after parking, on 5–30 s before leaving); the others report -1.

Ground truth (what the tests may fairly expect).

- Trip: starts when the car leaves its parking place (speed becomes positive) and ends when it comes to
  rest at the next one; lights do not end trips. ``distance_m`` is the length of the noise-free path in
  between. A core that reports the last stopped fix before moving and the first stopped fix is late or
  early by up to one interval plus one dropped fix, plus the ignition delays (at most 20 s and 30 s).
- Event: kind (trips.config codes), ``ts_ms``/``end_ms`` of the constant-acceleration pulse, ``value``
  its peak (g), and ``sensed_s``: how much of the pulse the device's sensors resolve — its whole
  duration with an accelerometer, else the sum of the intervals between consecutive received fixes at
  most 5 s apart that lie wholly inside the pulse (a speed or heading difference across such an
  interval shows the full peak; intervals reaching outside dilute it).
- Crash: ``ts_ms`` of the impact and its peak magnitude (g); it appears on the first fix after it.
"""

from __future__ import annotations

import numpy as np

from simulators.cars import HELSINKI
from trips.config import HARSH_ACCEL, HARSH_BRAKE, HARSH_CORNER

G = 9.80665                        # m/s² per g
DAY_S = 86_400
START_MS = 1_709_251_200_000       # 2024-03-01 00:00 UTC
_A, _F = 6378137.0, 1.0 / 298.257223563
_E2 = _F * (2.0 - _F)

# Segment kinds (one leg = six segments, in this order).
STAND, SPEED_UP, STRAIGHT1, CURVE, STRAIGHT2, SLOW_DOWN = range(6)
CLASS_KMH = ((30.0, 50.0), (60.0, 85.0), (100.0, 125.0))   # urban, extra-urban, highway cruise speeds
CLASS_P = (0.6, 0.3, 0.1)
PARK_S = (600.0, 7200.0)
TRIP_S = (180.0, 2400.0)           # target; the trip ends with the leg that crosses it
LIGHT_S = (10.0, 90.0)
STRAIGHT_S = (20.0, 150.0)
NORMAL_A = (0.8, 2.0)              # m/s², acceleration and braking
CURVE_DEG, CURVE_A = (10.0, 90.0), (0.3, 1.5)
HARSH_G, HARSH_S = (0.45, 0.60), (2.0, 4.0)
CRASH_G = (3.0, 8.0)
IGN_OFF_S, IGN_ON_S = (3.0, 20.0), (5.0, 30.0)
TUNNEL_S = (10.0, 60.0)
WANDER_PERIOD_S = (60.0, 900.0)
WHITE_SHARE = 0.01                 # share of the error variance that is fix-to-fix jitter (σ/10)
MAX_DERIVATIVE_S = 5.0             # GNSS speed/heading differences farther apart do not resolve a pulse


def simulate_days(n_devices: int, *, seed: int, days: float = 1.0, interval_s=(1, 10),
                  gps_sigma_m=(5.0, 15.0), white_share: float = WHITE_SHARE, dropout=(0.005, 0.03),
                  tunnel_share: float = 0.03,
                  ignition_share: float = 0.5, accel_share: float = 0.5, event_share: float = 0.1,
                  crash_share: float = 0.1, start_ms: int = START_MS, centre=HELSINKI,
                  radius_m: float = 15_000.0):
    """``n_devices`` cars for ``days`` days. Returns (columns, truth).

    columns: every FixBatch column (vigil.batch.COLUMNS names and dtypes), shape (n,), sorted by
    (device, ts_ms); device codes 0..n_devices-1. truth: ``trips`` {device, start_ms, end_ms,
    distance_m}, ``events`` {device, ts_ms, end_ms, kind, value, sensed_s}, ``crashes`` {device, ts_ms,
    value}, ``devices`` {interval_s, gps_sigma_m, ignition, accelerometer}; arrays sorted by (device, time).
    """
    if n_devices < 1:
        raise ValueError(f"n_devices must be at least 1, got {n_devices}")
    rng = np.random.default_rng(seed)
    horizon = float(days) * DAY_S
    fleet = _fleet(n_devices, rng, interval_s, gps_sigma_m, dropout, ignition_share, accel_share,
                   centre, radius_m)
    seg, trips = _plan(fleet, horizon, rng, event_share, tunnel_share)
    t, dev = _sample_times(fleet, horizon, rng)
    si = np.searchsorted(seg["key"], _key(dev, t, horizon), side="right") - 1
    keep = (rng.random(len(t)) >= fleet["dropout"][dev]) & ~_in_tunnel(seg, si, t)
    t, dev, si = t[keep], dev[keep], si[keep]
    tau = t - seg["t0"][si]

    north, east, v, heading = _motion(seg, si, tau)
    lat, lon = _to_degrees(fleet, dev, seg, si, north, east)
    lat, lon = _add_error(lat, lon, dev, t, fleet["sigma"], rng, white_share)
    n = len(t)
    moving = v > 0
    kmh = np.abs(v * 3.6 + rng.normal(0.0, 0.3, n))
    hd_sigma = np.where(moving, np.clip(30.0 / np.maximum(v * 3.6, 1e-3), 1.0, 30.0), 30.0)   # degrees
    hd = np.degrees(heading) + rng.normal(0.0, 1.0, n) * hd_sigma

    ign = np.where(fleet["ignition"][dev], 1, -1).astype(np.int8)
    off = fleet["ignition"][dev] & (t >= seg["ign_off"][si]) & (t < seg["ign_on"][si])
    ign[off] = 0

    events = _events(seg, fleet, dev, t, horizon)
    ax, ay, az = _accelerometer(seg, fleet, dev, t, si, rng)
    crashes = _crashes(seg, fleet, dev, t, (ax, ay, az), rng, crash_share, horizon)

    ts_ms = start_ms + np.rint(t * 1000.0).astype(np.int64)
    acc = np.sqrt(2.0) * fleet["sigma"][dev] * rng.uniform(0.8, 1.2, n)
    columns = {
        "device": dev.astype(np.int64), "ts_ms": ts_ms, "lat": lat, "lon": lon,
        "speed_kmh": kmh.astype(np.float32), "heading_deg": np.mod(hd, 360.0).astype(np.float32) % np.float32(360),
        "accuracy_m": acc.astype(np.float32), "ignition": ign,
        "accel_x": ax.astype(np.float32), "accel_y": ay.astype(np.float32), "accel_z": az.astype(np.float32),
        "battery_pct": np.full(n, np.nan, np.float32), "odometer_m": np.full(n, np.nan),
        "seq": np.full(n, -1, np.int64), "received_ms": ts_ms.copy(), "late": np.zeros(n, np.int8),
    }
    def ms(seconds):
        return start_ms + np.rint(np.asarray(seconds) * 1000.0).astype(np.int64)

    truth = {
        "trips": {"device": trips["device"], "start_ms": ms(trips["start"]), "end_ms": ms(trips["end"]),
                  "distance_m": trips["distance_m"]},
        "events": {"device": events["device"], "ts_ms": ms(events["start"]), "end_ms": ms(events["end"]),
                   "kind": events["kind"], "value": events["value"], "sensed_s": events["sensed_s"]},
        "crashes": {"device": crashes["device"], "ts_ms": ms(crashes["t"]), "value": crashes["value"]},
        "devices": {"interval_s": fleet["interval"], "gps_sigma_m": fleet["sigma"],
                    "ignition": fleet["ignition"], "accelerometer": fleet["accel"]},
    }
    return columns, truth


def simulate_parked(n_devices: int, *, seed: int, hours: float = 12.0, interval_s=(1, 10),
                    drift_sigma_m=(20.0, 50.0), jump_m: float = 100.0, jumps_per_hour: float = 2.0,
                    jump_s=(1.0, 30.0), ignition_share: float = 0.25, accel_share: float = 0.5,
                    start_ms: int = START_MS, centre=HELSINKI, radius_m: float = 15_000.0):
    """Cars that never move for ``hours``: every fix is the parked spot plus a drift of per-axis σ
    ``drift_sigma_m`` (same error model as :func:`simulate_days`) and, about ``jumps_per_hour``, a
    multipath jump of ``jump_m`` metres lasting ``jump_s`` seconds. Doppler speed |N(0, 0.5)| km/h,
    heading random, ignition (where reported) off. Returns FixBatch columns sorted by (device, ts_ms);
    the truth is "no trip, no harsh event"."""
    rng = np.random.default_rng(seed)
    horizon = float(hours) * 3600.0
    fleet = _fleet(n_devices, rng, interval_s, drift_sigma_m, (0.0, 0.0), ignition_share, accel_share,
                   centre, radius_m)
    t, dev = _sample_times(fleet, horizon, rng)
    n = len(t)
    lat, lon = _add_error(fleet["lat"][dev], fleet["lon"][dev], dev, t, fleet["sigma"], rng)
    n_jumps = rng.poisson(jumps_per_hour * hours, n_devices)
    jdev = np.repeat(np.arange(n_devices), n_jumps)
    j0 = rng.uniform(0.0, horizon, len(jdev))
    order = np.lexsort((j0, jdev))
    jdev, j0 = jdev[order], j0[order]
    j1 = j0 + rng.uniform(*jump_s, len(jdev))
    jb = rng.uniform(0.0, 2.0 * np.pi, len(jdev))
    k = np.searchsorted(_key(jdev, j0, horizon), _key(dev, t, horizon), side="right") - 1
    inside = k >= 0
    inside[inside] = (jdev[k[inside]] == dev[inside]) & (t[inside] < j1[k[inside]])
    b = jb[k[inside]]
    m_lat, m_lon = _metres_per_degree(lat[inside])
    lat[inside] += jump_m * np.cos(b) / m_lat
    lon[inside] += jump_m * np.sin(b) / m_lon
    ts_ms = start_ms + np.rint(t * 1000.0).astype(np.int64)
    has_acc = fleet["accel"][dev]
    ax, ay, az = (np.where(has_acc, rng.normal(0.0, 0.02, n), np.nan).astype(np.float32) for _ in range(3))
    return {
        "device": dev.astype(np.int64), "ts_ms": ts_ms, "lat": lat, "lon": lon,
        "speed_kmh": np.abs(rng.normal(0.0, 0.5, n)).astype(np.float32),
        "heading_deg": rng.uniform(0.0, 360.0, n).astype(np.float32) % np.float32(360),
        "accuracy_m": (np.sqrt(2.0) * fleet["sigma"][dev] * rng.uniform(0.8, 1.2, n)).astype(np.float32),
        "ignition": np.where(fleet["ignition"][dev], 0, -1).astype(np.int8),
        "accel_x": ax, "accel_y": ay, "accel_z": az,
        "battery_pct": np.full(n, np.nan, np.float32), "odometer_m": np.full(n, np.nan),
        "seq": np.full(n, -1, np.int64), "received_ms": ts_ms.copy(), "late": np.zeros(n, np.int8),
    }


# --- fleet and plan ---------------------------------------------------------------------------------


def _fleet(n, rng, interval_s, sigma_m, dropout, ignition_share, accel_share, centre, radius_m):
    lo, hi = int(interval_s[0]), int(interval_s[1])
    if lo < 1 or hi < lo:
        raise ValueError(f"interval_s must be a range of whole seconds >= 1, got {interval_s}")
    r = radius_m * np.sqrt(rng.random(n))
    b = rng.uniform(0.0, 2.0 * np.pi, n)
    m_lat, m_lon = _metres_per_degree(np.full(n, float(centre[0])))
    return {
        "interval": rng.integers(lo, hi + 1, n).astype(np.float64),
        "sigma": rng.uniform(*sigma_m, n),
        "dropout": rng.uniform(*dropout, n),
        "ignition": rng.random(n) < ignition_share,
        "accel": rng.random(n) < accel_share,
        "lat": centre[0] + r * np.cos(b) / m_lat,
        "lon": centre[1] + r * np.sin(b) / m_lon,
        "heading": rng.uniform(0.0, 2.0 * np.pi, n),
    }


def _plan(fleet, horizon, rng, event_share, tunnel_share):
    """Segments of every device (dict of arrays, sorted by device then time) and the true trips."""
    n = len(fleet["interval"])
    k_max = int(horizon // (PARK_S[0] + TRIP_S[0])) + 2
    l_max = int(TRIP_S[1] // (2 * STRAIGHT_S[0] + LIGHT_S[0])) + 2       # legs last longer than that
    shape = (n, k_max, l_max)
    park = rng.uniform(*PARK_S, (n, k_max))
    target = rng.uniform(*TRIP_S, (n, k_max))
    cls = rng.choice(3, (n, k_max), p=CLASS_P)
    lo_kmh, hi_kmh = np.array(CLASS_KMH).T
    v = rng.uniform(lo_kmh[cls][..., None], hi_kmh[cls][..., None], shape) / 3.6
    a_acc, a_brk = rng.uniform(*NORMAL_A, shape), rng.uniform(*NORMAL_A, shape)
    s1, s2 = rng.uniform(*STRAIGHT_S, shape), rng.uniform(*STRAIGHT_S, shape)
    turn = np.radians(rng.uniform(*CURVE_DEG, shape)) * rng.choice([-1.0, 1.0], shape)
    lateral = rng.uniform(*CURVE_A, shape)
    light = rng.uniform(*LIGHT_S, shape)
    ev_kind = np.where(rng.random(shape) < event_share, rng.integers(0, 3, shape), -1)
    ev_g, ev_s = rng.uniform(*HARSH_G, shape), rng.uniform(*HARSH_S, shape)
    tunnel = rng.random(shape) < tunnel_share
    tunnel_len = rng.uniform(*TUNNEL_S, shape)
    tunnel_at = rng.random(shape)

    harsh_long = (ev_kind == HARSH_ACCEL) | (ev_kind == HARSH_BRAKE)
    v = np.where(harsh_long, ev_g * G * ev_s, v)
    a_acc = np.where(ev_kind == HARSH_ACCEL, ev_g * G, a_acc)
    a_brk = np.where(ev_kind == HARSH_BRAKE, ev_g * G, a_brk)
    corner = ev_kind == HARSH_CORNER
    w = np.sign(turn) * np.where(corner, ev_g * G, lateral) / v
    curve_s = np.where(corner, ev_s, np.abs(turn / w))

    driving = v / a_acc + s1 + curve_s + s2 + v / a_brk
    before = np.cumsum(driving + light, axis=2) - (driving + light)   # time from trip start to each leg
    leg_kept = before < target[..., None]
    leg_kept[..., 0] = True
    n_legs = leg_kept.sum(axis=2)
    last = np.arange(l_max) == (n_legs - 1)[..., None]
    trip_s = (np.where(leg_kept, driving, 0.0).sum(axis=2)
              + np.where(leg_kept & ~last, light, 0.0).sum(axis=2))   # lights after legs but the last
    start = np.cumsum(park, axis=1) + np.cumsum(trip_s, axis=1) - trip_s
    end = start + trip_s
    trip_kept = end <= horizon - PARK_S[0]

    # Legs of kept trips: the standstill before each leg is the park (first leg) or the previous light.
    sel = leg_kept & trip_kept[..., None]
    d_idx, k_idx, l_idx = np.nonzero(sel)
    first_leg = l_idx == 0
    prev_light = light[d_idx, k_idx, np.maximum(l_idx - 1, 0)]
    stand = np.where(first_leg, park[d_idx, k_idx], prev_light)
    def g(a):
        return a[d_idx, k_idx, l_idx]

    vv, aa, ab, w_ = g(v), g(a_acc), g(a_brk), g(w)
    dur = np.stack([stand, vv / aa, g(s1), g(curve_s), g(s2), vv / ab], axis=1)
    v0 = np.stack([0 * vv, 0 * vv, vv, vv, vv, vv], axis=1)
    acc = np.stack([0 * vv, aa, 0 * vv, 0 * vv, 0 * vv, -ab], axis=1)
    rate = np.stack([0 * vv, 0 * vv, 0 * vv, w_, 0 * vv, 0 * vv], axis=1)
    kind = np.broadcast_to(np.arange(6), dur.shape)
    ek = g(ev_kind)
    harsh_seg = np.select([ek == HARSH_ACCEL, ek == HARSH_BRAKE, ek == HARSH_CORNER],
                          [SPEED_UP, SLOW_DOWN, CURVE], -1)
    ev_code = np.where(kind == harsh_seg[:, None], ek[:, None], -1)
    ev_value = np.where(ev_code >= 0, g(ev_g)[:, None], 0.0)
    tun = np.where(kind == STRAIGHT1, (g(tunnel) * np.minimum(g(tunnel_len), g(s1)))[:, None], 0.0)
    tun_at = np.broadcast_to(g(tunnel_at)[:, None], dur.shape)
    # Ignition delays of the park before each trip (off after arriving, on before leaving); NaN: a light.
    park_off = np.where(first_leg, np.where(k_idx > 0, rng.uniform(*IGN_OFF_S, len(d_idx)), 0.0), np.nan)
    park_on = rng.uniform(*IGN_ON_S, len(d_idx))
    trip_id = np.broadcast_to(np.cumsum(first_leg)[:, None] - 1, dur.shape)
    cols = {"dev": np.broadcast_to(d_idx[:, None], dur.shape), "dur": dur, "v0": v0, "a": acc, "w": rate,
            "kind": kind, "ev": ev_code, "ev_value": ev_value, "tunnel": tun, "tunnel_at": tun_at,
            "trip": trip_id, "off_after": np.where(kind == STAND, park_off[:, None], np.nan),
            "on_before": np.where(kind == STAND, park_on[:, None], np.nan)}
    seg = {k: np.ravel(c) for k, c in cols.items()}

    # One final park per device, from its last trip's end past the horizon.
    last_end = np.zeros(n)
    np.maximum.at(last_end, d_idx, end[d_idx, k_idx])
    fin = {"dev": np.arange(n), "dur": horizon - last_end + 1.0, "kind": np.full(n, STAND),
           "ev": np.full(n, -1), "trip": np.full(n, -1), "off_after": rng.uniform(*IGN_OFF_S, n) * (last_end > 0)}
    seg = {k: np.concatenate([c, fin.get(k, np.zeros(n, c.dtype))]) for k, c in seg.items()}
    order = np.argsort(seg["dev"], kind="stable")
    seg = {k: c[order] for k, c in seg.items()}

    d = seg["dev"]
    first = np.append(True, d[1:] != d[:-1])
    seg["t0"] = _cumsum_by(seg["dur"], first)
    seg["key"] = _key(d, seg["t0"], horizon)
    t_end = seg["t0"] + seg["dur"]
    seg["ign_off"] = seg["t0"] + seg.pop("off_after")      # NaN at lights: never off
    seg["ign_on"] = t_end - seg.pop("on_before")
    seg["theta"] = fleet["heading"][d] + _cumsum_by(seg["w"] * seg["dur"], first)
    dn, de = _displacement(seg["v0"], seg["a"], seg["w"], seg["theta"], seg["dur"])
    seg["north"] = _cumsum_by(dn, first)
    seg["lat"] = fleet["lat"][d] + np.degrees(seg["north"] / _meridian(fleet["lat"][d]))
    lat_end = fleet["lat"][d] + np.degrees((seg["north"] + dn) / _meridian(fleet["lat"][d]))
    seg["lon"] = fleet["lon"][d] + _cumsum_by(np.degrees(de / _parallel(0.5 * (seg["lat"] + lat_end))), first)

    length = seg["v0"] * seg["dur"] + 0.5 * seg["a"] * seg["dur"] ** 2
    on_trip = (seg["trip"] >= 0) & (seg["kind"] != STAND)
    n_trips = int(seg["trip"].max()) + 1 if len(d_idx) else 0
    tr = seg["trip"][on_trip]
    trips = {
        "device": np.zeros(n_trips, np.int64), "distance_m": np.bincount(tr, length[on_trip], n_trips),
        "start": np.full(n_trips, np.inf), "end": np.zeros(n_trips),
    }
    trips["device"][tr] = d[on_trip]
    np.minimum.at(trips["start"], tr, seg["t0"][on_trip])
    np.maximum.at(trips["end"], tr, t_end[on_trip])
    return seg, trips


# --- sampling and sensors ---------------------------------------------------------------------------


def _sample_times(fleet, horizon, rng):
    """Fix times (s) of every device: a random phase, then every interval; sorted by (device, t)."""
    step = fleet["interval"]
    phase = rng.integers(0, (step * 1000).astype(np.int64)) / 1000.0
    count = np.ceil((horizon - phase) / step).astype(np.int64)
    dev = np.repeat(np.arange(len(step)), count)
    j = np.arange(len(dev)) - np.repeat(np.cumsum(count) - count, count)
    return phase[dev] + j * step[dev], dev


def _in_tunnel(seg, si, t):
    length = seg["tunnel"][si]
    start = seg["t0"][si] + seg["tunnel_at"][si] * (seg["dur"][si] - length)
    return (length > 0) & (t >= start) & (t < start + length)


def _motion(seg, si, tau):
    """(north m, east m) from the device's start, speed m/s and heading rad at time tau into segment si."""
    v0, a, w, th = seg["v0"][si], seg["a"][si], seg["w"][si], seg["theta"][si]
    dn, de = _displacement(v0, a, w, th, tau)
    return seg["north"][si] + dn, de, np.maximum(v0 + a * tau, 0.0), th + w * tau


def _displacement(v0, a, w, theta, tau):
    """(north, east) m covered in tau s from heading theta (rad, clockwise from north) at speed v0 m/s,
    with acceleration a (m/s²) on a straight (w == 0) or turn rate w (rad/s) at constant speed."""
    s = v0 * tau + 0.5 * a * tau * tau
    north, east = s * np.cos(theta), s * np.sin(theta)
    arc = np.flatnonzero(w != 0)
    if len(arc):
        r, th0 = v0[arc] / w[arc], theta[arc]
        th1 = th0 + w[arc] * tau[arc]
        north[arc] = r * (np.sin(th1) - np.sin(th0))
        east[arc] = r * (np.cos(th0) - np.cos(th1))
    return north, east


def _to_degrees(fleet, dev, seg, si, north, east):
    """WGS84 degrees of points ``north`` m from the device's home and ``east`` m within segment si;
    east converts at the mean latitude of the piece, so planar lengths stay ellipsoidal lengths."""
    lat0 = fleet["lat"][dev]
    lat = lat0 + np.degrees(north / _meridian(lat0))
    return lat, seg["lon"][si] + np.degrees(east / _parallel(0.5 * (lat + seg["lat"][si])))


def _add_error(lat, lon, dev, t, sigma, rng, white_share=WHITE_SHARE, parts: int = 6):
    """GNSS position error: per device and axis σ, ``white_share`` of the variance white, the rest a sum
    of ``parts`` sinusoids with random periods and phases (a smooth stationary wander)."""
    n_dev = len(sigma)
    white = np.sqrt(white_share) * sigma[dev]
    amp = np.sqrt((1.0 - white_share) * 2.0 / parts) * sigma
    out = []
    for _ in range(2):
        freq = 2.0 * np.pi / np.exp(rng.uniform(*np.log(WANDER_PERIOD_S), (n_dev, parts)))
        phase = rng.uniform(0.0, 2.0 * np.pi, (n_dev, parts))
        wander = np.zeros(len(t))
        for p in range(parts):
            wander += np.cos(freq[dev, p] * t + phase[dev, p])
        out.append(amp[dev] * wander + white * rng.normal(0.0, 1.0, len(t)))
    m_lat, m_lon = _metres_per_degree(lat)
    return lat + out[0] / m_lat, lon + out[1] / m_lon


def _accelerometer(seg, fleet, dev, t, si, rng):
    """Peak-hold (largest magnitude, signed) longitudinal and lateral g over the segments since the
    previous fix, plus 0.02 g noise; NaN for devices without an accelerometer."""
    n = len(t)
    out = [np.full(n, np.nan) for _ in range(3)]
    rows = np.flatnonzero(fleet["accel"][dev])
    if len(rows) == 0:
        return tuple(out)
    hi = si[rows]
    lo = np.where(np.append(True, dev[rows][1:] != dev[rows][:-1]), hi, np.roll(hi, 1))
    along = seg["a"] / G
    lateral = -seg["v0"] * seg["w"] / G                                  # y points left
    px, py = along[hi], lateral[hi]
    for j in range(int((hi - lo).max(initial=0))):
        idx = np.minimum(lo + j, hi)
        px = np.where(np.abs(along[idx]) > np.abs(px), along[idx], px)
        py = np.where(np.abs(lateral[idx]) > np.abs(py), lateral[idx], py)
    for col, x in zip(out, (px, py, np.zeros(len(rows)))):
        col[rows] = x + rng.normal(0.0, 0.02, len(rows))
    return tuple(out)


def _events(seg, fleet, dev, t, horizon):
    """Injected harsh events with the seconds of each resolved by the device (see the module doc)."""
    e = np.flatnonzero(seg["ev"] >= 0)
    start, end = seg["t0"][e], seg["t0"][e] + seg["dur"][e]
    edev = seg["dev"][e]
    sensed = np.where(fleet["accel"][edev], end - start, 0.0)
    k = np.searchsorted(_key(edev, start, horizon), _key(dev, t, horizon), side="right") - 1
    rows = np.flatnonzero(np.append(False, dev[1:] == dev[:-1]) & (k >= 0))
    kk = k[rows]
    inside = ((edev[kk] == dev[rows]) & (t[rows - 1] >= start[kk]) & (t[rows] <= end[kk])
              & (t[rows] - t[rows - 1] <= MAX_DERIVATIVE_S))
    gnss = np.bincount(kk[inside], t[rows[inside]] - t[rows[inside] - 1], len(e))
    sensed = np.where(fleet["accel"][edev], sensed, gnss)
    return {"device": edev.astype(np.int64), "start": start, "end": end, "kind": seg["ev"][e].astype(np.int8),
            "value": seg["ev_value"][e], "sensed_s": sensed}


def _crashes(seg, fleet, dev, t, accel, rng, share, horizon):
    """Hit ``crash_share`` of the accelerometer devices once while standing; the first fix after the
    impact carries its peak (mostly along x, a rear impact). Writes into ``accel`` in place."""
    stands = np.flatnonzero((seg["kind"] == STAND) & (seg["dur"] > 60.0))
    n_dev = len(fleet["interval"])
    pick = rng.random(len(stands))
    best = np.full(n_dev, -1)
    score = np.full(n_dev, -1.0)
    np.maximum.at(score, seg["dev"][stands], pick)
    winner = pick == score[seg["dev"][stands]]
    best[seg["dev"][stands][winner]] = stands[winner]
    hit = fleet["accel"] & (rng.random(n_dev) < share) & (best >= 0)
    cdev = np.flatnonzero(hit)
    s = best[cdev]
    tc = seg["t0"][s] + rng.uniform(0.2, 0.8, len(cdev)) * np.minimum(seg["dur"][s], 3600.0)
    mag = rng.uniform(*CRASH_G, len(cdev))
    ang = np.radians(rng.uniform(-30.0, 30.0, len(cdev)))
    row = np.searchsorted(_key(dev, t, horizon), _key(cdev, tc, horizon))
    found = (row < len(t)) & (dev[np.minimum(row, len(t) - 1)] == cdev)
    row, cdev, tc, mag, ang = row[found], cdev[found], tc[found], mag[found], ang[found]
    ax, ay, az = accel
    ax[row], ay[row], az[row] = mag * np.cos(ang), mag * np.sin(ang), rng.normal(0.0, 0.2, len(row))
    value = np.sqrt(ax[row] ** 2 + ay[row] ** 2 + az[row] ** 2)
    return {"device": cdev.astype(np.int64), "t": tc, "value": value}


# --- geometry and helpers ---------------------------------------------------------------------------


def _meridian(lat_deg):
    """WGS84 meridional radius of curvature M (m per radian of latitude)."""
    s2 = np.sin(np.radians(lat_deg)) ** 2
    return _A * (1.0 - _E2) / (1.0 - _E2 * s2) ** 1.5


def _parallel(lat_deg):
    """Radius of the parallel N·cos φ (m per radian of longitude)."""
    s2 = np.sin(np.radians(lat_deg)) ** 2
    return _A / np.sqrt(1.0 - _E2 * s2) * np.cos(np.radians(lat_deg))


def _metres_per_degree(lat_deg):
    return np.radians(_meridian(lat_deg)), np.radians(_parallel(lat_deg))


def _cumsum_by(x, first):
    """Exclusive cumulative sum of ``x`` restarting at each ``first`` row."""
    c = np.cumsum(x) - x
    starts = np.flatnonzero(first)
    return c - np.repeat(c[starts], np.diff(np.append(starts, len(x))))


def _key(dev, t, horizon):
    """A float key increasing along (device, t) for searchsorted across devices (t in s, < horizon + 1)."""
    return np.asarray(dev, np.float64) * (horizon + 10.0) + t
