"""The token request (form POST) and the token response (JSON) of SPEC §5.2 / RFC 6749."""
from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Literal, Mapping
from urllib.parse import unquote_plus

from validators import safe_json, spec
from validators.evidence import show
from validators.findings import Finding, emits, rule
from validators.stu3 import FORM_URLENCODED, media_type
from validators.task_reader import authorization_bases, identifier_value


OAUTH_ERRORS = spec.OAUTH_ERRORS  # kept under this name: callers import it from here
# RFC 6749 §5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E )
_DESCRIPTION_CHARS = re.compile(r"[\x20-\x21\x23-\x5B\x5D-\x7E]+")
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[\x21\x23-\x5B\x5D-\x7E]+")


CONTENT_TYPE = rule("TOK-001", "error", "token request is not application/x-www-form-urlencoded",
                    "SPEC §5.2; RFC 6749 §3.2")
DUPLICATE = rule("TOK-002", "error", "token request parameter given more than once", "RFC 6749 §3.2")
FORM_AUTH_BASE = rule("TOK-010", "error", "client_credentials pull token request lacks the authorization_base "
                      "form parameter", "SPEC §5.2, §5.3")


@emits(CONTENT_TYPE, DUPLICATE, FORM_AUTH_BASE)
def check_token_request(body: bytes | str, content_type: str | None, *,
                        purpose: Literal["pull", "notification"] | None = None) -> \
        tuple[list[Finding], dict[str, str]]:
    """Findings and the parameters (first non-empty value of each; empty values count as omitted, RFC 6749 §3.1).

    `purpose` says which token is asked for when the caller knows it: a pull token in the client_credentials
    variant must carry the authorization base as a form parameter (SPEC §5.3).
    """
    findings: list[Finding] = []
    if media_type(content_type) != FORM_URLENCODED:
        findings.append(CONTENT_TYPE.finding(f"saw Content-Type {show(content_type)}; expected {FORM_URLENCODED!r}",
                                             "request.headers.Content-Type"))
    pairs = _parse_form(body, findings)
    counts = Counter(name for name, _ in pairs)
    for name, count in counts.items():
        if count > 1:
            findings.append(DUPLICATE.finding(f"parameter {show(name)} given {count} times; expected once",
                                              f"form.{name}"))
    params: dict[str, str] = {}
    for name, value in pairs:
        if value and name not in params:
            params[name] = value
    findings.extend(_check_params(params))
    if (purpose == "pull" and params.get("grant_type") == spec.GRANT_CLIENT_CREDENTIALS
            and spec.FORM_AUTHORIZATION_BASE not in params):
        findings.append(FORM_AUTH_BASE.finding("client_credentials variant without an authorization_base "
                                               "parameter; the pull token must name the notification's "
                                               "authorization base", f"form.{spec.FORM_AUTHORIZATION_BASE}"))
    return findings, params


MALFORMED_FORM = rule("TOK-009", "error", "token request body is not valid form encoding", "RFC 6749 Appendix B")


@emits(MALFORMED_FORM)
def _parse_form(body: bytes | str, findings: list[Finding]) -> list[tuple[str, str]]:
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            findings.append(MALFORMED_FORM.finding(f"body is not UTF-8 (byte {exc.start})", "request.body"))
            return []
    pairs = []
    for index, pair in enumerate(body.split("&")):
        if not pair:
            continue
        name, sep, value = pair.partition("=")
        if not sep:
            # Only the start is shown: the part might be a whole token pasted without a name.
            findings.append(MALFORMED_FORM.finding(f"part {index} ({show(pair[:20])}...) has no '='; expected "
                                                   "name=value", "request.body"))
            continue
        pairs.append((unquote_plus(name), unquote_plus(value)))
    return pairs


GRANT_MISSING = rule("TOK-003", "error", "grant_type missing", "SPEC §5.2")
GRANT_UNSUPPORTED = rule("TOK-004", "error", "grant_type is neither jwt-bearer nor client_credentials", "SPEC §5.2")
ASSERTION_MISSING = rule("TOK-005", "error", "jwt-bearer grant without assertion", "SPEC §5.2; RFC 7523 §2.1")
CLIENT_CREDENTIALS = rule("TOK-006", "warning", "client_credentials variant used instead of jwt-bearer", "SPEC §5.2")
ASSERTION_TYPE = rule("TOK-007", "error", "client_assertion_type missing or not jwt-bearer", "SPEC §5.2; RFC 7523 §2.2")
CLIENT_ASSERTION_MISSING = rule("TOK-008", "error", "client_assertion missing", "SPEC §5.2; RFC 7523 §2.2")


@emits(GRANT_MISSING, GRANT_UNSUPPORTED, ASSERTION_MISSING, CLIENT_CREDENTIALS, ASSERTION_TYPE,
      CLIENT_ASSERTION_MISSING)
def _check_params(params: dict[str, str]) -> list[Finding]:
    findings: list[Finding] = []
    grant_type = params.get("grant_type")
    if grant_type is None:
        findings.append(GRANT_MISSING.finding("no grant_type parameter; expected "
                                              f"{spec.GRANT_JWT_BEARER!r}", "form.grant_type"))
    elif grant_type == spec.GRANT_JWT_BEARER:
        if "assertion" not in params:
            findings.append(ASSERTION_MISSING.finding("grant_type jwt-bearer without an assertion parameter "
                                                      "(the authorization assertion)", "form.assertion"))
    elif grant_type == spec.GRANT_CLIENT_CREDENTIALS:
        findings.append(CLIENT_CREDENTIALS.finding("grant_type client_credentials (variant); the specified grant "
                                                   f"is {spec.GRANT_JWT_BEARER!r} with an authorization assertion",
                                                   "form.grant_type"))
    else:
        findings.append(GRANT_UNSUPPORTED.finding(f"saw grant_type {show(grant_type)}; expected "
                                                  f"{spec.GRANT_JWT_BEARER!r} (or the client_credentials variant)",
                                                  "form.grant_type"))
    assertion_type = params.get("client_assertion_type")
    if assertion_type != spec.CLIENT_ASSERTION_TYPE:
        findings.append(ASSERTION_TYPE.finding(f"saw client_assertion_type {show(assertion_type, 100)}; expected "
                                               f"{spec.CLIENT_ASSERTION_TYPE!r}", "form.client_assertion_type"))
    if "client_assertion" not in params:
        findings.append(CLIENT_ASSERTION_MISSING.finding("no client_assertion parameter; the client must "
                                                         "authenticate with a signed JWT", "form.client_assertion"))
    return findings


GRANT_NOT_REFUSED = rule("TOK-015", "error", "a pull token request for a cancelled, expired or unknown "
                          "authorization base is not refused with 400 invalid_grant", "SPEC §3 step 8, §5.2-§5.3")


@emits(GRANT_NOT_REFUSED)
def check_grant_refused(status: int, body: bytes) -> list[Finding]:
    """The answer to a pull token request that must fail: its notification was cancelled or has ended."""
    try:
        error = safe_json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    if status == 400 and error == "invalid_grant":
        return []
    seen = "a token" if status == 200 else f"{status} {show(error)}"
    return [GRANT_NOT_REFUSED.finding(f"answered {seen}; expected 400 invalid_grant", "response")]


RESPONSE_JSON = rule("TOKR-001", "error", "token response body is not a JSON object", "RFC 6749 §5.1")
STATUS = rule("TOKR-008", "error", "token response status is neither 200 nor 4xx", "SPEC §5.2; RFC 6749 §5")
RESPONSE_CONTENT_TYPE = rule("TOKR-009", "error", "token response is not application/json", "RFC 6749 §5.1")
SCOPE = rule("TOKR-013", "error", "scope present in the token response but not a string", "RFC 6749 §5.1")


@emits(RESPONSE_JSON, STATUS, RESPONSE_CONTENT_TYPE, SCOPE)
def check_token_response(status: int, headers: Mapping[str, str], body: bytes) -> list[Finding]:
    findings: list[Finding] = []
    lowered = {name.lower(): value for name, value in headers.items()}
    content_type = lowered.get("content-type")
    if media_type(content_type) != "application/json":
        findings.append(RESPONSE_CONTENT_TYPE.finding(f"saw Content-Type {show(content_type)}; expected "
                                                      "'application/json'", "response.headers.Content-Type"))
    if status != 200 and not 400 <= status < 500:
        findings.append(STATUS.finding(f"saw status {status}; expected 200, or 400/401 with an OAuth error",
                                       "response.status"))
        return findings
    try:
        document = safe_json.loads(body)
    except (ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict):
        kind = "no JSON" if document is None else f"JSON {type(document).__name__}"
        findings.append(RESPONSE_JSON.finding(f"body ({len(body)} bytes) is {kind}; expected a JSON object",
                                              "response.body"))
        return findings
    if status == 200:
        findings.extend(_check_success(document, lowered.get("cache-control")))
        if "scope" in document and not isinstance(document["scope"], str):
            findings.append(SCOPE.finding(f"scope is JSON {type(document['scope']).__name__} "
                                          f"{show(document['scope'])}; expected a space-separated string",
                                          "response.body.scope"))
    else:
        findings.extend(_check_error(status, document))
    return findings


ACCESS_TOKEN = rule("TOKR-002", "error", "access_token missing or empty", "SPEC §5.2; RFC 6749 §5.1")
TOKEN_TYPE = rule("TOKR-003", "error", "token_type is not Bearer", "SPEC §5.2; RFC 6749 §5.1")
EXPIRES_IN = rule("TOKR-004", "error", "expires_in missing or not a positive integer", "SPEC §5.2")
NO_STORE = rule("TOKR-005", "error", "Cache-Control lacks no-store", "SPEC §5.2; RFC 6749 §5.1")


@emits(ACCESS_TOKEN, TOKEN_TYPE, EXPIRES_IN, NO_STORE)
def _check_success(document: dict, cache_control: str | None) -> list[Finding]:
    findings: list[Finding] = []
    token = document.get("access_token")
    if not isinstance(token, str) or not token:
        # The token itself is never echoed; its type says enough.
        findings.append(ACCESS_TOKEN.finding(f"access_token is {type(token).__name__}"
                                             f"{' (empty)' if token == '' else ''}; expected a non-empty string",
                                             "response.body.access_token"))
    token_type = document.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        findings.append(TOKEN_TYPE.finding(f"saw token_type {show(token_type)}; expected 'Bearer'",
                                           "response.body.token_type"))
    expires_in = document.get("expires_in")
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        findings.append(EXPIRES_IN.finding(f"saw expires_in {show(expires_in)}; expected a positive integer "
                                           "(seconds)", "response.body.expires_in"))
    directives = {d.strip().lower() for d in (cache_control or "").split(",")}
    if "no-store" not in directives:
        findings.append(NO_STORE.finding(f"saw Cache-Control {show(cache_control)}; expected 'no-store'",
                                         "response.headers.Cache-Control"))
    return findings


ERROR_CODE = rule("TOKR-006", "error", "error response lacks an RFC 6749 §5.2 error code", "RFC 6749 §5.2")
ERROR_STATUS = rule("TOKR-007", "warning", "HTTP status does not match the error code", "SPEC §5.2")


@emits(ERROR_CODE, ERROR_STATUS)
def _check_error(status: int, document: dict) -> list[Finding]:
    findings = _check_error_members(document)
    error = document.get("error")
    if not isinstance(error, str) or error not in OAUTH_ERRORS:
        return [ERROR_CODE.finding(f"saw error {show(error)}; expected one of {', '.join(OAUTH_ERRORS)}",
                                   "response.body.error"), *findings]
    expected = spec.OAUTH_ERROR_STATUS[error]
    if status != expected:
        findings.insert(0, ERROR_STATUS.finding(f"status {status} with error {error!r}; SPEC §5.2 answers it with "
                                                f"{expected}", "response.status"))
    return findings


ERROR_DESCRIPTION = rule("TOKR-010", "error", "error_description present but not a string", "RFC 6749 §5.2")
ERROR_URI = rule("TOKR-011", "error", "error_uri present but not an absolute URI string", "RFC 6749 §5.2")
ERROR_DESCRIPTION_CHARS = rule("TOKR-012", "warning", "error_description has characters outside the RFC 6749 set "
                               "(printable ASCII without \" and \\)", "RFC 6749 §5.2")


@emits(ERROR_DESCRIPTION, ERROR_URI, ERROR_DESCRIPTION_CHARS)
def _check_error_members(document: dict) -> list[Finding]:
    """The optional members of an RFC 6749 §5.2 error body."""
    findings: list[Finding] = []
    if "error_description" in document:
        description = document["error_description"]
        if not isinstance(description, str):
            findings.append(ERROR_DESCRIPTION.finding(f"error_description is JSON {type(description).__name__} "
                                                      f"{show(description)}; expected a string",
                                                      "response.body.error_description"))
        elif not _DESCRIPTION_CHARS.fullmatch(description):
            bad = sorted({c for c in description if not _DESCRIPTION_CHARS.fullmatch(c)})[:5]
            seen = ", ".join(repr(c) for c in bad) or "an empty string"
            findings.append(ERROR_DESCRIPTION_CHARS.finding(f"error_description contains {seen}; RFC 6749 allows "
                                                            "printable ASCII except '\"' and '\\'",
                                                            "response.body.error_description"))
    if "error_uri" in document:
        uri = document["error_uri"]
        if not isinstance(uri, str) or not _ABSOLUTE_URI.fullmatch(uri):
            findings.append(ERROR_URI.finding(f"saw error_uri {show(uri, 100)}; expected an absolute URI",
                                              "response.body.error_uri"))
    return findings


# --- the grant bound to a notification (SPEC §5.2, §5.3) --------------------------------------------

GRANT_OWNER = rule("TOK-011", "error", "pull token: authorization assertion sub is not the Task's owner URA",
                   "SPEC §5.2, §5.3")
GRANT_AUTH_BASE = rule("TOK-012", "error", "pull token: authorization_base differs from the Task's "
                       "authorization-base input", "SPEC §5.3")
GRANT_PATIENT = rule("TOK-013", "error", "pull token: patient claim (variant) is not the Task's patient",
                     "SPEC §5.3")


@emits(GRANT_OWNER, GRANT_AUTH_BASE, GRANT_PATIENT)
def check_pull_grant(authorization_claims: dict, task: dict, *, authorization_base: str | None = None,
                     received: bool = False) -> list[Finding]:
    """A pull token request against the notification it claims (SPEC §5.3).

    The assertion's `sub` must be the Task's `owner` URA and its `authorization_base` the Task's authorization-base
    input. In the client_credentials variant the base is the form parameter: pass it as `authorization_base`.
    A missing base is JWT-020 / TOK-010, not repeated here; the `patient` claim variant is compared with `for`.
    `received`: the Task has just reached the receiver whose URA is `sub`, before any token was asked: then the
    Task's owner is what is wrong (a sender that put its own URA there, say), and the finding says so at Task.owner.
    """
    findings: list[Finding] = []
    claims = authorization_claims if isinstance(authorization_claims, dict) else {}
    task = task if isinstance(task, dict) else {}
    sub, owner = claims.get("sub"), identifier_value(task, "owner")
    if sub != owner and received:
        findings.append(GRANT_OWNER.finding(f"Task.owner URA {show(owner)} is not the receiving organisation "
                                            f"{show(sub)}: owner names the organisation the Task is sent to",
                                            "Task.owner.identifier.value"))
    elif sub != owner:
        findings.append(GRANT_OWNER.finding(f"sub {show(sub)} is not the Task's owner URA {show(owner)}",
                                            "jwt.claims.sub"))
    base = authorization_base if authorization_base is not None else claims.get("authorization_base")
    location = f"form.{spec.FORM_AUTHORIZATION_BASE}" if authorization_base is not None \
        else "jwt.claims.authorization_base"
    if isinstance(base, str) and base:
        expected = authorization_bases(task)
        if base not in expected:
            # Bases work like credentials: only their lengths are evidence.
            lengths = ", ".join(str(len(v)) if isinstance(v, str) else type(v).__name__ for v in expected)
            findings.append(GRANT_AUTH_BASE.finding(f"authorization_base ({len(base)} characters) is not the "
                                                    f"Task's authorization-base input (seen: {lengths or 'none'})",
                                                    location))
    elif base is None and "patient" in claims:
        bsn = identifier_value(task, "for")
        if claims["patient"] != bsn:
            findings.append(GRANT_PATIENT.finding(f"patient claim {show(claims['patient'])} is not the Task's "
                                                  f"patient {show(bsn)}", "jwt.claims.patient"))
    return findings


GRANT_URA = rule("TOK-016", "error", "authorization assertion sub is not the URA registered for the caller",
                 "SPEC §5.2")
GRANT_UNKNOWN_BASE = rule("TOK-017", "error", "pull token: authorization_base is of no notification sent to the "
                          "caller", "SPEC §5.3")


@emits(GRANT_URA, GRANT_UNKNOWN_BASE)
def check_grant_for_session(authorization_claims: dict | None, *, registered_ura: str | None,
                            task_of_base: Callable[[str], dict | None] | None = None,
                            form_base: str | None = None) -> list[Finding]:
    """What a token server knows about its caller, applied to the grant (SPEC §5.2, §5.3): the authorization
    assertion speaks for the URA the caller registered (`sub`), and a pull grant's authorization base is one the
    server sent in a notification to that caller (`task_of_base` finds that Task, None when there is none), bound
    as check_pull_grant says. `authorization_claims` None: the client_credentials variant (no assertion; the base
    is `form_base`)."""
    claims = authorization_claims if isinstance(authorization_claims, dict) else {}
    findings: list[Finding] = []
    sub = claims.get("sub")
    if authorization_claims is not None and registered_ura is not None and sub is not None and sub != registered_ura:
        findings.append(GRANT_URA.finding(f"sub {show(sub)} is not the URA {show(registered_ura)} registered for "
                                          "this caller", "jwt.claims.sub"))
    base = form_base if authorization_claims is None else claims.get("authorization_base")
    if task_of_base is None or not isinstance(base, str) or not base:
        return findings  # no base to look up: JWT-020 / TOK-010 say so
    task = task_of_base(base)
    if task is None:
        location = f"form.{spec.FORM_AUTHORIZATION_BASE}" if authorization_claims is None \
            else "jwt.claims.authorization_base"
        return findings + [GRANT_UNKNOWN_BASE.finding(f"authorization_base ({len(base)} characters) is of no "
                                                      "notification sent to this caller", location)]
    bound = check_pull_grant(claims if authorization_claims is not None else {"sub": registered_ura}, task,
                             authorization_base=form_base if authorization_claims is None else None)
    said = {f.rule for f in findings}
    return findings + [f for f in bound if not (f.rule == GRANT_OWNER.id and GRANT_URA.id in said)]


GRANT_REQUESTER = rule("TOK-014", "error", "notification token: authorization assertion sub is not the Task's "
                       "requester.onBehalfOf URA", "SPEC §5.2")


@emits(GRANT_REQUESTER)
def check_notification_grant(authorization_claims: dict, task: dict) -> list[Finding]:
    """A notification token speaks for the sending organization: `sub` is the Task's requester.onBehalfOf URA.

    The token's `sub` was held against the URA registered for the caller when the token was issued (TOK-016), so a
    difference lies in the Task: the finding points at its requester.onBehalfOf."""
    claims = authorization_claims if isinstance(authorization_claims, dict) else {}
    sub = claims.get("sub")
    sender = identifier_value(task, "requester", "onBehalfOf")
    if sub == sender:
        return []
    return [GRANT_REQUESTER.finding(f"Task.requester.onBehalfOf URA {show(sender)} is not the sending organisation "
                                    f"{show(sub)} the notification token speaks for",
                                    "Task.requester.onBehalfOf.identifier.value")]
