"""The whole product in the loop: `speeltuin demo` starts simulator, reference vendor and a real
mitmdump on loopback, runs both happy scenarios through the proxy and writes the reports."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from validators.rules.structure import check_structure

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("demo")
    completed = subprocess.run([sys.executable, "-m", "speeltuin.cli", "demo", "--out", str(out), "--wait", "60"],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
    return completed, out


def test_demo_passes_and_names_its_report(demo) -> None:
    completed, out = demo
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"report: {out / 'report.html'}" in completed.stdout
    assert "Traceback" not in completed.stderr


HAPPY = ["RCV-01", "SND-01"]
CATALOGUE = [f"RCV-{n:02d}" for n in range(1, 16)] + [f"SND-{n:02d}" for n in range(1, 17)]


def _scenarios(out: Path) -> dict[str, dict]:
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "passed" and report["counts"]["error"] == 0
    assert [s["id"] for s in report["scenarios"]] == CATALOGUE
    for scenario in report["scenarios"]:
        assert scenario["status"] == "passed", scenario["steps"]
        assert all(step["status"] == "passed" for step in scenario["steps"])
        assert all(ex["source"] == "proxy" for ex in scenario["exchanges"])
        # each exchange is shown as its caller made it: at the proxy's listener for that direction
        listener = {"to-simulator": report["environment"]["proxy (vendor → simulator)"],
                    "to-vendor": report["environment"]["proxy (simulator → vendor)"]}
        assert all(ex["url"].startswith(listener[ex["direction"]] + "/s/") for ex in scenario["exchanges"])
    return {s["id"]: s for s in report["scenarios"]}


def test_every_exchange_went_through_the_proxy_and_was_judged(demo) -> None:
    _completed, out = demo
    scenarios = _scenarios(out)
    for scenario in (scenarios[i] for i in HAPPY):
        tags = [ex["tag"] for ex in scenario["exchanges"]]
        # two token requests (notification + pull), the notification, 29 searches, at least one letter
        assert tags.count("token-request") == 2 and tags.count("notification") == 1
        assert tags.count("search") == 29 and tags.count("binary") >= 1
        assert {ex["direction"] for ex in scenario["exchanges"]} == {"to-simulator", "to-vendor"}


def test_the_workflow_task_is_served_with_its_queries_and_followed_both_ways(demo) -> None:
    """RCV-15: the simulator serves it, the reference vendor follows; SND-15 the other way round. Each side reads it
    once and pulls its 29 queries (each once: the Notification Task lists the same ones)."""
    _completed, out = demo
    scenarios = _scenarios(out)
    for scenario_id in ("RCV-15", "SND-15"):
        exchanges = scenarios[scenario_id]["exchanges"]
        reads = [ex for ex in exchanges if ex["tag"] == "read" and "/fhir/Task/" in ex["url"]]
        assert len(reads) == 1 and reads[0]["status"] == 200
        assert [ex["tag"] for ex in exchanges].count("search") == 29
    [followed] = [st for st in scenarios["SND-15"]["steps"] if st["title"].startswith("Simulator read the Workflow")]
    assert followed["detail"].endswith("read, no error findings; its 29 queries pulled"), followed["detail"]


def test_negative_flows_provoke_and_observe_refusals(demo) -> None:
    _completed, out = demo
    scenarios = _scenarios(out)
    defective = scenarios["RCV-11"]
    assert [(ex["tag"], ex["status"]) for ex in defective["exchanges"]] == [("token-request", 200), ("notification", 400)]
    assert "NOTIF-002" in [f["rule"] for f in defective["exchanges"][1]["findings"]]
    assert defective["counts"]["expected"] >= 1 and defective["counts"]["error"] == 0
    for scenario_id, status in (("SND-10", 401), ("SND-11", 401), ("SND-12", 403), ("SND-13", 400)):
        probed = [ex["status"] for ex in scenarios[scenario_id]["exchanges"]
                  if ex["direction"] == "to-vendor" and ex["tag"] == "search"]
        assert probed[-1] == status, (scenario_id, probed)
    revoked = [ex for ex in scenarios["SND-03"]["exchanges"]
               if ex["direction"] == "to-vendor" and ex["tag"] == "token-request"]
    assert revoked[-1]["status"] == 400 and '"invalid_grant"' in revoked[-1]["response_body"]
    cancelled = [ex for ex in scenarios["RCV-02"]["exchanges"] if ex["tag"] == "cancellation"]
    assert [ex["status"] for ex in cancelled] == [200]
    for scenario_id in ("SND-04", "SND-05", "SND-06", "SND-07", "SND-08", "SND-09"):  # the AS refused each probe
        asked = [ex for ex in scenarios[scenario_id]["exchanges"]
                 if ex["direction"] == "to-vendor" and ex["tag"] == "token-request"]
        assert asked[-1]["status"] in (400, 401) and '"error"' in asked[-1]["response_body"], scenario_id


def test_every_finding_declared_as_provoked_on_purpose_was_provoked(demo) -> None:
    """A scenario's `expected` declarations are not stale: each declared rule shows up in its own exchanges."""
    _completed, out = demo
    for scenario in _scenarios(out).values():
        declared = {e["rule"] for e in scenario["excuses"]["expected"]}
        seen = {f["rule"] for ex in scenario["exchanges"] for f in ex["findings"]}
        assert declared <= seen, (scenario["id"], declared - seen)


def test_reports_redact_tokens_and_render(demo) -> None:
    _completed, out = demo
    html = (out / "report.html").read_text()
    assert html.count('class="badge passed"') >= 3 and 'id="run-status">passed<' in html
    # no bearer token or access token is ever shown whole
    assert not re.search(r"Bearer [A-Za-z0-9_-]{20,}", html)
    assert not re.search(r'"access_token": "[A-Za-z0-9_-]{20,}"', html)
    testreport = json.loads((out / "testreport.json").read_text())
    assert testreport["resourceType"] == "TestReport" and testreport["result"] == "pass"
    assert check_structure(testreport) == [] and len(testreport["test"]) == len(CATALOGUE)
    suite = ET.parse(out / "junit.xml").getroot()
    assert [s.get("name").split()[0] for s in suite.findall("testsuite")] == CATALOGUE
    assert suite.get("failures") == "0" and int(suite.get("tests")) == len(suite.findall("testsuite/testcase")) > 30
