"""Certificate services: issue (fine-assist, driving style, vehicle usage), fetch, render, verify.

Keyword-only, like every service. ``owner``: the caller's customer id, or None for no scoping (operators,
tests); a certificate or car of someone else is NotFound, exactly like one that does not exist.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field

import numpy as np

from certificates import content, pdf, signing
from certificates.canonical import canonical_json, parse_canonical
from certificates.keys import KeyStore
from certificates.position import FineAssistConfig
from certificates.usage import usage_summary
from storage import certificates as store
from storage import trips as trip_store
from storage.db import Database
from trips import TripConfig, utc_offsets
from trips.period import period_style
from vigil.errors import NotFound, RejectedInput
from vigil.settings import Settings

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_LAST_MS = 253_402_300_799_999        # 9999-12-31T23:59:59.999Z, the last instant datetime can show
MAX_UPLOAD_BYTES = 20 * 1024 * 1024    # a sealed PDF is tens of KB; anything this big is not ours


@dataclass(frozen=True, slots=True)
class CertificateContext:
    """What issuing and verifying need besides the database."""
    keys: KeyStore
    # Base of the verification links printed in certificates and their QR codes.
    public_url: str
    fine_assist: FineAssistConfig = field(default_factory=FineAssistConfig)
    # 300 s either side of the moment: the stretch of road a fine-assist map shows.
    context_s: float = 300.0


def certificate_context(settings: Settings) -> CertificateContext:
    """The context of a deployment: its key directory, public URL and fine-assist max gap."""
    key_dir = settings.certificate_key_dir or settings.data_dir / "certificate-keys"
    return CertificateContext(keys=KeyStore(key_dir), public_url=settings.public_url or f"http://{settings.http_bind}",
                              fine_assist=FineAssistConfig(max_gap_s=float(settings.certificate_max_gap_s)))


def _ms(t: dt.datetime) -> int:
    if t.tzinfo is None:
        raise RejectedInput("naive-time", "times need a UTC offset")
    return int((t - _EPOCH) / dt.timedelta(milliseconds=1))


async def _car(db: Database, vehicle_id: str, owner: str | None) -> store.Vehicle:
    car = await store.vehicle(db, vehicle_id)
    if car is None or (owner is not None and car.owner != owner):
        raise NotFound("vehicle", vehicle_id)
    return car


async def _issue(*, db: Database, ctx: CertificateContext, car: store.Vehicle, kind: str, body: dict,
                 now: dt.datetime) -> bytes:
    cert_id = "crt_" + secrets.token_hex(12)       # 96 random bits: ids cannot be enumerated
    key_id, key = ctx.keys.active()
    cert = content.certificate(cert_id=cert_id, kind=kind, vehicle_id=car.device_id, issued_at_ms=_ms(now),
                               key_id=key_id, verification_url=verification_url(ctx, cert_id), body=body)
    document, signature = signing.sign_document(cert, key_id, key)
    await store.insert(db, cert_id=cert_id, kind=kind, device_code=car.code, owner=car.owner,
                       body=canonical_json(cert), signature=signature, key_id=key_id, created_at=now)
    return document


def verification_url(ctx: CertificateContext, cert_id: str) -> str:
    return f"{ctx.public_url.rstrip('/')}/v1/certificates/{cert_id}/verification"


async def create_fine_assist(*, db: Database, ctx: CertificateContext, vehicle_id: str, owner: str | None,
                             at: dt.datetime, place: tuple[float, float] | None, now: dt.datetime,
                             max_gap_s: float | None = None) -> bytes:
    """Issue a fine-assist certificate for ``at``; returns the signed JSON document."""
    car = await _car(db, vehicle_id, owner)
    at_ms = _ms(at)
    if at_ms > _ms(now):
        raise RejectedInput("moment-in-future", "the moment is later than now")
    if at_ms < 0:
        raise RejectedInput("moment-out-of-range", "no fix predates 1970")
    cfg = ctx.fine_assist
    if max_gap_s is not None:
        if not 0 < max_gap_s <= 3600:
            raise RejectedInput("bad-max-gap", "max_gap_s must be in (0, 3600]")
        cfg = dataclasses.replace(cfg, max_gap_s=float(max_gap_s))
    reach_ms = int(max(cfg.max_gap_s, ctx.context_s) * 1000)
    fixes = await store.fixes_between(db, car.code, at_ms - reach_ms, at_ms + reach_ms)
    body = content.fine_assist(fixes, at_ms, place, cfg, context_s=ctx.context_s)
    return await _issue(db=db, ctx=ctx, car=car, kind="fine_assist", body=body, now=now)


def _period(start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    s, e = _ms(start), _ms(end)
    if s >= e:
        raise RejectedInput("bad-period", "'from' must be before 'to'")
    if s < 0 or e > _LAST_MS:
        raise RejectedInput("period-out-of-range", "periods lie between 1970 and 9999 UTC")
    return s, e


async def _period_inputs(db, car, start, end):
    rows = await trip_store.list_trips(db, car.device_id, start=start, end=end, limit=1_000_000, offset=0)
    ts, lat, lon = await store.thinned_track(db, car.code, start, end)
    trip_map = content.period_map([_ms(r["start_ts"]) for r in rows], [_ms(r["end_ts"]) for r in rows],
                                  ts, lat, lon)
    return rows, trip_map


async def create_driving_style(*, db: Database, ctx: CertificateContext, vehicle_id: str, owner: str | None,
                               start: dt.datetime, end: dt.datetime, now: dt.datetime) -> bytes:
    """Issue a driving-style certificate for trips starting in [start, end) (same figures as the
    driving-style route)."""
    car = await _car(db, vehicle_id, owner)
    s, e = _period(start, end)
    rows, trip_map = await _period_inputs(db, car, start, end)
    body = content.driving_style(period_style(rows, TripConfig()), s, e, trip_map)
    return await _issue(db=db, ctx=ctx, car=car, kind="driving_style", body=body, now=now)


async def create_vehicle_usage(*, db: Database, ctx: CertificateContext, vehicle_id: str, owner: str | None,
                               start: dt.datetime, end: dt.datetime, now: dt.datetime) -> bytes:
    """Issue a vehicle-usage certificate for [start, end): km, days used, road mix, events, crashes,
    max speed bands."""
    car = await _car(db, vehicle_id, owner)
    s, e = _period(start, end)
    rows, trip_map = await _period_inputs(db, car, start, end)
    start_ms = np.array([_ms(r["start_ts"]) for r in rows], np.int64)
    usage = content_usage(rows, start_ms, car.timezone, await store.event_counts(db, car.code, start, end))
    body = content.vehicle_usage(usage, s, e, trip_map)
    return await _issue(db=db, ctx=ctx, car=car, kind="vehicle_usage", body=body, now=now)


def content_usage(rows: list[dict], start_ms: np.ndarray, timezone: str, events: dict[str, int]) -> dict:
    def col(name):
        return np.array([r[name] for r in rows], np.float64)

    offsets = utc_offsets(start_ms, np.zeros(len(start_ms), np.int64), {0: timezone})
    return usage_summary(start_ms=start_ms, distance_m=col("distance_m"), max_speed_kmh=col("max_speed_kmh"),
                         urban_m=col("urban_m"), extra_urban_m=col("extra_urban_m"), highway_m=col("highway_m"),
                         utc_offset_min=offsets, event_counts=events)


async def _stored(db: Database, cert_id: str, owner: str | None) -> store.StoredCertificate:
    row = await store.get(db, cert_id)
    if row is None or (owner is not None and row.owner != owner):
        raise NotFound("certificate", cert_id)
    return row


def _document(row: store.StoredCertificate) -> bytes:
    return signing.document_bytes(parse_canonical(row.body), row.key_id, row.signature)


async def get_document(*, db: Database, cert_id: str, owner: str | None) -> bytes:
    """The signed JSON document of a certificate, byte for byte as issued."""
    return _document(await _stored(db, cert_id, owner))


async def get_pdf(*, db: Database, ctx: CertificateContext, cert_id: str, owner: str | None) -> bytes:
    """The sealed PDF: rendered from the stored document, sealed with the active key."""
    document = _document(await _stored(db, cert_id, owner))
    key_id, key = ctx.keys.active()
    return signing.seal_pdf(pdf.render_pdf(document), document, key_id, key)


async def list_documents(*, db: Database, vehicle_id: str, owner: str | None, limit: int,
                         offset: int) -> list[store.StoredCertificate]:
    car = await _car(db, vehicle_id, owner)
    return await store.list_for_vehicle(db, car.code, owner=owner, limit=limit, offset=offset)


async def verification_status(*, db: Database, cert_id: str) -> dict:
    """What anyone may learn from a certificate id (the QR code's link): that it was issued, when, of
    which kind, by which key, and the SHA-256 of its signed content; nothing about the vehicle."""
    row = await store.get(db, cert_id)
    if row is None:
        raise NotFound("certificate", cert_id)
    return {"id": row.id, "kind": row.kind, "issued": True, "created_at": row.created_at, "key_id": row.key_id,
            "content_sha256": hashlib.sha256(row.body).hexdigest()}


def verify(*, ctx: CertificateContext, data: bytes | None) -> signing.Verdict:
    """Verify an uploaded JSON document or sealed PDF against every key this deployment ever used;
    ``data`` None: the upload was larger than MAX_UPLOAD_BYTES and was not read to its end."""
    if data is None:
        return signing.Verdict(False, "too-large", "unknown", f"uploads are limited to {MAX_UPLOAD_BYTES} bytes")
    return signing.verify_document(data, ctx.keys.public_key)
