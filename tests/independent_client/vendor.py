"""An independent "vendor" receiving node (receiving GtK), written only from
/work/shared/SPEC.md and /work/main/README.md.

It plays the Receiving System of TA Notified Pull (SPEC §2, §3):

* ``AS-R``: a token endpoint (SPEC §5.2, receiving side) that verifies the
  sender's client assertion and authorization assertion against the sender's
  JWKS and issues an opaque bearer token (``Cache-Control: no-store``);
* the notification endpoint ``POST [notification-base]/Task`` (SPEC §3 step 3),
  bearer-protected, answering ``201 Created`` with a ``Location``; plus the
  cancellation ``PUT [notification-base]/Task?identifier=<system>|<value>``
  (SPEC §3 step 8);
* a pull client (SPEC §3 steps 4-6): signed client assertion + authorization
  assertion in one jwt-bearer form POST to the sender's token endpoint, then
  FHIR searches and the Binary of the referral letter.

Nothing here imports or reads the simulator's code.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

# SPEC §5.2 constants ---------------------------------------------------------
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALLOWED_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
MAX_ASSERTION_LIFETIME = 300  # s, SPEC §5.2 [choice]
CLOCK_SKEW = 60  # s, SPEC §5.2 [choice]

# SPEC §4 naming systems
TASK_PARAMETER = "http://fhir.nl/fhir/NamingSystem/TaskParameter"
TASK_CODE = "http://fhir.nl/fhir/NamingSystem/TaskCode"
BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"

FHIR_JSON = "application/fhir+json"


def bsn_11_check(bsn: str) -> bool:
    """SPEC §6.3: 9 digits, weights 9..2 and -1 for the last, sum % 11 == 0."""
    if len(bsn) != 9 or not bsn.isdigit():
        return False
    weights = [9, 8, 7, 6, 5, 4, 3, 2, -1]
    return sum(int(d) * w for d, w in zip(bsn, weights)) % 11 == 0


def operation_outcome(code: str, diagnostics: str) -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }


def task_inputs(task: dict, code: str) -> list[dict]:
    """The Task inputs whose type carries TaskParameter ``code``."""
    out = []
    for inp in task.get("input", []):
        for coding in inp.get("type", {}).get("coding", []):
            if coding.get("system") == TASK_PARAMETER and coding.get("code") == code:
                out.append(inp)
    return out


def normalize_query(query: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Compare relative queries independent of percent-encoding and parameter
    order (SPEC §4: reserved characters inside values may be encoded)."""
    path, _, qs = query.partition("?")
    params = []
    for part in qs.split("&") if qs else []:
        name, _, value = part.partition("=")
        params.append((unquote(name), unquote(value)))
    return unquote(path), tuple(sorted(params))


class TokenError(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


@dataclass
class IssuedToken:
    ura: str  # `sub` of the authorization assertion (requesting organisation)
    client_id: str
    expires_at: float


@dataclass
class VendorNode:
    """The vendor's receiving node: AS-R + notification endpoint + pull client."""

    ura: str = "23456789"
    client_id: str = "independent-vendor-gtk"
    host: str = "127.0.0.1"

    # filled by start() / configure()
    base_url: str = ""
    sender_jwks_url: str | None = None
    sender_client_id: str | None = None  # expected iss/sub of the sender's client assertion, if known

    tasks: dict[str, dict] = field(default_factory=dict)  # id -> Task as received
    task_token_ura: dict[str, str] = field(default_factory=dict)  # id -> URA of the token used
    task_content_type: dict[str, str] = field(default_factory=dict)  # id -> Content-Type of the POST
    cancelled: list[str] = field(default_factory=list)
    token_requests: list[dict] = field(default_factory=list)  # log of AS-R requests and outcomes
    problems: list[str] = field(default_factory=list)  # what the sender did wrong (seen by AS-R / Task)

    def __post_init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "vendor-" + secrets.token_hex(6)
        self._tokens: dict[str, IssuedToken] = {}
        self._seen_jti: dict[tuple[str, str], float] = {}
        self._sender_jwks: dict | None = None
        self._lock = threading.Lock()
        self._task_arrived = threading.Condition(self._lock)
        self._server = None
        self._thread = None

    # ------------------------------------------------------------------ keys
    @property
    def jwks(self) -> dict:
        jwk = ECAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        return {"keys": [jwk]}

    def sign(self, claims: dict) -> str:
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"typ": "JWT", "kid": self.kid})

    # ------------------------------------------------------------------ server
    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def notification_base(self) -> str:
        return f"{self.base_url}/fhir"

    def start(self) -> "VendorNode":
        self._server = make_server(self.host, 0, self._wsgi, threaded=True)
        self.base_url = f"http://{self.host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._thread.join(5)

    def configure_sender(self, jwks_url: str, client_id: str | None = None) -> None:
        """Register the sending node (the simulator) as a client of our AS-R."""
        self.sender_jwks_url = jwks_url
        self.sender_client_id = client_id
        self._sender_jwks = None
        self._fetch_sender_jwks()

    def _fetch_sender_jwks(self) -> dict:
        r = requests.get(self.sender_jwks_url, timeout=5)
        r.raise_for_status()
        self._sender_jwks = r.json()
        return self._sender_jwks

    def _sender_key(self, kid: str | None):
        if not kid:
            raise TokenError(401, "invalid_client", "assertion header has no kid")
        for attempt in range(2):
            jwks = self._sender_jwks if attempt == 0 and self._sender_jwks else self._fetch_sender_jwks()
            for jwk in jwks.get("keys", []):
                if jwk.get("kid") == kid:
                    return jwt.PyJWK(jwk).key
        raise TokenError(401, "invalid_client", f"unknown kid {kid!r}")

    def wait_for_task(self, timeout: float = 10.0, count: int = 1) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self._task_arrived:
            while len(self.tasks) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._task_arrived.wait(left)
            return list(self.tasks.values())

    # ------------------------------------------------------------------ WSGI
    def _wsgi(self, environ, start_response):
        request = Request(environ)
        path = request.path.rstrip("/")
        try:
            if path == "/token" and request.method == "POST":
                response = self._token_endpoint(request)
            elif path == "/fhir/Task" and request.method == "POST":
                response = self._create_task(request)
            elif path == "/fhir/Task" and request.method == "PUT":
                response = self._conditional_update_task(request)
            elif path.startswith("/fhir/Task/") and request.method == "GET":
                response = self._read_task(request, path.rsplit("/", 1)[-1])
            else:
                response = self._fhir_error(404, "not-found", f"no route {request.method} {request.path}")
        except Exception as exc:  # never let the vendor crash the simulator's call
            response = self._fhir_error(500, "exception", repr(exc))
        return response(environ, start_response)

    # ------------------------------------------------------------------ AS-R (SPEC §5.2, receiving side)
    def _token_endpoint(self, request: Request) -> Response:
        entry: dict[str, Any] = {"form": request.form.to_dict(flat=False)}
        self.token_requests.append(entry)
        try:
            token, issued = self._check_token_request(request)
        except TokenError as exc:
            entry["outcome"] = (exc.status, exc.error, exc.description)
            self.problems.append(f"AS-R refused a token request: {exc.error}: {exc.description}")
            return Response(
                json.dumps({"error": exc.error, "error_description": exc.description}),
                status=exc.status,
                content_type="application/json",
                headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
            )
        entry["outcome"] = (200, "ok", issued.ura)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": 300}
        return Response(
            json.dumps(body),
            status=200,
            content_type="application/json",
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _check_token_request(self, request: Request) -> tuple[str, IssuedToken]:
        if request.mimetype != "application/x-www-form-urlencoded":
            raise TokenError(400, "invalid_request", f"form-encoded body expected, got {request.mimetype!r}")
        form = request.form
        for name in ("grant_type", "client_assertion_type", "client_assertion", "assertion", "scope"):
            if len(form.getlist(name)) > 1:
                raise TokenError(400, "invalid_request", f"duplicate parameter {name}")
        grant_type = form.get("grant_type")
        if not grant_type:
            raise TokenError(400, "invalid_request", "grant_type missing")
        if grant_type != GRANT_JWT_BEARER:
            raise TokenError(400, "unsupported_grant_type", f"grant_type {grant_type!r} not supported")
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise TokenError(400, "invalid_request", "client_assertion_type missing or wrong")
        if not form.get("client_assertion"):
            raise TokenError(400, "invalid_request", "client_assertion missing")
        if not form.get("assertion"):
            raise TokenError(400, "invalid_request", "assertion (authorization assertion) missing")

        # client assertion: any problem -> 401 invalid_client
        client = self._verify_assertion(form["client_assertion"], "invalid_client", 401)
        if client.get("iss") != client.get("sub"):
            raise TokenError(401, "invalid_client", "client assertion iss != sub")
        if self.sender_client_id and client["iss"] != self.sender_client_id:
            raise TokenError(401, "invalid_client", f"unknown client {client['iss']!r}")

        # authorization assertion: any problem -> 400 invalid_grant
        grant = self._verify_assertion(form["assertion"], "invalid_grant", 400)
        ura = str(grant.get("sub", ""))
        if not (len(ura) == 8 and ura.isdigit()):
            raise TokenError(400, "invalid_grant", f"authorization assertion sub {ura!r} is not a URA")

        token = secrets.token_urlsafe(32)
        issued = IssuedToken(ura=ura, client_id=client["iss"], expires_at=time.time() + 300)
        with self._lock:
            self._tokens[token] = issued
        return token, issued

    def _verify_assertion(self, compact: str, error: str, status: int) -> dict:
        try:
            header = jwt.get_unverified_header(compact)
        except jwt.PyJWTError as exc:
            raise TokenError(status, error, f"not a JWS: {exc}") from exc
        if header.get("typ") != "JWT":
            raise TokenError(status, error, f"header typ {header.get('typ')!r}, expected 'JWT'")
        if header.get("alg") not in ALLOWED_ALGS:
            raise TokenError(status, error, f"alg {header.get('alg')!r} not allowed")
        try:
            key = self._sender_key(header.get("kid"))
        except TokenError as exc:
            raise TokenError(status, error, exc.description) from exc
        try:
            claims = jwt.decode(
                compact,
                key,
                algorithms=[header["alg"]],
                audience=self.token_url,  # aud must be exactly our token endpoint
                leeway=CLOCK_SKEW,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(status, error, f"{type(exc).__name__}: {exc}") from exc
        aud = claims["aud"]
        if (aud if isinstance(aud, str) else None) != self.token_url and aud != [self.token_url]:
            raise TokenError(status, error, f"aud {aud!r} is not exactly {self.token_url!r}")
        if claims["exp"] - claims["iat"] > MAX_ASSERTION_LIFETIME:
            raise TokenError(status, error, "assertion lifetime over 5 minutes")
        with self._lock:
            now = time.time()
            self._seen_jti = {k: v for k, v in self._seen_jti.items() if v > now - CLOCK_SKEW}
            jti_key = (str(claims["iss"]), str(claims["jti"]))
            if jti_key in self._seen_jti:
                raise TokenError(status, error, f"jti {claims['jti']!r} replayed")
            self._seen_jti[jti_key] = claims["exp"]
        return claims

    # ------------------------------------------------------------------ notification endpoint
    def _bearer(self, request: Request) -> IssuedToken | None:
        auth = request.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer "):
            return None
        with self._lock:
            issued = self._tokens.get(auth[7:].strip())
        if issued is None or issued.expires_at < time.time():
            return None
        return issued

    @staticmethod
    def _fhir_error(status: int, code: str, diagnostics: str, headers: dict | None = None) -> Response:
        return Response(
            json.dumps(operation_outcome(code, diagnostics)),
            status=status,
            content_type=FHIR_JSON + "; charset=utf-8",
            headers=headers or {},
        )

    def _unauthorized(self) -> Response:
        return self._fhir_error(
            401, "login", "missing, invalid or expired bearer token",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    def _parse_task(self, request: Request) -> dict | Response:
        try:
            task = json.loads(request.get_data(as_text=True))
        except ValueError as exc:
            return self._fhir_error(400, "structure", f"body is not JSON: {exc}")
        if not isinstance(task, dict) or task.get("resourceType") != "Task":
            return self._fhir_error(400, "invalid", "body is not a FHIR Task")
        return task

    def _create_task(self, request: Request) -> Response:
        issued = self._bearer(request)
        if issued is None:
            return self._unauthorized()
        task = self._parse_task(request)
        if isinstance(task, Response):
            return task
        task_id = str(uuid.uuid4())
        stored = dict(task, id=task_id, meta={"versionId": "1", "lastUpdated": _now_iso()})
        with self._task_arrived:
            self.tasks[task_id] = stored
            self.task_token_ura[task_id] = issued.ura
            self.task_content_type[task_id] = request.headers.get("Content-Type", "")
            self._task_arrived.notify_all()
        location = f"{self.notification_base}/Task/{task_id}/_history/1"
        return Response(
            json.dumps(stored), status=201, content_type=FHIR_JSON + "; charset=utf-8",
            headers={"Location": location, "ETag": 'W/"1"'},
        )

    def _conditional_update_task(self, request: Request) -> Response:
        """SPEC §3 step 8: PUT [base]/Task?identifier=<system>|<value> with status cancelled."""
        if self._bearer(request) is None:
            return self._unauthorized()
        ident = request.args.get("identifier", "")
        system, _, value = ident.rpartition("|")
        task = self._parse_task(request)
        if isinstance(task, Response):
            return task
        with self._lock:
            matches = [
                tid for tid, t in self.tasks.items()
                if any(i.get("system") == system and i.get("value") == value for i in t.get("identifier", []))
            ]
            if not matches:
                return self._fhir_error(404, "not-found", f"no Task with identifier {ident!r}")
            tid = matches[0]
            version = int(self.tasks[tid]["meta"]["versionId"]) + 1
            self.tasks[tid] = dict(task, id=tid, meta={"versionId": str(version), "lastUpdated": _now_iso()})
            if task.get("status") == "cancelled":
                self.cancelled.append(tid)
        return Response(json.dumps(self.tasks[tid]), status=200, content_type=FHIR_JSON + "; charset=utf-8")

    def _read_task(self, request: Request, task_id: str) -> Response:
        if self._bearer(request) is None:
            return self._unauthorized()
        task = self.tasks.get(task_id)
        if task is None:
            return self._fhir_error(404, "not-found", f"Task/{task_id} not found")
        return Response(json.dumps(task), status=200, content_type=FHIR_JSON + "; charset=utf-8")

    # ------------------------------------------------------------------ pull client (SPEC §3 steps 4-6)
    def client_assertion(self, client_id: str, token_url: str, lifetime: int = 60, jti: str | None = None) -> str:
        now = int(time.time())
        return self.sign({
            "iss": client_id, "sub": client_id, "aud": token_url,
            "iat": now, "exp": now + lifetime, "jti": jti or str(uuid.uuid4()),
        })

    def authorization_assertion(self, client_id: str, token_url: str, authorization_base: str,
                                lifetime: int = 60, ura: str | None = None) -> str:
        # SPEC §5.2 does not say what `iss` the authorization assertion carries; we use our client id.
        now = int(time.time())
        return self.sign({
            "iss": client_id, "sub": ura or self.ura, "aud": token_url,
            "iat": now, "exp": now + lifetime, "jti": str(uuid.uuid4()),
            "authorization_base": authorization_base,
        })

    def pull_token_form(self, client_id: str, token_url: str, authorization_base: str,
                        client_assertion_aud: str | None = None, ura: str | None = None) -> dict:
        return {
            "grant_type": GRANT_JWT_BEARER,
            "assertion": self.authorization_assertion(client_id, token_url, authorization_base, ura=ura),
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(client_id, client_assertion_aud or token_url),
        }

    @staticmethod
    def post_token(token_url: str, form: dict) -> requests.Response:
        return requests.post(token_url, data=form, headers={"Accept": "application/json"}, timeout=10)

    def get_pull_token(self, client_id: str, token_url: str, authorization_base: str) -> str:
        r = self.post_token(token_url, self.pull_token_form(client_id, token_url, authorization_base))
        if r.status_code != 200:
            raise AssertionError(f"pull token refused: {r.status_code} {r.text}")
        return r.json()["access_token"]

    @staticmethod
    def fhir_get(fhir_base: str, relative: str, token: str | None,
                 accept: str = FHIR_JSON) -> requests.Response:
        """GET a relative query/read appended to the sender's FHIR base (SPEC §3 step 5).
        The relative value is sent as given (already percent-encoded by the sender)."""
        url = relative if relative.startswith(("http://", "https://")) else f"{fhir_base.rstrip('/')}/{relative.lstrip('/')}"
        headers = {"Accept": accept}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.get(url, headers=headers, timeout=10)


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
