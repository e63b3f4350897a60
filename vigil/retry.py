"""Retry with capped exponential back-off, for work that must not be dropped (store, publish)."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")


async def retry_forever(
    func: Callable[..., Awaitable[T]], *args, what: str, log: logging.Logger, first_delay: float = 0.2,
    max_delay: float = 10.0,
) -> T:
    """Await ``func(*args)`` until it succeeds; cancellation stops it, any other error is logged."""
    delay = first_delay
    while True:
        try:
            return await func(*args)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying in %.1fs", what, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
