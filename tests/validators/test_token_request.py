from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from validators import spec
from validators.rules.token_request import (
    check_grant_for_session,
    check_grant_refused,
    check_notification_grant,
    check_pull_grant,
    check_token_request,
    check_token_response,
)

from ._cases import check_case, fires, quiet

FORM = "application/x-www-form-urlencoded"
ASSERTION = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3OCJ9.c2lnbmF0dXJlLXRoYXQtaXMtc2VjcmV0"
CLIENT_ASSERTION = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ2ZW5kb3IifQ.Y2xpZW50LXNpZ25hdHVyZQ"
GOOD_PARAMS = {
    "grant_type": spec.GRANT_JWT_BEARER,
    "assertion": ASSERTION,
    "client_assertion_type": spec.CLIENT_ASSERTION_TYPE,
    "client_assertion": CLIENT_ASSERTION,
}
DROP = None


def body(**changes: str | None) -> str:
    params = {**GOOD_PARAMS, **changes}
    return urlencode({k: v for k, v in params.items() if v is not None})


def request(text: str | bytes | None = None, content_type: str | None = FORM) -> list:
    return check_token_request(body() if text is None else text, content_type)[0]


GOOD_HEADERS = {"Content-Type": "application/json;charset=UTF-8", "Cache-Control": "no-store", "Pragma": "no-cache"}
GOOD_BODY = {"access_token": "opaque-token-value", "token_type": "Bearer", "expires_in": 300}


def response(status: int = 200, headers: dict | None = None, document: object = None, **changes: object) -> list:
    if document is None:
        document = {k: v for k, v in {**GOOD_BODY, **changes}.items() if v is not DROP}
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return check_token_response(status, GOOD_HEADERS if headers is None else headers, raw)


def error(code: str, status: int) -> list:
    return response(status, {"Content-Type": "application/json"}, {"error": code, "error_description": "x"})


def error_body(**members: object) -> list:
    return response(400, {"Content-Type": "application/json"}, {"error": "invalid_grant", **members})


def pull_request(purpose: str | None = "pull", **changes: str | None) -> list:
    return check_token_request(body(**changes), FORM, purpose=purpose)[0]  # type: ignore[arg-type]


VARIANT = {"grant_type": "client_credentials", "assertion": DROP}


def task() -> dict:
    from .test_notification import good_task
    return good_task()


# As in the good Task of test_notification: owner 90000202, sender 90000101, base c0ffee-opaque-base.
PULL_CLAIMS = {"sub": "90000202", "authorization_base": "c0ffee-opaque-base"}


def grant(claims: dict | None = None, **kw: str) -> list:
    return check_pull_grant({**PULL_CLAIMS, **(claims or {})}, task(), **kw)


def without_base(**claims: str) -> dict:
    return {"sub": "90000202", **claims}


def for_session(claims: dict | None = PULL_CLAIMS, *, known: bool = True, **kw: str) -> list:
    """The grant judged with what the token server knows: the caller registered URA 90000202, and the Task of the
    notification it was sent under base c0ffee-opaque-base (or, not `known`, no notification under any base)."""
    return check_grant_for_session(claims, registered_ura="90000202",
                                   task_of_base=lambda base: task() if known and base in str(task()) else None, **kw)


CASES = [
    quiet("TOK-015", "invalid-grant", lambda: check_grant_refused(400, b'{"error": "invalid_grant"}')),
    fires("TOK-015", "token-issued", lambda: check_grant_refused(200, b'{"access_token": "x"}')),
    fires("TOK-015", "wrong-error", lambda: check_grant_refused(401, b'{"error": "invalid_client"}')),
    fires("TOK-015", "not-json", lambda: check_grant_refused(400, b"<html>")),
    quiet("TOK-001", "form", lambda: request()),
    quiet("TOK-001", "form-with-charset",
          lambda: request(content_type="Application/X-WWW-Form-Urlencoded; charset=UTF-8")),
    fires("TOK-001", "json", lambda: request(content_type="application/json")),
    fires("TOK-001", "none", lambda: request(content_type=None)),
    quiet("TOK-002", "each-once", lambda: request()),
    fires("TOK-002", "assertion-twice", lambda: request(body() + "&assertion=another")),
    quiet("TOK-003", "present", lambda: request()),
    fires("TOK-003", "missing", lambda: request(body(grant_type=DROP))),
    fires("TOK-003", "empty-value-counts-as-omitted", lambda: request(body(grant_type=""))),
    quiet("TOK-004", "jwt-bearer", lambda: request()),
    quiet("TOK-004", "client-credentials-is-a-variant", lambda: request(body(grant_type="client_credentials"))),
    fires("TOK-004", "authorization-code", lambda: request(body(grant_type="authorization_code"))),
    fires("TOK-004", "password", lambda: request(body(grant_type="password"))),
    quiet("TOK-005", "assertion-present", lambda: request()),
    quiet("TOK-005", "client-credentials-needs-none",
          lambda: request(body(grant_type="client_credentials", assertion=DROP, authorization_base="ab"))),
    fires("TOK-005", "missing", lambda: request(body(assertion=DROP))),
    quiet("TOK-006", "jwt-bearer", lambda: request()),
    fires("TOK-006", "client-credentials", lambda: request(body(grant_type="client_credentials", assertion=DROP))),
    quiet("TOK-007", "right-type", lambda: request()),
    fires("TOK-007", "missing", lambda: request(body(client_assertion_type=DROP))),
    fires("TOK-007", "saml", lambda: request(body(
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer"))),
    quiet("TOK-008", "present", lambda: request()),
    fires("TOK-008", "missing", lambda: request(body(client_assertion=DROP))),
    quiet("TOK-009", "well-formed", lambda: request(body().encode())),
    fires("TOK-009", "pair-without-equals", lambda: request(body() + "&" + ASSERTION)),
    fires("TOK-009", "not-utf8", lambda: request(body().encode() + b"&scope=\xff\xfe")),

    quiet("TOKR-001", "object", lambda: response()),
    fires("TOKR-001", "not-json", lambda: response(document=b"<html>ok</html>")),
    fires("TOKR-001", "array", lambda: response(document=["access_token"])),
    quiet("TOKR-002", "present", lambda: response()),
    fires("TOKR-002", "missing", lambda: response(access_token=DROP)),
    fires("TOKR-002", "empty", lambda: response(access_token="")),
    quiet("TOKR-003", "bearer-any-case", lambda: response(token_type="bearer")),
    fires("TOKR-003", "mac", lambda: response(token_type="MAC")),
    fires("TOKR-003", "missing", lambda: response(token_type=DROP)),
    quiet("TOKR-004", "positive", lambda: response(expires_in=1)),
    fires("TOKR-004", "zero", lambda: response(expires_in=0)),
    fires("TOKR-004", "string", lambda: response(expires_in="300")),
    fires("TOKR-004", "missing", lambda: response(expires_in=DROP)),
    quiet("TOKR-005", "no-store-among-others",
          lambda: response(headers={"content-type": "application/json", "cache-control": "private, No-Store"})),
    fires("TOKR-005", "missing", lambda: response(headers={"Content-Type": "application/json"})),
    fires("TOKR-005", "no-cache-only",
          lambda: response(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})),
    quiet("TOKR-006", "invalid-grant", lambda: error("invalid_grant", 400)),
    fires("TOKR-006", "unknown-code", lambda: error("access_denied", 400)),
    fires("TOKR-006", "no-error-member", lambda: response(400, {"Content-Type": "application/json"}, {"msg": "no"})),
    quiet("TOKR-007", "invalid-client-401", lambda: error("invalid_client", 401)),
    quiet("TOKR-007", "unsupported-grant-400", lambda: error("unsupported_grant_type", 400)),
    fires("TOKR-007", "invalid-client-400", lambda: error("invalid_client", 400)),
    fires("TOKR-007", "invalid-grant-401", lambda: error("invalid_grant", 401)),
    quiet("TOKR-008", "200", lambda: response()),
    quiet("TOKR-008", "400", lambda: error("invalid_request", 400)),
    fires("TOKR-008", "500", lambda: response(500)),
    fires("TOKR-008", "302", lambda: response(302)),
    quiet("TOK-010", "variant-with-base", lambda: pull_request(**VARIANT, authorization_base="c0ffee")),
    quiet("TOK-010", "jwt-bearer-carries-it-in-the-assertion", lambda: pull_request()),
    quiet("TOK-010", "notification-token-needs-none", lambda: pull_request("notification", **VARIANT)),
    quiet("TOK-010", "purpose-unknown", lambda: pull_request(None, **VARIANT)),
    fires("TOK-010", "variant-without-base", lambda: pull_request(**VARIANT)),
    fires("TOK-010", "variant-empty-base", lambda: pull_request(**VARIANT, authorization_base="")),
    quiet("TOK-011", "owner", lambda: grant()),
    fires("TOK-011", "sender-asks-pull-token", lambda: grant({"sub": "90000101"})),
    fires("TOK-011", "no-sub", lambda: check_pull_grant({"authorization_base": "c0ffee-opaque-base"}, task())),
    quiet("TOK-011", "received-by-the-owner", lambda: check_pull_grant({"sub": "90000202"}, task(), received=True)),
    fires("TOK-011", "received-by-another", lambda: check_pull_grant({"sub": "90000101"}, task(), received=True)),
    quiet("TOK-012", "same-base", lambda: grant()),
    quiet("TOK-012", "variant-form-base", lambda: check_pull_grant(without_base(), task(),
                                                                   authorization_base="c0ffee-opaque-base")),
    quiet("TOK-012", "absent-is-JWT-020", lambda: check_pull_grant(without_base(), task())),
    fires("TOK-012", "other-base", lambda: grant({"authorization_base": "another-notification"})),
    fires("TOK-012", "variant-other-form-base", lambda: check_pull_grant(without_base(), task(),
                                                                         authorization_base="other")),
    quiet("TOK-013", "patient-variant-same", lambda: check_pull_grant(without_base(patient="999993653"), task())),
    fires("TOK-013", "patient-variant-other", lambda: check_pull_grant(without_base(patient="999990639"), task())),
    quiet("TOK-014", "sender", lambda: check_notification_grant({"sub": "90000101"}, task())),
    fires("TOK-014", "receiver", lambda: check_notification_grant({"sub": "90000202"}, task())),
    fires("TOK-014", "no-task-sender", lambda: check_notification_grant({"sub": "90000101"}, {})),
    quiet("TOK-016", "registered-ura", lambda: for_session()),
    quiet("TOK-016", "variant-has-no-assertion", lambda: for_session(None, form_base="c0ffee-opaque-base")),
    fires("TOK-016", "other-ura", lambda: for_session({**PULL_CLAIMS, "sub": "87654321"})),
    fires("TOK-016", "notification-token-other-ura", lambda: check_grant_for_session(
        {"sub": "87654321"}, registered_ura="90000202")),
    quiet("TOK-017", "base-of-a-sent-notification", lambda: for_session()),
    quiet("TOK-017", "no-lookup-no-judgement", lambda: check_grant_for_session(PULL_CLAIMS, registered_ura="90000202")),
    fires("TOK-017", "unknown-base", lambda: for_session(known=False)),
    fires("TOK-017", "variant-unknown-form-base", lambda: for_session(None, known=False, form_base="c0ffee")),
    quiet("TOKR-009", "json", lambda: response()),
    fires("TOKR-009", "html", lambda: response(headers={"Content-Type": "text/html", "Cache-Control": "no-store"})),
    quiet("TOKR-010", "string", lambda: error_body(error_description="authorization base unknown")),
    quiet("TOKR-010", "absent", lambda: error_body()),
    fires("TOKR-010", "object", lambda: error_body(error_description={"nl": "onbekend"})),
    fires("TOKR-010", "null", lambda: error_body(error_description=None)),
    quiet("TOKR-011", "https", lambda: error_body(error_uri="https://speeltuin.test/errors#invalid_grant")),
    fires("TOKR-011", "relative", lambda: error_body(error_uri="/errors/invalid_grant")),
    fires("TOKR-011", "number", lambda: error_body(error_uri=42)),
    quiet("TOKR-012", "printable-ascii", lambda: error_body(error_description="jti 'x' used before (JWT-024)")),
    fires("TOKR-012", "non-ascii", lambda: error_body(error_description="autorisatiebasis ongeldig – verlopen")),
    fires("TOKR-012", "double-quote", lambda: error_body(error_description='sub "1" unknown')),
    fires("TOKR-012", "newline", lambda: error_body(error_description="line1\nline2")),
    quiet("TOKR-013", "string", lambda: response(scope="bgz")),
    quiet("TOKR-013", "absent", lambda: response()),
    fires("TOKR-013", "list", lambda: response(scope=["bgz"])),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule(case) -> None:
    check_case(case)


def test_good_request_returns_params_and_no_findings() -> None:
    findings, params = check_token_request(body(scope="bgz").encode(), FORM)
    assert findings == []
    assert params == {**GOOD_PARAMS, "scope": "bgz"}


def test_duplicates_keep_the_first_value() -> None:
    findings, params = check_token_request(body() + "&grant_type=client_credentials", FORM)
    assert [f.rule for f in findings] == ["TOK-002"]
    assert findings[0].location == "form.grant_type"
    assert params["grant_type"] == spec.GRANT_JWT_BEARER


def test_good_responses_have_no_findings() -> None:
    assert response() == []
    assert error("invalid_client", 401) == []


def test_messages_never_carry_tokens() -> None:
    findings = request(body() + "&" + ASSERTION + "&client_assertion=x", content_type="text/plain")
    findings += response(token_type="MAC", expires_in=-1, headers={})
    for finding in findings:
        assert ASSERTION not in finding.message and "c2lnbmF0dXJl" not in finding.message
        assert "opaque-token-value" not in finding.message


def test_grant_evidence_never_carries_authorization_bases() -> None:
    [finding] = grant({"authorization_base": "secret-other-base"})
    assert finding.location == "jwt.claims.authorization_base"
    assert "secret-other-base" not in finding.message and "c0ffee-opaque-base" not in finding.message
    [finding] = check_pull_grant(without_base(), task(), authorization_base="secret-form-base")
    assert finding.location == "form.authorization_base"
    assert "secret-form-base" not in finding.message


def test_owner_finding_blames_the_claim_of_a_token_request_and_the_task_at_the_receiver() -> None:
    """A pull-token request: the assertion's sub is what does not fit. A Task just received: its owner is (a sender
    that put its own URA there must not read that its token's sub is wrong)."""
    [asked] = grant({"sub": "90000101"})
    assert (asked.location, asked.message) == ("jwt.claims.sub", "sub '90000101' is not the Task's owner URA "
                                                                  "'90000202'")
    [received] = check_pull_grant({"sub": "90000101"}, task(), received=True)
    assert received.rule == "TOK-011" and received.location == "Task.owner.identifier.value"
    assert received.message.startswith("Task.owner URA '90000202' is not the receiving organisation '90000101'")
    assert "sub" not in received.message


def test_requester_finding_points_at_the_task() -> None:
    """The token's sub was held against the caller's registered URA when it was issued: the Task is what differs."""
    [finding] = check_notification_grant({"sub": "90000202"}, task())
    assert finding.location == "Task.requester.onBehalfOf.identifier.value"
    assert finding.message == ("Task.requester.onBehalfOf URA '90000101' is not the sending organisation '90000202' "
                               "the notification token speaks for")


def test_good_grants_have_no_findings() -> None:
    assert grant() == []
    assert check_notification_grant({"sub": "90000101"}, task()) == []


@pytest.mark.parametrize("claims,the_task", [(None, None), ("x", []), ({}, {"owner": "x", "input": "y"}),
                                              ({"sub": 1}, {"input": [None, {"type": "x"}, {"type": {"coding": 1}}]})])
def test_grant_checks_survive_odd_input(claims: object, the_task: object) -> None:
    assert isinstance(check_pull_grant(claims, the_task), list)  # type: ignore[arg-type]
    assert isinstance(check_notification_grant(claims, the_task), list)  # type: ignore[arg-type]


def test_error_members_are_checked_with_a_valid_code_too() -> None:
    found = error_body(error_description=5, error_uri="x")
    assert [f.rule for f in found] == ["TOKR-010", "TOKR-011"]
