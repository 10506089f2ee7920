"""Runs the validators on one recorded flow. Pure: everything it needs is passed in."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping
from urllib.parse import urlsplit

from validators import safe_json
from validators.findings import Finding
from validators.probe_verdict import DEFECTIVE_GRANT_PROBES, GRANT_PROBES, probe_verdict, read_probe_mark
from validators.query import parse_params, read_search_url
from validators.rules.bearer import (
    check_pull_in_time,
    check_request_token_placement,
    check_search_offered,
)
from validators.rules.bgz_profiles import check_query_result
from validators.rules.bundle import check_patient_data, check_searchset, patient_reference
from validators.rules.document import check_binary
from validators.rules.http import check_accept_honoured, check_created, check_fhir_response
from validators.rules.jwt_assertion import check_assertion, check_jti_replay
from validators.rules.notification import check_cancellation_request, check_cancellation_task, check_notification_task
from validators.rules.structure import FhirParseError, parse_fhir
from validators.rules.token_request import check_grant_for_session, check_token_request, check_token_response
from validators.rules.workflow_task import check_workflow_task
from validators.spec import FORM_AUTHORIZATION_BASE, GRANT_CLIENT_CREDENTIALS, find_query


@dataclass(frozen=True)
class PullGrant:
    """What the notification a pull token is bound to allows, as the token server knows it."""

    notification_id: str
    told_cancelled_at: float | None  # when the receiver acknowledged its cancellation (None: not, or not told)
    period_end: float | None  # the end of its availability
    offered: tuple[tuple[str, str], ...]  # (kind, relative path) of what it offers, its Workflow Task's included


@dataclass(frozen=True)
class FlowContext:
    """What the session tells about the caller of this flow."""

    token_url: str | None = None  # the exact URL assertions must name as aud
    caller_jwks: dict | None = None  # the keys the caller signs with
    caller_client_id: str | None = None
    purpose: Literal["pull", "notification"] | None = None
    # Remembers (iss, jti) across flows; True when the pair was seen before (a replay). Given by the addon.
    seen_jti: Callable[[str, str, float], bool] | None = None
    trusted_ca_pem: bytes | None = None  # the test CA: assertions may carry an x5c chain to it
    registered_ura: str | None = None  # the URA the caller registered with the token server it calls
    # The Task of the notification the token server sent the caller under an authorization base (pull), or None
    task_of_base: Callable[[str], dict | None] | None = None
    # What the notification of a pull's bearer token allows; None: no pull, or a token the token server does not know
    pull_grant: PullGrant | None = None
    # A pull the simulator made for a notification it received: that notification's patient (its BSN), and the
    # reference of that patient on the sender's server once an earlier answer showed it
    pulled_bsn: str | None = None
    pulled_patient: str | None = None
    # One of the simulator's probes (its mark, validators.probe_verdict.probe_mark): the answer is judged as the
    # probe's, and what the probe sent wrong on purpose is noted as such
    probe: str | None = None


@dataclass(frozen=True)
class FlowRecord:
    tag: str
    method: str
    url: str
    request_headers: Mapping[str, str]
    request_body: bytes
    status: int | None
    response_headers: Mapping[str, str]
    response_body: bytes
    started_at: float


def header(headers: Mapping[str, str], name: str) -> str:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), "")


def request_errors(tag: str, method: str, url: str, headers: Mapping[str, str], body: bytes) -> list[Finding]:
    """The error findings a request carries in itself, known before it is forwarded (block_on_error): a token
    request's form, a notification's or cancellation's Task. What needs the session (keys, audience) or the
    answer is judged afterwards."""
    if tag == "token-request":
        found = check_token_request(body, header(headers, "Content-Type"))[0]
    elif tag in ("notification", "cancellation"):
        found = _task_findings(tag, method, url, body)
    else:
        return []
    return [f for f in found if f.severity == "error"]


def inspect(flow: FlowRecord, context: FlowContext) -> list[Finding]:
    if flow.status is None:
        return []
    check = _CHECKS.get(flow.tag)
    found = check(flow, context) if check else []
    return _as_probe(flow, context.probe, found) if context.probe else found


# What a probe's request carries wrong on purpose: no or a bad bearer token, defective assertions, a replayed jti
_SENT_ON_PURPOSE = ("BEAR-001", "BEAR-002", "BEAR-003", "BEAR-004", "JWT-")


def _as_probe(flow: FlowRecord, mark: str, found: list[Finding]) -> list[Finding]:
    """A probe's exchange: the findings of what it sent on purpose become notes, but where the vendor's AS granted a
    token despite them (they are what it overlooked); and the answer gets the probe's verdict."""
    kind, other_bsn = read_probe_mark(mark)
    if (flow.tag == "token-request") != (kind in GRANT_PROBES):
        return found  # a request on the probe's way, not the probe: a FHIR probe's good token request, say
    status = flow.status or 0
    overlooked = kind in DEFECTIVE_GRANT_PROBES and status == 200
    judged: list[Finding] = []
    for f in found:
        if f.rule.startswith(_SENT_ON_PURPOSE):
            f = Finding(f.rule, f.severity, f"the vendor's AS granted a token despite this, sent on purpose by the "
                                            f"simulator's probe {kind}: {f.message}", f.location) if overlooked else \
                Finding(f.rule, "info", f"sent on purpose by the simulator's probe {kind}: {f.message}", f.location)
        judged.append(f)
    return judged + probe_verdict(kind, status, flow.response_headers, flow.response_body, other_bsn=other_bsn)


def _token_request(flow: FlowRecord, context: FlowContext) -> list[Finding]:
    found, form = check_token_request(flow.request_body, header(flow.request_headers, "Content-Type"))
    audience = context.token_url or flow.url.split("?", 1)[0]
    grant_claims: dict | None = None
    for key, kind in (("client_assertion", "client"), ("assertion", "authorization")):
        if form.get(key):
            result = check_assertion(form[key], kind=kind, audience=audience, jwks=context.caller_jwks,
                                     now=flow.started_at, expected_client_id=context.caller_client_id,
                                     purpose=context.purpose if kind == "authorization" else None, location=key,
                                     trusted_ca_pem=context.trusted_ca_pem)
            found += result.findings
            if context.seen_jti is not None:
                found += check_jti_replay(result.claims, context.seen_jti, key)
            if kind == "authorization":
                grant_claims = result.claims
    if context.registered_ura is not None and (grant_claims is not None
                                               or form.get("grant_type") == GRANT_CLIENT_CREDENTIALS):
        found += check_grant_for_session(grant_claims, registered_ura=context.registered_ura,
                                         task_of_base=context.task_of_base if context.purpose == "pull" else None,
                                         form_base=form.get(FORM_AUTHORIZATION_BASE))
    return found + check_token_response(flow.status or 0, flow.response_headers, flow.response_body)


def _pull_in_time(flow: FlowRecord, grant: PullGrant | None) -> list[Finding]:
    """A pull with a bearer token whose notification the receiver knows to be over (BEAR-007)."""
    if grant is None:
        return []
    return check_pull_in_time(flow.started_at, told_cancelled_at=grant.told_cancelled_at, period_end=grant.period_end)


def _fhir_request(flow: FlowRecord) -> list[Finding]:
    """What the caller of a FHIR endpoint owes: a proper bearer header, and the format it asked honoured."""
    found = check_request_token_placement(flow.url, flow.request_headers)  # the header's form included
    if (flow.status or 0) < 400:
        format_param = dict(p for p in parse_params(urlsplit(flow.url).query, strict=False) if p[1]).get("_format")
        found += check_accept_honoured(header(flow.request_headers, "Accept") or None, format_param,
                                       header(flow.response_headers, "Content-Type") or None)
    return found


def _task_findings(tag: str, method: str, url: str, body: bytes) -> list[Finding]:
    """A notification's or cancellation's Task, JSON or XML, judged as the notification endpoint judges it: what
    reading it found (a JSON key twice, XML out of the STU3 order, ...) and the Task rules over what was read."""
    task, read = _read_body(body)
    if task is None:
        return []  # no Task to judge: the endpoint answers that itself
    if tag == "notification":
        return read + check_notification_task(task)
    return read + check_cancellation_task(task) + check_cancellation_request(url, task, method=method)


def _notification(flow: FlowRecord, _context: FlowContext) -> list[Finding]:
    found = _fhir_request(flow) + _task_findings(flow.tag, flow.method, flow.url, flow.request_body)
    found += check_fhir_response(flow.status or 0, flow.response_headers, flow.response_body)
    if (flow.status or 0) < 400:
        found += check_created(flow.status or 0, flow.response_headers)
    return found


def _cancellation(flow: FlowRecord, _context: FlowContext) -> list[Finding]:
    found = _fhir_request(flow) + _task_findings(flow.tag, flow.method, flow.url, flow.request_body)
    return found + check_fhir_response(flow.status or 0, flow.response_headers, flow.response_body)


def _search(flow: FlowRecord, context: FlowContext) -> list[Finding]:
    grant = context.pull_grant
    found = _fhir_request(flow) + _pull_in_time(flow, grant) + \
        check_fhir_response(flow.status or 0, flow.response_headers, flow.response_body)
    if grant is not None:
        found += check_search_offered(flow.url, grant.offered)
    bundle = _resource(flow.response_body)
    if flow.status != 200 or bundle is None:
        return found
    asked = read_search_url(flow.url)
    query = find_query(asked) if asked else None
    found += check_searchset(bundle, request_url=flow.url, expected_profiles=query.profiles if query else (),
                             patient_reference=context.pulled_patient)
    if context.pulled_bsn is not None:
        found += check_patient_data(bundle, context.pulled_bsn)
    if query is not None and query.profiles and isinstance(bundle, dict):  # a BgZ query: its profiles and types
        found += check_query_result(bundle, query)
    return found


def _read(flow: FlowRecord, context: FlowContext) -> list[Finding]:
    found = _fhir_request(flow) + _pull_in_time(flow, context.pull_grant) + \
        check_fhir_response(flow.status or 0, flow.response_headers, flow.response_body)
    if flow.status == 200 and _read_type(flow.url) == "Task":  # in a pull, the Workflow Task (SPEC §3 step 1)
        task = _resource(flow.response_body)
        if task is not None:
            found += check_workflow_task(task)
    elif flow.status == 200 and context.pulled_bsn is not None:
        found += check_patient_data(_resource(flow.response_body), context.pulled_bsn)
    return found


def pulled_patient_reference(body: bytes, bsn: str) -> str | None:
    """`Patient/<id>` of the matched Patient with this BSN in a pull's answer (JSON or XML), if any."""
    return patient_reference(_resource(body), bsn)


def _read_type(url: str) -> str | None:
    """The resource type a read `[base]/Type/id` asks for."""
    parts = urlsplit(url).path.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 else None


def _binary(flow: FlowRecord, context: FlowContext) -> list[Finding]:
    content_type = header(flow.response_headers, "Content-Type")
    if "fhir" in content_type or (flow.status or 0) >= 400:
        return _read(flow, context)
    return check_request_token_placement(flow.url, flow.request_headers) + \
        _pull_in_time(flow, context.pull_grant) + \
        check_binary(content_type, flow.response_body)


def _resource(body: bytes) -> Any:
    """The FHIR resource in a body, JSON or XML (read safely); None when there is none to judge."""
    return _read_body(body)[0]


def _read_body(body: bytes) -> tuple[Any, list[Finding]]:
    """`_resource` and what the one FHIR reader found in reading it (none for JSON that is not FHIR)."""
    if not body:
        return None, []
    try:
        parsed = parse_fhir(body, structure=False)
    except FhirParseError:
        try:
            return safe_json.loads(body), []  # not FHIR, but JSON the rules can still report on
        except (ValueError, UnicodeDecodeError):
            return None, []
    return parsed.resource, parsed.findings


_CHECKS = {"token-request": _token_request, "notification": _notification, "cancellation": _cancellation,
           "search": _search, "read": _read, "binary": _binary}
