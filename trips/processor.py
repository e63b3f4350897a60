"""The trip processor service (adapter): fix batches from the bus → trips and driving events in PostgreSQL.

State: the core's :class:`TripState` for every device, saved every ``save_every_s`` in the same
transaction as the trips of that moment, with the arrival time it covers. On start the processor
loads it and replays the stored fixes received since (the core ignores fixes it has already seen), so a
restart neither loses nor duplicates a trip. On Kafka, offsets are committed only once a save covers
them. A crash is published on the bus's ``events`` topic as soon as the core reports it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from bus.base import EVENTS, FIXES, Bus
from storage import devices
from storage import trips as trip_store
from storage.db import Database
from trips import CRASH, EVENT_NAMES, Events, TripConfig, TripState, Trips, close_idle, process_all, step, utc_offsets
from vigil.batch import COLUMNS, FixBatch
from vigil.events import EVENT_CODE, EventBatch
from vigil.metrics import Metrics
from vigil.retry import retry_forever

log = logging.getLogger(__name__)

GROUP = "trips"
#: Fixes reach storage and this processor separately; replaying this much before the covered time
#: makes sure nothing that was in flight at the last save is missed.
REPLAY_MARGIN_MS = 30_000
_REPLAY_CHUNK = 200_000
#: How long device time zones are cached; a zone set at provisioning applies within this.
ZONES_TTL_S = 30.0


class TripProcessor:
    def __init__(self, *, db: Database, bus: Bus, metrics: Metrics, config: TripConfig = TripConfig(),
                 save_every_s: float = 5.0, idle_every_s: float = 30.0, step_every_s: float = 1.0,
                 clock=time.time) -> None:
        self.db, self.bus, self.metrics, self.config = db, bus, metrics, config
        self.step_every_s = step_every_s
        self._inbox: list[tuple[FixBatch, object]] = []
        self.save_every_s, self.idle_every_s, self._clock = save_every_s, idle_every_s, clock
        self.state = TripState.empty()
        self._covers_ms = 0
        self._last_save = 0.0
        self._pending_commits: list = []
        self._late: dict[int, tuple[int, int]] = {}
        self._zones: dict[int, str] = {}
        self._zones_at = -ZONES_TTL_S
        self._lock = asyncio.Lock()
        self.ready = asyncio.Event()
        metrics.describe("vigil_trips_closed_total", "", "trips closed and stored")
        metrics.describe("vigil_trip_events_total", "kind", "driving events stored, by kind")
        metrics.describe("vigil_trips_recomputed_total", "", "trip spans recomputed for late fixes")

    async def run(self) -> None:
        await self.recover()
        self.ready.set()
        await asyncio.gather(self._consume(), self._close_idle_forever())

    async def recover(self) -> None:
        """Load the saved state and replay the fixes received since it was saved."""
        loaded = await trip_store.load_state(self.db, GROUP)
        if loaded is not None:
            blob, self._covers_ms = loaded
            self.state = TripState.from_bytes(blob)
        since = max(self._covers_ms - REPLAY_MARGIN_MS, 0)
        replayed = 0
        async for batch in self._stored_fixes("received_at >= to_timestamp(%s / 1000.0)", (since,)):
            await self._apply(batch)
            replayed += len(batch)
        if replayed:
            log.info("trip processor replayed %d stored fixes received since its last save", replayed)

    async def _stored_fixes(self, where: str, params: tuple):
        names = [name for name, _ in COLUMNS if name not in ("device", "ts_ms", "received_ms", "late")]
        select = ", ".join(
            ["device_id", "(extract(epoch FROM ts) * 1000)::bigint", "(extract(epoch FROM received_at) * 1000)::bigint"]
            + [f"coalesce({n}::float8, 'NaN')" if n not in ("ignition", "seq") else
               ("coalesce(ignition::int, -1)" if n == "ignition" else "coalesce(seq, -1)") for n in names]
        )
        async with self.db.connection() as conn, conn.transaction():
            cur = conn.cursor(name="trip_replay")  # server-side: the replay may be large
            await cur.execute(
                f"SELECT {select} FROM fixes WHERE {where} ORDER BY device_id, ts", params,
            )
            while rows := await cur.fetchmany(_REPLAY_CHUNK):
                cols = list(zip(*rows))
                batch = dict(device=cols[0], ts_ms=cols[1], received_ms=cols[2])
                batch.update({n: np.asarray(cols[3 + i], dtype=np.float64) for i, n in enumerate(names)})
                yield FixBatch(**batch)

    async def _consume(self) -> None:
        """Collect deliveries; a step runs every ``step_every_s`` over all of them at once.

        A step costs the batch plus each touched device's recent tail, so one step per second over
        the whole fleet's fixes is far cheaper than one per gateway batch."""
        stepper = asyncio.ensure_future(self._step_forever())
        try:
            async for delivery in self.bus.consume(FIXES, GROUP):
                await self._alert_crashes(delivery.batch)
                self._inbox.append((delivery.batch, delivery.commit))
        finally:
            stepper.cancel()

    async def _alert_crashes(self, batch: FixBatch) -> None:
        """A crash cannot wait for the next step: any fix over ``crash_g`` goes out on the bus now.
        The core reports the same impact later with the same event id, which storage de-duplicates."""
        with np.errstate(invalid="ignore"):
            g = np.sqrt(batch.accel_x.astype(np.float64) ** 2 + batch.accel_y ** 2 + batch.accel_z ** 2)
        hit = np.flatnonzero(g >= self.config.crash_g)
        if len(hit):
            rows = batch.take(hit)
            await self.bus.publish(EVENTS, _crash_events(rows.device, rows.ts_ms, g[hit], rows.lat, rows.lon))

    async def _step_forever(self) -> None:
        while True:
            await asyncio.sleep(self.step_every_s)
            await self.flush()

    async def flush(self) -> None:
        """Step over everything received so far."""
        if self._inbox:
            taken, self._inbox = self._inbox, []
            await self._apply(FixBatch.concat([batch for batch, _ in taken]).sorted())
            # Committed on the bus at the next state save, which covers these fixes.
            self._pending_commits.extend(commit for _, commit in taken)

    async def _close_idle_forever(self) -> None:
        while True:
            await asyncio.sleep(self.idle_every_s)
            async with self._lock:
                result = close_idle(self.state, int(self._clock() * 1000), self.config)
                self.state = result.state
                await self._store(result, force_save=False)

    async def _apply(self, batch: FixBatch) -> None:
        if len(batch) == 0:
            return
        async with self._lock:
            self._note_late(batch)
            result = step(self.state, batch, self.config, utc_offset_min=await self._offsets(batch))
            self.state = result.state
            self._covers_ms = max(self._covers_ms, int(batch.received_ms.max()))
            await self._store(result, force_save=False)

    async def _offsets(self, batch: FixBatch) -> np.ndarray | None:
        """Local-time offset of each fix from its device's time zone (None: all in UTC)."""
        now = time.monotonic()
        if now - self._zones_at > ZONES_TTL_S:
            self._zones = await devices.timezones(self.db)
            self._zones_at = now
        if not self._zones:
            return None
        return utc_offsets(batch.ts_ms, batch.device, self._zones)

    def _note_late(self, batch: FixBatch) -> None:
        """Remember devices with late fixes the step will skip (not newer than their last accepted
        fix): the closed trips around them are recomputed from storage at the next save."""
        late = batch.late > 0
        if not late.any():
            return
        carry = self.state.carry
        if not len(carry["device"]):
            return
        order = np.argsort(carry["device"])
        devices, last = carry["device"][order], carry["last_ts"][order]
        pos = np.minimum(np.searchsorted(devices, batch.device[late]), len(devices) - 1)
        skipped = (devices[pos] == batch.device[late]) & (batch.ts_ms[late] <= last[pos])
        for device, ts in zip(batch.device[late][skipped].tolist(), batch.ts_ms[late][skipped].tolist()):
            lo, hi = self._late.get(device, (ts, ts))
            self._late[device] = (min(lo, ts), max(hi, ts))

    async def _recompute_late(self) -> None:
        """Recompute the closed trips around late fixes: from the end of the trip before them to the
        start of the trip after them (late fixes after the last closed trip belong to the open one,
        whose state has moved on; they stay stored but do not change it)."""
        pending, self._late = self._late, {}
        for device, (lo, hi) in pending.items():
            bounds = await trip_store.recompute_bounds(self.db, device, lo, hi)
            if bounds is None:
                continue
            start_ms, end_ms = bounds
            fixes = [b async for b in self._stored_fixes(
                "device_id = %s AND ts >= to_timestamp(%s / 1000.0) AND ts <= to_timestamp(%s / 1000.0)",
                (device, start_ms, end_ms))]
            if not fixes:
                continue
            history = FixBatch.concat(fixes)
            result = process_all(history, self.config, utc_offset_min=await self._offsets(history))
            keep = (result.trips.start_ms >= start_ms) & (result.trips.end_ms <= end_ms)
            trips = result.trips.take(keep)
            events = result.events.take((result.events.ts_ms >= start_ms) & (result.events.ts_ms < end_ms))
            await trip_store.replace_range(self.db, device, start_ms, end_ms, trips, events)
            self.metrics.inc("vigil_trips_recomputed_total", by=1)
            log.info("recomputed trips of device %d between %d and %d for late fixes", device, start_ms, end_ms)

    async def _store(self, result, *, force_save: bool) -> None:
        save = force_save or time.monotonic() - self._last_save >= self.save_every_s
        if not (len(result.trips) or len(result.events) or save):
            return
        crashes = result.events.take(result.events.kind == CRASH)
        if len(crashes):
            await self.bus.publish(EVENTS, _crash_events(crashes.device, crashes.ts_ms, crashes.value,
                                                         crashes.lat, crashes.lon))
        state = (GROUP, self.state.to_bytes(), self._covers_ms) if save else None
        await retry_forever(trip_store.write, self.db, result.trips, result.events, state,
                            what="storing trips", log=log)
        self.metrics.inc("vigil_trips_closed_total", by=len(result.trips))
        for kind in np.unique(result.events.kind):
            self.metrics.inc("vigil_trip_events_total", EVENT_NAMES[kind], by=int((result.events.kind == kind).sum()))
        if save:
            self._last_save = time.monotonic()
            if self._late:
                await self._recompute_late()
            commits, self._pending_commits = self._pending_commits, []
            for commit in commits:
                await commit()

    async def save(self) -> None:
        """Step over what is pending and persist the state now (on shutdown)."""
        await self.flush()
        async with self._lock:
            await trip_store.write(self.db, Trips.empty(), Events.empty(),
                                   state=(GROUP, self.state.to_bytes(), self._covers_ms))


def _crash_events(device, ts_ms, g, lat, lon) -> EventBatch:
    """Crash device events; the id is the impact's time, so both reports of one impact are one row."""
    n = len(device)
    return EventBatch(
        device=device, ts_ms=ts_ms, type=np.full(n, EVENT_CODE["crash"]), value=g, lat=lat, lon=lon,
        accuracy_m=np.full(n, np.nan), seq=np.full(n, -1), received_ms=ts_ms, late=np.zeros(n),
        sensor=[None] * n, event_id=[f"crash-{t}" for t in np.asarray(ts_ms).tolist()],
    )

