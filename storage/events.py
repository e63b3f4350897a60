"""Writing device-event batches. Events are few next to fixes, so a multi-row INSERT is enough."""

from __future__ import annotations

import numpy as np

from storage.db import Database
from vigil.events import EVENT_TYPES, EventBatch

_INSERT = """
INSERT INTO device_events
    (device_id, ts, type, sensor, event_id, value, lat, lon, accuracy_m, seq, late, received_at)
SELECT d, to_timestamp(t / 1000.0), ty, s, e, v, la, lo, acc, sq, lt, to_timestamp(r / 1000.0)
FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::real[],
            %s::float8[], %s::float8[], %s::real[], %s::bigint[], %s::bool[], %s::bigint[])
     AS u(d, t, ty, s, e, v, la, lo, acc, sq, lt, r)
ON CONFLICT DO NOTHING
"""


def _nullable(values: np.ndarray) -> list:
    return [None if np.isnan(x) else float(x) for x in values.tolist()]


async def write_events(db: Database, batch: EventBatch) -> int:
    """Store ``batch``; returns rows inserted (replayed event ids are skipped)."""
    if len(batch) == 0:
        return 0
    params = (
        batch.device.tolist(), batch.ts_ms.tolist(), [EVENT_TYPES[c] for c in batch.type],
        list(batch.sensor), list(batch.event_id), _nullable(batch.value), _nullable(batch.lat),
        _nullable(batch.lon), _nullable(batch.accuracy_m),
        [None if s < 0 else s for s in batch.seq.tolist()], (batch.late > 0).tolist(), batch.received_ms.tolist(),
    )
    async with db.connection() as conn:
        cur = await conn.execute(_INSERT, params)
        return cur.rowcount
