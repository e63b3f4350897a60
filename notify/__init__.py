"""Customer and assistance-centre notices: a durable outbox in PostgreSQL and pluggable channel senders.

Public API: :class:`Notice`, :func:`enqueue` (store notices, once per dedup key), :class:`Dispatcher`
(sends what is due, retries with back-off), :class:`Sender` (the channel protocol) and
:class:`LoggingSender` (the default channel: writes the notice to the log).
"""

from notify.dispatcher import Dispatcher
from notify.outbox import Notice, enqueue, enqueue_on
from notify.senders import CHANNELS, LoggingSender, Sender

__all__ = ["CHANNELS", "Dispatcher", "LoggingSender", "Notice", "Sender", "enqueue", "enqueue_on"]
