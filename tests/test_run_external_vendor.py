"""The test manager takes a vendor system that is not ours through the catalogue: the external vendor of
tests/external_vendor (written from SPEC.md and the README only), configured by nothing but a vendor.toml.

Unattended: command triggers make it act, both roles, `speeltuin run` ends with the outcome per scenario.
Guided: no trigger; the runner shows what to do, waits, and goes on when the vendor's traffic arrives.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator
from xml.etree import ElementTree as ET

import pytest
import requests

from scenarios.catalogue import all_scenarios

ROOT = Path(__file__).resolve().parents[1]
NODE_URA, NODE_CLIENT_ID, NAME = "90000303", "acme-epd", "Acme EPD"
SIMULATOR_URA, SIMULATOR_CLIENT_ID = "90000101", "speeltuin-simulator"
SESSIONS = {"receiver": "acme-epd-receiver", "sender": "acme-epd-sender"}  # named after the vendor and role
# What the catalogue finds wrong with the external vendor: its puller does not retry a 503 (SPEC §3 steps 5-6).
EXPECTED_FAILURES = {"RCV-13": "the external vendor does not retry after 503 + Retry-After"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Setup:
    """The external node behind the proxy's back port, knowing the simulator's endpoints at the front port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.node_port, self.front, self.back = _free_port(), _free_port(), _free_port()
        self.node = f"http://127.0.0.1:{self.node_port}"
        front = f"http://127.0.0.1:{self.front}"
        receiver, sender = (f"{front}/s/{SESSIONS[role]}" for role in ("receiver", "sender"))
        (folder / "peer.json").write_text(json.dumps({
            "ura": SIMULATOR_URA, "client_id": SIMULATOR_CLIENT_ID,
            "as_receiver": {"token_url": f"{receiver}/token", "jwks_url": f"{receiver}/jwks",
                            "fhir_base": f"{receiver}/fhir"},
            "as_sender": {"token_url": f"{sender}/token", "jwks_url": f"{sender}/jwks",
                          "notification_url": f"{sender}/notify/Task"}}))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.external_vendor.node", "--port", str(self.node_port), "--ura", NODE_URA,
             "--client-id", NODE_CLIENT_ID, "--state-dir", str(folder / "state"), "--peer-config",
             str(folder / "peer.json"), "--public-url", f"http://127.0.0.1:{self.back}",
             # its token endpoint knows itself by the URL its vendor.toml gives, not the proxy's in front of it
             "--token-audience", f"{self.node}/token"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(folder / "node.log", "wb"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.node}/jwks", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the external vendor did not start; see {folder / 'node.log'}")

    def vendor_toml(self, name: str, *, roles: str, triggers: bool) -> Path:
        ctl = [sys.executable, "-m", "tests.external_vendor.ctl"]
        lines = [f'name = "{NAME}"', f"roles = {roles}", f'ura = "{NODE_URA}"', f'client_id = "{NODE_CLIENT_ID}"',
                 "", "[keys]", f'jwks_url = "{self.node}/jwks"', "", "[endpoints]",
                 f'token_url = "{self.node}/token"', f'fhir_base = "{self.node}/fhir"',
                 f'notification_base = "{self.node}/notify"']
        if triggers:
            for action in ("notify", "update", "cancel", "pull"):
                lines += ["", f"[triggers.{action}]", f"command = {json.dumps(ctl + [action, '--node', self.node])}",
                          "timeout = 30"]
        path = self.folder / name
        path.write_text("\n".join(lines) + "\n")
        return path

    def run_command(self, vendor_toml: Path, report_dir: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "speeltuin.cli", "--instance", str(self.folder / "instance"), "run",
                "--vendor", str(vendor_toml), "--front-port", str(self.front), "--back-port", str(self.back),
                "--report-dir", str(report_dir), "--quiet-period", "1", "--timeout", "30", *extra]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


ENV = dict(os.environ, PYTHONPATH=str(ROOT))  # the triggers run `python -m tests.external_vendor.ctl`


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    started = Setup(tmp_path_factory.mktemp("external"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def unattended(setup: Setup) -> tuple[subprocess.CompletedProcess, Path]:
    reports = setup.folder / "unattended"
    expected = setup.folder / "expected-failures.txt"
    expected.write_text("\n".join(f"{scenario}  # {why}" for scenario, why in EXPECTED_FAILURES.items()) + "\n")
    completed = subprocess.run(
        setup.run_command(setup.vendor_toml("vendor.toml", roles='["sender", "receiver"]', triggers=True), reports,
                          "--junit", str(reports / "ci-junit.xml"), "--expected-failures", str(expected),
                          "--timeout", "15"),
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    return completed, reports


def test_the_whole_catalogue_runs_unattended_against_a_vendor_system_not_ours(unattended) -> None:
    completed, reports = unattended
    report = json.loads((reports / "report.json").read_text())
    outcome = {s["id"]: s["status"] for s in report["scenarios"]}
    failed = {s["id"]: [(st["title"], st["detail"][:400]) for st in s["steps"] if st["status"] == "failed"]
              for s in report["scenarios"] if s["status"] == "failed"}
    # the vendor's one known defect is found, and nothing else
    assert set(failed) == set(EXPECTED_FAILURES), failed
    assert "gave up waiting for the vendor to pull" in failed["RCV-13"][0][1]
    assert f"[failed] RCV-13: {report['scenarios'][[s['id'] for s in report['scenarios']].index('RCV-13')]['title']}" \
        f" (expected to fail)" in completed.stdout
    assert list(outcome) == [cls.id for cls in all_scenarios()]  # the whole catalogue, both roles
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr
    assert report["environment"]["vendor system"].startswith(f"{NAME} (")
    # every scenario ran in the vendor's own session per role, and the traffic passed the proxy
    assert {s["session_id"] for s in report["scenarios"]} == set(SESSIONS.values())
    happy = next(s for s in report["scenarios"] if s["id"] == "SND-01")
    assert happy["exchanges"] and all(ex["source"] == "proxy" for ex in happy["exchanges"])
    assert any("command trigger for 'notify'" in st["detail"] for st in happy["steps"])
    suites = ET.parse(reports / "ci-junit.xml").getroot().findall("testsuite")
    assert [s.get("name").split()[0] for s in suites] == [s["id"] for s in report["scenarios"]]


def test_a_second_run_reuses_the_sessions_the_vendor_was_configured_with(setup: Setup, unattended) -> None:
    reports = setup.folder / "again"
    completed = subprocess.run(
        setup.run_command(setup.folder / "vendor.toml", reports, "--scenario", "RCV-01"),
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    [scenario] = json.loads((reports / "report.json").read_text())["scenarios"]
    assert scenario["session_id"] == SESSIONS["receiver"] and scenario["status"] == "passed"


def test_guided_mode_asks_a_person_and_goes_on_when_the_traffic_arrives(setup: Setup, unattended) -> None:
    """No trigger in the vendor.toml: the runner says what to do and waits; a person (here: the test) does it."""
    reports = setup.folder / "guided"
    process = subprocess.Popen(
        setup.run_command(setup.vendor_toml("guided.toml", roles='["sender"]', triggers=False), reports,
                          "--scenario", "SND-01"),
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if line.startswith(">>> "):
                break
        prompt = "".join(seen)
        assert "send a notification" in prompt.lower() and "999993653" in prompt, prompt
        assert f"/s/{SESSIONS['sender']}/notify/Task" in prompt
        time.sleep(1)  # the runner is waiting now; the person acts in their own system
        acted = subprocess.run([sys.executable, "-m", "tests.external_vendor.ctl", "notify", "--node", setup.node],
                               cwd=ROOT, env=dict(ENV, SPEELTUIN_PATIENT_BSN="999993653"), capture_output=True,
                               text=True, timeout=60)
        assert acted.returncode == 0, acted.stdout + acted.stderr
        rest, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    output = prompt + rest
    assert process.returncode == 0, output[-3000:] + errors[-3000:]
    assert "SND-01: waiting for a Notification Task from the vendor" in output
    assert "[passed] SND-01" in output
