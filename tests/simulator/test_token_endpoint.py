"""The token endpoint and the resource server's access rules, over real HTTP (SPEC §5.2-§5.4)."""
from __future__ import annotations

import time

import requests

from speeltuin.keys import Signer
from speeltuin.records import Notification, NotificationOrigin
from speeltuin.store import Store
from tests.simulator.helpers import pair_sessions

BSN = "999993653"


def _sent_notification(sim, session_id: str = "sim-1", *, status: str = "requested", period_end: float | None = None,
                       base: str = "base-123") -> Notification:
    return sim.runtime.store.add_notification(Notification(
        id=f"n-{base}", session_id=session_id, origin=NotificationOrigin.SENT, identifier=f"urn:uuid:{base}",
        group_identifier="urn:uuid:g", authorization_base=base, patient_bsn=BSN, owner_ura="90000202",
        period_end=period_end or time.time() + 3600, status=status, task={}))


def _form(signer: Signer, token_url: str, *, client_id: str = "ven", ura: str = "90000202",
          base: str | None = "base-123") -> dict[str, str]:
    return signer.token_request_form(client_id, ura, token_url, base)


def test_pull_token_granted_with_no_store(node_pair) -> None:
    sim, ven = node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="receiver")
    _sent_notification(sim)
    response = requests.post(endpoints["token_url"], data=_form(ven.runtime.signer, endpoints["token_url"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0 and len(body["access_token"]) >= 32
    assert response.headers["Cache-Control"] == "no-store"
    # the token is stored only as a hash
    assert sim.runtime.store.get_token(body["access_token"])["kind"] == "pull"


def test_token_errors_follow_rfc6749(node_pair) -> None:
    sim, ven = node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="receiver")
    url = endpoints["token_url"]
    signer = ven.runtime.signer
    _sent_notification(sim)
    _sent_notification(sim, status="cancelled", base="cancelled-base")
    _sent_notification(sim, period_end=time.time() - 5, base="ended-base")

    def error_of(data, **kwargs) -> tuple[int, str]:
        response = requests.post(url, data=data, **kwargs)
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers["Cache-Control"] == "no-store"
        description = response.json()["error_description"]  # RFC 6749 §5.2 character set
        assert description and all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in description)
        return response.status_code, response.json()["error"]

    assert error_of(_form(signer, "http://elsewhere/token")) == (401, "invalid_client")  # wrong aud
    stranger = Signer.load_or_create(Store("sqlite://"))
    assert error_of(_form(stranger, url)) == (401, "invalid_client")  # key not registered
    assert error_of(_form(signer, url, client_id="someone-else")) == (401, "invalid_client")
    assert error_of(_form(signer, url, base="unknown")) == (400, "invalid_grant")
    assert error_of(_form(signer, url, base="cancelled-base")) == (400, "invalid_grant")
    assert error_of(_form(signer, url, base="ended-base")) == (400, "invalid_grant")
    assert error_of(_form(signer, url, ura="90000303")) == (400, "invalid_grant")  # not the owner
    assert error_of({"grant_type": "password", "username": "x"}) == (400, "unsupported_grant_type")
    form = _form(signer, url)
    del form["client_assertion"]
    assert error_of(form) == (400, "invalid_request")
    assert error_of("grant_type=a&grant_type=b",
                    headers={"Content-Type": "application/x-www-form-urlencoded"}) == (400, "invalid_request")
    assert error_of(_form(signer, url), headers={"Content-Type": "text/plain"})[0] == 400


def test_replayed_assertion_is_refused(node_pair) -> None:
    sim, ven = node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="receiver")
    _sent_notification(sim)
    form = _form(ven.runtime.signer, endpoints["token_url"])
    assert requests.post(endpoints["token_url"], data=form).status_code == 200
    again = requests.post(endpoints["token_url"], data=form)
    assert (again.status_code, again.json()["error"]) == (401, "invalid_client")
    assert "jti" in again.json()["error_description"]


def test_resource_server_enforces_token_patient_and_cancellation(node_pair) -> None:
    sim, ven = node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="receiver")
    notification = _sent_notification(sim)
    token = requests.post(endpoints["token_url"], data=_form(ven.runtime.signer, endpoints["token_url"])).json()
    fhir = endpoints["fhir_base"]
    auth = {"Authorization": f"Bearer {token['access_token']}", "Accept": "application/fhir+json"}

    missing = requests.get(f"{fhir}/Condition")
    assert missing.status_code == 401
    assert 'error="invalid_token"' in missing.headers["WWW-Authenticate"]
    assert missing.json()["resourceType"] == "OperationOutcome"
    assert requests.get(f"{fhir}/Condition", headers={"Authorization": "Bearer nonsense"}).status_code == 401

    ok = requests.get(f"{fhir}/Condition", headers=auth)
    assert ok.status_code == 200 and ok.json()["type"] == "searchset" and ok.json()["total"] >= 1
    assert ok.headers["Content-Type"].startswith("application/fhir+json")
    explicit = requests.get(f"{fhir}/Condition", headers=auth,
                            params={"patient.identifier": f"http://fhir.nl/fhir/NamingSystem/bsn|{BSN}"})
    assert explicit.json()["total"] == ok.json()["total"]

    other = requests.get(f"{fhir}/Condition", headers=auth,
                         params={"patient.identifier": "http://fhir.nl/fhir/NamingSystem/bsn|999990639"})
    assert other.status_code == 403 and other.json()["resourceType"] == "OperationOutcome"
    bad = requests.get(f"{fhir}/Condition", headers=auth, params={"no-such-param": "x"})
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    assert requests.get(f"{fhir}/Condition/does-not-exist", headers=auth).status_code == 404

    sim.runtime.store.update_notification(notification.id, status="cancelled")
    after = requests.get(f"{fhir}/Condition", headers=auth)
    assert after.status_code == 401 and after.json()["resourceType"] == "OperationOutcome"


def test_notification_token_requires_the_vendor_ura(node_pair) -> None:
    sim, ven = node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="sender")
    url = endpoints["token_url"]
    good = requests.post(url, data=_form(ven.runtime.signer, url, base=None))
    assert good.status_code == 200, good.text
    wrong = requests.post(url, data=_form(ven.runtime.signer, url, ura="90000303", base=None))
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")


def test_x5c_assertions_chain_to_the_test_ca(node_pair, tmp_path) -> None:
    """A vendor signs with a test-PKI certificate whose key is not among its registered keys, its assertions carrying
    the x5c chain and no kid: trust comes from the CA, and the URA in the certificate must be the sub."""
    import json as _json
    import secrets

    import jwt
    from cryptography.hazmat.primitives import serialization

    from testdata.pki import init_ca, issue

    sim, ven = node_pair
    ca = init_ca(tmp_path)
    issued = issue(tmp_path, name="vendor", ura="90000202")
    sim.runtime.config.trusted_ca_pem = ca.read_bytes()
    endpoints = pair_sessions(sim, ven, vendor_role="receiver")  # registers ven's own keys, not the certificate's
    _sent_notification(sim)
    key = serialization.load_pem_private_key(issued.key_path.read_bytes(), password=None)
    x5c = _json.loads(issued.jwks_path.read_text())["keys"][0]["x5c"]
    url = endpoints["token_url"]

    def assertion(sub: str, **extra: str) -> str:
        now = int(time.time())
        claims = {"iss": "ven", "sub": sub, "aud": url, "iat": now, "exp": now + 60,
                  "jti": secrets.token_hex(8), **extra}
        return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "JWT", "x5c": x5c})

    def form(ura: str) -> dict[str, str]:
        return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion(ura, authorization_base="base-123"),
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion("ven")}

    granted = requests.post(url, data=form("90000202"))
    assert granted.status_code == 200, granted.text
    sim.runtime.store.update_notification("n-base-123", owner_ura="90000303")
    mismatch = requests.post(url, data=form("90000303"))  # the certificate says 90000202
    assert mismatch.status_code == 400 and "CERT-001" in mismatch.json()["error_description"]


def test_vendor_keys_fetched_from_a_jwks_url(node_pair) -> None:
    sim, ven = node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="receiver")
    sim.runtime.store.delete_session("sim-1")
    vendor = {"vendor_role": "receiver", "vendor_ura": "90000202", "vendor_client_id": "ven",
              "vendor_token_url": f"{ven.url}/s/ven-1/token", "vendor_notification_base": f"{ven.url}/s/ven-1/notify"}
    created = sim.api("POST", "/sessions", json={"id": "sim-1", **vendor, "vendor_jwks_url": f"{ven.url}/jwks"})
    assert created.status_code == 201, created.text
    _sent_notification(sim)
    url = endpoints["token_url"]
    assert requests.post(url, data=_form(ven.runtime.signer, url)).status_code == 200
    # a URL that serves no JWKS: the assertion cannot be verified
    sim.runtime.store.delete_session("sim-1")
    assert sim.api("POST", "/sessions", json={"id": "sim-1", **vendor, "vendor_jwks_url": f"{ven.url}/nothing"}
                   ).status_code == 201
    refused = requests.post(url, data=_form(ven.runtime.signer, url))
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")


def test_the_authorization_assertion_may_name_any_issuer(node_pair) -> None:
    """SPEC leaves the authorization assertion's iss open (README: any non-empty string); one without iss is
    refused."""
    import jwt

    sim, ven = node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="receiver")
    _sent_notification(sim)
    signer, url = ven.runtime.signer, endpoints["token_url"]

    def with_issuer(iss: str | None) -> requests.Response:
        form = _form(signer, url)
        claims = jwt.decode(form["assertion"], options={"verify_signature": False})
        if iss is None:
            del claims["iss"]
        else:
            claims["iss"] = iss
        form["assertion"] = signer.sign(claims)
        return requests.post(url, data=form, timeout=30)

    granted = with_issuer("urn:oid:2.16.528.1.1007.3.3.90000202")
    assert granted.status_code == 200, granted.text
    refused = with_issuer(None)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text
