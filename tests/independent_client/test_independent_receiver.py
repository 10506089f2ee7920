"""Acceptance test: a vendor that knows only SPEC.md and README.md can use the
simulator as the *sending* node while the vendor plays the *receiving* node.

The simulator runs as a real process: `speeltuin serve`, and `speeltuin service`
(the simulator behind the validating proxy, started without any public URL:
the vendor uses the endpoints it announces); the vendor (vendor.py) is an
in-process HTTP server on loopback. Nothing from the simulator's packages is
imported.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import jwt
import pytest
import requests

from .vendor import (
    BSN_SYSTEM,
    CLIENT_ASSERTION_TYPE,
    GRANT_JWT_BEARER,
    TASK_CODE,
    URA_SYSTEM,
    VendorNode,
    bsn_11_check,
    normalize_query,
    task_inputs,
)

BSN = "999993653"  # SPEC §7, Suzanne Moulin: the full BgZ test patient

# SPEC §6, rows 1-28, plus the documents query ("+")
BGZ_QUERIES = [
    "Patient?_include=Patient:general-practitioner",
    "Coverage?_include=Coverage:payor:Patient&_include=Coverage:payor:Organization",
    "Consent?category=http://snomed.info/sct|11291000146105",
    "Consent?category=http://snomed.info/sct|11341000146107",
    "Observation/$lastn?category=http://snomed.info/sct|118228005,http://snomed.info/sct|384821006",
    "Condition",
    "Observation/$lastn?code=http://snomed.info/sct|365508006",
    "Observation?code=http://snomed.info/sct|228366006",
    "Observation?code=http://snomed.info/sct|228273003",
    "Observation?code=http://snomed.info/sct|365980008",
    "NutritionOrder",
    "Flag",
    "AllergyIntolerance",
    "MedicationStatement?category=urn:oid:2.16.840.1.113883.2.4.3.11.60.20.77.5.3|6&_include=MedicationStatement:medication",
    "MedicationRequest?category=http://snomed.info/sct|16076005&_include=MedicationRequest:medication",
    "MedicationDispense?category=http://snomed.info/sct|422037009&_include=MedicationDispense:medication",
    "DeviceUseStatement?_include=DeviceUseStatement:device",
    "Immunization?status=completed",
    "Observation/$lastn?code=http://loinc.org|85354-9",
    "Observation/$lastn?code=http://loinc.org|29463-7",
    "Observation/$lastn?code=http://loinc.org|8302-2,http://loinc.org|8306-3,http://loinc.org|8308-9",
    "Observation/$lastn?category=http://snomed.info/sct|275711006&_include=Observation:related-target&_include=Observation:specimen",
    "Procedure?category=http://snomed.info/sct|387713003",
    "Encounter?class=http://hl7.org/fhir/v3/ActCode|IMP,http://hl7.org/fhir/v3/ActCode|ACUTE,http://hl7.org/fhir/v3/ActCode|NONAC",
    "ProcedureRequest?status=active",
    "ImmunizationRecommendation",
    "DeviceRequest?status=active&_include=DeviceRequest:device",
    "Appointment?status=booked,pending,proposed",
]
assert len(BGZ_QUERIES) == 28
DOCUMENTS_QUERY = "DocumentReference?status=current"


# --------------------------------------------------------------------------- fixtures
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", params=["serve", "service"])
def simulator(request, tmp_path_factory):
    """`speeltuin serve` or `speeltuin service` as a real process on a free loopback port with a temp SQLite
    store; the service is given no public URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    workdir = tmp_path_factory.mktemp("speeltuin")
    db = workdir / "speeltuin.sqlite"
    admin_key = secrets.token_urlsafe(24)
    exe = Path(sys.executable).with_name("speeltuin")
    env = dict(os.environ, SPEELTUIN_ADMIN_KEY=admin_key)
    env.pop("SPEELTUIN_DATABASE_URL", None)
    log = open(workdir / "serve.log", "wb")
    command = [str(exe), request.param, "--host", "127.0.0.1", "--port", str(port), "--db", f"sqlite:///{db}"]
    if request.param == "serve":
        command += ["--public-url", base]
    proc = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"simulator exited with {proc.returncode}: {(workdir / 'serve.log').read_text()}")
            try:
                r = requests.get(f"{base}/api/sessions", headers={"X-Admin-Key": admin_key}, timeout=1)
                if r.status_code < 500:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("simulator did not answer within 15 s")
            time.sleep(0.1)
        yield {"base": base, "admin_key": admin_key, "log": workdir / "serve.log", "kind": request.param}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def vendor(simulator):
    """Our receiving node: a fresh one for each kind of simulator process."""
    node = VendorNode().start()
    yield node
    node.stop()


def _admin(simulator) -> dict:
    return {"X-Admin-Key": simulator["admin_key"], "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def session(simulator, vendor):
    """README step 2: a receiver-role session carrying the vendor's OWN JWKS."""
    body = {
        "name": "independent receiver",
        "vendor_role": "receiver",
        "vendor_ura": vendor.ura,
        "vendor_jwks": vendor.jwks,
        "vendor_client_id": vendor.client_id,
        "vendor_token_url": vendor.token_url,
        "vendor_notification_base": vendor.notification_base,
    }
    r = requests.post(f"{simulator['base']}/api/sessions", json=body, headers=_admin(simulator), timeout=10)
    assert r.status_code in (200, 201), r.text
    answer = r.json()
    endpoints = answer["endpoints"]
    for name in ("client_id", "token_url", "jwks_url", "fhir_base"):
        assert endpoints.get(name), f"session answer lacks endpoints.{name}: {answer}"
    # We asked for our own client id; the answer is what counts (README), but it should honour it.
    assert endpoints["client_id"] == vendor.client_id, endpoints
    # Register the simulator as a client of our AS-R. Its JWKS comes from jwks_url. The README does
    # not say which client_id the simulator's own assertions carry, so iss is not pinned here
    # (iss == sub is still checked); see the report.
    vendor.configure_sender(endpoints["jwks_url"])
    return answer


@pytest.fixture(scope="module")
def notified(simulator, vendor, session):
    """README step 3: the simulator gets a token from our AS-R and POSTs the Notification Task."""
    r = requests.post(
        f"{simulator['base']}/api/sessions/{session['id']}/notify",
        json={"bsn": BSN, "workflow_task": False, "period_days": 365},
        headers=_admin(simulator), timeout=15,
    )
    assert r.status_code in (200, 201, 202), r.text
    tasks = vendor.wait_for_task(timeout=10)
    assert tasks, (
        f"no Notification Task arrived; notify answered {r.status_code} {r.text[:500]}; "
        f"AS-R saw {vendor.token_requests}; problems {vendor.problems}"
    )
    assert len(tasks) == 1
    task_id, task = next(iter(vendor.tasks.items()))
    return {"notify_answer": r.json(), "task": task, "task_id": task_id}


@pytest.fixture(scope="module")
def pull(vendor, session, notified):
    """SPEC §3 step 4: a pull token from AS-S with our own client + authorization assertion."""
    ep = session["endpoints"]
    [auth_base] = task_inputs(notified["task"], "authorization-base")
    token = vendor.get_pull_token(ep["client_id"], ep["token_url"], auth_base["valueString"])
    return {"token": token, "fhir_base": ep["fhir_base"], "authorization_base": auth_base["valueString"]}


# --------------------------------------------------------------------------- tests
def test_the_announced_endpoints_are_where_it_listens(simulator, session):
    """README: the session's answer names the endpoints to use; the service was told no address."""
    for name in ("token_url", "jwks_url", "fhir_base"):
        assert session["endpoints"][name].startswith(simulator["base"] + "/s/"), session["endpoints"]


def test_the_service_records_both_directions(simulator, session, pull):
    """README (the session's evidence): behind the proxy, the simulator's notification to us and our pull
    token request are both recorded."""
    if simulator["kind"] != "service":
        pytest.skip("`speeltuin serve` alone has no proxy that records")
    headers = {"X-Session-Key": session["access_key"]}
    deadline, tags = time.monotonic() + 10, set()
    while time.monotonic() < deadline and not {("notification", "to-vendor"), ("token-request", "to-simulator")} <= tags:
        r = requests.get(f"{simulator['base']}/api/sessions/{session['id']}/exchanges", headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        tags = {(ex["tag"], ex["direction"]) for ex in r.json()["exchanges"]}
        time.sleep(0.2)
    assert {("notification", "to-vendor"), ("token-request", "to-simulator")} <= tags, tags


def test_session_created_with_own_jwks(session, vendor):
    assert session["vendor_role"] == "receiver"
    ep = session["endpoints"]
    assert ep["token_url"].startswith("http://127.0.0.1:")
    jwks = requests.get(ep["jwks_url"], timeout=5).json()
    assert jwks["keys"], "the simulator publishes no signing key"
    # the session stores our key (not a generated one)
    stored = session.get("config", {}).get("vendor_jwks")
    if stored is not None:
        assert [k["kid"] for k in stored["keys"]] == [vendor.kid]


def test_as_r_issued_notification_token(vendor, notified):
    """Our AS-R verified the simulator's two assertions (signature via jwks_url, aud = our token URL)."""
    ok = [e for e in vendor.token_requests if e["outcome"][0] == 200]
    assert ok, vendor.token_requests
    form = ok[0]["form"]
    assert form["grant_type"] == [GRANT_JWT_BEARER]
    assert form["client_assertion_type"] == [CLIENT_ASSERTION_TYPE]
    for name in ("client_assertion", "assertion"):
        header = jwt.get_unverified_header(form[name][0])
        assert header["typ"] == "JWT" and header.get("kid"), header
    # SPEC §5.2: authorization assertion sub = requester.onBehalfOf URA of the Task
    on_behalf = notified["task"]["requester"]["onBehalfOf"]["identifier"]
    assert on_behalf["system"] == URA_SYSTEM
    assert vendor.task_token_ura[notified["task_id"]] == on_behalf["value"]
    assert not vendor.problems, vendor.problems


def test_notification_task_content(vendor, notified):
    """SPEC §4, checked from the receiving side."""
    task = notified["task"]
    assert isinstance(task["identifier"], list) and task["identifier"][0]["value"].startswith("urn:uuid:")
    assert task["groupIdentifier"]["value"].startswith("urn:uuid:")
    assert task["status"] == "requested"
    assert task["intent"] == "proposal"
    assert {"system": TASK_CODE, "code": "pull-notification"} in [
        {k: c.get(k) for k in ("system", "code")} for c in task["code"]["coding"]
    ]
    assert task["for"]["identifier"] == {"system": BSN_SYSTEM, "value": BSN} or (
        task["for"]["identifier"]["system"] == BSN_SYSTEM and task["for"]["identifier"]["value"] == BSN
    )
    assert bsn_11_check(task["for"]["identifier"]["value"])
    assert task["owner"]["identifier"]["system"] == URA_SYSTEM
    assert task["owner"]["identifier"]["value"] == vendor.ura
    authored = datetime.fromisoformat(task["authoredOn"])
    end = datetime.fromisoformat(task["restriction"]["period"]["end"])
    assert authored.tzinfo is not None and end > authored and end > datetime.now(timezone.utc)
    assert len(task_inputs(task, "authorization-base")) == 1


def test_task_offers_all_28_bgz_queries(notified):
    offered = {normalize_query(i["valueString"]) for i in task_inputs(notified["task"], "search-resource")}
    missing = [q for q in BGZ_QUERIES if normalize_query(q) not in offered]
    assert not missing, f"BgZ queries not offered in the Task: {missing}"
    assert normalize_query(DOCUMENTS_QUERY) in offered


def test_pull_every_offered_query(vendor, notified, pull):
    """SPEC §3 step 5 / §6.1: every search-resource answers 200 with a searchset Bundle;
    for the full test patient all 28 BgZ queries return entries."""
    bgz = {normalize_query(q) for q in BGZ_QUERIES}
    empty, failures = [], []
    for inp in task_inputs(notified["task"], "search-resource"):
        query = inp["valueString"]
        r = vendor.fhir_get(pull["fhir_base"], query, pull["token"])
        if r.status_code != 200:
            failures.append(f"{query}: HTTP {r.status_code} {r.text[:200]}")
            continue
        assert "json" in r.headers.get("Content-Type", ""), (query, r.headers.get("Content-Type"))
        bundle = r.json()
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "searchset":
            failures.append(f"{query}: not a searchset Bundle: {str(bundle)[:200]}")
            continue
        assert any(link.get("relation") == "self" for link in bundle.get("link", [])), query
        matches = [e for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]
        if normalize_query(query) in bgz and not matches:
            empty.append(query)
    assert not failures, failures
    assert not empty, f"BgZ queries without entries for the full patient {BSN}: {empty}"


def test_referral_letter_pdf(vendor, pull):
    """SPEC §3 step 6: DocumentReference?status=current, then the Binary as application/pdf."""
    r = vendor.fhir_get(pull["fhir_base"], DOCUMENTS_QUERY, pull["token"])
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "searchset"
    docs = [e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == "DocumentReference"]
    assert docs, "no current DocumentReference (every test patient has a referral letter)"
    for doc in docs:
        url = doc["content"][0]["attachment"]["url"]
        pdf = vendor.fhir_get(pull["fhir_base"], url, pull["token"], accept="application/pdf")
        assert pdf.status_code == 200, (url, pdf.status_code, pdf.text[:200])
        assert pdf.headers["Content-Type"].startswith("application/pdf"), pdf.headers
        assert pdf.content.startswith(b"%PDF-"), pdf.content[:20]
        # SPEC §3 step 6: with application/fhir+json the same Binary comes as a resource, base64
        res = vendor.fhir_get(pull["fhir_base"], url, pull["token"])
        assert res.status_code == 200, res.text[:200]
        binary = res.json()
        assert binary["resourceType"] == "Binary" and binary["contentType"].startswith("application/pdf")
        assert base64.b64decode(binary["content"]) == pdf.content


def test_token_with_wrong_aud_is_invalid_client(vendor, session, pull):
    ep = session["endpoints"]
    form = vendor.pull_token_form(ep["client_id"], ep["token_url"], pull["authorization_base"],
                                  client_assertion_aud=ep["token_url"] + "/other")
    r = vendor.post_token(ep["token_url"], form)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"


def test_replayed_assertion_is_refused(vendor, session, pull):
    ep = session["endpoints"]
    form = vendor.pull_token_form(ep["client_id"], ep["token_url"], pull["authorization_base"])
    first = vendor.post_token(ep["token_url"], form)
    assert first.status_code == 200, first.text
    assert "no-store" in first.headers.get("Cache-Control", "")
    assert first.json()["token_type"].lower() == "bearer"
    again = vendor.post_token(ep["token_url"], form)  # identical assertions, same jti
    assert again.status_code == 401, again.text
    assert again.json()["error"] == "invalid_client"


def test_search_without_bearer_token(vendor, pull):
    for token in (None, "not-a-token"):
        r = vendor.fhir_get(pull["fhir_base"], "Condition", token)
        assert r.status_code == 401, (token, r.status_code, r.text[:200])
        www = r.headers.get("WWW-Authenticate", "")
        assert www.startswith("Bearer") and 'error="invalid_token"' in www, www
        assert r.json()["resourceType"] == "OperationOutcome"


def test_notification_posted_as_fhir_json(vendor, notified):
    assert vendor.task_content_type[notified["task_id"]].startswith("application/fhir+json")


def test_pull_token_for_another_ura_is_invalid_grant(vendor, session, pull):
    """SPEC §5.2: the authorization assertion's sub must equal the Task's owner."""
    ep = session["endpoints"]
    form = vendor.pull_token_form(ep["client_id"], ep["token_url"], pull["authorization_base"], ura="34567890")
    r = vendor.post_token(ep["token_url"], form)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_grant"


def test_unknown_authorization_base_is_invalid_grant(vendor, session, pull):
    ep = session["endpoints"]
    form = vendor.pull_token_form(ep["client_id"], ep["token_url"], "no-such-authorization-base")
    r = vendor.post_token(ep["token_url"], form)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_grant"


def test_cancellation(simulator, vendor, session, notified):
    """SPEC §3 step 8 with README's cancel call: the vendor receives a conditional update with
    status cancelled, after which the simulator refuses tokens and pulls for that authorization base."""
    sid, ep = session["id"], session["endpoints"]
    r = requests.post(f"{simulator['base']}/api/sessions/{sid}/notify",
                      json={"bsn": BSN, "workflow_task": False, "period_days": 30},
                      headers=_admin(simulator), timeout=15)
    assert r.status_code in (200, 201, 202), r.text
    notification_id = r.json()["notification_id"]
    assert len(vendor.wait_for_task(timeout=10, count=2)) == 2
    [(task_id, task)] = [(k, t) for k, t in vendor.tasks.items() if k != notified["task_id"]]
    # SPEC §3 step 7: an update of the same data set keeps the groupIdentifier; a new
    # notification (as here) is not required to, so only the identifier must differ.
    assert task["identifier"] != notified["task"]["identifier"]
    [auth_base] = task_inputs(task, "authorization-base")
    token = vendor.get_pull_token(ep["client_id"], ep["token_url"], auth_base["valueString"])
    assert vendor.fhir_get(ep["fhir_base"], "Condition", token).status_code == 200

    r = requests.post(f"{simulator['base']}/api/sessions/{sid}/notifications/{notification_id}/cancel",
                      json={}, headers=_admin(simulator), timeout=15)
    assert r.status_code in (200, 201, 202), r.text
    assert vendor.cancelled == [task_id], (vendor.cancelled, r.text)
    assert vendor.tasks[task_id]["status"] == "cancelled"

    refused = vendor.post_token(ep["token_url"], vendor.pull_token_form(ep["client_id"], ep["token_url"],
                                                                        auth_base["valueString"]))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text
    after = vendor.fhir_get(ep["fhir_base"], "Condition", token)
    assert after.status_code in (401, 403), (after.status_code, after.text[:200])
    assert after.json()["resourceType"] == "OperationOutcome"
    # the first notification is untouched
    assert vendor.fhir_get(ep["fhir_base"], "Condition",
                           vendor.get_pull_token(ep["client_id"], ep["token_url"],
                                                 task_inputs(notified["task"], "authorization-base")[0]["valueString"])
                           ).status_code == 200
