"""Writes the city scenario's ground truth beside the fixes it sends (the only file I/O of the scenario).

Files in the output directory:

* ``devices.jsonl``: one line per device: ``device_id``, ``kind``, ``protocol`` and the model's hidden
  parameters (report interval s, driver roughness, pet fence radius m and home, home kit position);
* ``events.jsonl``: every true event in time order: ``ts_ms`` (UTC ms), ``type`` (trip_start, trip_end,
  harsh_brake, harsh_accel, harsh_corner, crash, escape, fence_exit, fence_enter, sos, armed,
  disarmed, water_leak, …, power_cut), ``device``, ``lat``/``lon`` (true, degrees) and details;
* ``fixes-NNNNN.npz``: the fixes sent, in chunks of :data:`CHUNK_ROWS`: ``device`` (index into
  ``devices.jsonl``), ``ts_ms``, ``true_lat``/``true_lon`` (on the road for cars), reported ``lat``/``lon``,
  ``speed_ms``, ``segment`` (driving-graph segment id, -1 for pets);
* ``summary.json`` on close: the message counts per stream and the rows the gateway should store.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from simulators.city import City

CHUNK_ROWS = 200_000


class TruthLog:
    def __init__(self, directory: Path, city: City) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.city = city
        self._events = open(self.dir / "events.jsonl", "w", encoding="utf-8")
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_rows = 0
        self._chunks = 0
        with open(self.dir / "devices.jsonl", "w", encoding="utf-8") as out:
            for row in _device_rows(city):
                out.write(json.dumps(row) + "\n")

    def flush(self, *, final: bool = False) -> None:
        events, fixes = self.city.drain_truth()
        for row in events:
            self._events.write(json.dumps(row) + "\n")
        if fixes is not None:
            self._pending.append(fixes)
            self._pending_rows += len(fixes["ts_ms"])
        if self._pending and (final or self._pending_rows >= CHUNK_ROWS):
            self._chunks += 1
            merged = {k: np.concatenate([p[k] for p in self._pending]) for k in self._pending[0]}
            np.savez(self.dir / f"fixes-{self._chunks:05d}.npz", **merged)
            self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self.flush(final=True)
        self._events.close()
        summary = {"ticks": self.city.t, "start_ms": self.city.start_ms, "counts": self.city.counts,
                   "expected_rows": self.city.expected_rows()}
        (self.dir / "summary.json").write_text(json.dumps(summary, indent=1))


def _device_rows(city: City):
    c = city.config
    for d, dev in enumerate(city.devices):
        row = {"index": d, "device_id": dev.device_id, "kind": dev.kind, "protocol": dev.protocol}
        if d < city.pet0:
            row.update(interval_s=int(city.car_interval[d]), roughness=round(float(city.fleet.roughness[d]), 3))
        elif d < city.home0:
            i = d - city.pet0
            row.update(interval_s=int(city.pet_interval[i]), fence_m=round(float(city.pets.fence_m[i]), 1),
                       home_lat=float(city.pets.home_lat[i]), home_lon=float(city.pets.home_lon[i]))
        else:
            i = d - city.home0
            row.update(lat=float(city.homes.lat[i]), lon=float(city.homes.lon[i]),
                       power_cut=bool(city.power_cut_hit[i]), heartbeat_s=c.home_heartbeat_s)
        yield row


def read_fixes(directory: Path) -> dict[str, np.ndarray]:
    """All ``fixes-*.npz`` chunks of a truth directory as one set of columns."""
    parts = [dict(np.load(p)) for p in sorted(Path(directory).glob("fixes-*.npz"))]
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def read_events(directory: Path) -> list[dict]:
    with open(Path(directory) / "events.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]
