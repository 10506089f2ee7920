"""Bearer token use at a resource server or notification endpoint (SPEC §5.2, §5.4; RFC 6750).

Messages never carry a token: only its length and the characters that break the syntax.
"""
from __future__ import annotations

import re
from typing import Literal, Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit

from validators.findings import Finding, emits, rule
from validators.query import search_target
from validators.rules.http import check_bearer_challenge, check_error_status

_REF = "SPEC §5.2; RFC 6750 §2.1"

# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; b64token = 1*( ALPHA / DIGIT / "-._~+/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SCHEME = "Bearer"
_AUTH_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,19}")  # RFC 7235 token, short enough to show

TokenState = Literal["valid", "missing", "invalid", "expired", "cancelled"]


def bearer_value(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme in any case), or None."""
    scheme, _, value = (authorization or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


HEADER_MISSING = rule("BEAR-001", "error", "request carries no Authorization header", _REF)
HEADER_SYNTAX = rule("BEAR-002", "error", "Authorization header is not 'Bearer' followed by a b64token", _REF)
SCHEME_CASE = rule("BEAR-003", "warning", "auth scheme not written 'Bearer' (case-insensitive, but some servers "
                   "compare exactly)", _REF)


@emits(HEADER_MISSING, HEADER_SYNTAX, SCHEME_CASE)
def check_authorization_header(value: str | None) -> list[Finding]:
    """`Authorization: Bearer <b64token>` exactly (RFC 6750 §2.1); the scheme compares case-insensitively."""
    location = "request.headers.Authorization"
    if value is None or not value.strip():
        return [HEADER_MISSING.finding("no Authorization header; expected 'Bearer <access token>'"
                                       if value is None else "empty Authorization header", location)]
    scheme, _, rest = value.strip().partition(" ")
    token = rest.lstrip(" ")
    if scheme.lower() != _SCHEME.lower():
        # Without a space the whole value may be a pasted token: show its length, never its text.
        seen = f"auth scheme {scheme!r}" if rest and _AUTH_SCHEME.fullmatch(scheme) else \
            f"a value of {len(value.strip())} characters without the Bearer scheme"
        return [HEADER_SYNTAX.finding(f"saw {seen}; expected 'Bearer <access token>'", location)]
    findings: list[Finding] = []
    if scheme != _SCHEME:
        findings.append(SCHEME_CASE.finding(f"scheme written {scheme!r}; write 'Bearer'", location))
    if not token:
        findings.append(HEADER_SYNTAX.finding("'Bearer' without a token", location))
    elif not _B64TOKEN.fullmatch(token):
        bad = sorted({c for c in token if not _B64TOKEN.fullmatch(c) and c != "="})[:5]
        what = f"characters {', '.join(repr(c) for c in bad)}" if bad else "'=' before the end"
        findings.append(HEADER_SYNTAX.finding(f"token ({len(token)} characters) has {what}; a b64token is letters, "
                                              "digits and -._~+/ with trailing '=' only", location))
    return findings


TOKEN_IN_QUERY = rule("BEAR-004", "error", "access token sent in the URL query (access_token=)",
                      "SPEC §5.2; RFC 6750 §2.3, §5.3")


@emits(TOKEN_IN_QUERY)
def check_request_token_placement(url: str, headers: Mapping[str, str]) -> list[Finding]:
    """The token travels in the Authorization header, never in the URL (RFC 6750 §2.3: it ends up in logs)."""
    try:
        query = urlsplit(url).query
    except ValueError:
        query = ""
    in_query = [value for name, value in parse_qsl(query, keep_blank_values=True) if name == "access_token"]
    header = _header(headers, "Authorization")
    findings: list[Finding] = []
    if in_query:
        findings.append(TOKEN_IN_QUERY.finding(f"URL query has access_token ({len(in_query[0])} characters); send "
                                               "it as 'Authorization: Bearer <token>'", "request.url.access_token"))
        if header is None:
            return findings  # the token is there, in the wrong place: one defect, one finding
    return findings + check_authorization_header(header)


EXPIRED_ACCEPTED = rule("BEAR-005", "error", "request with an expired token not refused with 401",
                        "SPEC §5.2, §5.4; RFC 6750 §3.1")
CANCELLED_ACCEPTED = rule("BEAR-006", "error", "request with a token of a cancelled notification not refused "
                          "with 401", "SPEC §3 step 8, §5.4")


@emits(EXPIRED_ACCEPTED, CANCELLED_ACCEPTED)
def check_token_use(token_state: TokenState, *, response_status: int,
                    response_headers: Mapping[str, str] | None = None) -> list[Finding]:
    """How a resource server answered a request whose token state the simulator knows (SPEC §5.4).

    Missing and invalid tokens are HTTP-006/HTTP-007; expired and cancelled ones must be 401 too. With the
    response headers, a 401 must also carry the Bearer challenge (HTTP-004).
    """
    findings: list[Finding] = []
    if token_state == "missing":
        findings += check_error_status("no-token", response_status)
    elif token_state == "invalid":
        findings += check_error_status("bad-token", response_status)
    elif token_state in ("expired", "cancelled") and response_status != 401:
        rule_ = EXPIRED_ACCEPTED if token_state == "expired" else CANCELLED_ACCEPTED
        verb = "accepted" if 200 <= response_status < 300 else "answered"
        findings.append(rule_.finding(f"{token_state} token {verb} with status {response_status}; expected 401 "
                                      "(invalid_token)", "response.status"))
    elif token_state not in ("valid", "expired", "cancelled"):
        raise ValueError(f"unknown token state {token_state!r}")
    if response_headers is not None:
        findings += check_bearer_challenge(response_status, response_headers)
    return findings


PULLED_AFTER_STOP = rule("BEAR-007", "error", "receiver pulls after it was told of the cancellation, or after the "
                         "availability period ended", "SPEC §3 step 8; §4 restriction.period.end")


@emits(PULLED_AFTER_STOP)
def check_pull_in_time(request_at: float, *, told_cancelled_at: float | None, period_end: float | None) -> \
        list[Finding]:
    """A pull (search, read, Binary) made at `request_at` (epoch seconds) with a token of a notification whose
    cancellation the receiver had acknowledged at `told_cancelled_at`, or whose `period_end` had passed: the
    receiver must stop pulling then. None: not cancelled (or the receiver was not told) / no end known."""
    if told_cancelled_at is not None and request_at > told_cancelled_at:
        return [PULLED_AFTER_STOP.finding(f"pulled {request_at - told_cancelled_at:.1f} s after the receiver "
                                          "acknowledged the cancellation of this token's notification", "request")]
    if period_end is not None and request_at > period_end:
        return [PULLED_AFTER_STOP.finding(f"pulled {request_at - period_end:.1f} s after the notification's "
                                          "availability period ended", "request")]
    return []


SEARCHED_NOT_OFFERED = rule("BEAR-008", "warning", "receiver searches a resource type its notification does not "
                            "offer (a sender may refuse it)", "SPEC §5.3 (the token is bound to the notification's "
                            "queries); §3 step 5")


@emits(SEARCHED_NOT_OFFERED)
def check_search_offered(url: str, offered: Sequence[tuple[str, str]]) -> list[Finding]:
    """A search (`[base]/Type?...` or `[base]/Type/$lastn?...`) with a pull token, of a resource type that none of
    the queries its notification offers (`offered`: (kind, relative path) as task_reader.pull_targets gives them,
    with the Workflow Task's where there is one) searches. The type decides, not the query's form: SPEC §6's
    hospital variant names the patient in a query the Task wrote without."""
    asked = search_target(urlsplit(url).path)
    if asked is None:
        return []
    offered_types = {found[0] for kind, path in offered if kind == "search"
                     for found in [search_target(path)] if found is not None}
    if asked[0] in offered_types:
        return []
    listed = ", ".join(sorted(offered_types)) or "no search"
    return [SEARCHED_NOT_OFFERED.finding(f"{asked[0]} is searched, but the notification offers searches of "
                                         f"{listed}", "request.url")]
