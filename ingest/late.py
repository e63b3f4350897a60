"""Which fixes are late: older than one already seen from the same device, or received long after
their time (a black box flushing hours of buffer). Downstream processors treat late fixes as history,
not as the present (no live notice for a geofence exit three hours ago, for instance)."""

from __future__ import annotations

import numpy as np

#: 2 minutes: longer than any normal MQTT/gateway latency, far shorter than an offline buffer.
LATE_AFTER_MS = 120_000
# Offsets device groups apart so one cumulative max runs per device (ts < 2^43 ms until year 2248).
_GROUP_SPAN = np.int64(1) << 43


def flag_late(
    device: np.ndarray, ts_ms: np.ndarray, received_ms: np.ndarray, high_water: dict[int, int],
    *, late_after_ms: int = LATE_AFTER_MS,
) -> np.ndarray:
    """Late flag per fix (bool), in arrival order; updates ``high_water`` (device → newest ts seen).

    A fix is late when its time is before the newest earlier fix of its device (in this batch or any
    before it), or when it arrived more than ``late_after_ms`` after its time.
    """
    device = np.asarray(device, dtype=np.int64)
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    n = len(ts_ms)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(device, kind="stable")  # arrival order kept within each device
    dev_sorted = device[order]
    ts_sorted = ts_ms[order]
    uniq, group = np.unique(dev_sorted, return_inverse=True)
    previous = np.array([high_water.get(int(d), -1) for d in uniq], dtype=np.int64)
    shifted = ts_sorted + group * _GROUP_SPAN
    running = np.maximum.accumulate(shifted) - group * _GROUP_SPAN
    # Newest time seen before each fix: the running max up to the previous fix of the same device.
    before = np.empty(n, dtype=np.int64)
    before[0] = -1
    before[1:] = running[:-1]
    first = np.ones(n, dtype=bool)
    first[1:] = dev_sorted[1:] != dev_sorted[:-1]
    before[first] = -1
    before = np.maximum(before, previous[group])
    late_sorted = ts_sorted < before
    last_of_group = np.append(first[1:], True)
    newest = np.maximum(running[last_of_group], previous)
    high_water.update(zip(uniq.tolist(), newest.tolist()))
    late = np.empty(n, dtype=bool)
    late[order] = late_sorted
    return late | (np.asarray(received_ms, dtype=np.int64) - ts_ms > late_after_ms)
