"""Per-fix UTC offsets (minutes) from per-device time zone names, with daylight saving, vectorised.

Offsets are looked up once per distinct (zone, quarter hour) in the batch rather than per fix: every
zone's transitions since the 1970s fall on a quarter hour of UTC, so all fixes of one quarter hour
share their offset. Uses the system tz database through zoneinfo (no network).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Mapping
from zoneinfo import ZoneInfo

import numpy as np

_QUARTER_MS = 15 * 60 * 1000


def utc_offsets(ts_ms: np.ndarray, device: np.ndarray, zones: Mapping[int, str], default: str = "UTC"
                ) -> np.ndarray:
    """int16 (n,): local-time offset from UTC in minutes of each fix, from ``zones`` (device code ->
    IANA zone name, e.g. "Europe/Rome"); devices missing from ``zones`` use ``default``."""
    ts_ms = np.asarray(ts_ms, np.int64)
    device = np.asarray(device, np.int64)
    out = np.zeros(len(ts_ms), np.int16)
    if len(ts_ms) == 0:
        return out
    names = sorted(set(zones.values()) | {default})
    zone_code = {name: i for i, name in enumerate(names)}
    devs, dev_inv = np.unique(device, return_inverse=True)
    dev_zone = np.array([zone_code[zones.get(int(d), default)] for d in devs], np.int64)
    fix_zone = dev_zone[dev_inv]
    quarter = ts_ms // _QUARTER_MS
    pairs, inv = np.unique(np.stack([fix_zone, quarter], axis=1), axis=0, return_inverse=True)
    offsets = np.empty(len(pairs), np.int16)
    for i, (z, q) in enumerate(pairs):
        moment = datetime.fromtimestamp(int(q) * _QUARTER_MS / 1000.0, tz=timezone.utc)
        offsets[i] = int(moment.astimezone(ZoneInfo(names[int(z)])).utcoffset().total_seconds() // 60)
    out[:] = offsets[inv.reshape(-1)]
    return out
