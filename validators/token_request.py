"""The token request (form POST) and the token response (JSON) of SPEC §5.2 / RFC 6749."""
from __future__ import annotations

import json
from collections import Counter
from typing import Mapping
from urllib.parse import unquote_plus

from validators import spec
from validators.findings import Finding, rule
from validators.identifiers import show

CONTENT_TYPE = rule("TOK-001", "error", "token request is not application/x-www-form-urlencoded",
                    "SPEC §5.2; RFC 6749 §3.2")
DUPLICATE = rule("TOK-002", "error", "token request parameter given more than once", "RFC 6749 §3.2")
GRANT_MISSING = rule("TOK-003", "error", "grant_type missing", "SPEC §5.2")
GRANT_UNSUPPORTED = rule("TOK-004", "error", "grant_type is neither jwt-bearer nor client_credentials", "SPEC §5.2")
ASSERTION_MISSING = rule("TOK-005", "error", "jwt-bearer grant without assertion", "SPEC §5.2; RFC 7523 §2.1")
CLIENT_CREDENTIALS = rule("TOK-006", "warning", "client_credentials variant used instead of jwt-bearer", "SPEC §5.2")
ASSERTION_TYPE = rule("TOK-007", "error", "client_assertion_type missing or not jwt-bearer", "SPEC §5.2; RFC 7523 §2.2")
CLIENT_ASSERTION_MISSING = rule("TOK-008", "error", "client_assertion missing", "SPEC §5.2; RFC 7523 §2.2")
MALFORMED_FORM = rule("TOK-009", "error", "token request body is not valid form encoding", "RFC 6749 Appendix B")

RESPONSE_JSON = rule("TOKR-001", "error", "token response body is not a JSON object", "RFC 6749 §5.1")
ACCESS_TOKEN = rule("TOKR-002", "error", "access_token missing or empty", "SPEC §5.2; RFC 6749 §5.1")
TOKEN_TYPE = rule("TOKR-003", "error", "token_type is not Bearer", "SPEC §5.2; RFC 6749 §5.1")
EXPIRES_IN = rule("TOKR-004", "error", "expires_in missing or not a positive integer", "SPEC §5.2")
NO_STORE = rule("TOKR-005", "error", "Cache-Control lacks no-store", "SPEC §5.2; RFC 6749 §5.1")
ERROR_CODE = rule("TOKR-006", "error", "error response lacks an RFC 6749 §5.2 error code", "RFC 6749 §5.2")
ERROR_STATUS = rule("TOKR-007", "warning", "HTTP status does not match the error code", "SPEC §5.2")
STATUS = rule("TOKR-008", "error", "token response status is neither 200 nor 4xx", "SPEC §5.2; RFC 6749 §5")
RESPONSE_CONTENT_TYPE = rule("TOKR-009", "error", "token response is not application/json", "RFC 6749 §5.1")

FORM_TYPE = "application/x-www-form-urlencoded"
OAUTH_ERRORS = ("invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                "unsupported_grant_type", "invalid_scope")


def media_type(content_type: str | None) -> str:
    """`Type/Subtype` in lower case, without parameters such as `; charset=utf-8`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_token_request(body: bytes | str, content_type: str | None) -> tuple[list[Finding], dict[str, str]]:
    """Findings and the parameters (first non-empty value of each; empty values count as omitted, RFC 6749 §3.1)."""
    findings: list[Finding] = []
    if media_type(content_type) != FORM_TYPE:
        findings.append(CONTENT_TYPE.finding(f"saw Content-Type {show(content_type)}; expected {FORM_TYPE!r}",
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
    return findings, params


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
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict):
        kind = "no JSON" if document is None else f"JSON {type(document).__name__}"
        findings.append(RESPONSE_JSON.finding(f"body ({len(body)} bytes) is {kind}; expected a JSON object",
                                              "response.body"))
        return findings
    if status == 200:
        findings.extend(_check_success(document, lowered.get("cache-control")))
    else:
        findings.extend(_check_error(status, document))
    return findings


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


def _check_error(status: int, document: dict) -> list[Finding]:
    error = document.get("error")
    if error not in OAUTH_ERRORS:
        return [ERROR_CODE.finding(f"saw error {show(error)}; expected one of {', '.join(OAUTH_ERRORS)}",
                                   "response.body.error")]
    expected = 401 if error == "invalid_client" else 400
    if status != expected:
        return [ERROR_STATUS.finding(f"status {status} with error {error!r}; SPEC §5.2 answers it with {expected}",
                                     "response.status")]
    return []
