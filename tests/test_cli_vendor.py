"""`speeltuin vendor init/check`, run as a command in a subprocess, in a temporary working directory.

Until the `vendor` group is registered in speeltuin/cli/__init__.py the commands run through the same `main`
with the group added (see `_command`); once it is registered they run as `python -m speeltuin.cli`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import speeltuin.cli
from scenarios.vendor_config import TEMPLATE
from speeltuin.cli import vendor

ROOT = Path(__file__).resolve().parents[1]
_WITH_VENDOR_GROUP = ("import sys, speeltuin.cli as cli, speeltuin.cli.vendor as vendor; "
                      "cli.GROUPS = (*cli.GROUPS, vendor); sys.exit(cli.main(sys.argv[1:]))")


def _command() -> list[str]:
    if vendor in speeltuin.cli.GROUPS:
        return [sys.executable, "-m", "speeltuin.cli"]
    return [sys.executable, "-c", _WITH_VENDOR_GROUP]


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*_command(), "vendor", *args], cwd=cwd, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _filled_in(folder: Path, text: str = TEMPLATE) -> None:
    """What `vendor init` writes (see the first test), with the JWKS file it names."""
    (folder / "vendor.toml").write_text(text)
    (folder / "vendor-jwks.json").write_text(json.dumps({"keys": [{"kty": "EC", "kid": "acme-1"}]}))


def test_init_writes_the_template_in_the_working_directory(tmp_path: Path) -> None:
    result = _run(tmp_path, "init")
    assert result.returncode == 0 and result.stderr == ""
    assert (tmp_path / "vendor.toml").read_text() == TEMPLATE
    assert "wrote vendor.toml" in result.stdout and "speeltuin vendor check vendor.toml" in result.stdout


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "acme.toml"
    target.write_text("# my own work\n")
    refused = _run(tmp_path, "init", "acme.toml")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr == "speeltuin: acme.toml exists already; add --force to overwrite it with the template\n"
    assert target.read_text() == "# my own work\n"
    forced = _run(tmp_path, "init", "acme.toml", "--force")
    assert forced.returncode == 0 and target.read_text() == TEMPLATE


def test_check_shows_roles_endpoints_and_triggers(tmp_path: Path) -> None:
    _filled_in(tmp_path, TEMPLATE.replace("# [triggers.notify]\n# command = ", "[triggers.notify]\ncommand = "))
    result = _run(tmp_path, "check", "vendor.toml")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "vendor.toml: My GtK (test)" and lines[1] == "  roles: sender, receiver"
    assert "  keys: JWKS file" in result.stdout and "(1 key: acme-1)" in result.stdout
    assert "    fhir_base          https://gtk.example.org/fhir" in lines
    assert "    notify   command: ./speeltuin-hooks/notify.sh (timeout 60 s)" in lines
    assert "    pull     manual: a person is asked" in lines
    as_json = json.loads(_run(tmp_path, "check", "vendor.toml", "--format", "json").stdout)
    assert as_json["roles"] == ["sender", "receiver"] and as_json["ura"] == "12345678"
    assert as_json["endpoints"]["notification_base"] == "https://gtk.example.org/twiin"
    assert as_json["origin"] == "https://gtk.example.org"


def test_check_reports_a_mistake_in_one_line(tmp_path: Path) -> None:
    _filled_in(tmp_path, TEMPLATE.replace('ura = "12345678"', 'ura = "1234"'))
    result = _run(tmp_path, "check", "vendor.toml")
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr == "speeltuin: vendor.toml: ura: must be a URA of 8 digits, got '1234'\n"
    _filled_in(tmp_path, TEMPLATE.replace("https://gtk.example.org/fhir", "https://fhir.example.org/fhir"))
    two_origins = _run(tmp_path, "check", "vendor.toml")
    assert two_origins.returncode == 2 and two_origins.stderr.count("\n") == 1
    assert "the endpoints must share one origin" in two_origins.stderr
