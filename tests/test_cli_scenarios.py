"""`speeltuin scenarios`: the catalogue as text and as JSON, with no server and no store."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IDS = ["happy-vendor-receiver", "happy-vendor-sender", "negative-defective-task", "negative-cancellation",
       "negative-resource-server", "negative-token-after-cancellation"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speeltuin.cli", "scenarios", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_scenarios_lists_id_kind_role_and_title() -> None:
    result = _run()
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == IDS
    assert lines[0].split()[1:3] == ["happy", "receiver"] and lines[-1].split()[1:3] == ["negative", "sender"]
    assert lines[2].endswith("Vendor as receiving node: refuses a Notification Task with a known defect")


def test_scenarios_as_json() -> None:
    result = _run("--format", "json")
    assert result.returncode == 0 and result.stderr == ""
    listed = json.loads(result.stdout)["scenarios"]
    assert [s["id"] for s in listed] == IDS
    assert all(set(s) == {"id", "kind", "vendor_role", "title", "description", "steps"} for s in listed)
    by_id = {s["id"]: s["steps"] for s in listed}
    assert by_id["happy-vendor-receiver"] == ["create-sessions", "notify", "await-pull", "token-granted", "no-errors"]
    assert by_id["negative-defective-task"] == ["create-sessions", "notify-defective", "no-pull", "no-errors"]
    assert [s["kind"] for s in listed] == ["happy"] * 2 + ["negative"] * 4
    assert [s["vendor_role"] for s in listed] == ["receiver", "sender", "receiver", "receiver", "sender", "sender"]
    assert all(s["title"] and s["description"] for s in listed)


def test_an_unknown_format_is_a_usage_error() -> None:
    result = _run("--format", "xml")
    assert result.returncode == 2 and "invalid choice" in result.stderr and "Traceback" not in result.stderr
