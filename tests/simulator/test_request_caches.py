"""What the FHIR server keeps between requests (parsed patient data, their JSON, parsed sessions) is never stale:
an import or load of patient data, a cancellation and a changed session count at the next request, in this app and in
another app (process) on the same store (issue 13). Tokens and notifications are read on every request."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from simulator.app import create_app
from simulator.endpoints.fhir_server import _json
from simulator.fhir.patient_data import PatientData, Resources
from simulator.runtime import EXTENSION, Runtime, SimulatorConfig
from speeltuin.defaults import sqlite_url
from speeltuin.records import Notification, NotificationOrigin, Role, Session, SessionConfig
from speeltuin.store import Store
from testdata.bgz_content import patient_resources
from testdata.patient_import import patient_to_dict
from testdata.patients import PATIENTS
from tests.db import database_url

ROOT = Path(__file__).resolve().parents[2]
PATIENT = PATIENTS[0]
SESSION = "cache-1"
VENDOR_URA = "90000202"
ADMIN_KEY = "cache-test-admin-key"
ALCOHOL = "Observation?code=http://snomed.info/sct%7C228273003"
NOWHERE = "http://127.0.0.1:9"  # the vendor's endpoints: refused at once (the cancellation's delivery fails)


def _app(db: str) -> Flask:
    return create_app(SimulatorConfig(db, public_url="http://sim.test", admin_key=ADMIN_KEY))


def _rt(app: Flask) -> Runtime:
    return app.extensions[EXTENSION]


def _pull_token(store: Store, token: str = "cache-token") -> tuple[str, str]:
    """A session in which the simulator sends, a notification for PATIENT and a pull token bound to it."""
    if store.get_session(SESSION) is None:
        store.create_session(Session(SESSION, "caches", Role.RECEIVER, SessionConfig(
            vendor_ura=VENDOR_URA, vendor_client_id="vendor", own_ura="90000101", own_client_id="sim",
            vendor_token_url=f"{NOWHERE}/token", vendor_notification_base=f"{NOWHERE}/notify"), time.time()))
    notification_id = f"n-{uuid.uuid4()}"
    store.add_notification(Notification(
        id=notification_id, session_id=SESSION, origin=NotificationOrigin.SENT,
        identifier=f"urn:uuid:{uuid.uuid4()}", group_identifier=f"urn:uuid:{uuid.uuid4()}",
        authorization_base=str(uuid.uuid4()), patient_bsn=PATIENT.bsn, owner_ura=VENDOR_URA,
        period_end=time.time() + 3600, status="requested",
        task={"resourceType": "Task",
              "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}]}))
    store.add_token(token, session_id=SESSION, kind="pull", subject_ura=VENDOR_URA, expires_at=time.time() + 3600,
                    notification_id=notification_id)
    return token, notification_id


def _get(client: FlaskClient, token: str, query: str) -> tuple[int, dict]:
    answer = client.get(f"/s/{SESSION}/fhir/{query}",
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"})
    return answer.status_code, answer.get_json()


def _resources(status: str = "active") -> list[dict]:
    """PATIENT's generated content, its AlcoholUse Observations with `status`."""
    return [{**r, "status": status} if r["id"].startswith("alcoholgebruik-") else r
            for r in patient_resources(PATIENT, now=datetime.now(timezone.utc))]


def _statuses(bundle: dict) -> set[str]:
    return {e["resource"]["status"] for e in bundle["entry"] if e["search"]["mode"] == "match"}


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from database_url(request.param, tmp_path)


def test_fhir_data_loaded_by_the_cli_is_served_at_the_next_search(tmp_path: Path) -> None:
    db = sqlite_url(tmp_path / "s.sqlite")
    app = _app(db)
    token, _ = _pull_token(_rt(app).store)
    client = app.test_client()
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                 "entry": [{"resource": r} for r in _resources("active")]}))
    loaded = subprocess.run([sys.executable, "-m", "speeltuin.cli", "patients", "import-fhir", str(first), "--db", db],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    status, bundle = _get(client, token, ALCOHOL)
    assert status == 200 and _statuses(bundle) == {"active"}
    assert _get(client, token, ALCOHOL)[1]["entry"] == bundle["entry"]  # served from the cache: the same

    first.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                 "entry": [{"resource": r} for r in _resources("entered-in-error")]}))
    replaced = subprocess.run([sys.executable, "-m", "speeltuin.cli", "patients", "import-fhir", str(first), "--db", db,
                               "--replace"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    status, bundle = _get(client, token, ALCOHOL)  # another process changed the data: seen at once
    assert status == 200 and _statuses(bundle) == {"entered-in-error"}


def test_patient_import_and_load_in_one_app_are_seen_by_another_at_once(db: str) -> None:
    a, b = _app(db), _app(db)  # two simulator processes (or gunicorn workers) on one store
    token, _ = _pull_token(_rt(a).store)
    clients = a.test_client(), b.test_client()
    for client in clients:  # both have PATIENT's generated content cached
        status, bundle = _get(client, token, "Patient")
        assert status == 200 and bundle["entry"][0]["resource"]["name"][0]["family"] == PATIENT.family

    imported = clients[0].post("/api/patients", headers={"X-Admin-Key": ADMIN_KEY}, json=[{
        "bsn": PATIENT.bsn, "given": PATIENT.given, "family": "Anders", "birth_date": PATIENT.birth_date,
        "sex": PATIENT.sex}])
    assert imported.status_code == 201, imported.get_data(as_text=True)
    for client in reversed(clients):
        status, bundle = _get(client, token, "Patient")
        assert status == 200 and bundle["entry"][0]["resource"]["name"][0]["family"] == "Anders"

    _rt(a).store.load_resources([(PATIENT.bsn, r) for r in _resources("entered-in-error")], replace=False)
    for client in reversed(clients):  # loaded data wins over the imported patient's generated content
        status, bundle = _get(client, token, ALCOHOL)
        assert status == 200 and _statuses(bundle) == {"entered-in-error"}


def test_a_cancelled_notification_refuses_its_token_at_once_in_every_app(db: str) -> None:
    a, b = _app(db), _app(db)
    token, notification_id = _pull_token(_rt(a).store)
    clients = a.test_client(), b.test_client()
    for client in clients:  # session, patient data and JSON cached in both
        assert _get(client, token, ALCOHOL)[0] == 200
    cancelled = clients[0].post(f"/api/sessions/{SESSION}/notifications/{notification_id}/cancel",
                                headers={"X-Admin-Key": ADMIN_KEY})
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    for client in reversed(clients):
        answer = client.get(f"/s/{SESSION}/fhir/{ALCOHOL}", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401 and "cancelled" in answer.get_data(as_text=True)
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


def test_a_changed_session_and_a_removed_token_count_at_once_in_every_app(db: str) -> None:
    a, b = _app(db), _app(db)
    token, _ = _pull_token(_rt(a).store)
    clients = a.test_client(), b.test_client()
    for client in clients:
        assert _get(client, token, ALCOHOL)[0] == 200
    provoked = clients[0].put(f"/api/sessions/{SESSION}/provoke", headers={"X-Admin-Key": ADMIN_KEY},
                              json={"provoke": ["unavailable-once"]})
    assert provoked.status_code == 200, provoked.get_data(as_text=True)
    other, _ = _pull_token(_rt(a).store, "cache-token-2")  # a new notification: its first request is refused once
    assert _get(clients[1], other, ALCOHOL)[0] == 503
    assert _get(clients[0], other, ALCOHOL)[0] == 200

    assert clients[0].delete(f"/api/sessions/{SESSION}", headers={"X-Admin-Key": ADMIN_KEY}).status_code < 300
    for client in reversed(clients):
        assert _get(client, token, ALCOHOL)[0] == 404  # no such session any more


def test_the_generation_changes_with_every_change_of_patient_data(tmp_path: Path) -> None:
    store = Store(sqlite_url(tmp_path / "s.sqlite"))
    seen = {store.patient_data_generation()}
    assert seen == {""}
    store.load_resources([(PATIENT.bsn, r) for r in _resources()], replace=False)
    seen.add(store.patient_data_generation())
    store.load_resources([(PATIENT.bsn, r) for r in _resources("final")], replace=True)
    seen.add(store.patient_data_generation())
    store.save_patients([patient_to_dict(replace(PATIENT, family="Anders"))])
    seen.add(store.patient_data_generation())
    assert len(seen) == 4
    store.load_resources([], replace=False)  # nothing changed: the same generation
    assert store.patient_data_generation() in seen


def test_the_patient_cache_is_bounded_and_reads_again_after_a_change(tmp_path: Path) -> None:
    store = Store(sqlite_url(tmp_path / "s.sqlite"))
    patients = PatientData(store, max_patients=2)
    first = patients.resources(PATIENTS[0].bsn)
    assert patients.resources(PATIENTS[0].bsn) is first  # parsed (generated) once
    for p in PATIENTS[1:5]:
        patients.resources(p.bsn)
    assert len(patients._cache) <= 2 + 2  # two patients, the patient list and the shared resources
    assert patients.resources(PATIENTS[0].bsn) is not first  # pushed out, generated again: equal
    assert patients.resources(PATIENTS[0].bsn) == first
    again = patients.resources(PATIENTS[0].bsn)
    store.save_patients([patient_to_dict(replace(PATIENTS[0], family="Anders"))])
    assert patients.resources(PATIENTS[0].bsn) is not again


def test_searchset_json_is_what_json_dumps_writes() -> None:
    own = Resources([{"resourceType": "Observation", "id": "o1", "note": [{"text": "Zoë – ½ glas"}], "value": 1.5},
                     {"resourceType": "Patient", "id": "p1", "name": [{"family": "Çelik"}]}])
    shared = Resources([{"resourceType": "Organization", "id": "org", "name": "Ziekenhuis ’t Hof"}])
    foreign = {"resourceType": "Practitioner", "id": "x", "name": [{"text": "né \u2028 ok"}]}
    bundle = {"resourceType": "Bundle", "id": "b", "type": "searchset", "total": 2,
              "link": [{"relation": "self", "url": "http://sim.test/s/x/fhir/Observation?code=a%7Cb"}],
              "entry": [{"fullUrl": f"http://sim.test/{r['resourceType']}/{r['id']}", "resource": r,
                         "search": {"mode": mode}}
                        for r, mode in ((own[0], "match"), (own[1], "include"), (shared[0], "include"),
                                        (foreign, "include"))]}
    for _ in range(2):  # made, then kept
        assert _json(bundle, (own, shared)) == json.dumps(bundle, ensure_ascii=False).encode()
    empty = {**bundle, "entry": []}
    assert _json(empty, (own, shared)) == json.dumps(empty, ensure_ascii=False).encode()
    assert _json(own[1], (own, shared)) == json.dumps(own[1], ensure_ascii=False).encode()
    assert own.json(foreign) is None and shared.json(own[0]) is None
