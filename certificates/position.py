"""Where a car was at given moments, from its fixes, with an honest uncertainty radius (vectorised).

The formula and its justification are in docs/certificates.md ("Fine-assist: the radius"). In short, for
a moment t between the fixes before (b, τb = t - t_b) and after (a, τa = t_a - t), with Δ = τb + τa:

* GNSS term: ``gnss_k`` x the larger reported accuracy (1-σ horizontal radius) of the fixes it rests on.
* Motion term, the smallest of the bounds that apply (each holds if |acceleration| <= M = max_accel):
  - interpolation between b and a:       M·τb·τa / 2                 (linear-interpolation error bound)
                                          2·V·min(τb, τa)             (speed bound, V = (v_b + v_a + M·Δ)/2)
  - holding the position of one fix f:   v_f·τ + M·τ² / 2, and Vmax·τ
  The estimate is the centre of whichever candidate gives the smallest radius.
* No fix within ``max_gap_s`` of t on either side: cannot attest (status CANNOT_ATTEST).

Units: time UTC ms in, s inside; speed km/h in, m/s inside; accuracy and radius m; degrees WGS84.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

INTERPOLATED, FROM_BEFORE, FROM_AFTER, CANNOT_ATTEST = 0, 1, 2, 3
STATUS_NAMES = ("interpolated", "held_from_fix_before", "held_from_fix_after", "cannot_attest")


@dataclass(frozen=True, slots=True)
class FineAssistConfig:
    # 120 s: a box reporting every 1-60 s while driving leaves at most this between two fixes outside
    # tunnels and outages; beyond it the motion term alone exceeds a street block at city speeds.
    max_gap_s: float = 120.0
    # 8 m/s² (0.8 g): emergency braking of a passenger car on dry asphalt; anything harder is a crash.
    # Harsh manoeuvres (0.4-0.6 g) stay below, so the bound holds for ordinary and rough driving.
    max_accel_mps2: float = 8.0
    # 250 km/h: above what any insured passenger car sustains; caps V where speeds are unknown.
    max_speed_kmh: float = 250.0
    # 2 x the 1-σ horizontal radius (2 DRMS): 98 % of a circular Gaussian error, 95 % of a mildly
    # elongated one, which is how receivers' accuracy figures are meant.
    gnss_k: float = 2.0
    # 25 m: a poor consumer fix, assumed when a fix reports no accuracy.
    default_accuracy_m: float = 25.0
    # 1 m/s: Doppler speed error of a consumer receiver is 0.1-0.3 m/s; the margin covers it threefold.
    speed_margin_mps: float = 1.0


class Estimates(NamedTuple):
    """Per moment, shape (k,): position (degrees), radius (m), status code (STATUS_NAMES), index of the
    fix before / after in the input (-1: none), seconds to each (NaN: none)."""
    lat: np.ndarray
    lon: np.ndarray
    radius_m: np.ndarray
    status: np.ndarray
    before: np.ndarray
    after: np.ndarray
    gap_before_s: np.ndarray
    gap_after_s: np.ndarray


def estimate_positions(ts_ms, lat, lon, speed_kmh, accuracy_m, at_ms, cfg: FineAssistConfig) -> Estimates:
    """Estimate one device's position at moments ``at_ms`` (k,) from its fixes (n,), sorted by ts_ms.

    NaN speed or accuracy means not reported: speed then counts as ``max_speed_kmh``, accuracy as
    ``default_accuracy_m``. Radius and position are NaN where the status is CANNOT_ATTEST."""
    ts = np.asarray(ts_ms, np.int64)
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    at = np.atleast_1d(np.asarray(at_ms, np.int64))
    n, k = len(ts), len(at)
    vmax = cfg.max_speed_kmh / 3.6
    speed = np.asarray(speed_kmh, np.float64) / 3.6
    speed = np.where(np.isnan(speed), vmax, np.minimum(speed + cfg.speed_margin_mps, vmax))
    acc = np.asarray(accuracy_m, np.float64)
    acc = np.where(np.isnan(acc) | (acc <= 0), cfg.default_accuracy_m, acc)
    m = cfg.max_accel_mps2

    after = np.searchsorted(ts, at, side="right")        # first fix strictly after t
    before = after - 1                                    # last fix at or before t
    has_b, has_a = before >= 0, after < n
    b, a = np.clip(before, 0, max(n - 1, 0)), np.clip(after, 0, max(n - 1, 0))
    if n == 0:
        nan = np.full(k, np.nan)
        return Estimates(nan, nan.copy(), nan.copy(), np.full(k, CANNOT_ATTEST, np.int8),
                         np.full(k, -1), np.full(k, -1), nan.copy(), nan.copy())
    tau_b = np.where(has_b, (at - ts[b]) / 1000.0, np.inf)
    tau_a = np.where(has_a, (ts[a] - at) / 1000.0, np.inf)

    # Candidate radii (m), inf where the candidate does not apply (0 x inf there is discarded too).
    both = has_b & has_a
    with np.errstate(invalid="ignore"):
        hold_b = np.minimum(speed[b] * tau_b + 0.5 * m * tau_b ** 2, vmax * tau_b)
        hold_a = np.minimum(speed[a] * tau_a + 0.5 * m * tau_a ** 2, vmax * tau_a)
        r_b = np.where(has_b, cfg.gnss_k * acc[b] + hold_b, np.inf)
        r_a = np.where(has_a, cfg.gnss_k * acc[a] + hold_a, np.inf)
        delta = np.where(both, tau_b + tau_a, 1.0)
        v_bound = np.minimum(0.5 * (speed[b] + speed[a] + m * delta), vmax)
        motion = np.minimum(0.5 * m * tau_b * tau_a, 2.0 * v_bound * np.minimum(tau_b, tau_a))
    r_i = np.where(both, cfg.gnss_k * np.maximum(acc[b], acc[a]) + motion, np.inf)

    radii = np.stack([r_i, r_b, r_a], axis=1)
    status = np.argmin(radii, axis=1).astype(np.int8)
    radius = radii[np.arange(k), status]
    attest = np.minimum(tau_b, tau_a) <= cfg.max_gap_s
    status[~attest] = CANNOT_ATTEST

    w = np.where(both, tau_b / delta, 0.0)
    est_lat = np.select([status == INTERPOLATED, status == FROM_BEFORE, status == FROM_AFTER],
                        [lat[b] + w * (lat[a] - lat[b]), lat[b], lat[a]], np.nan)
    est_lon = np.select([status == INTERPOLATED, status == FROM_BEFORE, status == FROM_AFTER],
                        [lon[b] + w * (lon[a] - lon[b]), lon[b], lon[a]], np.nan)
    return Estimates(
        lat=est_lat, lon=est_lon, radius_m=np.where(attest, radius, np.nan), status=status,
        before=np.where(has_b, before, -1), after=np.where(has_a, after, -1),
        gap_before_s=np.where(has_b, tau_b, np.nan), gap_after_s=np.where(has_a, tau_a, np.nan),
    )
