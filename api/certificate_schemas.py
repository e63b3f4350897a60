"""Request and response models of the certificate routes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import Moment


class Place(BaseModel):
    model_config = ConfigDict(strict=True)      # a number, not ``true`` taken as 1
    lat: float = Field(ge=-90, le=90, examples=[60.1699])
    lon: float = Field(ge=-180, le=180, examples=[24.9384])


class FineAssistRequest(BaseModel):
    kind: Literal["fine_assist"]
    at: Moment = Field(description="moment of the alleged violation, RFC 3339 with its UTC offset",
                            examples=["2024-03-01T08:15:00Z"])
    place: Place | None = Field(None, description="where the fine says the car was")
    max_gap_s: float | None = Field(None, gt=0, le=3600, strict=True,
                                    description="refuse to attest beyond this gap to the nearest fix (default 120 s)")


class PeriodRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    kind: Literal["driving_style", "vehicle_usage"]
    start: Moment = Field(alias="from", examples=["2024-03-01T00:00:00Z"])
    end: Moment = Field(alias="to", examples=["2024-04-01T00:00:00Z"])


CertificateRequest = Annotated[Union[FineAssistRequest, PeriodRequest], Field(discriminator="kind")]


class Signature(BaseModel):
    algorithm: Literal["Ed25519"]
    key_id: str = Field(examples=["ed25519-2da8a20ad2b85f06"])
    value: str = Field(description="base64 of the 64-byte signature")


class CertificateDocument(BaseModel):
    """The signed document, served as canonical JSON bytes (verify the bytes, not a re-serialisation)."""
    certificate: dict = Field(description="id, kind, vehicle_id, issued_at, key_id, verification_url, subject, "
                                          "parameters, findings, map",
                              examples=[{"id": "crt_5f0c3e1a9b2d4c6e8f7a1b2c", "kind": "fine_assist",
                                         "vehicle_id": "car-00001", "key_id": "ed25519-2da8a20ad2b85f06"}])
    signature: Signature


class CertificateSummary(BaseModel):
    id: str = Field(examples=["crt_5f0c3e1a9b2d4c6e8f7a1b2c"])
    kind: str
    vehicle_id: str
    key_id: str
    created_at: dt.datetime
    json_url: str
    pdf_url: str


class CertificatePage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [{
        "id": "crt_5f0c3e1a9b2d4c6e8f7a1b2c", "kind": "fine_assist", "vehicle_id": "car-00001",
        "key_id": "ed25519-2da8a20ad2b85f06", "created_at": "2024-03-02T12:00:00Z",
        "json_url": "/v1/certificates/crt_5f0c3e1a9b2d4c6e8f7a1b2c",
        "pdf_url": "/v1/certificates/crt_5f0c3e1a9b2d4c6e8f7a1b2c/pdf"}], "limit": 50, "offset": 0,
        "next_offset": None}]})
    items: list[CertificateSummary]
    limit: int
    offset: int
    next_offset: int | None


class Verification(BaseModel):
    valid: bool
    reason: str = Field(description="ok, or why not: not-json, not-canonical, malformed, key-mismatch, "
                                    "unknown-key, bad-signature, no-seal, too-large", examples=["ok"])
    format: str = Field(description="json or pdf", examples=["pdf"])
    detail: str = ""
    key_ids: list[str] = Field(description="keys whose signatures were checked (JSON, then PDF seal)")
    certificate: dict | None = Field(None, description="the attested content, when valid")


class VerificationStatus(BaseModel):
    id: str = Field(examples=["crt_5f0c3e1a9b2d4c6e8f7a1b2c"])
    kind: str
    issued: bool
    created_at: dt.datetime
    key_id: str
    content_sha256: str = Field(description="SHA-256 of the signed canonical JSON of the certificate")


class PublicKey(BaseModel):
    key_id: str = Field(examples=["ed25519-2da8a20ad2b85f06"])
    algorithm: Literal["Ed25519"] = "Ed25519"
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")
    active: bool
