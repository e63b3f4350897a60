"""Password hashing with argon2id (argon2-cffi); the hashing runs in a worker thread (argon2-cffi
releases the GIL), so a login does not stall the event loop for the tens of milliseconds it costs."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from accounts.config import AuthConfig
from vigil.errors import RejectedInput

#: Longer inputs only cost hashing time: NIST SP 800-63B lets verifiers cap length at 64 or more.
MAX_PASSWORD_LENGTH = 128


class Passwords:
    def __init__(self, config: AuthConfig) -> None:
        self._hasher = PasswordHasher(time_cost=config.argon2_time_cost, memory_cost=config.argon2_memory_kib,
                                      parallelism=config.argon2_parallelism)
        self._min_length = config.min_password_length
        # Verified against when the username is unknown, so both answers take as long.
        self._dummy = self._hasher.hash("not a password of anyone")

    def check_policy(self, password: str) -> None:
        if not self._min_length <= len(password) <= MAX_PASSWORD_LENGTH:
            raise RejectedInput("weak_password",
                                f"a password has {self._min_length} to {MAX_PASSWORD_LENGTH} characters")

    async def hash(self, password: str) -> str:
        self.check_policy(password)
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """True when ``password`` matches ``stored``; ``stored=None`` (unknown user) costs the same, False."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        return await asyncio.to_thread(self._verify, stored, password)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False
