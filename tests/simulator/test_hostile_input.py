"""Hostile input found by an attacker's tour of `speeltuin serve` (issue 13): each once gave a 500. Now each gets the
endpoint's own error format (RFC 6749 on token endpoints, an OperationOutcome on FHIR ones, {"error"} on /api) and
nothing is stored from a refused request."""
from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from flask.testing import FlaskClient

from simulator.app import create_app
from simulator.runtime import SimulatorConfig
from speeltuin.defaults import sqlite_url
from speeltuin.keys import Signer

ADMIN = {"X-Admin-Key": "hostile-admin-key-0123456789"}
DEEP = "[" * 3000 + "]" * 3000
JWT_BEARER = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
              "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlaskClient, Signer]]:
    work = tmp_path_factory.mktemp("hostile")
    app = create_app(SimulatorConfig(database_url=sqlite_url(work / "s.sqlite"), admin_key=ADMIN["X-Admin-Key"],
                                     public_url="http://sim.test"))
    vendor = Signer.load_or_create(app.extensions["speeltuin"].store.__class__(sqlite_url(work / "vendor.sqlite")))
    test_client = app.test_client()
    for session_id in ("hostile-1", "hostile-2"):  # the vendor is the sender: it asks for notification tokens
        created = test_client.post("/api/sessions", headers=ADMIN, json={
            "id": session_id, "vendor_role": "sender", "vendor_ura": "12345678", "vendor_jwks": vendor.jwks(),
            "vendor_client_id": "the-vendor", "vendor_token_url": "http://127.0.0.1:9/token",  # nothing listens
            "vendor_fhir_base": "http://127.0.0.1:9/fhir"})
        assert created.status_code == 201, created.text
    yield test_client, vendor


def _jwt(header: str, payload: str) -> str:
    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()
    return f"{b64(header)}.{b64(payload)}.{b64('signature')}"


@pytest.mark.parametrize("assertion", [
    _jwt('{"alg":"ES256","typ":"JWT","kid":"k"}', '{"iss":"the-vendor","sub":"the-vendor","aud":"x","exp":1'
         + "0" * 400 + ',"iat":1,"jti":"a"}'),
    _jwt('{"alg":"ES256","typ":"JWT","kid":"k","iat":1' + "0" * 400 + "}", '{"iss":"the-vendor"}'),
    _jwt('{"alg":"ES256","x":' + DEEP + "}", '{"iss":"the-vendor"}'),
    _jwt('{"alg":"ES256","typ":"JWT"}', '{"iss":' + DEEP + "}"),
], ids=["exp-beyond-float", "header-number-beyond-float", "deep-header", "deep-payload"])
def test_assertions_no_parser_survives_are_refused_without_credentials(client: tuple[FlaskClient, Signer],
                                                                       assertion: str) -> None:
    answer = client[0].post("/s/hostile-1/token", data={**JWT_BEARER, "assertion": assertion,
                                                        "client_assertion": assertion})
    assert answer.status_code == 401 and answer.json["error"] == "invalid_client", answer.text


@pytest.mark.parametrize("path,method", [("/api/sessions", "POST"), ("/api/patients", "POST"),
                                         ("/api/sessions/hostile-1/notify", "POST"),
                                         ("/api/sessions/hostile-1/provoke", "PUT"),
                                         ("/api/sessions/hostile-1/suppressions/BUNDLE-010", "PUT")])
@pytest.mark.parametrize("body", [DEEP, "[1, 2]", '"a string"'], ids=["deep", "list", "string"])
def test_admin_calls_answer_bodies_of_the_wrong_shape_with_400(client: tuple[FlaskClient, Signer], path: str,
                                                               method: str, body: str) -> None:
    answer = client[0].open(path, method=method, data=body, content_type="application/json", headers=ADMIN)
    assert answer.status_code == 400 and isinstance(answer.json.get("error"), str), answer.text


def test_a_defect_that_is_not_a_name_is_400(client: tuple[FlaskClient, Signer]) -> None:
    answer = client[0].post("/api/sessions/hostile-1/notify", headers=ADMIN, json={"bsn": "999993653",
                                                                                   "defect": ["x"]})
    assert answer.status_code == 400 and "defect" in answer.json["error"]


def _notification_token(client: FlaskClient, vendor: Signer, session_id: str, **changes: Any) -> Any:
    token_url = f"http://sim.test/s/{session_id}/token"
    form = vendor.token_request_form("the-vendor", "12345678", token_url)
    if changes:  # the same client assertion with other claims, signed by the vendor
        claims = json.loads(base64.urlsafe_b64decode(form["client_assertion"].split(".")[1] + "=="))
        form["client_assertion"] = vendor.sign({**claims, **changes})
    return client.post(f"/s/{session_id}/token", data=form)


def test_a_deep_notification_task_is_a_400_operation_outcome(client: tuple[FlaskClient, Signer]) -> None:
    test_client, vendor = client
    token = _notification_token(test_client, vendor, "hostile-1").json["access_token"]
    answer = test_client.post("/s/hostile-1/notify/Task", data=DEEP, content_type="application/fhir+json",
                              headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400 and answer.json["resourceType"] == "OperationOutcome", answer.text


def test_a_jti_is_a_replay_only_within_its_own_session(client: tuple[FlaskClient, Signer]) -> None:
    test_client, vendor = client
    jti = f"shared-{uuid.uuid4()}-" + "x" * 300  # and longer than any column of 200 characters
    first = _notification_token(test_client, vendor, "hostile-1", jti=jti)
    assert first.status_code == 200, first.text
    other_session = _notification_token(test_client, vendor, "hostile-2", jti=jti)
    assert other_session.status_code == 200, other_session.text
    replay = _notification_token(test_client, vendor, "hostile-1", jti=jti)
    assert replay.status_code == 401 and "was used before" in replay.json["error_description"]


def test_an_unexpected_error_answers_in_the_endpoints_own_format(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(SimulatorConfig(database_url=sqlite_url(tmp_path / "s.sqlite"),
                                     admin_key=ADMIN["X-Admin-Key"]))
    store = app.extensions["speeltuin"].store

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the database fell over")

    monkeypatch.setattr(store, "get_session", broken)
    test_client = app.test_client()
    token = test_client.post("/s/any-session/token", data=JWT_BEARER)
    assert token.status_code == 500 and token.json["error"] == "server_error", token.text
    assert "fell over" not in token.text  # the caller learns the kind of failure, not its details
    api = test_client.get("/api/sessions/any-session", headers=ADMIN)
    assert api.status_code == 500 and api.json == {"error": "internal error: RuntimeError"}
    fhir = test_client.get("/s/any-session/fhir/Patient")
    assert fhir.status_code == 500 and fhir.json["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("extra", [0, 1])
def test_an_opaque_authorization_base_is_kept_whole_or_refused_never_cut_short(client: tuple[FlaskClient, Signer],
                                                                              extra: int) -> None:
    from datetime import datetime, timedelta, timezone

    from simulator.endpoints.notification_endpoint import MAX_OPAQUE
    from simulator.outbound.task_builder import build_notification_task
    from speeltuin import defaults

    test_client, vendor = client
    base = "b" * (MAX_OPAQUE + extra)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    task = build_notification_task(bsn="999993653", patient_name="S M", sender_ura="12345678", sender_name="v",
                                   receiver_ura=defaults.OWN_URA, authorization_base=base, authored_on=now,
                                   period_end=now + timedelta(days=1))
    token = _notification_token(test_client, vendor, "hostile-2").json["access_token"]
    answer = test_client.post("/s/hostile-2/notify/Task", json=task, content_type="application/fhir+json",
                              headers={"Authorization": f"Bearer {token}"})
    kept = [n.authorization_base for n in test_client.application.extensions["speeltuin"].store
            .list_notifications("hostile-2")]
    if extra:
        assert answer.status_code == 400 and "authorization-base" in answer.text, answer.text
        assert base not in kept and all(len(b) <= MAX_OPAQUE for b in kept)
    else:
        assert answer.status_code == 201, answer.text
        assert base in kept
