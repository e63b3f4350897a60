"""Certificate routes: issue, fetch (JSON, PDF), list, and verify (anyone), plus the public keys."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response

from api import certificate_service as service
from api.certificate_schemas import (CertificateDocument, CertificatePage, CertificateRequest, CertificateSummary,
                                     FineAssistRequest, PublicKey, Verification, VerificationStatus)
from api.schemas import Problem

router = APIRouter(tags=["certificates"])
NOT_FOUND = {404: {"model": Problem, "description": "no such car or certificate (or not yours)"}}
JSON_DOC = {"model": CertificateDocument, "description": "the signed document as canonical JSON bytes"}


def _owner(request: Request) -> str | None:
    """The caller's customer id once authentication sets ``request.state.owner``; None: no scoping."""
    return getattr(request.state, "owner", None)


def _ctx(request: Request) -> service.CertificateContext:
    ctx = request.app.state.certificates
    if ctx is None:
        raise HTTPException(503, "certificates are not configured on this server (no key store)")
    return ctx


def _json(document: bytes, status: int = 200, headers: dict | None = None) -> Response:
    return Response(document, status_code=status, media_type="application/json", headers=headers)


@router.post("/v1/vehicles/{vehicle_id}/certificates", status_code=201,
             responses={201: JSON_DOC, 422: {"model": Problem}, **NOT_FOUND},
             summary="Issue a fine-assist, driving-style or vehicle-usage certificate")
async def create(request: Request, vehicle_id: str, body: CertificateRequest = Body(
        openapi_examples={
            "fine_assist": {"value": {"kind": "fine_assist", "at": "2024-03-01T08:15:00Z",
                                      "place": {"lat": 60.1699, "lon": 24.9384}}},
            "vehicle_usage": {"value": {"kind": "vehicle_usage", "from": "2024-03-01T00:00:00Z",
                                        "to": "2024-04-01T00:00:00Z"}}})) -> Response:
    common = dict(db=request.app.state.db, ctx=_ctx(request), vehicle_id=vehicle_id, owner=_owner(request),
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


@router.get("/v1/vehicles/{vehicle_id}/certificates", response_model=CertificatePage, responses=NOT_FOUND,
            summary="A car's certificates, newest first")
async def list_certificates(request: Request, vehicle_id: str, limit: int = Query(50, ge=1, le=500),
                            offset: int = Query(0, ge=0)) -> CertificatePage:
    rows = await service.list_documents(db=request.app.state.db, vehicle_id=vehicle_id, owner=_owner(request),
                                        limit=limit + 1, offset=offset)
    items = [CertificateSummary(id=r.id, kind=r.kind, vehicle_id=r.vehicle_id, key_id=r.key_id,
                                created_at=r.created_at, json_url=f"/v1/certificates/{r.id}",
                                pdf_url=f"/v1/certificates/{r.id}/pdf") for r in rows[:limit]]
    return CertificatePage(items=items, limit=limit, offset=offset,
                           next_offset=offset + limit if len(rows) > limit else None)


@router.get("/v1/certificates/keys", response_model=list[PublicKey],
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
             summary="Verify an uploaded certificate (the JSON document or the PDF); open to anyone",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "object"}},
                 "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
async def verify(request: Request) -> Verification:
    verdict = service.verify(ctx=_ctx(request), data=await _bounded_body(request, service.MAX_UPLOAD_BYTES))
    return Verification(valid=verdict.valid, reason=verdict.reason, format=verdict.format, detail=verdict.detail,
                        key_ids=verdict.key_ids, certificate=verdict.certificate)


@router.get("/v1/certificates/{cert_id}", responses={200: JSON_DOC, **NOT_FOUND},
            summary="A certificate's signed JSON document (owner only)")
async def get_certificate(request: Request, cert_id: str) -> Response:
    return _json(await service.get_document(db=request.app.state.db, cert_id=cert_id, owner=_owner(request)))


@router.get("/v1/certificates/{cert_id}/pdf", summary="A certificate as a sealed PDF (owner only)",
            responses={200: {"content": {"application/pdf": {}}, "description": "the sealed PDF"}, **NOT_FOUND})
async def get_certificate_pdf(request: Request, cert_id: str) -> Response:
    data = await service.get_pdf(db=request.app.state.db, ctx=_ctx(request), cert_id=cert_id,
                                 owner=_owner(request))
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{cert_id}.pdf"'})


@router.get("/v1/certificates/{cert_id}/verification", response_model=VerificationStatus, responses=NOT_FOUND,
            summary="Public: whether this id was issued, when, by which key, with which content hash (QR link)")
async def verification_status(request: Request, cert_id: str) -> VerificationStatus:
    return VerificationStatus(**await service.verification_status(db=request.app.state.db, cert_id=cert_id))
