"""Self-tests of the external vendor node: two nodes (A sends, B receives) talk to each other on loopback.

No project code is used: the nodes run as subprocesses, the tests speak HTTP to them and sign their own
assertions with PyJWT from the key a node wrote into its state dir.
"""
from __future__ import annotations

import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import unquote, urlsplit

import jwt
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
BSN = "999993653"
OTHER_BSN = "999990639"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningNode:
    name: str
    url: str
    ura: str
    client_id: str
    state_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def fhir(self) -> str:
        return f"{self.url}/fhir"

    def state(self) -> dict[str, Any]:
        response = requests.get(f"{self.url}/_control/state", timeout=10)
        response.raise_for_status()
        return response.json()

    def private_key(self) -> bytes:
        return (self.state_dir / "signing-key.pem").read_bytes()

    def kid(self) -> str:
        return requests.get(f"{self.url}/jwks", timeout=10).json()["keys"][0]["kid"]


def _peer_config(peer: dict[str, Any]) -> dict[str, Any]:
    url = peer["url"]
    return {"ura": peer["ura"], "client_id": peer["client_id"],
            "as_receiver": {"token_url": f"{url}/token", "jwks_url": f"{url}/jwks", "fhir_base": f"{url}/fhir"},
            "as_sender": {"token_url": f"{url}/token", "jwks_url": f"{url}/jwks",
                          "notification_url": f"{url}/notify/Task"}}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningNode, RunningNode]]:
    base = tmp_path_factory.mktemp("external_vendor")
    specs = [{"name": "A", "ura": "90000303", "client_id": "acme-epd"},
             {"name": "B", "ura": "90000404", "client_id": "beta-his"}]
    for spec in specs:
        spec["url"] = f"http://127.0.0.1:{free_port()}"
    started: list[RunningNode] = []
    try:
        for spec, peer in ((specs[0], specs[1]), (specs[1], specs[0])):
            peer_file = base / f"peer-of-{spec['name']}.json"
            peer_file.write_text(json.dumps(_peer_config(peer)))
            log = base / f"{spec['name']}.log"
            state_dir = base / f"state-{spec['name']}"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "tests.external_vendor.node", "--port", spec["url"].rsplit(":", 1)[1],
                     "--ura", spec["ura"], "--client-id", spec["client_id"], "--state-dir", str(state_dir),
                     "--peer-config", str(peer_file), "--name", f"Ziekenhuis {spec['name']}"],
                    cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            started.append(RunningNode(spec["name"], spec["url"], spec["ura"], spec["client_id"], state_dir,
                                       process, log))
        deadline = time.monotonic() + 20
        for node in started:
            while True:
                if node.process.poll() is not None:
                    pytest.fail(f"node {node.name} exited: {node.log.read_text()}")
                try:
                    if requests.get(f"{node.url}/jwks", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"node {node.name} did not start: {node.log.read_text()}")
                time.sleep(0.05)
        yield started[0], started[1]
    finally:
        for node in started:
            node.process.terminate()
        for node in started:
            try:
                node.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=5)


# ------------------------------------------------------------------------------------------------ helpers

def ctl(action: str, node: RunningNode, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SPEELTUIN_")}
    environment.update({"SPEELTUIN_ACTION": action, "SPEELTUIN_SCENARIO": "self-test", "SPEELTUIN_SESSION": "t1"})
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "tests.external_vendor.ctl", action, "--node", node.url],
                          cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)


def receiver_env(receiver: RunningNode, bsn: str = BSN) -> dict[str, str]:
    """The SPEELTUIN_* variables as the test manager sets them, with the receiving node's endpoints."""
    return {"SPEELTUIN_PATIENT_BSN": bsn, "SPEELTUIN_TOKEN_URL": receiver.token_url,
            "SPEELTUIN_NOTIFICATION_URL": f"{receiver.url}/notify/Task", "SPEELTUIN_JWKS_URL": f"{receiver.url}/jwks",
            "SPEELTUIN_CLIENT_ID": receiver.client_id}


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def received(node: RunningNode, identifier: str) -> dict[str, Any] | None:
    return next((r for r in node.state()["received"] if r["identifier"] == identifier), None)


def pulled(node: RunningNode, identifier: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        record = received(node, identifier)
        if record and record["pull"]["status"] not in ("pending", "pulling"):
            return record
        return None
    return wait_for(f"{node.name} to finish pulling {identifier}", probe)


def notify(sender: RunningNode, receiver: RunningNode, bsn: str = BSN) -> dict[str, Any]:
    """A notifies B through ctl.py; returns A's record of the sent notification."""
    result = ctl("notify", sender, **receiver_env(receiver, bsn))
    assert result.returncode == 0, result.stdout + result.stderr
    identifier = result.stdout.split("sent Task ", 1)[1].split(" ", 1)[0]
    return next(s for s in sender.state()["sent"] if s["identifier"] == identifier)


def assertion(signer: RunningNode, audience: str, subject: str | None = None, lifetime: int = 60,
              **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": signer.client_id, "sub": subject or signer.client_id, "aud": audience, "iat": now,
            "exp": now + lifetime, "jti": secrets.token_urlsafe(16), **claims}
    return jwt.encode(body, signer.private_key(), algorithm="ES256", headers={"kid": signer.kid(), "typ": "JWT"})


def token_request(signer: RunningNode, server: RunningNode, authorization_base: str | None = None,
                  **overrides: Any) -> requests.Response:
    extra = {"authorization_base": authorization_base} if authorization_base else {}
    form = {"grant_type": JWT_BEARER,
            "assertion": assertion(signer, server.token_url, subject=signer.ura, **extra),
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": assertion(signer, server.token_url)}
    form.update(overrides)
    return requests.post(server.token_url, data={k: v for k, v in form.items() if v is not None}, timeout=10)


def access_token(signer: RunningNode, server: RunningNode, authorization_base: str | None = None) -> str:
    response = token_request(signer, server, authorization_base)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def raw_get(url: str, headers: dict[str, str]) -> requests.Response:
    """GET exactly this URL: requests/urllib3 would re-quote a broken escape such as %hl."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}" if parts.query else parts.path, headers=headers)
        answer = connection.getresponse()
        response = requests.Response()
        response.status_code = answer.status
        response.headers.update(dict(answer.getheaders()))
        response._content = answer.read()
        return response
    finally:
        connection.close()


def assert_outcome(response: requests.Response) -> dict[str, Any]:
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"], body
    return body


def valid_task(owner: RunningNode, sender: RunningNode, bsn: str = BSN) -> dict[str, Any]:
    """A Notification Task per SPEC §4 written here by hand (not by the node)."""
    return {
        "resourceType": "Task",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}],
        "groupIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "status": "requested", "intent": "proposal",
        "code": {"coding": [{"system": "http://fhir.nl/fhir/NamingSystem/TaskCode", "code": "pull-notification"}]},
        "for": {"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": bsn}},
        "authoredOn": "2025-06-01T10:00:00+02:00",
        "restriction": {"period": {"end": "2099-06-01T10:00:00+02:00"}},
        "requester": {"agent": {"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": sender.ura}},
                      "onBehalfOf": {"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/ura",
                                                    "value": sender.ura}}},
        "owner": {"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": owner.ura}},
        "input": [
            {"type": {"coding": [{"system": "http://fhir.nl/fhir/NamingSystem/TaskParameter",
                                  "code": "authorization-base"}]}, "valueString": secrets.token_hex(8)},
            {"type": {"coding": [{"system": "http://loinc.org", "code": "11450-4"}]}, "valueString": "Condition"},
        ],
    }


# ------------------------------------------------------------------------------------------------ the flow

def test_notify_then_the_receiver_pulls_every_query_and_the_letter(nodes: tuple[RunningNode, RunningNode]) -> None:
    a, b = nodes
    result = ctl("notify", a, **receiver_env(b))
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(result.stdout.strip().splitlines()) == 1 and "peer answered 201" in result.stdout
    sent = a.state()["sent"][-1]
    assert sent["peer_status"] == 201 and sent["location"].startswith(f"{b.url}/notify/Task/")

    record = pulled(b, sent["identifier"])
    assert record["http_status"] == 201 and record["bsn"] == BSN
    pull = record["pull"]
    assert pull["status"] == "done", pull
    assert pull["token"]["status"] == 200
    queries = [unquote(q["query"]) for q in pull["queries"]]
    assert len(queries) == 29 and len(set(queries)) == 29, queries
    assert all(q["status"] == 200 and q["bundle_type"] == "searchset" for q in pull["queries"]), pull["queries"]
    for expected in ("Patient?_include=Patient:general-practitioner", "Condition", "DocumentReference?status=current",
                     "Observation/$lastn?code=http://loinc.org|29463-7",
                     "Appointment?status=booked,pending,proposed"):
        assert expected in queries
    by_query = {unquote(q["query"]): q for q in pull["queries"]}
    assert by_query["Observation/$lastn?code=http://loinc.org|29463-7"]["entries"] == 1  # the latest of two weights
    assert [d["status"] for d in pull["documents"]] == [200]
    assert pull["documents"][0]["pdf_ok"] and pull["documents"][0]["content_type"] == "application/pdf"
    grants = [t for t in a.state()["tokens"] if t["kind"] == "pull" and t["outcome"] == "granted"]
    assert any(t.get("notification") == sent["identifier"].split("|")[1] for t in grants)


def test_update_is_a_new_notification_with_the_same_group(nodes: tuple[RunningNode, RunningNode]) -> None:
    a, b = nodes
    first = notify(a, b, "999993872")
    result = ctl("update", a, **receiver_env(b, "999993872"))
    assert result.returncode == 0, result.stdout + result.stderr
    second = a.state()["sent"][-1]
    assert second["identifier"] != first["identifier"]
    assert second["group_identifier"] == first["group_identifier"]
    assert second["authorization_base"] != first["authorization_base"]
    assert pulled(b, second["identifier"])["group_identifier"] == first["group_identifier"]


def test_cancel_stops_tokens_and_pulls_for_that_authorization_base(nodes: tuple[RunningNode, RunningNode]) -> None:
    a, b = nodes
    sent = notify(a, b)
    assert pulled(b, sent["identifier"])["pull"]["status"] == "done"
    earlier_token = access_token(b, a, sent["authorization_base"])
    headers = {"Authorization": f"Bearer {earlier_token}", "Accept": "application/fhir+json"}
    assert requests.get(f"{a.fhir}/Patient", headers=headers, timeout=10).status_code == 200

    result = ctl("cancel", a, **receiver_env(b), SPEELTUIN_TASK_IDENTIFIER=sent["identifier"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "peer answered 200" in result.stdout
    assert received(b, sent["identifier"])["status"] == "cancelled"  # type: ignore[index]
    assert b.state()["cancellations_received"][-1]["http_status"] == 200
    mine = next(s for s in a.state()["sent"] if s["identifier"] == sent["identifier"])
    assert mine["status"] == "cancelled" and mine["cancel_status"] == 200

    # the receiving node asks again: the sender's AS refuses the authorization base
    answer = requests.post(f"{b.url}/_control/request-token",
                           json={"authorization_base": sent["authorization_base"]}, timeout=10).json()
    assert answer["peer_status"] == 400 and answer["peer_body"]["error"] == "invalid_grant", answer
    refused = token_request(b, a, sent["authorization_base"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert refused.headers["Cache-Control"] == "no-store"
    # and its FHIR server refuses the token issued before the cancellation
    after = requests.get(f"{a.fhir}/Patient", headers=headers, timeout=10)
    assert after.status_code == 401 and 'error="invalid_token"' in after.headers["WWW-Authenticate"]
    assert_outcome(after)


def test_cancel_of_an_unknown_notification_is_404(nodes: tuple[RunningNode, RunningNode]) -> None:
    a, b = nodes
    token = access_token(a, b)
    task = valid_task(b, a)
    task["status"] = "cancelled"
    identifier = f"urn:ietf:rfc:3986|{task['identifier'][0]['value']}"
    response = requests.put(f"{b.url}/notify/Task", params={"identifier": identifier}, json=task, timeout=10,
                            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
    assert response.status_code == 404
    assert_outcome(response)
    result = ctl("cancel", a, SPEELTUIN_TASK_IDENTIFIER="urn:ietf:rfc:3986|urn:uuid:" + str(uuid.uuid4()))
    assert result.returncode == 1 and "cancel: failed" in result.stdout


# ------------------------------------------------------------------------------------------------ receiver refusals

def _identifier_object(task: dict[str, Any]) -> None:
    task["identifier"] = task["identifier"][0]


def _bad_bsn(task: dict[str, Any]) -> None:
    task["for"]["identifier"]["value"] = "999999245"


def _wrong_intent(task: dict[str, Any]) -> None:
    task["intent"] = "order"


def _plural_code_system(task: dict[str, Any]) -> None:
    task["code"]["coding"][0]["system"] = "http://fhir.nl/fhir/NamingSystem/TaskCodes"


def _no_authorization_base(task: dict[str, Any]) -> None:
    task["input"] = task["input"][1:]


def _value_instead_of_value_string(task: dict[str, Any]) -> None:
    task["input"][1]["value"] = task["input"][1].pop("valueString")


def _broken_escape(task: dict[str, Any]) -> None:
    task["input"][1]["valueString"] = "Condition?code=%hl"


def _ended_period(task: dict[str, Any]) -> None:
    task["restriction"]["period"]["end"] = "2020-01-01T00:00:00+01:00"


@pytest.mark.parametrize("defect", [_identifier_object, _bad_bsn, _wrong_intent, _plural_code_system,
                                    _no_authorization_base, _value_instead_of_value_string, _broken_escape,
                                    _ended_period], ids=lambda f: f.__name__.strip("_"))
def test_a_defective_task_is_refused_and_not_pulled(nodes: tuple[RunningNode, RunningNode],
                                                   defect: Callable[[dict[str, Any]], None]) -> None:
    a, b = nodes
    token = access_token(a, b)  # a valid notification token, signed as node A
    task = valid_task(b, a)
    defect(task)
    before = b.state()
    response = requests.post(f"{b.url}/notify/Task", json=task, timeout=10, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
    assert response.status_code in (400, 422), response.text
    assert_outcome(response)
    assert "Location" not in response.headers
    time.sleep(0.2)
    after = b.state()
    assert len(after["received"]) == len(before["received"])  # nothing accepted, so nothing pulled
    assert len(after["rejected"]) == len(before["rejected"]) + 1


def test_the_hand_written_task_itself_is_accepted(nodes: tuple[RunningNode, RunningNode]) -> None:
    """The baseline of the defect cases: without a defect the same Task gets 201 + Location."""
    a, b = nodes
    token = access_token(a, b)
    task = valid_task(b, a)
    response = requests.post(f"{b.url}/notify/Task", json=task, timeout=10, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
    assert response.status_code == 201, response.text
    assert response.headers["Location"].startswith(f"{b.url}/notify/Task/")
    # A never issued that authorization base, so B's pull stops at the token
    record = pulled(b, f"urn:ietf:rfc:3986|{task['identifier'][0]['value']}")
    assert record["pull"]["status"] == "token-refused" and record["pull"]["token"]["error"] == "invalid_grant"


def test_the_notification_endpoint_wants_a_notification_token(nodes: tuple[RunningNode, RunningNode]) -> None:
    a, b = nodes
    task = valid_task(b, a)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = requests.post(f"{b.url}/notify/Task", json=task, headers=headers, timeout=10)
        assert response.status_code == 401
        assert 'Bearer error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert_outcome(response)


# ------------------------------------------------------------------------------------------------ AS checks

def test_token_endpoint_errors(nodes: tuple[RunningNode, RunningNode]) -> None:
    a, b = nodes
    def error(response: requests.Response) -> tuple[int, str]:
        assert response.headers["Cache-Control"] == "no-store"
        return response.status_code, response.json()["error"]

    assert error(token_request(a, b, client_assertion=assertion(a, b.url + "/token/"))) == (401, "invalid_client")
    assert error(token_request(a, b, client_assertion=assertion(a, b.token_url, lifetime=600))) == \
        (401, "invalid_client")
    assert error(token_request(b, b)) == (401, "invalid_client")  # B's own key is not the peer's
    replayed = assertion(a, b.token_url)
    assert token_request(a, b, client_assertion=replayed).status_code == 200
    assert error(token_request(a, b, client_assertion=replayed)) == (401, "invalid_client")
    assert error(token_request(a, b, assertion=assertion(a, b.token_url, subject="12345678"))) == \
        (400, "invalid_grant")
    assert error(token_request(b, a, authorization_base="never-issued")) == (400, "invalid_grant")
    assert error(token_request(a, b, grant_type=None)) == (400, "invalid_request")
    assert error(token_request(a, b, grant_type="password")) == (400, "unsupported_grant_type")
    unsigned = jwt.encode({"iss": a.client_id, "sub": a.client_id, "aud": b.token_url, "iat": int(time.time()),
                           "exp": int(time.time()) + 60, "jti": "x"}, key=None, algorithm="none")
    assert error(token_request(a, b, client_assertion=unsigned)) == (401, "invalid_client")
    good = token_request(a, b)
    assert good.status_code == 200 and good.json()["token_type"] == "Bearer" and good.json()["expires_in"] > 0


# ------------------------------------------------------------------------------------------------ FHIR server

@pytest.fixture(scope="module")
def pull_token(nodes: tuple[RunningNode, RunningNode]) -> str:
    a, b = nodes
    sent = notify(a, b)
    return access_token(b, a, sent["authorization_base"])


def test_fhir_server_without_or_with_a_bad_token_is_401(nodes: tuple[RunningNode, RunningNode]) -> None:
    a, _ = nodes
    for headers in ({}, {"Authorization": "Bearer nonsense"}):
        response = requests.get(f"{a.fhir}/Patient", headers={"Accept": "application/fhir+json", **headers},
                                timeout=10)
        assert response.status_code == 401
        assert 'Bearer error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert_outcome(response)


def test_fhir_server_answers_a_searchset(nodes: tuple[RunningNode, RunningNode], pull_token: str) -> None:
    a, _ = nodes
    url = f"{a.fhir}/Observation/$lastn?code=http%3A%2F%2Floinc.org%7C29463-7"
    response = requests.get(url, timeout=10, headers={"Authorization": f"Bearer {pull_token}",
                                                      "Accept": "application/fhir+json"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/fhir+json")
    bundle = response.json()
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    assert bundle["link"][0]["relation"] == "self" and "29463-7" in unquote(bundle["link"][0]["url"])
    entry = bundle["entry"][0]
    assert entry["search"]["mode"] == "match" and entry["fullUrl"].endswith("/" + entry["resource"]["id"])
    assert entry["resource"]["effectiveDateTime"].startswith("2025")  # the newer of the two weights
    assert entry["resource"]["meta"]["profile"] == ["http://nictiz.nl/fhir/StructureDefinition/zib-BodyWeight"]


@pytest.mark.parametrize("path, status", [
    ("Condition?_count=abc", 400),
    ("Observation?code=%hl", 400),
    ("Observation?unknown-parameter=1", 400),
    ("Patient?_include=Patient:nonsense", 400),
    ("Foo?x=1", 404),
    ("Condition/does-not-exist", 404),
    (f"Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|{OTHER_BSN}", 403),
    (f"Patient/pat-{OTHER_BSN}", 403),
    (f"Binary/letter-{OTHER_BSN}-1-pdf", 403),
])
def test_fhir_server_refusals(nodes: tuple[RunningNode, RunningNode], pull_token: str, path: str, status: int) -> None:
    a, _ = nodes
    response = raw_get(f"{a.fhir}/{path}", {"Authorization": f"Bearer {pull_token}",
                                            "Accept": "application/fhir+json"})
    assert response.status_code == status, response.text
    assert_outcome(response)


def test_fhir_server_serves_the_letter_as_pdf_and_as_binary(nodes: tuple[RunningNode, RunningNode],
                                                           pull_token: str) -> None:
    a, _ = nodes
    auth = {"Authorization": f"Bearer {pull_token}"}
    bundle = requests.get(f"{a.fhir}/DocumentReference?status=current", timeout=10,
                          headers={**auth, "Accept": "application/fhir+json"}).json()
    url = bundle["entry"][0]["resource"]["content"][0]["attachment"]["url"]
    assert url.startswith("Binary/")
    raw = requests.get(f"{a.fhir}/{url}", headers={**auth, "Accept": "application/pdf"}, timeout=10)
    assert raw.status_code == 200 and raw.headers["Content-Type"] == "application/pdf"
    assert raw.content.startswith(b"%PDF-") and raw.content.rstrip().endswith(b"%%EOF")
    resource = requests.get(f"{a.fhir}/{url}", headers={**auth, "Accept": "application/fhir+json"}, timeout=10)
    assert resource.json()["resourceType"] == "Binary" and resource.json()["contentType"] == "application/pdf"


# ------------------------------------------------------------------------------------------------ ctl

def test_ctl_pull_and_usage(nodes: tuple[RunningNode, RunningNode]) -> None:
    a, b = nodes
    result = ctl("pull", b)
    assert result.returncode == 0 and result.stdout.startswith("pull: nothing to do")
    refused = ctl("notify", a, **receiver_env(b, "999999245"))
    assert refused.returncode == 1 and "not a valid BSN" in refused.stdout
    env = dict(receiver_env(b), SPEELTUIN_NOTIFICATION_URL=f"http://127.0.0.1:{free_port()}/notify/Task")
    unreachable = ctl("notify", a, **env)
    assert unreachable.returncode == 1 and "notify: failed" in unreachable.stdout
