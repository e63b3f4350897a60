"""The geofence processor (adapter): fix batches from the bus → geofence events and customer notices.

Every ``step_every_s`` it steps the pure core over the fixes received since, against one
:class:`FenceSet` of all active fences, and keeps the events of fences that apply to the device
(:class:`geofence.scope.FenceScope`). Fixes of devices no fence applies to are not stepped at all.

Notices: one per event and channel, to the fence's owner, with a dedup key made of the event, so a
replayed event never notifies twice; events older than ``notice_max_age_s`` are stored, their notices
kept as ``suppressed`` (see :func:`notify.enqueue`).

State: the core's :class:`GeofenceState`, saved in ``processor_state`` ('geofence') every ``save_every_s``
in the transaction that writes the events of that moment, with the arrival time it covers. On start it is
loaded and the stored fixes received since are replayed (the core skips fixes it has already seen), so
a restart neither repeats nor misses a transition. On Kafka, offsets are committed only once a save
covers them. The fence set is reloaded when ``fence_set_version`` moves (checked every ``fences_every_s``),
compiled off the step path and incrementally: only new and changed fences are compiled, the rest is copied
from the set in use (:func:`geofence.splice.splice`), so an edit among 100k fences takes effect in about a
second rather than the eight a full compile takes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import time

import numpy as np

from bus.base import FIXES, Bus
from geofence.scope import FenceScope, fence_of
from geofence.shapes import Fence, FenceSet
from geofence.splice import splice
from geofence.transitions import KIND_NAMES, Events, GeofenceState, StepConfig, step
from notify import Notice, enqueue
from storage import geofences as store
from storage import processor_state
from storage.db import Database
from vigil.batch import FixBatch
from vigil.metrics import Metrics
from vigil.retry import retry_forever

log = logging.getLogger(__name__)

GROUP = "geofence"
#: As for trips: fixes reach storage and this processor separately; replaying this much before the
#: covered time makes sure nothing in flight at the last save is missed (the core skips repeats).
REPLAY_MARGIN_MS = 30_000
_REPLAY_CHUNK = 200_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
#: Devices (owner, kind) are re-read this often, and at once when a batch holds an unknown device.
DEVICES_TTL_S = 30.0


class GeofenceProcessor:
    def __init__(self, *, db: Database, bus: Bus, metrics: Metrics, config: StepConfig = StepConfig(),
                 notice_max_age_s: float = 900.0, channels: tuple[str, ...] = ("push", "sms", "email"),
                 save_every_s: float = 5.0, step_every_s: float = 1.0, fences_every_s: float = 2.0,
                 clock=time.time) -> None:
        self.db, self.bus, self.metrics, self.config = db, bus, metrics, config
        self.notice_max_age = dt.timedelta(seconds=notice_max_age_s)
        self.channels = channels
        self.save_every_s, self.step_every_s, self.fences_every_s = save_every_s, step_every_s, fences_every_s
        self._clock = clock
        self.state = GeofenceState.empty()
        self.fences = FenceSet.compile([])
        self.scope = FenceScope.build(fence_id=[], scope=[], fence_owner=[], fence_device=[], device=[],
                                      device_is_car=[], device_owner=[])
        self._version = -1
        self._fence_rows: dict[int, dict] = {}
        self._built: dict[int, tuple[dict, Fence]] = {}     # fence id -> (row, fence built from it)
        self._names: dict[int, str] = {}
        self._device_table: tuple = (np.zeros(0, np.int64), np.zeros(0, bool), [])
        self._devices_at = -1e9
        self._covers_ms = 0
        self._last_save = 0.0
        self.replayed_fixes = 0
        self._inbox: list[tuple[FixBatch, object]] = []
        self._pending_commits: list = []
        self._lock = asyncio.Lock()
        self.ready = asyncio.Event()
        metrics.describe("vigil_geofence_events_total", "kind", "geofence transitions stored, by kind")
        metrics.describe("vigil_geofence_notices_total", "", "geofence notices queued (suppressed late ones too)")
        metrics.describe("vigil_geofence_fence_reloads_total", "", "fence set reloads after fence changes")

    @property
    def fence_version(self) -> int:
        """The ``fence_set_version`` of the fence set in use (-1 before the first load)."""
        return self._version

    async def run(self) -> None:
        await self.recover()
        self.ready.set()
        helpers = [asyncio.ensure_future(self._step_forever()), asyncio.ensure_future(self._reload_forever())]
        try:
            async for delivery in self.bus.consume(FIXES, GROUP):
                self._inbox.append((delivery.batch, delivery.commit))
        finally:
            for task in helpers:
                task.cancel()

    async def recover(self) -> None:
        """Load fences and the saved state, then replay the fixes received since it was saved."""
        await self._reload_fences(force=True)
        loaded = await processor_state.load(self.db, GROUP)
        if loaded is not None:
            blob, self._covers_ms = loaded
            self.state = GeofenceState.from_bytes(blob)
        else:
            # The first start has no history to resume; replaying every fix ever stored (a deployment
            # adding geofences to months of data) would only delay it. Its starting point is saved at once.
            self._covers_ms = int(self._clock() * 1000)
            await store.write(self.db, None, (GROUP, self.state.to_bytes(), self._covers_ms))
        since = max(self._covers_ms - REPLAY_MARGIN_MS, 0)
        replayed = 0
        async for batch in self._stored_fixes(since):
            await self._apply(batch)
            replayed += len(batch["device"])
        self.replayed_fixes = replayed
        if replayed:
            log.info("geofence processor replayed %d stored fixes received since its last save", replayed)

    async def _stored_fixes(self, since_ms: int):
        """Stored fixes received at or after ``since_ms``, as step columns, in (device, ts) order."""
        async with self.db.connection() as conn, conn.transaction():
            cur = conn.cursor(name="geofence_replay")  # server-side: the replay may be large
            await cur.execute(
                "SELECT device_id, (extract(epoch FROM ts) * 1000)::bigint, lat, lon,"
                " coalesce(accuracy_m::float8, 'NaN'), (extract(epoch FROM received_at) * 1000)::bigint"
                " FROM fixes WHERE received_at >= to_timestamp(%s / 1000.0) ORDER BY device_id, ts", (since_ms,))
            while rows := await cur.fetchmany(_REPLAY_CHUNK):
                cols = [np.asarray(c) for c in zip(*rows)]
                yield dict(device=cols[0].astype(np.int64), ts_ms=cols[1].astype(np.int64),
                           lat=cols[2].astype(float), lon=cols[3].astype(float), accuracy_m=cols[4].astype(float),
                           received_ms=cols[5].astype(np.int64))

    async def _step_forever(self) -> None:
        while True:
            await asyncio.sleep(self.step_every_s)
            await self.flush()

    async def _reload_forever(self) -> None:
        while True:
            await asyncio.sleep(self.fences_every_s)
            await retry_forever(self._reload_fences, what="reloading fences", log=log)

    async def flush(self) -> None:
        """Step over everything received so far."""
        if self._inbox:
            taken, self._inbox = self._inbox, []
            batch = FixBatch.concat([b for b, _ in taken]).sorted()
            await self._apply(dict(device=batch.device, ts_ms=batch.ts_ms, lat=batch.lat, lon=batch.lon,
                                   accuracy_m=batch.accuracy_m.astype(float), received_ms=batch.received_ms))
            # Committed on the bus at the next state save, which covers these fixes.
            self._pending_commits.extend(commit for _, commit in taken)

    async def _reload_fences(self, *, force: bool = False) -> None:
        """Reload the fence set when ``fence_set_version`` moved. Compiling (seconds for thousands of
        polygons) runs in a thread outside the step lock: steps go on with the old set meanwhile. Only new
        and changed fences are compiled; the set swaps in whole, so a deleted or changed fence stops matching
        from the first step after it."""
        if not force and await store.fence_set_version(self.db) == self._version:
            return
        version, rows = await store.active_fences(self.db)
        fences = await asyncio.to_thread(_compile, rows, self.fences, self._built)
        async with self._lock:
            self.fences, self._fence_rows, self._version = fences, {r["id"]: r for r in rows}, version
            await self._refresh_devices(force=force, rebuild=True)
        self.metrics.inc("vigil_geofence_fence_reloads_total", by=1)

    async def _refresh_devices(self, *, force: bool = False, rebuild: bool = False, devices=None) -> None:
        """Re-read the device table when stale or missing a device of ``devices``; rebuild the scope
        when it or the fences changed. Called with the step lock held."""
        now = time.monotonic()
        unknown = devices is not None and not self.scope.known(np.unique(devices)).all()
        if force or unknown or now - self._devices_at >= DEVICES_TTL_S:
            codes, is_car, owners, names = await store.device_owners(self.db)
            self._device_table = (codes, is_car, owners)
            self._names = dict(zip(codes.tolist(), names))
            self._devices_at, rebuild = now, True
        if rebuild:
            codes, is_car, owners = self._device_table
            rows = list(self._fence_rows.values())
            self.scope = FenceScope.build(
                fence_id=[r["id"] for r in rows], scope=[r["scope"] for r in rows],
                fence_owner=[r["owner"] for r in rows], fence_device=[r["device_code"] for r in rows],
                device=codes, device_is_car=is_car, device_owner=owners)

    async def _apply(self, fixes: dict) -> None:
        if len(fixes["device"]) == 0:
            return
        async with self._lock:
            await retry_forever(functools.partial(self._refresh_devices, devices=fixes["device"]),
                                what="reloading devices", log=log)
            keep = self.scope.relevant(fixes["device"])
            if keep.any():
                part = {k: v[keep] for k, v in fixes.items()}
                self.state, events = step(self.state, part, self.fences, self.config)
            else:
                events = _no_events()
            self._covers_ms = max(self._covers_ms, int(fixes["received_ms"].max()))
            events = _take(events, self.scope.allowed(events.device, events.fence))
            await self._store(events, force_save=False)

    async def _store(self, events: Events, *, force_save: bool) -> None:
        save = force_save or time.monotonic() - self._last_save >= self.save_every_s
        if not (len(events) or save):
            return
        notified = np.zeros(len(events), bool)
        if len(events):
            now = dt.datetime.fromtimestamp(self._clock(), dt.timezone.utc)
            notices, notified = self._notices(events, now)
            # Before the events: a crash in between replays the events, and the dedup keys drop repeats.
            await retry_forever(functools.partial(enqueue, now=now, max_age=self.notice_max_age), self.db,
                                notices, what="queueing geofence notices", log=log)
            self.metrics.inc("vigil_geofence_notices_total", by=len(notices))
        rows = dict(device=events.device.tolist(), fence=events.fence.tolist(),
                    kind=[KIND_NAMES[k] for k in events.kind.tolist()], ts=events.ts_ms.tolist(),
                    since=events.since_ms.tolist(), lat=events.lat.tolist(), lon=events.lon.tolist(),
                    notified=notified.tolist())
        state = (GROUP, self.state.to_bytes(), self._covers_ms) if save else None
        await retry_forever(store.write, self.db, rows, state, what="storing geofence events", log=log)
        for kind in np.unique(events.kind):
            self.metrics.inc("vigil_geofence_events_total", KIND_NAMES[int(kind)],
                             by=int((events.kind == kind).sum()))
        if save:
            self._last_save = time.monotonic()
            commits, self._pending_commits = self._pending_commits, []
            for commit in commits:
                await commit()

    def _notices(self, events: Events, now: dt.datetime) -> tuple[list[Notice], np.ndarray]:
        """Notices of each event on every channel, and whether each event's notices will be sent."""
        notices, notified = [], np.zeros(len(events), bool)
        cutoff_ms = (now - self.notice_max_age - _EPOCH) // dt.timedelta(milliseconds=1)
        for i, (d, f, k, t, lat, lon) in enumerate(zip(events.device.tolist(), events.fence.tolist(),
                                                       events.kind.tolist(), events.ts_ms.tolist(),
                                                       events.lat.tolist(), events.lon.tolist())):
            fence = self._fence_rows.get(f)
            if fence is None:
                continue
            notified[i] = t >= cutoff_ms
            when = _EPOCH + dt.timedelta(milliseconds=t)
            kind, device = KIND_NAMES[k], self._names.get(d, str(d))
            subject = f"{device} {_VERB[kind]} {fence['name'] or 'fence ' + str(f)}"
            body = f"{subject} at {when:%Y-%m-%d %H:%M:%S} UTC, position {lat:.5f}, {lon:.5f}"
            notices.extend(Notice(f"geofence:{d}:{f}:{kind}:{t}:{ch}", fence["owner"], ch, subject, body, when)
                           for ch in self.channels)
        return notices, notified

    async def save(self) -> None:
        """Step over what is pending and persist the state now (on shutdown)."""
        await self.flush()
        async with self._lock:
            await self._store(_no_events(), force_save=True)


_VERB = {"enter": "entered", "exit": "left", "cross": "passed through"}


def _no_events() -> Events:
    return Events(*(np.zeros(0, t) for t in (np.int64, np.int64, np.int8, np.int64, np.int64, float, float)))


def _take(events: Events, mask: np.ndarray) -> Events:
    return Events(events.device[mask].astype(np.int64), events.fence[mask].astype(np.int64),
                  events.kind[mask].astype(np.int8), events.ts_ms[mask].astype(np.int64),
                  events.since_ms[mask].astype(np.int64), events.lat[mask], events.lon[mask])


def _compile(rows: list[dict], base: FenceSet, built: dict[int, tuple[dict, Fence]]) -> FenceSet:
    """The fence set of the stored fences, compiling only those ``base`` lacks or holds changed. ``built``
    (fence id -> (row, fence)), updated here, keeps unchanged rows' fences the same objects, which
    :func:`splice` recognises at once. A row the core refuses (the API validated it, so only a hand-edited
    row) is left out and logged rather than stopping every other fence."""
    fences, now = [], {}
    for r in rows:
        prev = built.get(r["id"])
        if prev is not None and prev[0] == r:
            fence = prev[1]
        else:
            try:
                fence = fence_of(fence_id=r["id"], kind=r["kind"], geometry=r["geometry"], radius_m=r["radius_m"],
                                 name=r["name"], anti_flap=r["anti_flap"])
            except Exception as exc:
                log.error("fence %s is invalid and ignored: %r", r["id"], exc)
                continue
        now[r["id"]] = (r, fence)
        fences.append(fence)
    built.clear()
    built.update(now)
    try:
        return splice(base, fences)
    except Exception:
        held = base.index_of([f.fence_id for f in fences]).tolist()
        good = [f for f, j in zip(fences, held) if (j >= 0 and base.fences[j] is f) or _compiles(f)]
        return splice(base, good)


def _compiles(fence: Fence) -> bool:
    try:
        FenceSet.compile([fence])
        return True
    except Exception as exc:
        log.error("fence %s is invalid and ignored: %r", fence.fence_id, exc)
        return False
