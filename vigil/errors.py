"""One error tree for Vigil. Third-party exceptions are translated at the boundary."""

from __future__ import annotations


class VigilError(Exception):
    """Root of every error Vigil raises on purpose."""


class ConfigError(VigilError):
    """A setting is missing or malformed."""


class StorageError(VigilError):
    """The database refused or failed an operation."""


class BusError(VigilError):
    """The message bus could not publish or consume."""


class NotFound(VigilError):
    """A resource does not exist (or is not visible to the caller)."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class RejectedInput(VigilError):
    """A device message or API input was refused; ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Conflict(VigilError):
    """The request clashes with the resource's current state (e.g. an alarm claimed by someone else)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Unauthenticated(VigilError):
    """No valid credentials: a missing, malformed or expired token, or a wrong password. ``reason`` is
    machine-readable (``missing_token``, ``invalid_token``, ``expired_token``; at the token endpoint, as RFC 6749
    names them, ``invalid_grant`` and ``invalid_request``)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Forbidden(VigilError):
    """The caller is known but its role may not do this (never used to hide another customer's object:
    that is :class:`NotFound`)."""


class TooManyAttempts(VigilError):
    """Locked out after repeated failures; try again in ``retry_after_s`` seconds."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
