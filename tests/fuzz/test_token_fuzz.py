"""Fuzzing the token endpoint `POST /s/<session>/token` (SPEC §5.2, RFC 6749 §5.2).

Whatever the form, body, content type or (validly signed) assertion: never a 5xx, never a traceback; either a 200
token answer that stored exactly one token, or an RFC 6749 error object with its status (400, or 401 for
invalid_client) that stored no token.
"""
from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz.conftest import (
    AUTHORIZATION_BASE,
    BIG,
    HUGE_DIGITS,
    NASTY_TEXT,
    NOTIFY_SESSION,
    PULL_SESSION,
    VENDOR_URA,
    FuzzNode,
    assert_no_traceback,
    content_types,
    count_rows,
    dumps,
    fuzz,
    json_keys,
    json_objects,
    json_values,
    raw_bodies,
)
from validators.spec import (
    CLIENT_ASSERTION_TYPE,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_JWT_BEARER,
    OAUTH_ERROR_STATUS,
    OAUTH_ERRORS,
)

FORM = "application/x-www-form-urlencoded"
VALID_CLIENT = "<a valid client assertion>"  # replaced by a fresh one when the request is made
VALID_GRANT = "<a valid authorization assertion>"
FORM_NAMES = ["grant_type", "assertion", "client_assertion_type", "client_assertion", "scope", "authorization_base",
              "client_id", "client_secret", "username", "password", "code", "refresh_token", ""]


def check_token_answer(node: FuzzNode, answer: Any, tokens_before: int) -> None:
    """The token endpoint's invariants for one answer."""
    text = answer.get_data(as_text=True)
    assert answer.status_code < 500, f"{answer.status_code}: {text[:2000]}"
    assert_no_traceback(text)
    assert (answer.mimetype or "") == "application/json", f"{answer.status_code} {answer.mimetype}: {text[:500]}"
    body = json.loads(text)
    assert isinstance(body, dict), text[:500]
    tokens_after = count_rows(node.store, "tokens")
    event(f"{answer.status_code} {body.get('error', 'token')}")  # shown by --hypothesis-show-statistics
    if answer.status_code == 200:
        assert isinstance(body.get("access_token"), str) and body["access_token"], text
        assert body.get("token_type") == "Bearer" and answer.headers.get("Cache-Control") == "no-store", text
        assert tokens_after == tokens_before + 1, "a 200 token answer must store exactly one token"
        return
    assert body.get("error") in OAUTH_ERRORS, text[:2000]
    assert answer.status_code == OAUTH_ERROR_STATUS[body["error"]], f"{answer.status_code}: {text[:500]}"
    assert isinstance(body.get("error_description", ""), str), text[:500]
    assert tokens_after == tokens_before, f"a refused token request stored a token: {text[:500]}"


def _valid(node: FuzzNode, session_id: str, which: str) -> str:
    url = node.token_url(session_id)
    signer = node.vendor.signer
    if which == VALID_CLIENT:
        return signer.client_assertion("fuzz-vendor", url)
    base = AUTHORIZATION_BASE if session_id == PULL_SESSION else None
    return signer.authorization_assertion("fuzz-vendor", VENDOR_URA, url, base)


# --- (a) arbitrary forms, bodies and content types ------------------------------------------------------------------

def _b64(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).rstrip(b"=").decode()


jwt_looking = st.builds(lambda h, p, s: f"{_b64(h)}.{_b64(p)}.{s}",
                        st.one_of(json_values.map(dumps), st.just('{"alg":"ES256","typ":"JWT","kid":"x"}')),
                        st.one_of(json_objects.map(dumps), st.just('{"exp": ' + HUGE_DIGITS + "}")),
                        st.text(alphabet="abcAB-_019", max_size=20))
form_values = st.one_of(
    st.sampled_from([GRANT_JWT_BEARER, GRANT_CLIENT_CREDENTIALS, CLIENT_ASSERTION_TYPE, "password", "",
                     AUTHORIZATION_BASE, VALID_CLIENT, VALID_GRANT, str(BIG), HUGE_DIGITS]),
    st.text(max_size=40), st.sampled_from(NASTY_TEXT), st.integers().map(str), jwt_looking,
)
form_pairs = st.lists(st.tuples(st.one_of(st.sampled_from(FORM_NAMES), st.text(max_size=10)), form_values),
                      max_size=8)


def _encode(pairs: list[tuple[str, str]], raw: bool) -> bytes:
    def part(text: str) -> str:
        return text if raw else quote(text.encode("utf-8", "surrogatepass"), safe="")
    return "&".join(f"{part(name)}={part(value)}" for name, value in pairs).encode("utf-8", "surrogatepass")


@st.composite
def token_requests(draw: st.DrawFn) -> dict[str, Any]:
    # any session id that reaches the token endpoint (a '/' in it, even escaped, makes another path)
    session = draw(st.one_of(st.sampled_from([PULL_SESSION, NOTIFY_SESSION]),
                             st.sampled_from([PULL_SESSION, NOTIFY_SESSION, "no-such-session"]),
                             st.text(st.characters(blacklist_characters="/"), min_size=1, max_size=20)
                             .filter(lambda s: s not in (".", ".."))))
    shape = draw(st.sampled_from(["form", "form", "raw-form", "bytes"]))
    if shape == "bytes":
        body: Any = draw(raw_bodies)
    else:
        pairs = draw(form_pairs)
        if draw(st.booleans()):  # a well-formed jwt-bearer request with some parameters changed, added or repeated
            pairs = [("grant_type", GRANT_JWT_BEARER), ("assertion", VALID_GRANT),
                     ("client_assertion_type", CLIENT_ASSERTION_TYPE), ("client_assertion", VALID_CLIENT)] + pairs
            pairs = draw(st.permutations(pairs))
        body = (pairs, shape == "raw-form")
    content_type = draw(st.one_of(st.just(FORM), content_types))
    return {"session": session, "body": body, "content_type": content_type}


@fuzz(150)
@given(request=token_requests())
def test_any_form_body_or_content_type_gets_a_token_or_an_rfc6749_error(node: FuzzNode, request: dict) -> None:
    session = request["session"]
    body = request["body"]
    if isinstance(body, tuple):
        pairs, raw = body
        body = _encode([(n, _valid(node, session, v) if v in (VALID_CLIENT, VALID_GRANT) else v) for n, v in pairs],
                       raw)
    headers = {} if request["content_type"] is None else {"Content-Type": request["content_type"]}
    before = count_rows(node.store, "tokens")
    answer = node.client.post(f"/s/{quote(session.encode('utf-8', 'surrogatepass'), safe='')}/token", data=body,
                              headers=headers)
    check_token_answer(node, answer, before)


# --- (b) validly signed assertions with generated claims and header fields ----------------------------------------

CLAIMS = ["iss", "sub", "aud", "iat", "exp", "nbf", "jti", "authorization_base", "patient"]
NUMERIC = {"iat", "exp", "nbf"}
# A claim's new value: any JSON value, a time relative to now (numeric claims), or a text splice (a number no
# Python value dumps to, or a NaN the JSON reader of the other side may take).
relative_time = st.tuples(st.just("now+"), st.one_of(st.integers(-10 ** 6, 10 ** 6), st.floats(-1e6, 1e6)))
spliced = st.tuples(st.just("raw"), st.sampled_from([HUGE_DIGITS, "-" + HUGE_DIGITS, "NaN", "Infinity", "-Infinity",
                                                     "1e999", "-0.0", "1E+2", "0.0000000000000000001"]))
claim_change = st.one_of(st.just("delete"), st.tuples(st.just("value"), json_values), relative_time, spliced)
header_extras = st.dictionaries(
    st.one_of(st.sampled_from(["alg", "typ", "kid", "crit", "b64", "x5c", "x5t", "jku", "jwk", "zip", "cty",
                               "x5t#S256", "enc"]), json_keys),
    st.one_of(json_values, st.sampled_from([["b64"], False, ["MIIB", "@@@"], [""], "ES384", "none", "HS256", "jwt",
                                            {"kty": "EC"}, "DEF"])),
    max_size=3)


@st.composite
def signed_assertions(draw: st.DrawFn) -> dict[str, Any]:
    changes = draw(st.dictionaries(st.one_of(st.sampled_from(CLAIMS), json_keys), claim_change, max_size=4))
    return {"changes": changes, "header": draw(header_extras),
            "keep_header_base": draw(st.booleans() | st.just(True))}


def _assertion(node: FuzzNode, session_id: str, kind: str, spec: dict[str, Any] | None) -> str:
    if spec is None:
        return _valid(node, session_id, VALID_CLIENT if kind == "client" else VALID_GRANT)
    claims: dict[str, Any] = node.vendor.base_claims(node.token_url(session_id),
                                                     sub=VENDOR_URA if kind == "grant" else None)
    if kind == "grant" and session_id == PULL_SESSION:
        claims["authorization_base"] = AUTHORIZATION_BASE
    splices = []
    for name, change in spec["changes"].items():
        if change == "delete":
            claims.pop(name, None)
        elif change[0] == "value":
            claims[name] = change[1]
        elif change[0] == "now+":
            claims[name] = int(time.time()) + change[1] if isinstance(change[1], int) else time.time() + change[1]
        else:
            claims.pop(name, None)
            splices.append(f"{json.dumps(name)}: {change[1]}")
    payload = dumps(claims)
    if splices:
        payload = payload[:-1] + (", " if claims else "") + ", ".join(splices) + "}"
    header = {"alg": "ES256", "typ": "JWT", "kid": node.vendor.kid} if spec["keep_header_base"] else {}
    header.update(spec["header"])
    return node.vendor.sign_raw(dumps(header), payload)


@fuzz(150)
@given(session=st.sampled_from([PULL_SESSION, NOTIFY_SESSION]),
       grant_type=st.sampled_from([GRANT_JWT_BEARER, GRANT_JWT_BEARER, GRANT_CLIENT_CREDENTIALS]),
       client=st.none() | signed_assertions(), grant=st.none() | signed_assertions(),
       form_base=st.none() | st.sampled_from([AUTHORIZATION_BASE, "", "unknown"]) | st.text(max_size=20))
def test_validly_signed_assertions_with_any_claims_get_a_token_or_an_rfc6749_error(
        node: FuzzNode, session: str, grant_type: str, client: dict | None, grant: dict | None,
        form_base: str | None) -> None:
    form = {"grant_type": grant_type, "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": _assertion(node, session, "client", client)}
    if grant_type == GRANT_JWT_BEARER:
        form["assertion"] = _assertion(node, session, "grant", grant)
    if form_base is not None:
        form["authorization_base"] = form_base
    before = count_rows(node.store, "tokens")
    body = _encode(list(form.items()), raw=False)
    answer = node.client.post(f"/s/{session}/token", data=body, headers={"Content-Type": FORM})
    check_token_answer(node, answer, before)


# --- plain regressions ----------------------------------------------------------------------------------------------

def test_the_unchanged_requests_get_tokens(node: FuzzNode) -> None:
    """The fuzzers' starting points are good requests: both kinds of token are granted."""
    assert node.pull_token() and node.notification_token()
