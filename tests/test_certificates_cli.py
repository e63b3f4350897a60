"""`vigil certificates verify FILE` exit codes and `vigil certificates rotate-key`, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from certificates import content, pdf, signing
from certificates.keys import KeyStore
from certificates.position import FineAssistConfig


def vigil(*args: str, key_dir) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(VIGIL_CERTIFICATE_KEY_DIR=str(key_dir), VIGIL_DATA_DIR=str(key_dir.parent / "data"))
    return subprocess.run([sys.executable, "-m", "vigil.cli", "certificates", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def issue(store: KeyStore, cert_id: str) -> tuple[bytes, bytes]:
    ts = np.arange(0, 60_000, 5_000, dtype=np.int64) + 1_709_280_000_000
    n = len(ts)
    fixes = {"ts_ms": ts, "lat": 60.17 + np.arange(n) * 1e-4, "lon": np.full(n, 24.94),
             "speed_kmh": np.full(n, 40.0), "heading_deg": np.zeros(n), "accuracy_m": np.full(n, 5.0),
             "ignition": np.ones(n, np.int8)}
    key_id, key = store.active()
    cert = content.certificate(cert_id=cert_id, kind="fine_assist", vehicle_id="cli-car",
                               issued_at_ms=int(ts[-1]), key_id=key_id, verification_url="https://v/x",
                               body=content.fine_assist(fixes, int(ts[3]) + 2_500, None, FineAssistConfig()))
    document, _ = signing.sign_document(cert, key_id, key)
    return document, signing.seal_pdf(pdf.render_pdf(document), document, key_id, key)


def test_verify_exit_codes_and_rotation(tmp_path):
    keys = tmp_path / "keys"
    store = KeyStore(keys)
    document, sealed = issue(store, "crt_cli_old")
    (tmp_path / "c.json").write_bytes(document)
    (tmp_path / "c.pdf").write_bytes(sealed)
    bad = bytearray(sealed)
    bad[200] ^= 0x01
    (tmp_path / "bad.pdf").write_bytes(bytes(bad))

    ok = vigil("verify", str(tmp_path / "c.pdf"), key_dir=keys)
    assert ok.returncode == 0 and ok.stdout.startswith("VALID (pdf): certificate crt_cli_old"), ok.stderr
    assert vigil("verify", str(tmp_path / "c.json"), key_dir=keys).returncode == 0
    invalid = vigil("verify", str(tmp_path / "bad.pdf"), key_dir=keys)
    assert invalid.returncode == 1 and invalid.stdout.startswith("INVALID (pdf): bad-signature")
    assert vigil("verify", str(tmp_path / "missing.pdf"), key_dir=keys).returncode == 2

    old_key = store.active()[0]
    rotated = vigil("rotate-key", key_dir=keys)
    assert rotated.returncode == 0 and f"retired {old_key}" in rotated.stdout
    assert store.active()[0] != old_key
    _, new_pdf = issue(store, "crt_cli_new")
    (tmp_path / "new.pdf").write_bytes(new_pdf)
    for name in ("c.pdf", "c.json", "new.pdf"):                  # old and new certificates both verify
        assert vigil("verify", str(tmp_path / name), key_dir=keys).returncode == 0, name
    # A verifier holding only the public keys (copied .pub files) verifies just the same.
    public_only = tmp_path / "public"
    public_only.mkdir()
    for pub in keys.glob("*.pub"):
        (public_only / pub.name).write_bytes(pub.read_bytes())
    assert vigil("verify", str(tmp_path / "c.pdf"), key_dir=public_only).returncode == 0
    stranger = vigil("verify", str(tmp_path / "c.pdf"), key_dir=tmp_path / "nokeys")
    assert stranger.returncode == 1 and "unknown-key" in stranger.stdout
