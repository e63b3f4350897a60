"""Schemathesis explores every operation of the app's own OpenAPI document, in process (ASGI), as a
logged-in customer and as an operator, over seeded data: no answer may be a server error, and each must
match what the document promises (status codes, content types, bodies)."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi as schemathesis_asgi

from accounts import Caller, issue_access
from api import alarms, pets
from storage import Database, devices
from tests.access_data import T0, certificate_context, seed_car, seed_fences, seed_fix, seed_two_customers
from tests.helpers import auth_config, make_app
from tests.services import scratch_database

#: Examples per operation and role (the document's explicit examples come first); raise it for a deeper run.
EXAMPLES = int(os.environ.get("VIGIL_TEST_SCHEMATHESIS_EXAMPLES", "40"))


class InServingLoop:
    """The app, built at ASGI lifespan start: schemathesis serves it from its own event loop, and the
    database pool must belong to that loop (opened at each lifespan start). ``database_url`` is set by the ``served`` fixture before the
    first request."""

    def __init__(self) -> None:
        self.database_url: str | None = None
        self.auth = auth_config(access_ttl_s=6 * 3600)
        self.app = None
        self.seeded = False
        self.certificates = certificate_context(Path(tempfile.mkdtemp(prefix="vigil-schemathesis-keys-")))
        # seed_two_customers creates alice (1), bob (2) and olga (3) in a fresh database.
        now = dt.datetime.now(dt.timezone.utc)
        self.tokens = {name: issue_access(self.auth, caller, now=now)[0] for name, caller in {
            "customer": Caller(1, "alice", "customer", "cust-a"), "operator": Caller(3, "olga", "operator", None),
        }.items()}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        await receive()
        # Schemathesis ends the lifespan after each test item: the data is seeded once.
        self.db = await Database.open(self.database_url)
        if not self.seeded:
            self.ids = (await seed_two_customers(self.db, certificates=self.certificates))["cust-a"]
            # The document's example ids, so the explicit examples reach real data (alice's car and pet).
            await seed_car(self.db, "car-00001", "cust-a")
            (pet,) = await devices.provision(self.db, ["pet-0001"], kind="pet", owner="cust-a")
            await seed_fix(self.db, pet.id, T0, 60.17, 24.94)
            spare = await seed_fences(self.db, "cust-a", "car-00001", "pet-0001")
            self.ids |= {"spare_fence": spare["fence"], "spare_pet_fence": spare["pet_fence"], "pet_0001": "pet-0001"}
            self.seeded = True
        self.app = make_app(self.db, auth=self.auth, certificates=self.certificates)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await self.app.state.alarm_feed.close()    # its LISTEN task, started by a call of the alarm stream
        await self.db.close()
        await send({"type": "lifespan.shutdown.complete"})


APP = InServingLoop()
# The document does not depend on the database: it is read from an app without one, at collection.
# RFC 6749 §5.2: the token endpoint answers a well-formed request with wrong credentials with 400
# (invalid_grant), and a locked account gets 429; both are documented answers to schema-valid input.
# Geofences, pet fences and certificates are checked by the cores beyond what a schema says (a valid
# ring, sane anti-flap settings, 'from' before 'to', at most 5 pet fences): schema-valid input may get the
# documented 422 with a reason.
CONFIG = SchemathesisConfig.from_dict({"operations": [{
    "include-path": "/v1/auth/token",
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "429"]}},
}, *({"include-tag": tag, "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "422"]}}}
     for tag in ("geofences", "pets", "certificates"))]})
schema = schemathesis.openapi.from_dict(make_app(None).openapi(), config=CONFIG)
schema.app = APP
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@pytest.fixture(scope="module")
def served(pg_admin_url):
    with scratch_database(pg_admin_url) as url, pytest.MonkeyPatch.context() as patch:
        # The live streams end at once: schemathesis reads each answer whole.
        patch.setattr(pets, "STREAM_MAX_S", 0.0)
        patch.setattr(alarms, "STREAM_MAX_S", 0.0)
        APP.database_url = url
        yield APP
        schemathesis_asgi.shutdown_lifespans()


#: Operations whose ids random generation seldom hits, called with alice's seeded ids so that their
#: successful answers are checked against the document too (GET and PUT before DELETE). The test runs
#: first: the random runs below may delete or change these objects.
CIRCLE = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [24.94, 60.17]},
          "properties": {"name": "moved", "radius_m": 120.0}}
SEEDED = [
    ("GET", "/v1/certificates/{cert_id}", {"cert_id": "cert"}, None),
    ("GET", "/v1/certificates/{cert_id}/pdf", {"cert_id": "cert"}, None),
    ("GET", "/v1/certificates/{cert_id}/verification", {"cert_id": "cert"}, None),
    ("GET", "/v1/geofences/{fence_id}", {"fence_id": "fence"}, None),
    ("PUT", "/v1/geofences/{fence_id}", {"fence_id": "fence"}, CIRCLE),
    ("GET", "/v1/pets/{pet_id}/fences/{fence_id}", {"pet_id": "pet", "fence_id": "pet_fence"}, None),
    ("PUT", "/v1/pets/{pet_id}/fences/{fence_id}", {"pet_id": "pet", "fence_id": "pet_fence"}, CIRCLE),
    ("DELETE", "/v1/pets/{pet_id}/fences/{fence_id}", {"pet_id": "pet_0001", "fence_id": "spare_pet_fence"}, None),
    ("DELETE", "/v1/geofences/{fence_id}", {"fence_id": "spare_fence"}, None),
    ("GET", "/v1/alarms/{alarm_id}", {"alarm_id": "alarm"}, None),
    ("POST", "/v1/alarms/{alarm_id}/feedback", {"alarm_id": "alarm"}, {"feedback": "it_was_me"}),
    ("GET", "/v1/operator/alarms/{alarm_id}", {"alarm_id": "alarm"}, None, "operator"),
    ("POST", "/v1/operator/alarms/{alarm_id}/claim", {"alarm_id": "alarm"}, None, "operator"),
    ("POST", "/v1/operator/alarms/{alarm_id}/notes", {"alarm_id": "alarm"}, {"text": "called"}, "operator"),
    ("POST", "/v1/operator/alarms/{alarm_id}/acknowledge", {"alarm_id": "alarm"}, None, "operator"),
    ("POST", "/v1/operator/alarms/{alarm_id}/resolve", {"alarm_id": "alarm"}, {"outcome": "test"}, "operator"),
    ("GET", "/v1/operator/devices/{device_id}/alarms", {"device_id": "home"}, None, "operator"),
]


def test_seeded_objects_answer_as_documented(served):
    # A first call runs the lifespan that seeds the database (and so sets the ids).
    schema["/v1/devices"]["GET"].Case().call(headers={"Authorization": f"Bearer {served.tokens['customer']}"})
    for method, path, params, body, *role in SEEDED:
        case = schema[path][method].Case(path_parameters={k: served.ids[v] for k, v in params.items()},
                                         **({"body": body, "media_type": "application/json"} if body else {}))
        token = served.tokens[role[0] if role else "customer"]
        response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"})
        assert response.status_code in (200, 204), (method, path, response.text)


@schema.parametrize()
@SETTINGS
def test_as_customer(case, served):
    response = case.call_and_validate(headers={"Authorization": f"Bearer {served.tokens['customer']}"})
    assert response.status_code < 500


@schema.parametrize()
@SETTINGS
def test_as_operator(case, served):
    response = case.call_and_validate(headers={"Authorization": f"Bearer {served.tokens['operator']}"})
    assert response.status_code < 500


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_without_a_token(case, served):
    case.call_and_validate(checks=[not_a_server_error])

