"""Signed JSON documents and sealed PDFs: any altered byte fails verification; rotated keys still verify."""

from __future__ import annotations

import json

import numpy as np
import pytest

from certificates import content, pdf, signing
from certificates.canonical import canonical_json, parse_canonical
from certificates.keys import KeyStore
from certificates.position import FineAssistConfig
from simulators.truth import simulate_days
from vigil.errors import RejectedInput


@pytest.fixture(scope="module")
def fixes_and_moment():
    cols, truth = simulate_days(2, seed=5, days=0.3)
    rows = cols["device"] == 1
    fixes = {k: cols[k][rows] for k in ("ts_ms", "lat", "lon", "speed_kmh", "heading_deg", "accuracy_m",
                                        "ignition")}
    trips = truth["trips"]
    i = np.flatnonzero(trips["device"] == 1)[0]
    return fixes, int((trips["start_ms"][i] + trips["end_ms"][i]) // 2)


def make(store: KeyStore, fixes, at_ms: int, cert_id: str = "crt_one") -> tuple[bytes, bytes]:
    key_id, key = store.active()
    body = content.fine_assist(fixes, at_ms, (60.2, 24.9), FineAssistConfig(), context_s=120.0)
    cert = content.certificate(cert_id=cert_id, kind="fine_assist", vehicle_id="car-ü-1", issued_at_ms=at_ms + 1,
                               key_id=key_id, verification_url=f"http://x/v1/certificates/{cert_id}/verification",
                               body=body)
    document, _ = signing.sign_document(cert, key_id, key)
    return document, signing.seal_pdf(pdf.render_pdf(document), document, key_id, key)


def flip_everywhere(data: bytes, store: KeyStore, positions: np.ndarray) -> list[tuple[int, int, str]]:
    """Flip one bit at each position (three different bits across positions); return those that verified."""
    survived = []
    for n, i in enumerate(positions.tolist()):
        altered = bytearray(data)
        altered[i] ^= 1 << (n % 3 * 3)          # bits 0, 3 and 6
        verdict = signing.verify_document(bytes(altered), store.public_key)
        if verdict.valid:
            survived.append((i, altered[i], verdict.reason))
    return survived


def test_canonical_json_is_one_spelling():
    value = {"b": [1, 2.5, None, True], "a": "ü", "c": {"y": -0.0, "x": 1e-05}}
    data = canonical_json(value)
    assert data == '{"a":"ü","b":[1,2.5,null,true],"c":{"x":1e-05,"y":0.0}}'.encode()
    assert parse_canonical(data) == value
    for other in (b'{"b":1,"a":2}', b'{"a": 1}', b'{"a":1.0e0}', b'{"a":"\\u00fc"}', b'{"a":1,"a":1}'):
        with pytest.raises(RejectedInput) as exc:
            parse_canonical(other)
        assert exc.value.reason == "not-canonical"
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})


def test_documents_verify(tmp_path, fixes_and_moment):
    store = KeyStore(tmp_path / "keys")
    document, sealed = make(store, *fixes_and_moment)
    for data, fmt in ((document, "json"), (sealed, "pdf")):
        verdict = signing.verify_document(data, store.public_key)
        assert (verdict.valid, verdict.reason, verdict.format) == (True, "ok", fmt)
        assert verdict.certificate["id"] == "crt_one" and verdict.certificate["vehicle_id"] == "car-ü-1"
    assert sealed.startswith(b"%PDF-1.") and b"%%EOF\n%VIGIL-SEAL v1 Ed25519 " in sealed
    assert document in sealed                                   # the PDF embeds the signed JSON verbatim
    assert pdf.render_pdf(document) == sealed[:sealed.rindex(b"%VIGIL-SEAL")]    # same document, same PDF


def test_every_altered_byte_of_the_json_fails(tmp_path, fixes_and_moment):
    store = KeyStore(tmp_path / "keys")
    document, _ = make(store, *fixes_and_moment)
    assert flip_everywhere(document, store, np.arange(len(document))) == []


def test_altered_bytes_of_the_pdf_fail(tmp_path, fixes_and_moment):
    store = KeyStore(tmp_path / "keys")
    _, sealed = make(store, *fixes_and_moment)
    tail = len(sealed) - 400                                   # every byte of the trailer and the seal line
    rng = np.random.default_rng(3)
    positions = np.unique(np.concatenate([np.arange(0, 400), np.arange(tail, len(sealed)),
                                          rng.integers(0, len(sealed), 3000)]))
    assert flip_everywhere(sealed, store, positions) == []
    start = sealed.index(b'{"certificate":')                   # inside the embedded JSON too
    assert flip_everywhere(sealed, store, np.arange(start, start + 300)) == []


def test_truncated_appended_and_foreign_inputs_fail(tmp_path, fixes_and_moment):
    store = KeyStore(tmp_path / "keys")
    document, sealed = make(store, *fixes_and_moment)
    cases = {
        "no-seal": [sealed[:-1], sealed + b"\n", sealed[:sealed.rindex(b"%VIGIL-SEAL")], b"%PDF-1.4\n"],
        "not-json": [document[:-1], b"", b"\xff\xfe"],
        "not-canonical": [document + b"\n", json.dumps(json.loads(document), indent=1).encode()],
    }
    for reason, inputs in cases.items():
        for data in inputs:
            verdict = signing.verify_document(data, store.public_key)
            assert (verdict.valid, verdict.reason) == (False, reason), data[:40]
    stranger = KeyStore(tmp_path / "other")
    stranger.active()
    assert signing.verify_document(document, stranger.public_key).reason == "unknown-key"


def test_signature_by_another_key_with_the_same_id_fails(tmp_path, fixes_and_moment):
    store = KeyStore(tmp_path / "keys")
    document, _ = make(store, *fixes_and_moment)
    doc = json.loads(document)
    other = KeyStore(tmp_path / "other")
    _, key = other.active()
    forged, _ = signing.sign_document(dict(doc["certificate"], key_id="x"), "x", key)
    forged_doc = json.loads(forged)
    forged_doc["signature"]["key_id"] = doc["signature"]["key_id"]
    forged_doc["certificate"]["key_id"] = doc["signature"]["key_id"]
    verdict = signing.verify_document(canonical_json(forged_doc), store.public_key)
    assert (verdict.valid, verdict.reason) == (False, "bad-signature")


def test_rotation_keeps_old_certificates_verifying(tmp_path, fixes_and_moment):
    store = KeyStore(tmp_path / "keys")
    old_doc, old_pdf = make(store, *fixes_and_moment, cert_id="crt_old")
    old_id = store.active()[0]
    new_id, retired = store.rotate()
    assert retired == old_id != new_id and store.active()[0] == new_id
    assert not (tmp_path / "keys" / f"{old_id}.key").exists()      # the retired secret is gone
    assert list(store.public_keys()) == [old_id, new_id]
    new_doc, new_pdf = make(store, *fixes_and_moment, cert_id="crt_new")
    assert json.loads(new_doc)["signature"]["key_id"] == new_id
    reopened = KeyStore(tmp_path / "keys")                         # another process, same directory
    for data in (old_doc, old_pdf, new_doc, new_pdf):
        assert signing.verify_document(data, reopened.public_key).valid
    # A PDF rendered after the rotation from the old JSON is sealed by the new key; both signatures count.
    _, key = reopened.active()
    resealed = signing.seal_pdf(pdf.render_pdf(old_doc), old_doc, new_id, key)
    verdict = signing.verify_document(resealed, reopened.public_key)
    assert verdict.valid and verdict.key_ids == [old_id, new_id]


def test_negative_zero_and_deep_nesting_are_refused():
    for data, reason in ((b'{"a":-0.0}', "not-canonical"), (b"[" * 100_000 + b"]" * 100_000, "not-json")):
        with pytest.raises(RejectedInput) as exc:
            parse_canonical(data)
        assert exc.value.reason == reason
