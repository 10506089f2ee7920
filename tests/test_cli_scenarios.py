"""`speeltuin scenarios`: the catalogue as text and as JSON, with no server and no store."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IDS = [f"RCV-{n:02d}" for n in range(1, 16)] + [f"SND-{n:02d}" for n in range(1, 17)]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speeltuin.cli", "scenarios", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_scenarios_lists_id_kind_role_and_title() -> None:
    result = _run()
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == IDS
    assert lines[0].split()[1:3] == ["happy", "receiver"] and lines[-1].split()[1:3] == ["negative", "sender"]
    assert lines[10].endswith("Vendor as receiving node: refuses a Notification Task whose identifier is an object")


def test_scenarios_as_json() -> None:
    result = _run("--format", "json")
    assert result.returncode == 0 and result.stderr == ""
    listed = json.loads(result.stdout)["scenarios"]
    assert [s["id"] for s in listed] == IDS
    assert all(set(s) == {"id", "kind", "vendor_role", "title", "description", "steps", "outcome", "rules", "spec",
                          "catches"} for s in listed)
    by_id = {s["id"]: s["steps"] for s in listed}
    assert by_id["RCV-01"] == ["create-sessions", "notify", "await-pull", "token-granted", "no-errors"]
    assert by_id["RCV-11"] == ["create-sessions", "notify-defective", "no-pull", "no-errors"]
    assert [s["id"] for s in listed if s["kind"] == "happy"] == ["RCV-01", "RCV-14", "RCV-15", "SND-01", "SND-02",
                                                                        "SND-15"]
    assert [s["vendor_role"] for s in listed] == ["receiver"] * 15 + ["sender"] * 16
    assert all(s["title"] and s["description"] and s["outcome"] and s["spec"].startswith("SPEC §") for s in listed)
    by_id = {s["id"]: s for s in listed}
    assert by_id["RCV-11"]["rules"] == ["NOTIF-002"] and by_id["RCV-11"]["catches"] == ["accepts-defective-task"]


def test_every_rule_a_scenario_covers_is_in_the_catalogue() -> None:
    from validators.catalogue import load_all

    listed = json.loads(_run("--format", "json").stdout)["scenarios"]
    unknown = {s["id"]: [r for r in s["rules"] if r not in load_all()] for s in listed}
    assert not {k: v for k, v in unknown.items() if v}


def test_an_unknown_format_is_a_usage_error() -> None:
    result = _run("--format", "xml")
    assert result.returncode == 2 and "invalid choice" in result.stderr and "Traceback" not in result.stderr
