"""MQTT ingestion. Public API: :class:`ingest.gateway.Gateway`; the pure stages
:mod:`ingest.topics`, :mod:`ingest.vigil_json`, :mod:`ingest.validate`, :mod:`ingest.assemble`."""
