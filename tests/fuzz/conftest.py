"""Property-based fuzzing (issue 13): the hypothesis settings, the generators of hostile input, and one simulator
app with the sessions every fuzz module needs, driven through Flask's test client (no sockets: fast).

Every property runs a bounded number of examples (FUZZ below, `max_examples` per test) with no deadline, so the
whole fuzz suite stays well under a minute. A failing example is printed with the `@reproduce_failure` blob.
"""
from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from simulator.app import create_app
from simulator.outbound.task_builder import build_notification_task
from simulator.runtime import SimulatorConfig
from speeltuin import defaults
from speeltuin.defaults import sqlite_url
from speeltuin.keys import Signer
from speeltuin.records import Notification, NotificationOrigin
from speeltuin.store import Store
from testdata.pki import init_ca

# --- hypothesis settings ------------------------------------------------------------------------------------------

settings.register_profile(
    "speeltuin-fuzz",
    max_examples=100,
    deadline=None,  # a slow example is no failure: the bound is max_examples
    derandomize=False,
    database=None,  # nothing written into the shared working tree; failures print a reproduce blob instead
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture, HealthCheck.large_base_example],
)
FUZZ = settings.get_profile("speeltuin-fuzz")


SCALE_ENV = "SPEELTUIN_FUZZ_SCALE"  # e.g. 20 for a deep run by hand: 20 times the examples of every property


def fuzz(max_examples: int) -> settings:
    """The fuzz profile with this test's number of examples (applied per test: the profile is never loaded
    globally, so no other test in the suite is affected); $SPEELTUIN_FUZZ_SCALE multiplies it."""
    return settings(FUZZ, max_examples=max(1, round(max_examples * float(os.environ.get(SCALE_ENV) or 1))))


# --- generators -------------------------------------------------------------------------------------------------

BIG = 10 ** 400  # beyond any float; json writes and reads it
HUGE_DIGITS = "1" + "0" * 5000  # beyond int()'s 4,300-digit limit: json can neither write nor read it as a number
NASTY_TEXT = ["", " ", "NaN", "nan", "-nan", "Infinity", "-Infinity", "inf", "null", "None", "true", "0", "-0",
              "1e400", "-1e400", "0x10", "1_000", "١٢٣", "²", "𝟗", "٣٠", "\u00a0", "\u200b", "\ufeff", "\x00",
              "%", "%zz", "%00", "%2F", "a|b", "|", "||", ",", "urn:uuid:", "Task/1", "../../etc/passwd",
              "<script>", "'; DROP TABLE sessions; --", "é" * 300, "x" * 5000, HUGE_DIGITS, "\ud800",
              "2024-13-45T25:61:61+99:99", "9999-12-31T23:59:59Z", "0001-01-01", "999993653", "90000202"]
NASTY_INTS = [BIG, -BIG, 2 ** 31, 2 ** 63, 2 ** 64, -(2 ** 63) - 1, 253402300800, -253402300800, 0, -1]

json_keys = st.one_of(st.sampled_from(["resourceType", "id", "value", "system", "code", "coding", "identifier",
                                       "status", "input", "type", "keys", "error", "url", "reference", ""]),
                      st.text(max_size=12))
# Digits beyond ASCII: str.isdigit() takes '²' or '①' for digits that int() cannot read; '٣' it can.
unicode_digits = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=6)
tricky_digits = st.one_of(st.sampled_from(["²", "①", "³", "¹²", "1²", "⁰", "٣", "𝟗", "٣٠"]), unicode_digits)
json_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10 ** 30), max_value=10 ** 30), st.sampled_from(NASTY_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(NASTY_TEXT), unicode_digits,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(json_keys, children, max_size=4),
    max_leaves=15,
)
json_objects = st.dictionaries(json_keys, json_values, max_size=6)


def dumps(value: Any) -> str:
    """JSON as Python writes it: NaN and Infinity included, lone surrogates escaped."""
    return json.dumps(value, allow_nan=True)


# Raw JSON texts no Python value dumps to: duplicates, numbers beyond every limit, deep nesting, broken syntax.
RAW_JSON_TEXTS = [
    '{"a": ' + HUGE_DIGITS + "}", "[" + HUGE_DIGITS + "]", HUGE_DIGITS, "1e999999", '{"a":1,"a":2}',
    "[" * 150 + "]" * 150, '{"a":' * 150 + "1" + "}" * 150, "[" * 5000, '{"a": NaN, "b": -Infinity}',
    '"\\ud800"', '{"\\ud800": 1}', "\ufeff{}", "{", "}", "", " ", "null", "[]", '{"resourceType": null}',
    '{"resourceType": "Task", "resourceType": "Bundle"}',
]
json_texts = st.one_of(json_values.map(dumps), st.sampled_from(RAW_JSON_TEXTS))
raw_bodies = st.one_of(st.binary(max_size=200), json_texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
                       st.sampled_from([b"\xff\xfe{\x00}\x00", b"\xef\xbb\xbf{}", b"\xed\xa0\x80", b"\x00" * 10]))
content_types = st.one_of(
    st.none(),
    st.sampled_from(["application/json", "application/fhir+json", "application/fhir+json; charset=utf-8",
                     "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=latin-1",
                     "text/plain", "application/xml", "application/fhir+xml", "multipart/form-data",
                     "multipart/form-data; boundary=x", "application/json; charset=utf-16", "*/*", "",
                     "application/json;;;", "application/x-www-form-urlencoded; charset=\u00e9"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
)


def _paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path into a JSON value (dict keys, list indexes), the root excluded."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield prefix + (key,)
        yield from _paths(child, prefix + (key,))


def _at(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def mutated(draw: st.DrawFn, base: dict, *, min_mutations: int = 1, max_mutations: int = 3) -> dict:
    """`base` with `min_mutations` to `max_mutations` random edits: an element deleted, replaced by any JSON value,
    or a new element (any JSON value) inserted into an object or array."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_mutations, max_mutations))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _at(doc, path[:-1]), path[-1]
        operation = draw(st.sampled_from(["delete", "replace", "insert"]))
        if operation == "delete":
            del parent[key]
        elif operation == "replace":
            parent[key] = draw(json_values)
        elif isinstance(parent, dict):
            parent[draw(json_keys)] = draw(json_values)
        else:
            parent.insert(draw(st.integers(0, len(parent))), draw(json_values))
    return doc


@st.composite
def field_mutated(draw: st.DrawFn, base: dict) -> dict:
    """`base` with one to three of its top-level fields dropped or replaced by tricky digits ('²'), nasty text, any
    scalar or any JSON value, the others kept: the few wrong fields of an otherwise good form-like object."""
    out = dict(base)
    changes = draw(st.dictionaries(st.sampled_from(sorted(base)), st.sampled_from(
        ["digits", "digits", "nasty", "scalar", "json", "drop"]), min_size=1, max_size=3)) if base else {}
    for key, change in changes.items():
        if change == "drop":
            del out[key]
        else:
            out[key] = draw({"digits": tricky_digits, "nasty": st.sampled_from(NASTY_TEXT), "scalar": json_scalars,
                             "json": json_values}[change])
    return out


# --- what every answer must (not) show ----------------------------------------------------------------------------

def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text and 'File "/' not in text and "most recent call last" not in text, text[:2000]


def assert_operation_outcome(response: Any) -> None:
    """A FHIR error body: an OperationOutcome with at least one issue, in JSON or (when asked for) XML."""
    text = response.get_data(as_text=True)
    if (response.mimetype or "").endswith("xml"):
        assert "<OperationOutcome" in text and "<issue>" in text, text[:2000]
        return
    body = json.loads(text)
    assert isinstance(body, dict) and body.get("resourceType") == "OperationOutcome", text[:2000]
    assert isinstance(body.get("issue"), list) and body["issue"], text[:2000]


def count_rows(store: Store, table_name: str) -> int:
    from speeltuin.store import metadata

    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(metadata.tables[table_name])).scalar_one()


# --- the simulator under fuzz -------------------------------------------------------------------------------------

ADMIN_KEY = "fuzz-admin-key-0123456789abcdef"
ADMIN = {"X-Admin-Key": ADMIN_KEY}
PUBLIC_URL = "http://sim.test"
VENDOR_URA = "12345678"
VENDOR_CLIENT = "fuzz-vendor"
BSN = "999993653"
PULL_SESSION = "fz-pull"  # the vendor is the receiver: it asks the simulator for pull tokens and searches
NOTIFY_SESSION = "fz-notify"  # the vendor is the sender: it asks for notification tokens and POSTs Tasks
AUTHORIZATION_BASE = "fuzz-base-0001"
NOWHERE = "http://127.0.0.1:9"  # nothing listens: a call to the vendor fails at once


class VendorKey:
    """The vendor's EC P-256 key: a speeltuin Signer for ordinary assertions, and raw ES256 signing of any
    header and payload text (extra header fields, numbers no Python value dumps to)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        self.signer = Signer("fuzz-vendor-key", pem)
        self.kid = self.signer.kid

    def jwks(self) -> dict:
        return self.signer.jwks()

    def sign_raw(self, header: str | bytes, payload: str | bytes) -> str:
        """A compact JWS over exactly these header and payload bytes, with a valid ES256 signature."""
        def b64(data: str | bytes) -> str:
            raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        signing_input = f"{b64(header)}.{b64(payload)}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def base_claims(self, token_url: str, *, sub: str | None = None) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": VENDOR_CLIENT, "sub": sub or VENDOR_CLIENT, "aud": token_url, "iat": now, "exp": now + 60,
                "jti": secrets.token_urlsafe(16)}


@dataclass
class FuzzNode:
    app: Flask
    client: FlaskClient
    vendor: VendorKey
    workdir: Path

    @property
    def store(self) -> Store:
        return self.app.extensions["speeltuin"].store

    def token_url(self, session_id: str) -> str:
        return f"{PUBLIC_URL}/s/{session_id}/token"

    def notification_token(self) -> str:
        url = self.token_url(NOTIFY_SESSION)
        answer = self.client.post(f"/s/{NOTIFY_SESSION}/token",
                                  data=self.vendor.signer.token_request_form(VENDOR_CLIENT, VENDOR_URA, url))
        assert answer.status_code == 200, answer.text
        return answer.json["access_token"]

    def pull_token(self) -> str:
        url = self.token_url(PULL_SESSION)
        answer = self.client.post(f"/s/{PULL_SESSION}/token", data=self.vendor.signer.token_request_form(
            VENDOR_CLIENT, VENDOR_URA, url, AUTHORIZATION_BASE))
        assert answer.status_code == 200, answer.text
        return answer.json["access_token"]

    def notification_task(self, **changes: Any) -> dict:
        """A valid Notification Task from the vendor to the simulator (the receiving node) in NOTIFY_SESSION."""
        now = datetime.now(timezone.utc).replace(microsecond=0)
        task = build_notification_task(bsn=BSN, patient_name="S M", sender_ura=VENDOR_URA, sender_name="fuzz vendor",
                                       receiver_ura=defaults.OWN_URA, authorization_base="fuzz-notify-base",
                                       authored_on=now, period_end=now + timedelta(days=1))
        return {**task, **changes}


def make_node(workdir: Path, **config: Any) -> FuzzNode:
    """A simulator app with the two fuzz sessions (pull and notify) and a live notification to pull."""
    ca_dir = workdir / "pki"
    ca = init_ca(ca_dir)  # x5c headers are evaluated against a test CA, so their decoding is fuzzed too
    app = create_app(SimulatorConfig(database_url=sqlite_url(workdir / "sim.sqlite"), admin_key=ADMIN_KEY,
                                     public_url=PUBLIC_URL, auto_pull=False, http_timeout_s=1.0,
                                     token_lifetime_s=3600, trusted_ca_pem=ca.read_bytes(), **config))
    app.logger.disabled = True  # a 500 is reported by the test that meets it, not logged page after page
    vendor = VendorKey()
    client = app.test_client()
    for session_id, role, url_field in ((PULL_SESSION, "receiver", "vendor_notification_base"),
                                        (NOTIFY_SESSION, "sender", "vendor_fhir_base")):
        created = client.post("/api/sessions", headers=ADMIN, json={
            "id": session_id, "vendor_role": role, "vendor_ura": VENDOR_URA, "vendor_jwks": vendor.jwks(),
            "vendor_client_id": VENDOR_CLIENT, "vendor_token_url": f"{NOWHERE}/token", url_field: NOWHERE})
        assert created.status_code == 201, created.text
    store: Store = app.extensions["speeltuin"].store
    store.add_notification(Notification(
        id="n-fuzz", session_id=PULL_SESSION, origin=NotificationOrigin.SENT, identifier="urn:uuid:fuzz",
        group_identifier="urn:uuid:fuzz-group", authorization_base=AUTHORIZATION_BASE, patient_bsn=BSN,
        owner_ura=VENDOR_URA, period_end=time.time() + 86400, status="requested", task={}))
    return FuzzNode(app, client, vendor, workdir)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzNode]:
    """One simulator app per fuzz module (a module's examples may change what it stores)."""
    made = make_node(tmp_path_factory.mktemp("fuzz"))
    yield made
    made.store.close()


def ensure(condition: bool, make_message: Callable[[], str]) -> None:
    """An assertion whose message is built only when it fails."""
    if not condition:
        raise AssertionError(make_message())
