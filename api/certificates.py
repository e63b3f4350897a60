"""Certificate routes: issue, fetch (JSON, PDF), list, and verify (anyone), plus the public keys."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response

from api import access
from api import certificate_service as service
from api.access import DeviceId, customer_scope
from api.certificate_schemas import (CertificateDocument, CertificatePage, CertificateRequest, CertificateSummary,
                                     FineAssistRequest, PublicKey, Verification, VerificationStatus)
from vigil.errors import RejectedInput

router = APIRouter(tags=["certificates"])
NOT_FOUND = access.problem_example(404, "not-found", "certificate not found", "certificate 'crt_5f0c3e1a' not found",
                                   "no such car or certificate, or not the caller's")
SCOPED = access.RESPONSES | NOT_FOUND
JSON_DOC = {"model": CertificateDocument, "description": "the signed document as canonical JSON bytes"}
#: A certificate id (``crt_`` and 24 hex digits; anything up to 64 characters is looked up).
CertId = Annotated[str, Path(min_length=1, max_length=64, examples=["crt_5f0c3e1a9b2d4c6e8f7a1b2c"])]


def _ctx(request: Request) -> service.CertificateContext:
    ctx = request.app.state.certificates
    if ctx is None:
        raise HTTPException(503, "certificates are not configured on this server (no key store)")
    return ctx


def _json(document: bytes, status: int = 200, headers: dict | None = None) -> Response:
    return Response(document, status_code=status, media_type="application/json", headers=headers)


@router.post("/v1/vehicles/{vehicle_id}/certificates", status_code=201,
             responses={201: JSON_DOC, **SCOPED, **access.problem_example(
                 422, "bad-period", "request refused", "'from' must be before 'to'",
                 "refused input; `reason` says why")},
             summary="Issue a fine-assist, driving-style or vehicle-usage certificate")
async def create(request: Request, vehicle_id: DeviceId, owner: str | None = Depends(customer_scope),
                 body: CertificateRequest = Body(
        openapi_examples={
            "fine_assist": {"value": {"kind": "fine_assist", "at": "2024-03-01T08:15:00Z",
                                      "place": {"lat": 60.1699, "lon": 24.9384}}},
            "vehicle_usage": {"value": {"kind": "vehicle_usage", "from": "2024-03-01T00:00:00Z",
                                        "to": "2024-04-01T00:00:00Z"}}})) -> Response:
    common = dict(db=request.app.state.db, ctx=_ctx(request), vehicle_id=vehicle_id, owner=owner,
                  now=request.app.state.now())
    if isinstance(body, FineAssistRequest):
        place = (body.place.lat, body.place.lon) if body.place else None
        document = await service.create_fine_assist(**common, at=body.at, place=place, max_gap_s=body.max_gap_s)
    elif body.kind == "driving_style":
        document = await service.create_driving_style(**common, start=body.start, end=body.end)
    else:
        document = await service.create_vehicle_usage(**common, start=body.start, end=body.end)
    cert_id = CertificateDocument.model_validate_json(document).certificate["id"]
    return _json(document, 201, {"Location": f"/v1/certificates/{cert_id}"})


@router.get("/v1/vehicles/{vehicle_id}/certificates", response_model=CertificatePage, responses=SCOPED,
            summary="A car's certificates, newest first")
async def list_certificates(request: Request, vehicle_id: DeviceId, limit: int = Query(50, ge=1, le=500),
                            offset: int = Query(0, ge=0, le=1_000_000),
                            owner: str | None = Depends(customer_scope)) -> CertificatePage:
    rows = await service.list_documents(db=request.app.state.db, vehicle_id=vehicle_id, owner=owner,
                                        limit=limit + 1, offset=offset)
    items = [CertificateSummary(id=r.id, kind=r.kind, vehicle_id=r.vehicle_id, key_id=r.key_id,
                                created_at=r.created_at, json_url=f"/v1/certificates/{r.id}",
                                pdf_url=f"/v1/certificates/{r.id}/pdf") for r in rows[:limit]]
    return CertificatePage(items=items, limit=limit, offset=offset,
                           next_offset=offset + limit if len(rows) > limit else None)


@router.get("/v1/certificates/keys", response_model=list[PublicKey], responses={200: {"content": {
                "application/json": {"example": [{"key_id": "ed25519-2da8a20ad2b85f06", "algorithm": "Ed25519",
                                                  "public_key": "GJ0m2yJ9c1p0GkzC0m5m8Jx7ZQ5b4a0h2m0T1n7uXkA=",
                                                  "active": True}]}}}},
            summary="Every public key certificates were ever signed with (for offline verification)")
async def public_keys(request: Request) -> list[PublicKey]:
    keys = _ctx(request).keys
    active = keys.active_id()
    return [PublicKey(key_id=k, public_key=base64.b64encode(raw).decode(), active=k == active)
            for k, raw in keys.public_keys().items()]


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it exceeds ``limit`` bytes (memory stays bounded)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/v1/certificates/verify", response_model=Verification,
             responses=access.problem_example(422, "missing-body", "request refused",
                                              "upload the certificate's JSON or PDF as the request body",
                                              "nothing was uploaded"),
             summary="Verify an uploaded certificate (the JSON document or the PDF); open to anyone",
             openapi_extra={"requestBody": {"required": True, "content": {
                 # Any bytes are checked and answered (valid or why not): no JSON schema to hold them to.
                 "application/json": {"schema": {"description": "the certificate's JSON document"}},
                 "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
async def verify(request: Request) -> Verification:
    data = await _bounded_body(request, service.MAX_UPLOAD_BYTES)
    if data == b"":
        raise RejectedInput("missing-body", "upload the certificate's JSON or PDF as the request body")
    verdict = service.verify(ctx=_ctx(request), data=data)
    return Verification(valid=verdict.valid, reason=verdict.reason, format=verdict.format, detail=verdict.detail,
                        key_ids=verdict.key_ids, certificate=verdict.certificate)


@router.get("/v1/certificates/{cert_id}", responses={200: JSON_DOC, **SCOPED},
            summary="A certificate's signed JSON document (owner only)")
async def get_certificate(request: Request, cert_id: CertId, owner: str | None = Depends(customer_scope)) -> Response:
    return _json(await service.get_document(db=request.app.state.db, cert_id=cert_id, owner=owner))


@router.get("/v1/certificates/{cert_id}/pdf", summary="A certificate as a sealed PDF (owner only)",
            response_class=Response,
            responses={200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"},
                                                              "example": "%PDF-1.7 …"}},
                             "description": "the sealed PDF"}, **SCOPED})
async def get_certificate_pdf(request: Request, cert_id: CertId,
                              owner: str | None = Depends(customer_scope)) -> Response:
    data = await service.get_pdf(db=request.app.state.db, ctx=_ctx(request), cert_id=cert_id,
                                 owner=owner)
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{cert_id}.pdf"'})


@router.get("/v1/certificates/{cert_id}/verification", response_model=VerificationStatus, responses=NOT_FOUND,
            summary="Public: whether this id was issued, when, by which key, with which content hash (QR link)")
async def verification_status(request: Request, cert_id: CertId) -> VerificationStatus:
    return VerificationStatus(**await service.verification_status(db=request.app.state.db, cert_id=cert_id))
