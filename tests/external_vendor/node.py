"""An independent vendor GtK node for the Twiin TA Notified Pull exchange, both roles for one organisation.

Start (cwd = the repository root)::

    python -m tests.external_vendor.node --port P --ura 90000303 --client-id acme-epd \
        --state-dir DIR --peer-config FILE [--public-url URL] [--name "Ziekenhuis Acme"] [--verbose]

It listens on 127.0.0.1:P. Its EC P-256 signing key is generated into DIR (signing-key.pem) on first start
and loaded afterwards. `--public-url` is the origin at which the peer reaches it (e.g. through a proxy);
default http://127.0.0.1:P. The peer config may also name it as "node_public_url".

Endpoints (all under one origin):

- `GET  /jwks`: our public signing keys (kid = RFC 7638 thumbprint).
- `POST /token`: our authorization server for both roles (SPEC §5.2). With an authorization base (claim
  `authorization_base` of the authorization assertion, or form parameter `authorization_base` in the
  `client_credentials` variant) it acts as AS-S and issues a pull token bound to that notification;
  without one it acts as AS-R and issues a notification token.
- `POST /notify/Task`: the notification endpoint, `[notification-base]` = `/notify` (SPEC §3 step 3, §4);
  201 + Location, then the node pulls in a background thread. 400/422 + OperationOutcome otherwise.
- `PUT  /notify/Task?identifier=<system>|<value>`: cancellation by conditional update (SPEC §3 step 8);
  200 on a match (and the pull stops), 404 on none, 412 on several.
- `GET  /notify/Task/<id>`: a received Notification Task (with a notification token).
- `GET  /fhir/...`: the FHIR STU3 resource server for the pull, `[base]` = `/fhir`: searches `Type?params`,
  reads `Type/id`, `Observation/$lastn`, `Binary/<id>` (raw PDF with `Accept: application/pdf`, a Binary
  resource with `application/fhir+json`), `metadata` (no token needed).
- `POST /_control/notify` (not in the spec): `{"bsn", "notification_url"?, "token_url"?, "update"?,
  "jwks_url"?, "client_id"?, "ura"?, "period_days"?}`: build a Notification Task and send it; answers 200
  `{"ok": true, "identifier", "peer_status", "location", ...}` or 502 with what the peer said (400 for a bad
  request). `update: true` keeps the groupIdentifier of the last notification for that BSN.
- `POST /_control/cancel`: `{"identifier"?, "notification_url"?, "token_url"?}`: cancel the last (or the
  named) notification we sent; from then on our AS refuses its authorization base (`invalid_grant`) and
  our FHIR server refuses tokens issued for it.
- `POST /_control/request-token`: `{"authorization_base"?}`: ask the peer's AS-S for a pull token (default:
  the base of the last notification received) and answer what it said (the token itself redacted).
- `GET  /_control/state`: what happened: received notifications with their pull, rejected ones,
  cancellations received, sent ones, cancelled ones, token requests answered.

Peer config (JSON, re-read on every use)::

    {"ura": "90000101", "client_id": "speeltuin-simulator",
     "as_receiver": {"token_url": "...", "jwks_url": "...", "fhir_base": "..."},
     "as_sender":   {"token_url": "...", "jwks_url": "...", "notification_url": "..."}}

`as_receiver` holds the peer's endpoints when WE receive (the peer sends: we pull from its fhir_base with a
token from its token_url; its JWKS verifies the assertions it sends us when notifying); `as_sender` those when
WE send (the peer receives: we get a notification token from its token_url and POST to its
notification_url; its JWKS verifies the assertions of its pull-token requests). Each role may override
"ura" and "client_id". Optional top-level "node_public_url".
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

from . import assertions as jwa
from .clinical import ClinicalStore, FhirError, binary_resource, check_type, parse_query_string
from .task import BROKEN_ESCAPE, SYS_RFC3986, bsn_ok, build_notification, fhir_datetime, now_utc, read_task

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FHIR_JSON = "application/fhir+json; charset=utf-8"
TOKEN_LIFETIME = 300
HTTP_TIMEOUT = 15

log = logging.getLogger("external_vendor")


# ------------------------------------------------------------------------------------------------ helpers

def operation_outcome(status: int, code: str, diagnostics: str, severity: str = "error") -> Response:
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]}
    response = Response(json.dumps(body), status=status, content_type=FHIR_JSON)
    if status == 401:
        safe = diagnostics.replace('"', "'").replace("\\", "/")
        response.headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{safe}"'
    return response


def outcome_with_issues(status: int, issues: list[str], code: str = "invalid") -> Response:
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text} for text in issues]}
    return Response(json.dumps(body), status=status, content_type=FHIR_JSON)


def fhir_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False), status=status, content_type=FHIR_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def plain_json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, indent=1), status=status, content_type="application/json")


class TokenError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate JSON key {key!r}")
        seen[key] = value
    return seen


def _json_problems(value: Any, where: str = "$") -> list[str]:
    """STU3 JSON rules (SPEC §6.4): no null, no empty arrays."""
    if value is None:
        return [f"{where} is null"]
    if isinstance(value, list):
        if not value:
            return [f"{where} is an empty array"]
        return [p for i, item in enumerate(value) for p in _json_problems(item, f"{where}[{i}]")]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _json_problems(item, f"{where}.{key}")]
    return []


def _ts() -> str:
    return fhir_datetime(now_utc())


def _short(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# ------------------------------------------------------------------------------------------------ config

@dataclass
class NodeConfig:
    port: int
    ura: str
    client_id: str
    state_dir: Path
    peer_config: Path
    public_url: str | None = None
    name: str = ""
    token_audience: str | None = None  # the one aud its token endpoint accepts (default: any URL it is known by)

    @property
    def local_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Peer:
    """The counterpart node as described by the peer-config file, read anew on every use."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PeerConfigError(f"cannot read the peer config {self.path}: {exc}") from exc
        if not isinstance(data, dict):
            raise PeerConfigError(f"the peer config {self.path} is not a JSON object")
        return data

    def role(self, name: str) -> dict[str, Any]:
        data = self.load()
        role = data.get(name) or {}
        if not isinstance(role, dict):
            raise PeerConfigError(f"{name} in the peer config is not an object")
        merged = {"ura": data.get("ura"), "client_id": data.get("client_id")}
        merged.update({k: v for k, v in role.items() if v is not None})
        return merged


class PeerConfigError(Exception):
    pass


# ------------------------------------------------------------------------------------------------ the node

class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.key = jwa.SigningKey(config.state_dir)
        self.peer = Peer(config.peer_config)
        self.jwks = jwa.JwksCache()
        self.replay = jwa.ReplayGuard()
        self.store = ClinicalStore(config.name or f"Zorgaanbieder {config.ura}")
        self.lock = threading.RLock()
        self.tokens: dict[str, dict[str, Any]] = {}
        self.received: dict[str, dict[str, Any]] = {}       # by our Task id
        self.rejected: list[dict[str, Any]] = []
        self.cancellations_received: list[dict[str, Any]] = []
        self.sent: dict[str, dict[str, Any]] = {}           # by Task identifier value
        self.token_log: list[dict[str, Any]] = []
        self.threads: list[threading.Thread] = []

    # -- our URLs
    def public_url(self) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        try:
            configured = self.peer.load().get("node_public_url")
        except PeerConfigError:
            configured = None
        return (configured or self.config.local_url).rstrip("/")

    def token_audiences(self) -> set[str]:
        if self.config.token_audience:
            return {self.config.token_audience}
        return {self.public_url() + "/token", self.config.local_url + "/token", request.base_url}

    def fhir_base(self) -> str:
        return self.public_url() + "/fhir"

    # ------------------------------------------------------------------ outbound: token requests
    def request_token(self, token_url: str, authorization_base: str | None) -> tuple[int | None, Any]:
        """Ask a peer's AS for a token (client assertion + authorization assertion, SPEC §5.2)."""
        form = {
            "grant_type": JWT_BEARER,
            "assertion": self.key.authorization_assertion(self.config.client_id, self.config.ura, token_url,
                                                          authorization_base),
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.key.client_assertion(self.config.client_id, token_url),
        }
        try:
            response = requests.post(token_url, data=form, timeout=HTTP_TIMEOUT, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            return None, f"token endpoint unreachable: {exc}"
        try:
            body: Any = response.json()
        except ValueError:
            body = _short(response.text)
        return response.status_code, body

    # ------------------------------------------------------------------ inbound: token endpoint
    def token_endpoint(self) -> Response:
        try:
            body, kind, extra = self._issue_token()
        except TokenError as exc:
            self._log_token(kind="?", outcome="refused", error=exc.error, description=exc.description)
            response = Response(json.dumps({"error": exc.error, "error_description": exc.description}),
                                status=exc.status, content_type="application/json")
        else:
            self._log_token(kind=kind, outcome="granted", **extra)
            response = Response(json.dumps(body), status=200, content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    def _log_token(self, **entry: Any) -> None:
        with self.lock:
            self.token_log.append({"at": _ts(), **entry})

    def _issue_token(self) -> tuple[dict[str, Any], str, dict[str, Any]]:
        if request.mimetype != "application/x-www-form-urlencoded":
            raise TokenError(400, "invalid_request", "the token request must be application/x-www-form-urlencoded")
        form = request.form

        def one(name: str) -> str | None:
            values = form.getlist(name)
            if len(values) > 1:
                raise TokenError(400, "invalid_request", f"parameter {name} is repeated")
            return values[0] if values and values[0] != "" else None

        names = ("grant_type", "assertion", "client_assertion_type", "client_assertion", "scope",
                 "authorization_base")
        grant_type, assertion, ca_type, client_assertion, scope, form_base = (one(n) for n in names)
        if grant_type is None:
            raise TokenError(400, "invalid_request", "grant_type is missing")
        if grant_type not in (JWT_BEARER, "client_credentials"):
            raise TokenError(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        if client_assertion is None or ca_type is None:
            raise TokenError(400, "invalid_request", "client_assertion and client_assertion_type are required")
        if ca_type != CLIENT_ASSERTION_TYPE:
            raise TokenError(401, "invalid_client", f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
        warnings: list[str] = []
        grant_claims: dict[str, Any] = {}
        if grant_type == JWT_BEARER:
            if assertion is None:
                raise TokenError(400, "invalid_request", "assertion (the authorization assertion) is missing")
            try:
                _, grant_claims = jwa.peek(assertion)
            except jwa.AssertionRejected as exc:
                raise TokenError(400, "invalid_grant", f"authorization assertion: {exc}") from exc
            base = grant_claims.get("authorization_base")
            if form_base is not None:
                warnings.append("authorization_base sent as a form parameter next to the assertion: ignored")
        else:
            warnings.append("grant_type=client_credentials variant (no authorization assertion) accepted")
            base = form_base
        if base is not None and not isinstance(base, str):
            raise TokenError(400, "invalid_grant", "authorization_base must be a string")
        kind = "pull" if base else "notification"
        notification = None
        try:
            if kind == "pull":
                role = self.peer.role("as_sender")
                with self.lock:
                    notification = next((n for n in self.sent.values() if n["authorization_base"] == base), None)
                if notification and notification.get("peer_jwks_url"):
                    role["jwks_url"] = notification["peer_jwks_url"]
                if notification and notification.get("peer_client_id"):
                    role["client_id"] = notification["peer_client_id"]
            else:
                role = self.peer.role("as_receiver")
        except PeerConfigError as exc:
            raise TokenError(401, "invalid_client", f"no counterpart is configured: {exc}") from exc
        client_id, jwks_url, peer_ura = role.get("client_id"), role.get("jwks_url"), role.get("ura")
        if not client_id or not jwks_url:
            raise TokenError(401, "invalid_client", "the peer config names no client_id/jwks_url for this role")
        audiences = self.token_audiences()
        try:
            jwa.verify(client_assertion, what="client assertion", jwks_url=jwks_url, jwks=self.jwks,
                       audiences=audiences, replay=self.replay, issuer=client_id, subject=client_id)
        except jwa.AssertionRejected as exc:
            raise TokenError(401, "invalid_client", str(exc)) from exc
        if kind == "pull":
            if notification is None:
                raise TokenError(400, "invalid_grant", "unknown authorization base")
            expected_ura = notification["owner_ura"]
        else:
            expected_ura = peer_ura
        if assertion is not None:
            try:
                grant_claims = jwa.verify(assertion, what="authorization assertion", jwks_url=jwks_url,
                                          jwks=self.jwks, audiences=audiences, replay=self.replay,
                                          subject=expected_ura)
            except jwa.AssertionRejected as exc:
                raise TokenError(400, "invalid_grant", str(exc)) from exc
        if notification is not None:
            if "patient" in grant_claims:
                warnings.append("a 'patient' claim was sent (accepted; the authorization base decides)")
                if str(grant_claims["patient"]).rpartition("|")[2] != notification["bsn"]:
                    raise TokenError(400, "invalid_grant", "the patient claim does not match the notification")
            if notification["status"] == "cancelled":
                raise TokenError(400, "invalid_grant", "the notification of this authorization base was cancelled")
            if notification.get("delivery") == "failed":
                raise TokenError(400, "invalid_grant", "the notification of this authorization base was not delivered")
            if datetime.fromisoformat(notification["period_end"].replace("Z", "+00:00")) <= datetime.now(timezone.utc):
                raise TokenError(400, "invalid_grant", "the availability period of this notification has ended")
        access_token = secrets.token_urlsafe(32)
        binding = {"kind": kind, "expires": time.time() + TOKEN_LIFETIME, "client_id": client_id,
                   "ura": grant_claims.get("sub") if assertion is not None else None,
                   "identifier": notification["identifier"] if notification else None,
                   "bsn": notification["bsn"] if notification else None}
        with self.lock:
            now = time.time()
            for stale in [t for t, b in self.tokens.items() if b["expires"] < now]:
                del self.tokens[stale]
            self.tokens[access_token] = binding
        body: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME}
        if scope:
            body["scope"] = scope
        extra = {"client_id": client_id, "warnings": warnings}
        if notification:
            extra["notification"] = notification["identifier"]
        return body, kind, extra

    # ------------------------------------------------------------------ bearer tokens
    def bearer(self, kind: str) -> dict[str, Any]:
        header = request.headers.get("Authorization", "")
        if not header[:7].lower() == "bearer " or not header[7:].strip():
            raise FhirError(401, "login", "a bearer access token is required")
        with self.lock:
            binding = self.tokens.get(header[7:].strip())
        if binding is None:
            raise FhirError(401, "login", "the access token is not valid")
        if binding["expires"] < time.time():
            raise FhirError(401, "login", "the access token has expired")
        if binding["kind"] != kind:
            raise FhirError(401, "login", f"this is a {binding['kind']} token, not a {kind} token")
        if kind == "pull":
            with self.lock:
                notification = self.sent.get(binding["identifier"])
            if notification is None or notification["status"] == "cancelled":
                raise FhirError(401, "login", "the notification of this token was cancelled")
            if datetime.fromisoformat(notification["period_end"].replace("Z", "+00:00")) <= datetime.now(timezone.utc):
                raise FhirError(401, "login", "the availability period of this notification has ended")
        return binding

    # ------------------------------------------------------------------ receiving side: notification endpoint
    def _parse_body(self) -> Any:
        if request.mimetype and "xml" in request.mimetype:
            raise FhirError(415, "not-supported", "this node accepts FHIR JSON (application/fhir+json) only")
        raw = request.get_data()
        try:
            body = json.loads(raw, object_pairs_hook=_no_duplicates)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FhirError(400, "structure", f"the body is not valid JSON: {exc}") from exc
        problems = _json_problems(body)
        if problems:
            raise FhirError(400, "structure", "; ".join(problems[:5]))
        return body

    def notification_create(self) -> Response:
        binding = self.bearer("notification")
        try:
            task = self._parse_body()
        except FhirError as exc:
            self._reject(exc.status, [exc.diagnostics])
            raise
        reading = read_task(task, our_ura=self.config.ura, status="requested")
        if binding.get("ura") and reading.sender_ura and binding["ura"] != reading.sender_ura:
            reading.errors.append(f"Task.requester.onBehalfOf is URA {reading.sender_ura}, "
                                  f"but the access token was issued to URA {binding['ura']}")
        if reading.errors:
            structural = not isinstance(task, dict) or task.get("resourceType") != "Task" or any(
                "must be an array" in e or "is not an object" in e for e in reading.errors)
            status = 400 if structural else 422
            self._reject(status, reading.errors)
            return outcome_with_issues(status, reading.errors, "structure" if structural else "business-rule")
        task_id = uuid.uuid4().hex
        stored = copy.deepcopy(task)
        stored["id"] = task_id
        meta = stored.get("meta") if isinstance(stored.get("meta"), dict) else {}
        stored["meta"] = dict(meta, versionId="1", lastUpdated=_ts())
        assert reading.identifier is not None
        record = {
            "id": task_id, "identifier": f"{reading.identifier[0]}|{reading.identifier[1]}",
            "group_identifier": reading.group_identifier, "bsn": reading.bsn, "status": "requested",
            "http_status": 201, "received_at": _ts(), "warnings": reading.warnings,
            "sender_ura": reading.sender_ura, "authorization_base": reading.authorization_base,
            "pull": {"status": "pending", "started_at": None, "finished_at": None, "token": None,
                     "queries": [], "documents": [], "errors": []},
            "_task": stored, "_reading": reading,
        }
        with self.lock:
            for other in self.received.values():
                if other["group_identifier"] == reading.group_identifier and other["status"] == "requested":
                    other.setdefault("superseded_by", task_id)
            self.received[task_id] = record
        thread = threading.Thread(target=self._pull, args=(task_id,), name=f"pull-{task_id[:8]}", daemon=True)
        with self.lock:
            self.threads.append(thread)
        thread.start()
        location = f"{self.public_url()}/notify/Task/{task_id}/_history/1"
        return fhir_json(stored, 201, {"Location": location, "ETag": 'W/"1"'})

    def _reject(self, status: int, issues: list[str]) -> None:
        with self.lock:
            self.rejected.append({"at": _ts(), "http_status": status, "issues": issues})

    def notification_cancel(self) -> Response:
        binding = self.bearer("notification")
        params = parse_query_string(request.query_string.decode("latin-1"))
        names = [n for n, _ in params]
        if names != ["identifier"]:
            raise FhirError(400, "invalid", "a conditional update needs exactly one search parameter: identifier")
        wanted = params[0][1]
        system, sep, value = wanted.rpartition("|")
        task = self._parse_body()
        reading = read_task(task, our_ura=self.config.ura, status="cancelled")
        if reading.errors:
            return outcome_with_issues(422, reading.errors, "business-rule")
        if reading.identifier and reading.identifier[1] != value:
            raise FhirError(400, "invalid", "the Task's identifier does not match the identifier of the condition")
        with self.lock:
            matches = [r for r in self.received.values()
                       if r["identifier"].rpartition("|")[2] == value
                       and (not sep or not system or r["identifier"].rpartition("|")[0] == system)]
            entry = {"at": _ts(), "identifier": wanted}
            if not matches:
                entry["http_status"] = 404
                self.cancellations_received.append(entry)
                raise FhirError(404, "not-found", f"no notification with identifier {wanted}")
            if len(matches) > 1:
                entry["http_status"] = 412
                self.cancellations_received.append(entry)
                raise FhirError(412, "multiple-matches", f"several notifications carry identifier {wanted}")
            record = matches[0]
            if binding.get("ura") and record.get("sender_ura") and binding["ura"] != record["sender_ura"]:
                entry["http_status"] = 403
                self.cancellations_received.append(entry)
                raise FhirError(403, "forbidden", "only the organisation that sent the notification can cancel it")
            record["status"] = "cancelled"
            record["cancelled_at"] = _ts()
            stored = record["_task"]
            stored["status"] = "cancelled"
            version = str(int(stored["meta"].get("versionId", "1")) + 1)
            stored["meta"] = dict(stored["meta"], versionId=version, lastUpdated=_ts())
            entry["http_status"] = 200
            self.cancellations_received.append(entry)
            body = copy.deepcopy(stored)
        return fhir_json(body, 200, {"ETag": f'W/"{version}"',
                                     "Location": f"{self.public_url()}/notify/Task/{body['id']}/_history/{version}"})

    def notification_read(self, task_id: str) -> Response:
        self.bearer("notification")
        with self.lock:
            record = self.received.get(task_id)
            body = copy.deepcopy(record["_task"]) if record else None
        if body is None:
            raise FhirError(404, "not-found", f"Task/{task_id} is not known")
        return fhir_json(body)

    # ------------------------------------------------------------------ receiving side: the pull
    def _pull(self, task_id: str) -> None:
        try:
            self._pull_all(task_id)
        except Exception as exc:  # a peer's odd answer must not leave the pull hanging in "pulling"
            log.exception("pull of %s failed", task_id)
            with self.lock:
                pull = self.received[task_id]["pull"]
                pull["errors"].append(f"{type(exc).__name__}: {exc}")
                pull["status"] = "failed"

    def _pull_all(self, task_id: str) -> None:
        with self.lock:
            record = self.received[task_id]
        pull = record["pull"]
        reading = record["_reading"]
        pull["status"] = "pulling"
        pull["started_at"] = _ts()
        try:
            role = self.peer.role("as_receiver")
            token_url, fhir_base = role.get("token_url"), role.get("fhir_base")
            if not token_url or not fhir_base:
                raise PeerConfigError("the peer config has no as_receiver token_url/fhir_base")
        except PeerConfigError as exc:
            pull["errors"].append(str(exc))
            pull["status"] = "failed"
            return
        fhir_base = fhir_base.rstrip("/")
        status, body = self.request_token(token_url, reading.authorization_base)
        pull["token"] = {"status": status, "error": body.get("error") if isinstance(body, dict) else _short(str(body))}
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            pull["status"] = "token-refused"
            return
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {body['access_token']}"
        queries: list[str] = list(reading.reads) + list(reading.searches)
        if reading.get_workflow_task and reading.based_on:
            queries = self._workflow_queries(session, fhir_base, reading.based_on, pull) + queries
        letters: list[str] = []
        for query in queries:
            if self._cancelled(task_id):
                pull["status"] = "stopped-cancelled"
                return
            letters.extend(self._fetch_query(session, fhir_base, query, pull))
        for url in letters:
            if self._cancelled(task_id):
                pull["status"] = "stopped-cancelled"
                return
            self._fetch_letter(session, fhir_base, url, pull)
        complete = (all(q["status"] == 200 for q in pull["queries"])
                    and all(d["status"] == 200 and d["pdf_ok"] for d in pull["documents"]) and not pull["errors"])
        pull["status"] = "done" if complete else "incomplete"
        pull["finished_at"] = _ts()

    def _cancelled(self, task_id: str) -> bool:
        with self.lock:
            return self.received[task_id]["status"] == "cancelled"

    def _get(self, session: requests.Session, url: str, accept: str) -> requests.Response | str:
        try:
            return session.get(url, headers={"Accept": accept}, timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            return f"{url}: {exc}"

    def _workflow_queries(self, session: requests.Session, fhir_base: str, based_on: str,
                          pull: dict[str, Any]) -> list[str]:
        response = self._get(session, f"{fhir_base}/{based_on}", "application/fhir+json")
        if isinstance(response, str):
            pull["errors"].append(response)
            return []
        pull["queries"].append({"query": based_on, "status": response.status_code, "entries": 1, "pages": 1})
        try:
            task = response.json()
        except ValueError:
            pull["errors"].append("the Workflow Task is not JSON")
            return []
        found = []
        for item in task.get("input", []) if isinstance(task, dict) else []:
            if isinstance(item, dict) and isinstance(item.get("valueString"), str):
                found.append(item["valueString"])
            elif isinstance(item, dict) and isinstance(item.get("valueReference"), dict):
                found.append(str(item["valueReference"].get("reference")))
        return found

    def _fetch_query(self, session: requests.Session, fhir_base: str, query: str, pull: dict[str, Any]) -> list[str]:
        entry: dict[str, Any] = {"query": query, "status": None, "entries": 0, "pages": 0}
        letters: list[str] = []
        try:
            self._fetch_pages(session, f"{fhir_base}/{query}", entry, letters)
        finally:
            pull["queries"].append(entry)  # complete entries only: /_control/state may be reading
        return letters

    def _fetch_pages(self, session: requests.Session, first: str, entry: dict[str, Any], letters: list[str]) -> None:
        url: str | None = first
        while url and entry["pages"] < 10:
            response = self._get(session, url, "application/fhir+json")
            if isinstance(response, str):
                entry["error"] = response
                return
            entry["pages"] += 1
            entry["status"] = response.status_code
            if response.status_code != 200:
                entry["error"] = _short(response.text, 300)
                return
            try:
                body = response.json()
            except ValueError:
                entry["status"] = "not-json"
                return
            resources = []
            url = None
            if isinstance(body, dict) and body.get("resourceType") == "Bundle":
                entry["bundle_type"] = body.get("type")
                for item in body.get("entry", []):
                    if isinstance(item, dict) and isinstance(item.get("resource"), dict):
                        resources.append(item["resource"])
                        if (item.get("search") or {}).get("mode", "match") == "match":
                            entry["entries"] += 1
                url = next((link.get("url") for link in body.get("link", [])
                            if isinstance(link, dict) and link.get("relation") == "next"), None)
            elif isinstance(body, dict):
                resources.append(body)
                entry["entries"] += 1
            for resource in resources:
                if resource.get("resourceType") != "DocumentReference":
                    continue
                for content in resource.get("content", []):
                    attachment = content.get("attachment") if isinstance(content, dict) else None
                    if isinstance(attachment, dict) and isinstance(attachment.get("url"), str):
                        letters.append(attachment["url"])

    def _fetch_letter(self, session: requests.Session, fhir_base: str, url: str, pull: dict[str, Any]) -> None:
        absolute = url if "://" in url else urljoin(fhir_base + "/", url)
        entry: dict[str, Any] = {"url": absolute, "status": None, "pdf_ok": False}
        try:
            self._fetch_pdf(session, fhir_base, absolute, entry)
        finally:
            pull["documents"].append(entry)

    def _fetch_pdf(self, session: requests.Session, fhir_base: str, absolute: str, entry: dict[str, Any]) -> None:
        if not absolute.startswith(fhir_base.split("/", 3)[0] + "//" + fhir_base.split("/", 3)[2]):
            entry["error"] = "attachment on another origin than the sender's FHIR server: not fetched with our token"
            return
        response = self._get(session, absolute, "application/pdf")
        if isinstance(response, str):
            entry["error"] = response
            return
        entry["status"] = response.status_code
        entry["content_type"] = response.headers.get("Content-Type")
        entry["size"] = len(response.content)
        data = response.content
        entry["pdf_ok"] = response.status_code == 200 and data.startswith(b"%PDF-") and b"%%EOF" in data[-1024:]

    # ------------------------------------------------------------------ sending side: control
    def control_notify(self) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return plain_json({"ok": False, "error": "send a JSON object"}, 400)
        bsn = body.get("bsn")
        if not bsn_ok(bsn):
            return plain_json({"ok": False, "error": f"{bsn!r} is not a valid BSN (11-check)"}, 400)
        period_days = body.get("period_days", 365)
        if not isinstance(period_days, int) or isinstance(period_days, bool) or period_days < 1:
            return plain_json({"ok": False, "error": "period_days must be a positive integer"}, 400)
        try:
            role = self.peer.role("as_sender")
        except PeerConfigError as exc:
            role = {}
            if not (body.get("notification_url") and body.get("token_url")):
                return plain_json({"ok": False, "error": str(exc)}, 400)
        notification_url = self._task_url(body.get("notification_url") or role.get("notification_url"))
        token_url = body.get("token_url") or role.get("token_url")
        receiver_ura = body.get("ura") or role.get("ura")
        if not notification_url or not token_url or not receiver_ura:
            return plain_json({"ok": False, "error": "no notification_url/token_url/ura of the receiver known"}, 400)
        self.store.ensure_patient(bsn)
        group = None
        if body.get("update"):
            with self.lock:
                earlier = [n for n in self.sent.values() if n["bsn"] == bsn]
            group = earlier[-1]["group_identifier"] if earlier else None
        authorization_base = secrets.token_urlsafe(32)
        task = build_notification(bsn=bsn, sender_ura=self.config.ura, sender_client_id=self.config.client_id,
                                  receiver_ura=receiver_ura, authorization_base=authorization_base,
                                  group_identifier=group, period_days=period_days,
                                  organisation_name=self.config.name)
        identifier = task["identifier"][0]["value"]
        record: dict[str, Any] = {
            "identifier": identifier, "group_identifier": task["groupIdentifier"]["value"], "bsn": bsn,
            "authorization_base": authorization_base, "owner_ura": receiver_ura, "status": "requested",
            "period_end": task["restriction"]["period"]["end"], "sent_at": _ts(), "update": bool(group),
            "notification_url": notification_url, "token_url": token_url, "delivery": "sending",
            "peer_jwks_url": body.get("jwks_url"), "peer_client_id": body.get("client_id"),
            "peer_status": None, "location": None, "_task": task,
        }
        with self.lock:
            self.sent[identifier] = record  # before sending: the receiver may ask for a pull token at once
        status, answer = self.request_token(token_url, None)
        if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            record.update(delivery="failed", token_status=status, peer_body=answer)
            return plain_json({"ok": False, "stage": "token", "identifier": identifier,
                               "peer_status": status, "peer_body": answer}, 502)
        try:
            response = requests.post(notification_url, json=task, timeout=HTTP_TIMEOUT, headers={
                "Authorization": f"Bearer {answer['access_token']}", "Content-Type": "application/fhir+json",
                "Accept": "application/fhir+json"})
        except requests.RequestException as exc:
            record.update(delivery="failed", peer_body=str(exc))
            return plain_json({"ok": False, "stage": "notification", "identifier": identifier,
                               "error": str(exc)}, 502)
        peer_body = self._answer_body(response)
        ok = response.status_code in (200, 201)
        record.update(delivery="delivered" if ok else "failed", peer_status=response.status_code,
                      location=response.headers.get("Location"), peer_body=peer_body)
        result = {"ok": ok, "stage": "notification", "identifier": f"{SYS_RFC3986}|{identifier}",
                  "group_identifier": record["group_identifier"], "bsn": bsn,
                  "peer_status": response.status_code, "location": record["location"], "peer_body": peer_body}
        return plain_json(result, 200 if ok else 502)

    @staticmethod
    def _task_url(url: str | None) -> str | None:
        if not url:
            return None
        url = url.rstrip("/")
        return url if url.endswith("/Task") else url + "/Task"

    @staticmethod
    def _answer_body(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return _short(response.text)

    def control_cancel(self) -> Response:
        body = request.get_json(silent=True)
        body = body if isinstance(body, dict) else {}
        wanted = body.get("identifier")
        with self.lock:
            if wanted:
                value = str(wanted).rpartition("|")[2]
                record = self.sent.get(value)
            else:
                candidates = [n for n in self.sent.values() if n["status"] != "cancelled"]
                record = candidates[-1] if candidates else None
            if record is None:
                return plain_json({"ok": False, "error": f"no sent notification {wanted or '(none sent)'}"}, 404)
            record["status"] = "cancelled"  # from now on AS-S and the FHIR server refuse this authorization base
            record["cancelled_at"] = _ts()
            task = copy.deepcopy(record["_task"])
        task["status"] = "cancelled"
        notification_url = self._task_url(body.get("notification_url") or record["notification_url"])
        token_url = body.get("token_url") or record["token_url"]
        status, answer = self.request_token(token_url, None)
        if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            record.update(cancel_status=None, cancel_body=answer)
            return plain_json({"ok": False, "stage": "token", "peer_status": status, "peer_body": answer}, 502)
        identifier = f"{SYS_RFC3986}|{record['identifier']}"
        try:
            response = requests.put(notification_url, params={"identifier": identifier}, json=task,
                                    timeout=HTTP_TIMEOUT, headers={
                                        "Authorization": f"Bearer {answer['access_token']}",
                                        "Content-Type": "application/fhir+json", "Accept": "application/fhir+json"})
        except requests.RequestException as exc:
            record.update(cancel_status=None, cancel_body=str(exc))
            return plain_json({"ok": False, "stage": "cancellation", "error": str(exc)}, 502)
        answer_body = self._answer_body(response)
        record.update(cancel_status=response.status_code, cancel_body=answer_body)
        ok = response.status_code == 200
        return plain_json({"ok": ok, "stage": "cancellation", "identifier": identifier,
                           "peer_status": response.status_code, "peer_body": answer_body}, 200 if ok else 502)

    def control_request_token(self) -> Response:
        body = request.get_json(silent=True)
        body = body if isinstance(body, dict) else {}
        base = body.get("authorization_base")
        if base is None:
            with self.lock:
                records = list(self.received.values())
            if not records:
                return plain_json({"ok": False, "error": "no notification received yet"}, 404)
            base = records[-1]["authorization_base"]
        try:
            token_url = body.get("token_url") or self.peer.role("as_receiver").get("token_url")
        except PeerConfigError as exc:
            return plain_json({"ok": False, "error": str(exc)}, 400)
        if not token_url:
            return plain_json({"ok": False, "error": "no as_receiver token_url in the peer config"}, 400)
        status, answer = self.request_token(token_url, base)
        if isinstance(answer, dict) and "access_token" in answer:
            answer = dict(answer, access_token="(redacted)")
        return plain_json({"ok": status == 200, "peer_status": status, "peer_body": answer})

    def control_state(self) -> Response:
        for _ in range(5):
            try:
                return self._state()
            except RuntimeError:  # a pull thread changed a record while it was copied: try again
                time.sleep(0.01)
        return self._state()

    def _state(self) -> Response:
        with self.lock:
            def public(record: dict[str, Any]) -> dict[str, Any]:
                return {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}
            sent = [public(r) for r in self.sent.values()]
            for item in sent:
                item["identifier"] = f"{SYS_RFC3986}|{item['identifier']}"
            state = {
                "ura": self.config.ura, "client_id": self.config.client_id, "public_url": self.public_url(),
                "received": [public(r) for r in self.received.values()],
                "rejected": copy.deepcopy(self.rejected),
                "cancellations_received": copy.deepcopy(self.cancellations_received),
                "sent": sent,
                "cancelled": [s["identifier"] for s in sent if s["status"] == "cancelled"],
                "tokens": copy.deepcopy(self.token_log),
            }
        return plain_json(state)

    # ------------------------------------------------------------------ sending side: FHIR server
    def _check_accept(self, binary: bool = False) -> None:
        accept = request.headers.get("Accept", "")
        if not accept:
            return
        kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
        if binary and any(k in ("application/pdf", "*/*", "application/*") for k in kinds):
            return
        if any(k in ("application/fhir+json", "application/json", "application/json+fhir", "*/*", "application/*")
               for k in kinds):
            return
        raise FhirError(406, "not-supported", "this server answers FHIR JSON (application/fhir+json) only")

    def _self_link(self) -> str:
        raw = request.query_string.decode("latin-1")
        path = request.path[len("/fhir"):]
        return f"{self.fhir_base()}{path}" + (f"?{raw}" if raw else "")

    def fhir_search(self, resource_type: str, lastn: bool = False) -> Response:
        binding = self.bearer("pull")
        check_type(resource_type)
        self._check_accept()
        params = parse_query_string(request.query_string.decode("latin-1"))
        result = self.store.search(resource_type, params, binding["bsn"], lastn=lastn)
        base = self.fhir_base()
        entries = [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                   for r in result.matches]
        entries += [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
                     "search": {"mode": "include"}} for r in result.includes]
        bundle: dict[str, Any] = {
            "resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": _ts()},
            "type": "searchset", "total": len(result.matches),
            "link": [{"relation": "self", "url": self._self_link()}],
        }
        if entries:
            bundle["entry"] = entries
        return fhir_json(bundle)

    def fhir_read(self, resource_type: str, resource_id: str) -> Response:
        if resource_id.startswith("$"):
            if resource_type == "Observation" and resource_id == "$lastn":
                return self.fhir_search("Observation", lastn=True)
            raise FhirError(404, "not-supported", f"operation {resource_type}/{resource_id} is not supported")
        binding = self.bearer("pull")
        check_type(resource_type)
        if resource_type == "Binary":
            self._check_accept(binary=True)
            pdf = self.store.binary(resource_id, binding["bsn"])
            kinds = [p.split(";")[0].strip().lower() for p in request.headers.get("Accept", "").split(",")]
            if any(k in ("application/fhir+json", "application/json", "application/json+fhir") for k in kinds) \
                    and "application/pdf" not in kinds:
                return fhir_json(binary_resource(resource_id, pdf))
            return Response(pdf, 200, content_type="application/pdf")
        self._check_accept()
        if request.query_string:
            params = parse_query_string(request.query_string.decode("latin-1"))
            if any(name != "_format" for name, _ in params):
                raise FhirError(400, "invalid", "a read takes no search parameters")
        return fhir_json(self.store.read(resource_type, resource_id, binding["bsn"]))

    def capability_statement(self) -> Response:
        types = ["Patient", "Coverage", "Consent", "Observation", "Condition", "NutritionOrder", "Flag",
                 "AllergyIntolerance", "MedicationStatement", "MedicationRequest", "MedicationDispense",
                 "DeviceUseStatement", "Immunization", "Procedure", "Encounter", "ProcedureRequest",
                 "ImmunizationRecommendation", "DeviceRequest", "Appointment", "DocumentReference", "Binary"]
        return fhir_json({
            "resourceType": "CapabilityStatement", "status": "active", "date": _ts(), "kind": "instance",
            "software": {"name": "external-vendor GtK test node"},
            "implementation": {"description": "BgZ sending system", "url": self.fhir_base()},
            "fhirVersion": "3.0.2", "acceptUnknown": "no", "format": ["application/fhir+json"],
            "rest": [{"mode": "server", "security": {"service": [{"text": "OAuth2 bearer (Twiin TA Notified Pull)"}]},
                      "resource": [{"type": t, "interaction": [{"code": "read"}] + (
                          [] if t == "Binary" else [{"code": "search-type"}])} for t in types]}],
        })


# ------------------------------------------------------------------------------------------------ Flask app

def create_app(node: Node) -> Flask:
    app = Flask("external_vendor")
    app.config["MAX_CONTENT_LENGTH"] = 5 * 1024 * 1024

    @app.errorhandler(FhirError)
    def _fhir_error(exc: FhirError) -> Response:
        return operation_outcome(exc.status, exc.code, exc.diagnostics)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported", 413: "too-costly"}.get(exc.code or 0, "invalid")
        return operation_outcome(exc.code or 400, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Response:
        log.exception("unexpected error")
        return operation_outcome(500, "exception", f"internal error: {type(exc).__name__}")

    @app.get("/jwks")
    def jwks() -> Response:
        return plain_json(node.key.jwks())

    app.add_url_rule("/token", "token", node.token_endpoint, methods=["POST"])

    @app.post("/notify/Task")
    def notify_create() -> Response:
        return node.notification_create()

    @app.put("/notify/Task")
    def notify_cancel() -> Response:
        return node.notification_cancel()

    @app.get("/notify/Task/<task_id>")
    def notify_read(task_id: str) -> Response:
        return node.notification_read(task_id)

    @app.get("/fhir/metadata")
    def metadata() -> Response:
        return node.capability_statement()

    @app.get("/fhir/<resource_type>")
    def search(resource_type: str) -> Response:
        return node.fhir_search(resource_type)

    @app.get("/fhir/<resource_type>/<resource_id>")
    def read(resource_type: str, resource_id: str) -> Response:
        return node.fhir_read(resource_type, resource_id)

    @app.get("/fhir/<resource_type>/<resource_id>/_history/<version>")
    def vread(resource_type: str, resource_id: str, version: str) -> Response:
        if version != "1":
            raise FhirError(404, "not-found", f"{resource_type}/{resource_id} has no version {version}")
        return node.fhir_read(resource_type, resource_id)

    app.add_url_rule("/_control/notify", "control_notify", node.control_notify, methods=["POST"])
    app.add_url_rule("/_control/cancel", "control_cancel", node.control_cancel, methods=["POST"])
    app.add_url_rule("/_control/request-token", "control_request_token", node.control_request_token,
                     methods=["POST"])
    app.add_url_rule("/_control/state", "control_state", node.control_state, methods=["GET"])

    @app.before_request
    def _broken_escape() -> Response | None:
        if BROKEN_ESCAPE.search(request.query_string.decode("latin-1")):
            return operation_outcome(400, "invalid", "the query string has a broken percent-escape")
        return None

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.external_vendor.node", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ura", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--peer-config", type=Path, required=True)
    parser.add_argument("--public-url", default=None, help="origin at which the peer reaches this node")
    parser.add_argument("--name", default="", help="the organisation's name")
    parser.add_argument("--token-audience", default=None, help="the only aud its token endpoint accepts")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)
    node = Node(NodeConfig(port=args.port, ura=args.ura, client_id=args.client_id, state_dir=args.state_dir,
                           peer_config=args.peer_config, public_url=args.public_url, name=args.name,
                           token_audience=args.token_audience))
    server = make_server("127.0.0.1", args.port, create_app(node), threaded=True)
    log.info("node %s (URA %s) listening on %s, kid %s", args.client_id, args.ura, node.config.local_url, node.key.kid)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
