"""Account and token settings, and the persisted signing key."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from vigil.errors import ConfigError

#: 32 bytes: the HMAC-SHA256 key size RFC 7518 §3.2 asks for at least.
KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class AuthConfig:
    # Signs access tokens (HS256) and keys the HMAC of confirmation codes. Never hard-coded: loaded from
    # (or created once in) the data dir by :meth:`from_settings`, or random per process (:meth:`ephemeral`).
    secret: bytes
    # 15 min: short enough that a leaked access token expires soon; clients renew with the refresh token.
    access_ttl_s: int = 900
    # 30 days of inactivity ends a session; every refresh rotates the token and restarts the period.
    refresh_ttl_s: int = 30 * 86_400
    # 5 consecutive failures lock the account for 15 min (OWASP authentication guidance's order of size).
    lockout_attempts: int = 5
    lockout_s: int = 900
    # A confirmation code lives 5 min and allows 5 guesses (1 in 200 000 to guess a 6-digit code).
    code_ttl_s: int = 300
    code_attempts: int = 5
    # argon2id cost: RFC 9106's second recommended option (64 MiB, 3 passes, 4 lanes). Tests lower it.
    argon2_memory_kib: int = 65_536
    argon2_time_cost: int = 3
    argon2_parallelism: int = 4
    min_password_length: int = 10

    def __post_init__(self) -> None:
        if len(self.secret) < KEY_BYTES:
            raise ConfigError(f"the token signing key must have at least {KEY_BYTES} bytes")

    @classmethod
    def ephemeral(cls, **overrides) -> "AuthConfig":
        """A random key for this process only (embedding, tests): tokens die with the process."""
        return cls(secret=secrets.token_bytes(KEY_BYTES), **overrides)

    @classmethod
    def from_settings(cls, settings, **overrides) -> "AuthConfig":
        path = settings.auth_secret_file or settings.data_dir / "auth" / "token-signing.key"
        return cls(secret=load_or_create_key(path), access_ttl_s=settings.access_token_ttl_s,
                   refresh_ttl_s=settings.refresh_token_ttl_s, lockout_attempts=settings.login_lockout_attempts,
                   lockout_s=settings.login_lockout_s, **overrides)


def load_or_create_key(path: Path) -> bytes:
    """The key in ``path``; created (random, mode 0600) on first use. The key is written to a private
    temporary file and hard-linked into place, so concurrent first starts agree on one whole key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_bytes(KEY_BYTES).hex() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError as exc:
        raise ConfigError(f"{path}: the token signing key must be hex") from exc
    if len(key) < KEY_BYTES:
        raise ConfigError(f"{path}: the token signing key must have at least {KEY_BYTES} bytes")
    return key
