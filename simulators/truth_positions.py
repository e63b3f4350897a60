"""Noise-free positions of the simulated fleet at any moment: the ground truth for fine-assist tests.

Replays the fleet and the plan of :func:`simulators.truth.simulate_days` (the same seeded draws, in the
same order) and evaluates the closed-form motion at the requested times.
"""

from __future__ import annotations

import numpy as np

from simulators.cars import HELSINKI
from simulators.truth import DAY_S, _fleet, _key, _motion, _plan, _to_degrees


def true_positions(n_devices: int, device, t_s, *, seed: int, days: float = 1.0, interval_s=(1, 10),
                   gps_sigma_m=(5.0, 15.0), dropout=(0.005, 0.03), tunnel_share: float = 0.03,
                   ignition_share: float = 0.5, accel_share: float = 0.5, event_share: float = 0.1,
                   centre=HELSINKI, radius_m: float = 15_000.0) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) degrees, shape (k,), of ``device`` (k,) at ``t_s`` (k,) seconds after the start, for the
    fleet that ``simulate_days(n_devices, seed=seed, days=days, ...)`` with the same arguments draws."""
    rng = np.random.default_rng(seed)
    horizon = float(days) * DAY_S
    fleet = _fleet(n_devices, rng, interval_s, gps_sigma_m, dropout, ignition_share, accel_share,
                   centre, radius_m)
    seg, _ = _plan(fleet, horizon, rng, event_share, tunnel_share)
    dev = np.asarray(device, np.int64)
    t = np.asarray(t_s, np.float64)
    si = np.searchsorted(seg["key"], _key(dev, t, horizon), side="right") - 1
    north, east, _, _ = _motion(seg, si, t - seg["t0"][si])
    return _to_degrees(fleet, dev, seg, si, north, east)
