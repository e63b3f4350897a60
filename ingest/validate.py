"""Vectorised plausibility checks of decoded fixes: one reason code per row, 0 when the fix is good."""

from __future__ import annotations

import numpy as np

#: Reason names by code; code 0 is "accepted".
REASONS = ("ok", "lat_out_of_range", "lon_out_of_range", "ts_in_future", "ts_too_old", "value_out_of_range")
#: Fixes before 2000-01-01 UTC come from devices with an unset clock (GPS week roll-over, RTC reset).
MIN_TS_MS = 946_684_800_000


def check(
    ts_ms: np.ndarray, lat: np.ndarray, lon: np.ndarray, *, now_ms: int, max_future_ms: int,
    values: tuple[np.ndarray, ...] = (), position_required: bool = True,
) -> np.ndarray:
    """Reason code per row (uint8, index into :data:`REASONS`); the first failing check wins.

    ``values``: other float columns, where NaN means "not reported" but ±inf (a number beyond the
    column's range, e.g. 1e39 km/h) is refused. Without ``position_required`` a NaN position passes
    (an SOS pressed before the first fix) while a present one must still be in range.
    """
    code = check_time(ts_ms, now_ms=now_ms, max_future_ms=max_future_ms)
    # Later assignments are earlier checks, so they override: position beats time.
    for column in values:
        code[np.isinf(column)] = 5
    lat, lon = np.asarray(lat), np.asarray(lon)
    absent = np.isnan(lat) & np.isnan(lon) if not position_required else np.zeros(len(lat), dtype=bool)
    code[~(np.abs(lon) <= 180.0) & ~absent] = 2
    code[~(np.abs(lat) <= 90.0) & ~absent] = 1
    return code


def check_time(ts_ms: np.ndarray, *, now_ms: int, max_future_ms: int) -> np.ndarray:
    """Reason code per timestamp (UTC ms): 0, ``ts_in_future`` or ``ts_too_old``."""
    ts_ms = np.asarray(ts_ms)
    code = np.zeros(len(ts_ms), dtype=np.uint8)
    code[ts_ms < MIN_TS_MS] = 4
    code[ts_ms > now_ms + max_future_ms] = 3
    return code
