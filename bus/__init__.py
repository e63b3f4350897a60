"""Publish/consume of fix batches keyed by device.

Public API: :class:`Bus` (the protocol), :class:`Delivery`, :func:`open_bus`, :class:`MemoryBus`,
:class:`KafkaBus`, and the topic name :data:`FIXES`.
"""

from bus.base import EVENTS, FIXES, Bus, Delivery, partition_of
from bus.memory import MemoryBus


def open_bus(settings):
    """The bus the settings ask for: Kafka when ``kafka_bootstrap`` is set, else in-process."""
    if settings.kafka_bootstrap:
        from bus.kafka import KafkaBus

        return KafkaBus(
            settings.kafka_bootstrap,
            topic_prefix=settings.kafka_topic_prefix,
            partitions=settings.kafka_partitions,
        )
    return MemoryBus()


__all__ = ["EVENTS", "FIXES", "Bus", "Delivery", "MemoryBus", "open_bus", "partition_of"]
