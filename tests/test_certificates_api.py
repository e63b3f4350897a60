"""Certificates over HTTP on the real app and PostgreSQL: issue, fetch, render, verify, scope, refuse."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import numpy as np
import pytest

from api import certificate_service as service
from api.certificate_service import CertificateContext
from certificates.keys import KeyStore
from simulators.truth import START_MS, simulate_days
from simulators.truth_positions import true_positions
from storage import FixWriter, devices
from storage import trips as trip_store
from trips import TripConfig, process_all
from tests.helpers import add_account, login, make_app
from trips.geo import hop_distance
from vigil.batch import FixBatch
from vigil.errors import NotFound

SIM = dict(seed=21, days=0.5, ignition_share=1.0, accel_share=1.0, crash_share=1.0)
NOW = dt.datetime(2024, 3, 2, 12, 0, tzinfo=dt.timezone.utc)
DAY = dict(start="2024-03-01T00:00:00Z", end="2024-03-02T00:00:00Z")


def utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat()


@pytest.fixture
async def world(db, tmp_path):
    """One simulated car (ignition, accelerometer, one crash) owned by alice, its fixes and trips stored; the
    client is logged in as alice (bob owns another car)."""
    cols, truth = simulate_days(1, **SIM)
    car, = await devices.provision(db, ["cert-car"], kind="car", owner="alice")
    await devices.provision(db, ["bobs-car"], kind="car", owner="bob")
    cols["device"] = np.full(len(cols["ts_ms"]), car.id, np.int64)
    batch = FixBatch(**cols)
    for lo in range(0, len(batch.ts_ms), 20_000):
        await FixWriter(db).write(batch.take(np.arange(lo, min(lo + 20_000, len(batch.ts_ms)))))
    result = process_all(batch, TripConfig())
    await trip_store.write(db, result.trips, result.events)
    ctx = CertificateContext(keys=KeyStore(tmp_path / "keys"), public_url="https://vigil.example")
    app = make_app(db, now=lambda: NOW, certificates=ctx)
    await add_account(db, "alice")
    await add_account(db, "bob")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as http:
        http.headers.update(await login(http, "alice"))
        yield http, ctx, truth, result


async def test_fine_assist_round_trip(world):
    http, ctx, truth, _ = world
    trips = truth["trips"]
    at_ms = int((trips["start_ms"][1] + trips["end_ms"][1]) // 2)
    motion = {k: v for k, v in SIM.items() if k != "crash_share"}     # crashes do not move the car
    true_lat, true_lon = true_positions(1, [0], [(at_ms - START_MS) / 1000], **motion)
    place = {"lat": round(float(true_lat[0]) + 0.01, 6), "lon": round(float(true_lon[0]), 6)}   # ~1.1 km north
    made = await http.post("/v1/vehicles/cert-car/certificates",
                           json={"kind": "fine_assist", "at": utc(at_ms), "place": place})
    assert made.status_code == 201, made.text
    document = made.content
    cert = json.loads(document)["certificate"]
    assert made.headers["location"] == f"/v1/certificates/{cert['id']}"
    found = cert["findings"]
    assert found["attested"] is True and found["ignition"]["at_moment"] == "on"
    pos = found["position"]
    assert hop_distance(true_lat, true_lon, [pos["lat"]], [pos["lon"]])[0] <= pos["radius_m"] < 100
    assert [f["role"] for f in found["fixes_used"]] == ["before", "after"]
    assert found["alleged_place"]["within_radius"] is False
    assert found["alleged_place"]["distance_m"] == pytest.approx(1113, abs=pos["radius_m"] + 5)
    assert cert["verification_url"] == f"https://vigil.example/v1/certificates/{cert['id']}/verification"

    fetched = await http.get(f"/v1/certificates/{cert['id']}")
    assert fetched.status_code == 200 and fetched.content == document          # byte for byte
    pdf = await http.get(f"/v1/certificates/{cert['id']}/pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    for data, fmt in ((document, "json"), (pdf.content, "pdf")):
        verdict = (await http.post("/v1/certificates/verify", content=data)).json()
        assert (verdict["valid"], verdict["reason"], verdict["format"]) == (True, "ok", fmt)
        assert verdict["certificate"]["id"] == cert["id"]
    tampered = bytearray(pdf.content)
    tampered[len(tampered) // 2] ^= 0x20
    verdict = (await http.post("/v1/certificates/verify", content=bytes(tampered))).json()
    assert (verdict["valid"], verdict["reason"]) == (False, "bad-signature")
    changed = document.replace(b'"attested":true', b'"attested":fals')
    assert (await http.post("/v1/certificates/verify", content=changed)).json()["reason"] == "not-json"

    status = (await http.get(f"/v1/certificates/{cert['id']}/verification")).json()
    assert status["issued"] is True and status["key_id"] == cert["key_id"] and len(status["content_sha256"]) == 64
    keys = (await http.get("/v1/certificates/keys")).json()
    assert [(k["key_id"], k["active"]) for k in keys] == [(cert["key_id"], True)]
    listed = (await http.get("/v1/vehicles/cert-car/certificates")).json()
    assert [c["id"] for c in listed["items"]] == [cert["id"]] and listed["next_offset"] is None


async def test_fine_assist_cannot_attest_far_from_any_fix(world):
    http, *_ = world
    made = await http.post("/v1/vehicles/cert-car/certificates",
                           json={"kind": "fine_assist", "at": utc(START_MS - 3_600_000)})
    found = made.json()["certificate"]["findings"]
    assert made.status_code == 201
    assert found["attested"] is False and found["position"] is None and found["fixes_used"] == []
    assert found["statement"].startswith("Cannot attest a position: no fix within 120 s")
    assert found["ignition"]["at_moment"] == "unknown"
    # A configured shorter gap refuses what the default attests: 1 s after a fix of a 1-10 s device.
    near = await http.post("/v1/vehicles/cert-car/certificates",
                           json={"kind": "fine_assist", "at": utc(START_MS + 3_600_000), "max_gap_s": 0.001})
    assert near.json()["certificate"]["findings"]["attested"] is False


async def test_period_certificates_match_the_trip_figures(world):
    http, _, truth, result = world
    style = (await http.get("/v1/vehicles/cert-car/driving-style",
                            params={"from": DAY["start"], "to": DAY["end"]})).json()
    made = await http.post("/v1/vehicles/cert-car/certificates",
                           json={"kind": "driving_style", "from": DAY["start"], "to": DAY["end"]})
    assert made.status_code == 201
    cert = made.json()["certificate"]
    for name in ("trips", "distance_km", "score", "sub_scores", "events", "events_per_100km", "km_by_road_class",
                 "night_share"):
        assert cert["findings"][name] == style[name], name
    assert cert["findings"]["trips"] == len(result.trips) > 3
    assert cert["subject"] == {"from": "2024-03-01T00:00:00.000Z", "to": "2024-03-02T00:00:00.000Z"}
    assert len(cert["map"]["lines"]) == len(result.trips)

    usage = (await http.post("/v1/vehicles/cert-car/certificates",
                             json={"kind": "vehicle_usage", "from": DAY["start"], "to": DAY["end"]})).json()
    found = usage["certificate"]["findings"]
    assert found["distance_km"] == pytest.approx(result.trips.distance_m.sum() / 1000, abs=1e-3)
    assert found["days_used"] == 1 and found["trips"] == len(result.trips)
    assert found["crashes_detected"] == len(truth["crashes"]["device"]) == 1
    assert sum(found["trips_by_max_speed_kmh"].values()) == len(result.trips)
    assert found["max_speed_kmh"] == pytest.approx(float(result.trips.max_speed_kmh.max()), abs=0.05)
    assert sum(found["road_class_share"].values()) == pytest.approx(1.0, abs=1e-3)
    pdf = await http.get(f"/v1/certificates/{usage['certificate']['id']}/pdf")
    assert (await http.post("/v1/certificates/verify", content=pdf.content)).json()["valid"] is True


async def test_bad_requests_are_problems(world, monkeypatch):
    http, *_ = world
    assert (await http.get("/v1/certificates/keys")).json() == []      # listing keys does not make one
    cases = [
        ({"kind": "fine_assist", "at": "2024-03-03T00:00:00Z"}, 422, "moment-in-future", "moment-in-future"),
        ({"kind": "fine_assist", "at": "0001-01-01T00:00:00Z"}, 422, "moment-out-of-range", "moment-out-of-range"),
        ({"kind": "fine_assist", "at": "2024-03-01T10:00:00"}, 422, "invalid-request", None),   # no offset
        ({"kind": "fine_assist", "at": 1709287200}, 422, "invalid-request", None),            # not RFC 3339
        ({"kind": "fine_assist", "at": "2024-03-01T10:00:00Z", "max_gap_s": True}, 422, "invalid-request", None),
        ({"kind": "vehicle_usage", "from": DAY["end"], "to": DAY["start"]}, 422, "bad-period", "bad-period"),
        ({"kind": "horoscope"}, 422, "invalid-request", None),
        ({"kind": "driving_style", "from": "0001-01-01T00:00:00+01:00", "to": DAY["end"]}, 422, "period-out-of-range",
         "period-out-of-range"),
        ({"kind": "driving_style", "from": DAY["start"], "to": "9999-12-31T23:00:00-05:00"}, 422,
         "period-out-of-range", "period-out-of-range"),
        ({"kind": "fine_assist", "at": "2024-03-01T10:00:00Z", "place": {"lat": 91, "lon": 0}}, 422,
         "invalid-request", None),
    ]
    for body, status, kind, reason in cases:
        answer = await http.post("/v1/vehicles/cert-car/certificates", json=body)
        assert answer.status_code == status and answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].endswith("/" + kind) and answer.json().get("reason") == reason
    missing = await http.post("/v1/vehicles/nobody/certificates", json={"kind": "fine_assist", "at": DAY["start"]})
    assert missing.status_code == 404
    assert (await http.get("/v1/certificates/crt_nothing")).status_code == 404
    assert (await http.get("/v1/certificates/crt_nothing/pdf")).status_code == 404
    empty = await http.post("/v1/certificates/verify", content=b"")
    assert empty.status_code == 422 and empty.json()["reason"] == "missing-body"
    garbage = (await http.post("/v1/certificates/verify", content=b"hello")).json()
    assert (garbage["valid"], garbage["reason"]) == (False, "not-json")
    monkeypatch.setattr(service, "MAX_UPLOAD_BYTES", 1000)
    big = (await http.post("/v1/certificates/verify", content=b"%PDF-" + b"x" * 2000)).json()
    assert (big["valid"], big["reason"]) == (False, "too-large")


async def test_owner_scoping_in_the_services(world, db):
    http, ctx, *_ = world
    made = await service.create_fine_assist(db=db, ctx=ctx, vehicle_id="cert-car", owner="alice",
                                            at=NOW - dt.timedelta(days=1), place=None, now=NOW)
    cert_id = json.loads(made)["certificate"]["id"]
    assert await service.get_document(db=db, cert_id=cert_id, owner="alice") == made
    assert await service.get_document(db=db, cert_id=cert_id, owner=None) == made
    with pytest.raises(NotFound):
        await service.get_document(db=db, cert_id=cert_id, owner="bob")
    with pytest.raises(NotFound):
        await service.get_pdf(db=db, ctx=ctx, cert_id=cert_id, owner="bob")
    with pytest.raises(NotFound):
        await service.create_vehicle_usage(db=db, ctx=ctx, vehicle_id="cert-car", owner="bob",
                                           start=NOW - dt.timedelta(days=2), end=NOW, now=NOW)
    with pytest.raises(NotFound):
        await service.list_documents(db=db, vehicle_id="bobs-car", owner="alice", limit=10, offset=0)
    assert [r.id for r in await service.list_documents(db=db, vehicle_id="cert-car", owner="alice", limit=10,
                                                        offset=0)] == [cert_id]


async def test_only_the_owner_gets_a_certificate_and_anyone_may_verify_it(world):
    http, *_ = world
    made = await http.post("/v1/vehicles/cert-car/certificates",
                           json={"kind": "vehicle_usage", "from": DAY["start"], "to": DAY["end"]})
    cert_id = made.json()["certificate"]["id"]
    bob = await login(http, "bob")
    missing = "crt_" + "0" * 24
    for url in (f"/v1/certificates/{cert_id}", f"/v1/certificates/{cert_id}/pdf"):
        theirs = await http.get(url, headers=bob)
        nothing = await http.get(url.replace(cert_id, missing), headers=bob)
        assert theirs.status_code == nothing.status_code == 404
        assert theirs.json()["detail"] == nothing.json()["detail"].replace(missing, cert_id)
        assert (await http.get(url, headers={"Authorization": ""})).status_code == 401
    assert (await http.get("/v1/vehicles/cert-car/certificates", headers=bob)).status_code == 404
    stolen = await http.post("/v1/vehicles/cert-car/certificates", headers=bob,
                             json={"kind": "vehicle_usage", "from": DAY["start"], "to": DAY["end"]})
    assert stolen.status_code == 404
    # Verifying needs no login: a court or a buyer has none.
    public = httpx.AsyncClient(transport=http._transport, base_url="http://vigil")
    async with public:
        assert (await public.post("/v1/certificates/verify", content=made.content)).json()["valid"] is True
        assert (await public.get(f"/v1/certificates/{cert_id}/verification")).json()["issued"] is True
        assert len((await public.get("/v1/certificates/keys")).json()) == 1
        assert (await public.get(f"/v1/certificates/{cert_id}")).status_code == 401
