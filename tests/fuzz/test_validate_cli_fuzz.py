"""Fuzzing `speeltuin validate FILE` in-process (`speeltuin.cli.main`, no subprocess per example).

Whatever the file (JSON of any shape, nearly valid FHIR resources in JSON or XML, XML fragments, JWT-looking text,
token request forms, PDFs and bytes) and options: the exit code is 0, 1 or 2 (speeltuin.cli.common.ExitCode), no
exception escapes main(), nothing prints a traceback, and `--format json` prints one JSON document.
"""
from __future__ import annotations

import base64
import itertools
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from simulator.fhir.format import to_xml
from simulator.outbound.task_builder import build_notification_task, build_workflow_task
from speeltuin.cli import main
from speeltuin.cli.common import ExitCode
from testdata.bgz_content import patient_resources
from testdata.patients import PATIENTS
from testdata.referral_letter import referral_letter_pdf
from tests.fuzz.conftest import (
    HUGE_DIGITS,
    NASTY_TEXT,
    VendorKey,
    assert_no_traceback,
    dumps,
    field_mutated,
    fuzz,
    json_objects,
    json_texts,
    json_values,
    mutated,
    raw_bodies,
)
from validators.dispatch import KINDS

NOW = datetime.now(timezone.utc).replace(microsecond=0)
AUDIENCE = "http://sim.test/s/x/token"


def _bases() -> list[dict]:
    task = build_notification_task(bsn="999993653", patient_name="S M", sender_ura="90000101", sender_name="s",
                                   receiver_ura="90000202", authorization_base="b", authored_on=NOW,
                                   period_end=NOW + timedelta(days=30))
    workflow = build_workflow_task(task_id="wf-1", bsn="999993653", patient_name="S M", sender_ura="90000101",
                                   sender_name="s", receiver_ura="90000202", authored_on=NOW)
    resources = patient_resources(PATIENTS[0], now=NOW)
    some = [r for r in resources if r["resourceType"] in ("Patient", "Condition", "Observation",
                                                          "DocumentReference", "Binary")][:6]
    base = "http://sim.test/s/x/fhir"
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": 1,
              "link": [{"relation": "self", "url": f"{base}/Condition?category=x"}],
              "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
                         "search": {"mode": "match"}} for r in some[:2]]}
    binary = {"resourceType": "Binary", "contentType": "application/pdf",
              "content": base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()}
    response = {"access_token": "x" * 40, "token_type": "Bearer", "expires_in": 300, "scope": "a b"}
    # Small ones too: an edit then lands near the top, where the kind of a file is decided.
    small_task = {"resourceType": "Task", "status": "requested", "meta": {"profile": ["x"]},
                  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "x"}]}}
    small_bundle = {"resourceType": "Bundle", "type": "searchset", "link": [{"relation": "self", "url": "x"}],
                    "entry": [{"resource": {"resourceType": "Patient"}}]}
    return [task, {**task, "status": "cancelled"}, workflow, bundle, binary, response,
            {"error": "invalid_client", "error_description": "no"}, small_task, small_bundle, *some]


BASES = _bases()
XML_TAGS = ["Task", "Bundle", "Patient", "status", "identifier", "value", "system", "entry", "resource", "input",
            "type", "coding", "code", "valueString", "extension", "div", "x:y", "a"]


@st.composite
def xml_fragments(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(XML_TAGS))
    attributes = draw(st.dictionaries(st.sampled_from(["value", "url", "xmlns", "id", "xmlns:x"]),
                                      st.one_of(st.text(max_size=8), st.sampled_from(NASTY_TEXT[:30])), max_size=2))
    attrs = "".join(f' {k}="{v.replace(chr(34), "&quot;").replace("<", "&lt;").replace("&", "&amp;")}"'
                    for k, v in attributes.items())
    children = draw(st.lists(xml_fragments(depth + 1), max_size=3)) if depth < 3 else []
    text = draw(st.sampled_from(["", "", "text", "&amp;", "&bogus;", "<![CDATA[x]]>", "\u00e9"]))
    return f"<{tag}{attrs}>{text}{''.join(children)}</{tag}>" if children or text else f"<{tag}{attrs}/>"


RAW_XML = [
    '<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><Task>&b;</Task>',
    '<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]><Task xmlns="http://hl7.org/fhir">'
    '<status value="&x;"/></Task>',
    '<Task xmlns="http://hl7.org/fhir"><status value="requested"/>', "<", "<Task", "<?xml?>", "<a><b></a></b>",
    '<Task xmlns="http://hl7.org/fhir"><id value="' + HUGE_DIGITS + '"/></Task>',
    '<Bundle xmlns="http://hl7.org/fhir"><entry><resource><Bundle><entry/></Bundle></resource></entry></Bundle>',
]


def _b64(data: str | bytes) -> str:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


jwt_texts = st.builds(lambda h, p, s: f"{_b64(h)}.{_b64(p)}.{s}",
                      st.one_of(json_values.map(dumps), st.just('{"alg":"ES256","typ":"JWT","kid":"k"}'),
                                json_objects.map(lambda o: dumps({"alg": "ES256", **o}))),
                      st.one_of(json_texts, json_objects.map(dumps),
                                st.just('{"iss":"a","exp":' + HUGE_DIGITS + "}")),
                      st.text(alphabet="abcXYZ019-_", max_size=30))


@st.composite
def files(draw: st.DrawFn, key: VendorKey) -> tuple[str, bytes]:
    """A file suffix and its bytes."""
    kind = draw(st.sampled_from(["json", "fhir", "fhir", "fhir-fields", "fhir-xml", "xml", "jwt", "signed-jwt",
                                 "form", "pdf", "bytes"]))
    if kind == "json":
        return ".json", draw(json_texts).encode("utf-8", "surrogatepass")
    if kind in ("fhir", "fhir-fields", "fhir-xml"):
        base = draw(st.sampled_from(BASES))
        resource = draw(field_mutated(base) if kind == "fhir-fields" else mutated(base, min_mutations=0,
                                                                                   max_mutations=4))
        if kind != "fhir-xml":
            return ".json", dumps(resource).encode("utf-8", "surrogatepass")
        try:  # the simulator's own writer: it may refuse what no resource has
            return ".xml", to_xml(resource)
        except Exception:  # noqa: BLE001 - not what is under test
            assume(False)
    if kind == "xml":
        return ".xml", (draw(st.sampled_from(RAW_XML)) if draw(st.booleans()) else draw(xml_fragments())).encode()
    if kind == "jwt":
        return ".jwt", draw(jwt_texts).encode("utf-8", "surrogatepass")
    if kind == "signed-jwt":  # validly signed: the claim checks run on generated claims
        claims = draw(field_mutated({"iss": "c", "sub": "c", "aud": AUDIENCE, "iat": 1_700_000_000,
                                     "exp": 1_700_000_060, "jti": "j", "authorization_base": "b"}))
        header = {"alg": "ES256", "typ": "JWT", "kid": key.kid, **draw(st.dictionaries(st.text(max_size=5),
                                                                                      json_values, max_size=2))}
        return ".jwt", key.sign_raw(dumps(header), dumps(claims)).encode()
    if kind == "form":
        pairs = draw(st.lists(st.tuples(st.sampled_from(["grant_type", "assertion", "client_assertion",
                                                         "client_assertion_type", "scope", "x"]),
                                        st.one_of(jwt_texts, st.text(max_size=10),
                                                  st.just("urn:ietf:params:oauth:grant-type:jwt-bearer"))),
                              max_size=5))
        return ".form", ("grant_type=" + "&".join(f"{n}={v}" for n, v in pairs)).encode("utf-8", "surrogatepass")
    if kind == "pdf":
        pdf = bytearray(_PDF)
        for _ in range(draw(st.integers(0, 5))):
            position = draw(st.integers(0, len(pdf) - 1))
            pdf[position] = draw(st.integers(0, 255))
        return ".pdf", bytes(pdf[:draw(st.integers(5, len(pdf)))])
    return ".txt", draw(raw_bodies)


_PDF = referral_letter_pdf(PATIENTS[0], title="Verwijsbrief", lines=["Fuzz."])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("validate-fuzz")
    key = VendorKey()
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps(key.jwks()))
    bad_jwks = folder / "bad-jwks.json"
    bad_jwks.write_text('{"keys": [{"kty": "EC", "kid": "' + key.kid + '", "crv": "P-256", "x": "AA", "y": 1}]}')
    return {"folder": folder, "key": key, "jwks": str(jwks), "bad_jwks": str(bad_jwks)}


_names = itertools.count()


@fuzz(60)
@given(data=st.data(), kind=st.sampled_from(("auto",) * 4 + KINDS), as_json=st.booleans(),
       audience=st.none() | st.just(AUDIENCE), jwks=st.sampled_from([None, "jwks", "bad_jwks"]),
       suppress=st.sampled_from([[], ["JWT-001=known"], ["NOTIF-007=known", "BUNDLE-010=also"]]))
def test_validate_any_file_exits_0_1_or_2_without_a_traceback(workdir: dict[str, Any], capsys: pytest.CaptureFixture,
                                                             data: st.DataObject, kind: str, as_json: bool,
                                                             audience: str | None, jwks: str | None,
                                                             suppress: list[str]) -> None:
    suffix, content = data.draw(files(workdir["key"]))
    path = Path(workdir["folder"]) / f"f{next(_names)}{suffix}"
    path.write_bytes(content)
    argv = ["validate", str(path), "--kind", kind]
    argv += ["--format", "json"] if as_json else []
    argv += ["--audience", audience] if audience else []
    argv += ["--jwks", workdir[jwks]] if jwks else []
    for pair in suppress:
        argv += ["--suppress", pair]
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own exit
        code = stop.code
    out, err = capsys.readouterr()
    event(f"exit {code}")
    assert code in (ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE), (code, out[-2000:], err[-2000:])
    assert_no_traceback(out)
    assert_no_traceback(err)
    if as_json and code != ExitCode.USAGE:
        report = json.loads(out)
        assert set(report) == {"files", "summary"}, out[:2000]


# --- plain regressions: each once escaped main() as a traceback (validators/dispatch.py) --------------------------

@pytest.mark.parametrize("content", [
    '{"resourceType": "Task", "code": "x"}',
    '{"resourceType": "Task", "code": {"coding": 5}}',
    '{"resourceType": "Task", "code": {"coding": [{"system": {}, "code": []}]}}',
    '{"resourceType": "Task", "meta": "x"}',
    '{"resourceType": "Task", "meta": {"profile": 5}}',
    '{"resourceType": "Bundle", "link": 5}',
    '{"resourceType": "Bundle", "entry": 5}',
], ids=["code-string", "coding-number", "coding-unhashable", "meta-string", "profile-number", "link-number",
        "entry-number"])
def test_a_task_or_bundle_with_elements_of_the_wrong_json_type_is_judged_not_crashed_on(
        tmp_path: Path, capsys: pytest.CaptureFixture, content: str) -> None:
    path = tmp_path / "resource.json"
    path.write_text(content)
    assert main(["validate", str(path)]) == ExitCode.FAILED
    out, err = capsys.readouterr()
    assert "errors" in out and "Traceback" not in out + err
