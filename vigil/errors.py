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
