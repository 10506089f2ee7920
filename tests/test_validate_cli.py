"""`speeltuin validate` and `speeltuin rules`: the stable CLI contract, run as real subprocesses."""
from __future__ import annotations

import copy
import importlib
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import jsonschema
import jwt
import pytest

from simulator.fhir.format import to_xml
from simulator.fhir.search import search
from simulator.outbound.defects import with_defect
from simulator.outbound.task_builder import build_notification_task, build_workflow_task
from speeltuin.keys import Signer
from speeltuin.store import Store
from testdata.bgz_content import patient_resources, shared_resources
from testdata.patients import PATIENTS
from testdata.referral_letter import referral_letter_pdf
from validators.catalogue import load_all
from validators.dispatch import detect_kind

ROOT = Path(__file__).resolve().parents[1]
VALIDATE_SCHEMA = json.loads((ROOT / "validators" / "validate_output.schema.json").read_text())
RULES_SCHEMA = json.loads((ROOT / "validators" / "rules_output.schema.json").read_text())
AUDIENCE = "http://127.0.0.1:8081/s/x/token"
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def speeltuin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speeltuin.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def _task() -> dict:
    return build_notification_task(bsn="999993653", patient_name="Suzanne Moulin", sender_ura="90000101",
                                   sender_name="s", receiver_ura="90000202", authorization_base="b",
                                   authored_on=NOW, period_end=NOW + timedelta(days=30))


def _bundle() -> dict:
    resources = patient_resources(PATIENTS[0], now=NOW)
    result = search(resources, shared_resources(now=NOW), "Condition", [])
    base = "http://127.0.0.1:8081/s/x/fhir"
    return {"resourceType": "Bundle", "type": "searchset", "total": len(result.matches),
            "link": [{"relation": "self", "url": f"{base}/Condition"}],
            "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                      for r in result.matches]}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Good and bad examples of every kind; names say kind, good/bad and format."""
    d = tmp_path_factory.mktemp("validate")
    signer = Signer.load_or_create(Store("sqlite://"))
    (d / "keys.jwks").write_text(json.dumps(signer.jwks()))
    task = _task()
    cancel = {**task, "status": "cancelled"}
    workflow = build_workflow_task(task_id="wf-1", bsn="999993653", patient_name="S", sender_ura="90000101",
                                   sender_name="s", receiver_ura="90000202", authored_on=NOW)
    condition = next(r for r in patient_resources(PATIENTS[0], now=NOW) if r["resourceType"] == "Condition")
    no_status = copy.deepcopy(condition)
    no_status.pop("clinicalStatus")
    document = next(r for r in patient_resources(PATIENTS[0], now=NOW) if r["resourceType"] == "DocumentReference")
    unsigned = jwt.encode({"iss": "c", "sub": "c", "aud": AUDIENCE, "iat": int(time.time()),
                           "exp": int(time.time()) + 60, "jti": "j"}, None, algorithm="none")
    form = signer.token_request_form("c", "90000202", AUDIENCE, "b")
    examples: dict[str, bytes] = {
        "notification-good.json": json.dumps(task).encode(),
        "notification-bad.json": json.dumps(with_defect(task, "identifier-object")).encode(),
        "notification-good.xml": to_xml(task),
        "cancel-good.json": json.dumps(cancel).encode(),
        "cancel-bad.json": json.dumps({**cancel, "groupIdentifier": {"value": "not-a-uuid"}}).encode(),
        "workflow-task-good.json": json.dumps(workflow).encode(),
        "workflow-task-bad.json": json.dumps({**workflow, "for": {"display": "no BSN"}}).encode(),
        "client-assertion-good.jwt": signer.client_assertion("c", AUDIENCE).encode(),
        "client-assertion-bad.jwt": unsigned.encode(),
        "token-request-good.form": urlencode(form).encode(),
        "token-request-bad.form": urlencode({k: v for k, v in form.items() if k != "client_assertion"}).encode(),
        "token-response-good.json": json.dumps({"access_token": "A" * 40, "token_type": "Bearer",
                                                "expires_in": 300}).encode(),
        "token-response-bad.json": json.dumps({"access_token": "A" * 40, "token_type": "mac"}).encode(),
        "bundle-good.json": json.dumps(_bundle()).encode(),
        "bundle-bad.json": json.dumps({**_bundle(), "type": "history"}).encode(),
        "resource-good.json": json.dumps(condition).encode(),
        "resource-good.xml": to_xml(condition),
        "resource-bad.json": json.dumps(no_status).encode(),
        "document-good.pdf": referral_letter_pdf(PATIENTS[0], title="Verwijsbrief", lines=["Geachte collega,"]),
        "document-good.json": json.dumps(document).encode(),
        "document-bad.json": json.dumps({**document, "status": "superseded"}).encode(),
    }
    paths = {}
    for name, data in examples.items():
        (d / name).write_bytes(data)
        paths[name] = d / name
    paths["xxe"] = d / "xxe.xml"
    paths["xxe"].write_text('<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                            '<Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>')
    paths["laughs"] = d / "laughs.xml"
    paths["laughs"].write_text('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
                               '"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><Patient xmlns="http://hl7.org/fhir">'
                               '<id value="&lol2;"/></Patient>')
    paths["jwks"] = d / "keys.jwks"
    return paths


def _json_run(*args: str) -> tuple[int, dict]:
    result = speeltuin("validate", "--format", "json", *args)
    assert result.returncode in (0, 1), result.stderr
    output = json.loads(result.stdout)
    jsonschema.validate(output, VALIDATE_SCHEMA)
    return result.returncode, output


def test_good_examples_of_every_kind_pass_and_are_detected(files) -> None:
    good = sorted(str(p) for name, p in files.items() if "-good" in name)
    code, output = _json_run("--audience", AUDIENCE, "--jwks", str(files["jwks"]), *good)
    errors = [(f["path"], f["findings"]) for f in output["files"] if any(x["severity"] == "error" for x in f["findings"])]
    assert code == 0 and errors == [] and output["summary"]["errors"] == 0
    for entry in output["files"]:
        name = Path(entry["path"]).name
        assert entry["kind"] == name.rsplit("-good", 1)[0], name
    assert {entry["kind"] for entry in output["files"]} == {
        "notification", "cancel", "workflow-task", "client-assertion", "token-request", "token-response",
        "bundle", "resource", "document"}


@pytest.mark.parametrize("name, rule", [
    ("notification-bad.json", "NOTIF-002"), ("cancel-bad.json", "NOTIF-007"), ("workflow-task-bad.json", "WF-006"),
    ("client-assertion-bad.jwt", "JWT-003"), ("token-request-bad.form", "TOK-008"),
    ("token-response-bad.json", "TOKR-003"), ("bundle-bad.json", "BUNDLE-002"),
    ("resource-bad.json", "PROF-PROBLEM-001"), ("document-bad.json", "DOC-005"),
])
def test_bad_examples_exit_1_with_their_rule(files, name: str, rule: str) -> None:
    code, output = _json_run(str(files[name]))
    assert code == 1 and rule in {f["rule"] for f in output["files"][0]["findings"]}


def test_text_format_and_summary(files) -> None:
    result = speeltuin("validate", str(files["notification-bad.json"]))
    assert result.returncode == 1
    assert f"{files['notification-bad.json']}: ERROR NOTIF-002 Task.identifier:" in result.stdout
    assert result.stdout.strip().splitlines()[-1].endswith("in 1 files")


def test_unreadable_input_and_usage_errors_exit_2_in_one_line(files, tmp_path) -> None:
    for path in (files["xxe"], files["laughs"]):
        result = speeltuin("validate", str(path))
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "DOCTYPE" in result.stderr
        assert "root:" not in result.stdout + result.stderr
    missing = speeltuin("validate", str(tmp_path / "nope.json"))
    assert (missing.returncode, missing.stderr.strip()) == (
        2, f"speeltuin: cannot read {tmp_path / 'nope.json'}: No such file or directory")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert speeltuin("validate", str(garbage)).returncode == 2
    assert speeltuin("validate", "--kind", "nonsense", str(garbage)).returncode == 2
    assert speeltuin("validate", "--suppress", "NOPE-001=x", str(files["resource-good.json"])).returncode == 2


def test_suppression_is_reported_not_counted(files) -> None:
    code, output = _json_run("--suppress", "NOTIF-002=known defect of the vendor's test data",
                             str(files["notification-bad.json"]))
    entry = output["files"][0]
    assert "NOTIF-002" not in {f["rule"] for f in entry["findings"]}
    assert entry["suppressed"][0]["reason"] == "known defect of the vendor's test data"
    assert output["summary"]["errors"] == sum(f["severity"] == "error" for f in entry["findings"])


def test_assertion_without_audience_says_aud_was_not_compared(files) -> None:
    _code, output = _json_run(str(files["client-assertion-good.jwt"]))
    rules = {f["rule"] for f in output["files"][0]["findings"]}
    assert "VAL-001" in rules and "JWT-013" not in rules


def test_rules_catalogue_in_json_follows_its_schema() -> None:
    result = speeltuin("rules", "--format", "json")
    assert result.returncode == 0
    output = json.loads(result.stdout)
    jsonschema.validate(output, RULES_SCHEMA)
    assert {r["id"] for r in output["rules"]} == set(load_all())
    text = speeltuin("rules").stdout
    assert "NOTIF-002" in text and len(text.splitlines()) == len(output["rules"])


def test_rules_catalogue_names_where_each_rule_is_checked() -> None:
    output = json.loads(speeltuin("rules", "--format", "json").stdout)
    where = {r["id"]: r["where"] for r in output["rules"]}
    assert where["NOTIF-015"]["module"] == "validators.rules.notification"
    for rule_id, place in where.items():
        check = getattr(importlib.import_module(place["module"]), place["function"])
        assert rule_id in {r.id for r in check.__emits__}, (rule_id, place)


def test_detect_kind_on_json_and_xml(files) -> None:
    for name, path in files.items():
        if "-good" in name or "-bad" in name:
            assert detect_kind(path.read_bytes()) == name.rsplit("-good", 1)[0].rsplit("-bad", 1)[0], name


def test_empty_folder_blank_audience_and_unreadable_file_are_usage_errors(files, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = speeltuin("validate", str(empty))
    assert nothing.returncode == 2 and "no files to validate" in nothing.stderr
    blank = speeltuin("validate", "--audience", " ", str(files["client-assertion-good.jwt"]))
    assert blank.returncode == 2 and "--audience" in blank.stderr
    twice = _json_run(str(files["resource-good.json"]), str(files["resource-good.json"]))[1]
    assert len(twice["files"]) == 1


def test_a_fhir_binary_that_is_no_pdf_is_reported_once() -> None:
    import base64

    from validators.dispatch import validate_bytes

    binary = {"resourceType": "Binary", "id": "b1", "contentType": "application/pdf",
              "content": base64.b64encode(b"not a pdf").decode()}
    rules = [f.rule for f in validate_bytes(json.dumps(binary).encode()).findings]
    assert rules.count("DOC-002") == 1
