"""Ed25519 signing keys on disk, with rotation: one active key signs, every known public key verifies.

Layout of the key directory (created 0700): ``<key_id>.pub`` (PEM SubjectPublicKeyInfo) for every key
ever active, ``<key_id>.key`` (PEM PKCS#8, 0600) for the active key only, and ``active`` naming it. A key
id is ``ed25519-`` plus the first 16 hex digits of SHA-256 over the raw 32-byte public key, so anyone
holding the public key can recompute it. Rotation writes a new pair, switches ``active`` atomically and
deletes the retired private key: it signs nothing more, and keeping its secret would only add risk.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vigil.errors import ConfigError

_RAW = dict(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    return "ed25519-" + hashlib.sha256(public_key.public_bytes(**_RAW)).hexdigest()[:16]


class KeyStore:
    """The certificate keys under ``directory``; the first signature generates the first key."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @contextmanager
    def _locked(self):
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.directory / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def active(self) -> tuple[str, Ed25519PrivateKey]:
        """(key id, private key) of the active key, generating it on first use."""
        with self._locked():
            current = self.directory / "active"
            if not current.exists():
                return self._generate()
            key_id = current.read_text().strip()
            try:
                pem = (self.directory / f"{key_id}.key").read_bytes()
                key = serialization.load_pem_private_key(pem, password=None)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"certificate key {key_id} is unreadable: {exc}") from exc
            if not isinstance(key, Ed25519PrivateKey) or key_id_of(key.public_key()) != key_id:
                raise ConfigError(f"certificate key file of {key_id} does not hold that Ed25519 key")
            return key_id, key

    def active_id(self) -> str | None:
        """The active key's id, or None before the first key exists (never generates one)."""
        try:
            return (self.directory / "active").read_text().strip()
        except FileNotFoundError:
            return None

    def rotate(self) -> tuple[str, str | None]:
        """Make a new active key; returns (new key id, retired key id or None)."""
        with self._locked():
            current = self.directory / "active"
            old = current.read_text().strip() if current.exists() else None
            new, _ = self._generate()
            if old and old != new:
                (self.directory / f"{old}.key").unlink(missing_ok=True)
            return new, old

    def _generate(self) -> tuple[str, Ed25519PrivateKey]:
        key = Ed25519PrivateKey.generate()
        key_id = key_id_of(key.public_key())
        pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        secret = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
        _write(self.directory / f"{key_id}.pub", pub, 0o644)
        _write(self.directory / f"{key_id}.key", secret, 0o600)
        _write(self.directory / "active", key_id.encode() + b"\n", 0o644)
        return key_id, key

    def public_key(self, key_id: str) -> Ed25519PublicKey | None:
        """The public key named ``key_id``, or None when this store never had it."""
        if not key_id.startswith("ed25519-") or not key_id[8:].isalnum():
            return None
        try:
            key = serialization.load_pem_public_key((self.directory / f"{key_id}.pub").read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(key, Ed25519PublicKey) or key_id_of(key) != key_id:
            return None
        return key

    def public_keys(self) -> dict[str, bytes]:
        """Every known key id with its raw 32-byte public key, oldest file first."""
        out = {}
        paths = sorted(self.directory.glob("ed25519-*.pub"), key=lambda p: p.stat().st_mtime_ns)
        for path in paths:
            key = self.public_key(path.stem)
            if key is not None:
                out[path.stem] = key.public_bytes(**_RAW)
        return out


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file and rename, so a reader never sees half a key."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
