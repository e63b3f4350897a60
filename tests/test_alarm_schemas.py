"""The API's alarm schema (api/alarm_schemas.py, with field descriptions for the docs) and the alarm record
(alarms/model.py) list the same fields by hand: this keeps them from drifting apart."""

from __future__ import annotations

import dataclasses

from alarms.model import Alarm
from api.alarm_schemas import AlarmOut

#: Record fields the API names differently or keeps to itself.
RECORD_ONLY = {"device": "shown as device_id", "next_step": "internal: the index of the next stage"}
#: API fields that are joined in or derived, not stored on the record.
API_ONLY = {"device_id", "kind", "owner", "customer_name", "address", "state"}


def test_every_record_field_is_in_the_api_schema_and_nothing_unexplained_is_added():
    record = {f.name for f in dataclasses.fields(Alarm)}
    api = set(AlarmOut.model_fields)
    assert record - api == set(RECORD_ONLY)
    assert api - record == API_ONLY
