"""Signed certificate documents (JSON) and sealed PDFs, and their verification (design: docs/certificates.md).

JSON document: canonical JSON of ``{"certificate": C, "signature": {"algorithm": "Ed25519", "key_id": K,
"value": base64(sig)}}`` where sig = Ed25519(K, "vigil-certificate-json-v1\\n" + canonical_json(C)) and
C["key_id"] == K. A verifier accepts only bytes that are exactly canonical.

Sealed PDF: the PDF body B (which embeds the JSON document, uncompressed) followed by one line
``%VIGIL-SEAL v1 Ed25519 <key id> <offset> <length> <base64 sig>\\n`` where sig = Ed25519(key,
"vigil-certificate-pdf-v1\\n" + "<key id> <offset> <length>\\n" + B) and B[offset:offset+length] is the
JSON document. The line sits after %%EOF, where PDF readers ignore it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from certificates.canonical import canonical_json, encode_parsed, parse_canonical
from vigil.errors import RejectedInput

DOMAIN_JSON = b"vigil-certificate-json-v1\n"
DOMAIN_PDF = b"vigil-certificate-pdf-v1\n"
_SEAL = re.compile(rb"%VIGIL-SEAL v1 Ed25519 (ed25519-[0-9a-f]{16}) (0|[1-9][0-9]{0,9}) ([1-9][0-9]{0,9}) "
                   rb"([A-Za-z0-9+/]{86}==)\n")
_SEAL_MAX = 200   # bytes: the seal line is about 150

PublicKeys = Callable[[str], Ed25519PublicKey | None]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome of a verification; ``reason`` is machine-readable ("ok" when valid)."""
    valid: bool
    reason: str
    format: str
    detail: str = ""
    certificate: dict | None = None
    key_ids: list[str] = field(default_factory=list)


def sign_document(certificate: dict, key_id: str, key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    """(the signed JSON document, the raw 64-byte signature) of ``certificate``."""
    if certificate.get("key_id") != key_id:
        raise ValueError("the certificate must name the key that signs it")
    signature = key.sign(DOMAIN_JSON + canonical_json(certificate))
    return document_bytes(certificate, key_id, signature), signature


def document_bytes(certificate: dict, key_id: str, signature: bytes) -> bytes:
    sig = {"algorithm": "Ed25519", "key_id": key_id, "value": base64.b64encode(signature).decode()}
    return canonical_json({"certificate": certificate, "signature": sig})


def seal_pdf(body: bytes, document: bytes, key_id: str, key: Ed25519PrivateKey) -> bytes:
    """Append the seal line to a PDF body that embeds ``document`` verbatim."""
    offset = body.find(document)
    if offset < 0:
        raise ValueError("the PDF body does not embed the JSON document verbatim")
    if not body.endswith(b"\n"):
        body += b"\n"
    head = f"{key_id} {offset} {len(document)}".encode()
    sig = key.sign(DOMAIN_PDF + head + b"\n" + body)
    return body + b"%VIGIL-SEAL v1 Ed25519 " + head + b" " + base64.b64encode(sig) + b"\n"


def _b64_strict(text: str) -> bytes:
    """Decode base64 that is in its one canonical spelling (no stray padding bits, no whitespace)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RejectedInput("malformed", "signature is not base64") from exc
    if base64.b64encode(raw).decode() != text or len(raw) != 64:
        raise RejectedInput("malformed", "signature is not the canonical base64 of 64 bytes")
    return raw


def _check(key: Ed25519PublicKey, signature: bytes, message: bytes, what: str) -> None:
    try:
        key.verify(signature, message)
    except InvalidSignature as exc:
        raise RejectedInput("bad-signature", f"the {what} signature does not match") from exc


def _verify_json(data: bytes, keys: PublicKeys) -> tuple[dict, str]:
    doc = parse_canonical(data)
    if not isinstance(doc, dict) or set(doc) != {"certificate", "signature"}:
        raise RejectedInput("malformed", "a document holds exactly 'certificate' and 'signature'")
    cert, sig = doc["certificate"], doc["signature"]
    if not isinstance(cert, dict) or not isinstance(sig, dict) or set(sig) != {"algorithm", "key_id", "value"}:
        raise RejectedInput("malformed", "signature must hold algorithm, key_id and value")
    if sig["algorithm"] != "Ed25519" or not isinstance(sig["value"], str) or not isinstance(sig["key_id"], str):
        raise RejectedInput("malformed", "only Ed25519 signatures are issued")
    if cert.get("key_id") != sig["key_id"]:
        raise RejectedInput("key-mismatch", "the certificate names another key than its signature")
    key = keys(sig["key_id"])
    if key is None:
        raise RejectedInput("unknown-key", f"no public key {sig['key_id']!r}")
    _check(key, _b64_strict(sig["value"]), DOMAIN_JSON + encode_parsed(cert), "certificate")
    return cert, sig["key_id"]


def _verify_pdf(data: bytes, keys: PublicKeys) -> tuple[dict, list[str]]:
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    if not data.endswith(b"\n") or len(data) - start > _SEAL_MAX:
        raise RejectedInput("no-seal", "the PDF does not end with a Vigil seal line")
    seal = _SEAL.fullmatch(data[start:])
    if seal is None:
        raise RejectedInput("no-seal", "the last line of the PDF is not a well-formed Vigil seal")
    key_id, offset, length = seal.group(1).decode(), int(seal.group(2)), int(seal.group(3))
    body = data[:start]
    key = keys(key_id)
    if key is None:
        raise RejectedInput("unknown-key", f"no public key {key_id!r}")
    head = f"{key_id} {offset} {length}".encode()
    _check(key, _b64_strict(seal.group(4).decode()), DOMAIN_PDF + head + b"\n" + body, "PDF")
    if offset + length > len(body):
        raise RejectedInput("malformed", "the seal points outside the PDF")
    cert, json_key = _verify_json(body[offset:offset + length], keys)
    return cert, [json_key, key_id]


def verify_document(data: bytes, keys: PublicKeys) -> Verdict:
    """Verify a JSON document or a sealed PDF (told apart by the ``%PDF-`` header)."""
    kind = "pdf" if data.startswith(b"%PDF-") else "json"
    try:
        if kind == "pdf":
            cert, key_ids = _verify_pdf(data, keys)
        else:
            cert, key_id = _verify_json(data, keys)
            key_ids = [key_id]
    except RejectedInput as exc:
        return Verdict(False, exc.reason, kind, exc.detail)
    return Verdict(True, "ok", kind, "signature valid", cert, key_ids)
