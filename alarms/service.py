"""The alarm service (adapter): device events from the bus and from a catch-up sweep of ``device_events``,
the escalation timer and the supervision scan.

Nothing is lost: the bus brings events with low latency, and the sweep re-reads the stored events of the
last minutes that were never applied (a process killed after storage committed but before the alarm
transaction, or an alarm service in another process than the gateway's in-process bus). Whichever path
comes second finds the event in ``alarm_inputs`` and skips it.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import math
from typing import Callable

import numpy as np

from alarms import handler
from alarms.model import RELEVANT, AlarmConfig, DeviceEvent
from alarms.supervision import KINDS, supervise
from bus.base import EVENTS, Bus
from storage.db import Database
from vigil.events import EVENT_CODE, EventBatch
from vigil.metrics import Metrics
from vigil.retry import retry_forever

log = logging.getLogger(__name__)

GROUP = "alarms"
#: The device topics that can carry an alarm; the runtime's alarm lane reads only these.
ALARM_TOPICS = ("vigil/v1/home/+/event", "vigil/v1/pet/+/sos")
#: Stored events are swept from this long before the last sweep: a batch stamped on arrival may commit
#: a little later than a sweep that started after its arrival.
SWEEP_MARGIN = dt.timedelta(minutes=5)
#: Last contact is refreshed from the events stored since the previous sweep, minus this.
LIVENESS_MARGIN = dt.timedelta(seconds=30)
#: On a first start, events stored this long ago are still swept.
FIRST_SWEEP = dt.timedelta(hours=1)
#: Alarm-relevant device events that no alarm topic carries: the trip processor's crash detection
#: publishes them on the main bus. Where the alarm lane runs in a process of its own, the main process
#: applies only these from its bus (the rest reach the alarm process first, on its own MQTT session).
OFF_LANE_TYPES = frozenset({"crash"})
#: Most bus batches applied in one transaction (a burst that queued while the previous one ran).
MAX_BURST_BATCHES = 64
_RELEVANT_CODES = np.array(sorted(EVENT_CODE[t] for t in RELEVANT if t in EVENT_CODE), dtype=np.uint8)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000.0, dt.timezone.utc)


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def batch_events(batch: EventBatch) -> list[DeviceEvent]:
    """The alarm-relevant rows of a batch (heartbeats dropped with one vectorised test)."""
    rows = batch.take(np.flatnonzero(np.isin(batch.type, _RELEVANT_CODES)))
    names = rows.type_names()
    return [DeviceEvent(device=int(d), type=names[i], ts=_utc(int(t)), event_id=rows.event_id[i],
                        sensor=rows.sensor[i], value=_num(v), lat=_num(la), lon=_num(lo), received=_utc(int(r)))
            for i, (d, t, v, la, lo, r) in enumerate(zip(
                rows.device.tolist(), rows.ts_ms.tolist(), rows.value.tolist(), rows.lat.tolist(),
                rows.lon.tolist(), rows.received_ms.tolist()))]


class AlarmService:
    def __init__(self, *, db: Database, bus: Bus | None, metrics: Metrics, config: AlarmConfig = AlarmConfig(),
                 clock: Callable[[], dt.datetime] = _utcnow, tick_s: float = 0.25, sweep_s: float = 2.0,
                 supervise_s: float = 10.0, timers: bool = True, types: frozenset[str] | None = None) -> None:
        self.db, self.bus, self.metrics, self.config, self.clock = db, bus, metrics, config, clock
        self.tick_s, self.sweep_s, self.supervise_s = tick_s, sweep_s, supervise_s
        # timers=False: only apply bus events (of ``types``, default all); the sweep, escalation and
        # supervision run in the one service that has them (another process's), never twice.
        self.timers, self.types = timers, types
        self._quiet = asyncio.Event()  # set while no bus batch is being applied: escalations go then
        self._quiet.set()
        self.ready = asyncio.Event()
        metrics.describe("vigil_alarm_events_total", "path", "device events applied to alarms, by path")
        metrics.describe("vigil_alarm_escalations_total", "", "escalation stages run by the timer")
        metrics.describe("vigil_alarm_supervision_total", "verdict", "supervision verdicts acted on")

    async def run(self) -> None:
        loops = []
        if self.timers:
            await retry_forever(self.sweep, what="first alarm sweep", log=log)
            loops = [self._every(self.escalate, self.tick_s), self._every(self.sweep, self.sweep_s),
                     self._every(self.supervise, self.supervise_s)]
        self.ready.set()
        if self.bus is not None:
            loops.append(self._consume())
        await asyncio.gather(*loops)

    async def _consume(self) -> None:
        """Apply bus batches; the batches that queued up while one transaction ran go together in the
        next (a burst costs one transaction, not one wait per batch behind the previous one)."""
        waiting: collections.deque = collections.deque()
        arrived = asyncio.Event()

        async def pull() -> None:
            async for delivery in self.bus.consume(EVENTS, GROUP):
                while len(waiting) >= MAX_BURST_BATCHES:  # bounded: the bus's own queue holds the rest
                    await asyncio.sleep(0.005)
                waiting.append(delivery)
                arrived.set()

        puller = asyncio.create_task(pull(), name="alarm-bus-reader")
        try:
            while True:
                while not waiting:
                    if puller.done():
                        return puller.result()
                    arrived.clear()
                    waiter = asyncio.ensure_future(arrived.wait())
                    await asyncio.wait([waiter, puller], return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                burst = [waiting.popleft() for _ in range(min(len(waiting), MAX_BURST_BATCHES))]
                self._quiet.clear()
                try:
                    batch = burst[0].batch if len(burst) == 1 else EventBatch.concat([d.batch for d in burst])
                    await retry_forever(self.handle, batch, what="applying events to alarms", log=log)
                    for delivery in burst:  # in order: a Kafka commit covers everything before it
                        await delivery.commit()
                finally:
                    self._quiet.set()
        finally:
            puller.cancel()
            await asyncio.gather(puller, return_exceptions=True)

    async def _every(self, job, every_s: float) -> None:
        while True:
            try:
                await job()
            except Exception:  # a failed round is retried next round; the loop must outlive a DB blip
                log.exception("alarm job %s failed", job.__name__)
            await asyncio.sleep(every_s)

    async def handle(self, batch: EventBatch) -> list[int]:
        """Apply one event batch; returns the ids of alarms changed."""
        events = batch_events(batch)
        if self.types is not None:
            events = [e for e in events if e.type in self.types]
        changed = await handler.apply_device_events(self.db, events, self.config, self.clock())
        self.metrics.inc("vigil_alarm_events_total", "bus", by=len(events))
        return changed

    async def escalate(self) -> int:
        """Run the escalation stages due now, one alarm per transaction, each after the bus batch being
        applied (if any): a new alarm goes before the escalations of older ones."""
        total = 0
        while due := await handler.due_alarms(self.db, self.clock()):
            n = 0
            for alarm_id in due:
                await self._quiet.wait()
                n += await handler.escalate_alarm(self.db, alarm_id, self.config, self.clock())
            total += n
            if not n:
                break  # due but nothing to run (changed meanwhile): the next round looks again
        self.metrics.inc("vigil_alarm_escalations_total", by=total)
        return total

    async def sweep(self) -> int:
        """Apply stored device events the bus did not bring, and refresh when each device was last heard."""
        async with self.db.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT swept_until, now() FROM alarm_cursor RIGHT JOIN (SELECT 1) one"
                                     " ON name = 'events'")
            until, db_now = await cur.fetchone()
            since = (until - SWEEP_MARGIN) if until is not None else db_now - FIRST_SWEEP
            heard_since = (until - LIVENESS_MARGIN) if until is not None else since
            await conn.execute(
                "INSERT INTO alarm_liveness (device_id, last_seen_at, battery_pct)"
                " SELECT device_id, max(received_at), (array_agg(value ORDER BY ts DESC)"
                "   FILTER (WHERE type = 'heartbeat' AND value IS NOT NULL))[1]"
                " FROM device_events WHERE received_at >= %s GROUP BY device_id"
                " ON CONFLICT (device_id) DO UPDATE SET"
                " last_seen_at = greatest(alarm_liveness.last_seen_at, excluded.last_seen_at),"
                " battery_pct = coalesce(excluded.battery_pct, alarm_liveness.battery_pct)", (heard_since,))
            cur = await conn.execute(
                "SELECT e.device_id, (extract(epoch FROM e.ts) * 1000)::bigint, e.type, e.event_id, e.sensor,"
                " e.value, e.lat, e.lon, e.received_at FROM device_events e WHERE e.received_at >= %s AND e.type = ANY(%s)"
                " AND e.event_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM alarm_inputs i"
                "   WHERE i.device_id = e.device_id AND i.event_id = e.event_id) ORDER BY e.ts",
                (since, sorted(RELEVANT)))
            rows = await cur.fetchall()
        events = [DeviceEvent(device=r[0], type=r[2], ts=_utc(r[1]), event_id=r[3], sensor=r[4], value=r[5],
                              lat=r[6], lon=r[7], received=r[8]) for r in rows]
        if events:
            await handler.apply_device_events(self.db, events, self.config, self.clock())
            self.metrics.inc("vigil_alarm_events_total", "sweep", by=len(events))
            log.info("alarm sweep applied %d stored device events the bus had not brought", len(events))
        async with self.db.connection() as conn:
            await conn.execute("INSERT INTO alarm_cursor (name, swept_until) VALUES ('events', %s)"
                               " ON CONFLICT (name) DO UPDATE SET swept_until = excluded.swept_until", (db_now,))
        return len(events)

    async def supervise(self) -> int:
        """Raise offline / low-battery alarms and clear them when the device is heard of again."""
        now = self.clock()
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT d.id, d.kind, (extract(epoch FROM greatest(l.last_seen_at, f.received_at)) * 1000)::bigint,"
                " coalesce(l.battery_pct, 'NaN'),"
                " EXISTS (SELECT 1 FROM alarms a WHERE a.device_id = d.id AND a.type = 'offline'"
                "   AND a.resolved_at IS NULL AND a.active),"
                " EXISTS (SELECT 1 FROM alarms a WHERE a.device_id = d.id AND a.type = 'low_battery'"
                "   AND a.resolved_at IS NULL AND a.active AND a.sensor IS NULL)"
                " FROM devices d LEFT JOIN alarm_liveness l ON l.device_id = d.id"
                " LEFT JOIN device_last_fix f ON f.device_id = d.id"
                " WHERE d.status = 'active' AND (l.device_id IS NOT NULL OR f.device_id IS NOT NULL)")
            rows = await cur.fetchall()
        if not rows:
            return 0
        code, kind, seen, battery, off, low = zip(*rows)
        verdict = supervise(seen, [KINDS.index(k) for k in kind], battery, off, low,
                            now_ms=int(now.timestamp() * 1000), offline_after_s=dict(self.config.offline_after_s),
                            low_battery_pct=self.config.low_battery_pct)
        events = []
        for name, idx in (("offline", verdict.went_offline), ("online", verdict.came_back),
                          ("battery_low", verdict.battery_low), ("battery_ok", verdict.battery_ok)):
            events += [DeviceEvent(device=code[i], type=name, ts=now,
                                   value=None if math.isnan(battery[i]) else battery[i]) for i in idx.tolist()]
            self.metrics.inc("vigil_alarm_supervision_total", name, by=len(idx))
        if events:
            await handler.apply_device_events(self.db, events, self.config, now)
        return len(events)
