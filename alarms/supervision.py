"""Supervision (pure, vectorised): which devices went silent, came back, or run low on battery.

Inputs are arrays over devices: last time heard of (UTC ms), kind code, last battery % (NaN: unknown),
and whether each has an active offline / low-battery alarm. Outputs are index arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("car", "home", "pet")
#: Battery must climb this many points above the threshold before low battery clears (no flapping).
BATTERY_HYSTERESIS_PCT = 5.0


@dataclass(frozen=True, slots=True)
class Verdict:
    went_offline: np.ndarray   # indices: silent longer than their kind allows, no active offline alarm
    came_back: np.ndarray      # indices: heard of again while their offline alarm is active
    battery_low: np.ndarray    # indices: battery under the threshold, no active low-battery alarm
    battery_ok: np.ndarray     # indices: battery recovered while their low-battery alarm is active


def supervise(last_seen_ms, kind, battery_pct, offline_active, battery_active, *, now_ms: int,
              offline_after_s: dict[str, float], low_battery_pct: float) -> Verdict:
    """``kind`` holds codes into :data:`KINDS`; a kind missing from ``offline_after_s`` is never offline."""
    last_seen_ms = np.asarray(last_seen_ms, dtype=np.int64)
    kind = np.asarray(kind, dtype=np.int64)
    battery = np.asarray(battery_pct, dtype=np.float64)
    offline_active = np.asarray(offline_active, dtype=bool)
    battery_active = np.asarray(battery_active, dtype=bool)
    limit_ms = np.array([offline_after_s.get(k, np.inf) * 1000.0 for k in KINDS])[kind]
    silent = (now_ms - last_seen_ms) > limit_ms
    with np.errstate(invalid="ignore"):
        low = battery < low_battery_pct
        ok = battery >= low_battery_pct + BATTERY_HYSTERESIS_PCT
    return Verdict(
        went_offline=np.flatnonzero(silent & ~offline_active),
        came_back=np.flatnonzero(~silent & offline_active),
        battery_low=np.flatnonzero(low & ~battery_active),
        battery_ok=np.flatnonzero(ok & battery_active),
    )
