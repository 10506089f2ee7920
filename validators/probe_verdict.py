"""What the answer to one of the simulator's probes shows (SPEC §5.2-§5.4): one judgement for the probe's own result
(simulator/outbound/probes.py) and for the proxy's record of the same exchange, so the session's evidence says it.

A probe sends a defect on purpose; what the answer must show depends on the kind. The answer's form (an
OperationOutcome, a token response) is judged by the usual checks, not here.
"""
from __future__ import annotations

import json
from typing import Mapping

from validators import safe_json
from validators.findings import Finding
from validators.rules.http import check_bearer_challenge, check_error_status, check_other_patient_answer
from validators.rules.token_request import check_grant_refused

TOKEN_PROBES = ("no-token", "bad-token", "unknown-token")
# A pull-token request with one defect in both assertions, or a good request sent twice: what the defect is shows
# in the request (the proxy judges the simulator's assertions as the vendor's AS must); the AS must refuse it.
DEFECTIVE_GRANT_PROBES = ("wrong-aud", "expired-assertion", "unknown-key", "alg-none", "alg-hmac", "replayed-jti",
                          "unknown-client", "long-lived-assertion")
# A pull-token request with nothing wrong in its assertions that the AS must refuse all the same
REFUSED_GRANT_PROBES = ("token-after-cancellation", "unknown-authorization-base", "other-ura")
GRANT_PROBES = DEFECTIVE_GRANT_PROBES + REFUSED_GRANT_PROBES  # aimed at the AS; the others at the FHIR server
REFUSALS = {(400, "invalid_grant"), (401, "invalid_client")}  # RFC 6749 §5.2 as SPEC §5.2 uses it


def probe_verdict(kind: str, status: int, headers: Mapping[str, str], body: bytes, *,
                  other_bsn: str | None = None) -> list[Finding]:
    """The findings on the answer that the probe `kind` exists for (none for a kind judged by its request, or
    unknown). `other_bsn`: the BSN the other-patient probe asked for."""
    if kind in TOKEN_PROBES:
        return check_error_status("no-token" if kind == "no-token" else "bad-token", status) + \
            check_bearer_challenge(status, headers)
    if kind == "malformed-query":
        return check_error_status("malformed-query", status)
    if kind == "other-patient":
        return check_other_patient_answer(status, leaked=status == 200 and leaks(body, other_bsn or ""))
    if kind in REFUSED_GRANT_PROBES:
        return check_grant_refused(status, body)
    return []


def probe_mark(kind: str, *, other_bsn: str | None = None) -> str:
    """The probe as its requests name it to the proxy: the kind, and the BSN an other-patient probe asks for."""
    return f"{kind};bsn={other_bsn}" if other_bsn else kind


def read_probe_mark(mark: str) -> tuple[str, str | None]:
    """(kind, other BSN or None) of a probe mark."""
    kind, _, rest = mark.partition(";")
    return kind.strip(), rest.removeprefix("bsn=").strip() or None


def refused(status: int, body: bytes) -> bool:
    """Whether a token request was refused as RFC 6749 §5.2 says (400 invalid_grant or 401 invalid_client)."""
    return (status, oauth_error(body)) in REFUSALS


def oauth_error(body: bytes) -> str | None:
    """The `error` of an OAuth error answer, if it is one."""
    try:
        error = safe_json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    return error if isinstance(error, str) else None


def leaks(body: bytes, bsn: str) -> bool:
    """Whether a searchset's entries name this BSN anywhere."""
    try:
        bundle = safe_json.loads(body)
    except ValueError:
        return False
    return bool(bsn) and isinstance(bundle, dict) and bsn in json.dumps(bundle.get("entry", []))
