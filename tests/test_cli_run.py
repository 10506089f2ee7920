"""`speeltuin run`: scenarios against the reference vendor, the report files, exit codes, Ctrl-C."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.processes import processes, processes_naming

ROOT = Path(__file__).resolve().parents[1]


def _speeltuin(*args: str, instance: Path, **kwargs: object) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "speeltuin.cli", "--instance", str(instance), "run", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180,  # type: ignore[call-overload]
                          **kwargs)


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    base = tmp_path_factory.mktemp("run")
    expected = base / "expected.txt"
    expected.write_text("# none expected to fail\n\n", encoding="utf-8")
    completed = _speeltuin("--reference-vendor", "--scenario", "RCV-01",
                           "--scenario", "RCV-02", "--report-dir", str(base / "reports"),
                           "--junit", str(base / "ci" / "junit.xml"), "--json", str(base / "ci" / "run.json"),
                           "--testreport", str(base / "ci" / "testreport.json"), "--quiet-period", "1",
                           "--expected-failures", str(expected), instance=base / "instance")
    return completed, base


def test_a_run_against_the_reference_vendor_passes_and_writes_every_report(one_run) -> None:
    completed, base = one_run
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr
    assert f"report: {base / 'reports' / 'report.html'}" in completed.stdout
    assert "[passed] RCV-01" in completed.stdout
    # the terminal follows the steps as they end
    assert "RCV-01: [passed] Create the validation session" in completed.stdout
    assert "RCV-02: [passed] Simulator cancels; the vendor accepts the cancellation" in completed.stdout
    report = json.loads((base / "ci" / "run.json").read_text())
    assert [s["id"] for s in report["scenarios"]] == ["RCV-01", "RCV-02"]
    assert report["status"] == "passed" and report["environment"]["reference vendor"].startswith("http://")
    suite = ET.parse(base / "ci" / "junit.xml").getroot()
    assert [s.get("name").split()[0] for s in suite.findall("testsuite")] == ["RCV-01", "RCV-02"]
    assert suite.get("failures") == "0" and suite.get("tests") == "11"  # 5 + 6 steps
    for name in ("report.html", "report.json", "junit.xml"):
        assert (base / "reports" / name).stat().st_size > 0
    testreport = json.loads((base / "ci" / "testreport.json").read_text())
    assert testreport["resourceType"] == "TestReport" and testreport["result"] == "pass"


@pytest.mark.parametrize("args, message", [
    (("--reference-vendor", "--scenario", "no-such-scenario"), "no scenario no-such-scenario; known: "),
    (("--reference-vendor", "--expected-failures", "/nonexistent/list.txt"), "cannot read --expected-failures"),
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    completed = _speeltuin(*args, instance=tmp_path)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert message in completed.stderr and "Traceback" not in completed.stderr
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_ctrl_c_ends_the_run_with_a_partial_report(tmp_path: Path) -> None:
    # stdout has one reader (the thread below) and stderr goes to a file: communicate() would read stdout too
    # and take the last lines from under the thread
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w") as stderr_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "speeltuin.cli", "--instance", str(tmp_path), "run", "--reference-vendor",
             "--role", "receiver", "--report-dir", str(tmp_path / "reports"), "--quiet-period", "30"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr_file, text=True)
    lines: list[str] = []
    running = threading.Event()

    def read() -> None:  # the terminal's lines as they come; the stack is up when it names the proxy's address
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "vendors reach the simulator at" in line:
                running.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert running.wait(120), "".join(lines)
        time.sleep(4)  # the scenarios run side by side; the defective-Task one waits its 30 s quiet period
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        reader.join(10)
        stdout = "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = stderr_path.read_text()
    assert "Traceback" not in stderr, stderr
    assert process.returncode == 1, stdout + stderr
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert report["environment"]["interrupted"] == "stopped by the user"
    statuses = {s["id"]: s["status"] for s in report["scenarios"]}
    assert statuses["RCV-11"] == "failed"
    assert any(step["status"] == "failed" and step["detail"] == "stopped by the user"
               for s in report["scenarios"] for step in s["steps"])
    assert "report: " in stdout


def _vendor_toml(folder: Path, origin: str) -> Path:
    (folder / "jwks.json").write_text(json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k",
                                                            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                                                            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}))
    path = folder / "vendor.toml"
    path.write_text(f'name = "Unreachable"\nroles = ["receiver"]\nura = "12345678"\n\n[keys]\njwks_file = '
                    f'"jwks.json"\n\n[endpoints]\ntoken_url = "{origin}/token"\nnotification_base = "{origin}/n"\n')
    return path


def test_a_vendor_that_does_not_answer_is_exit_3(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    completed = _speeltuin("--vendor", str(_vendor_toml(tmp_path, f"http://127.0.0.1:{port}")), instance=tmp_path)
    assert completed.returncode == 3, completed.stdout + completed.stderr
    assert f"the vendor system at http://127.0.0.1:{port} does not answer" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_broken_vendor_toml_is_a_usage_error(tmp_path: Path) -> None:
    path = _vendor_toml(tmp_path, "http://127.0.0.1:9")
    path.write_text(path.read_text().replace('ura = "12345678"', 'ura = "1234"'))
    completed = _speeltuin("--vendor", str(path), instance=tmp_path)
    assert completed.returncode == 2 and "ura" in completed.stderr and "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1


def test_ctrl_c_while_starting_ends_quietly(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "speeltuin.cli", "--instance", str(tmp_path), "run", "--reference-vendor",
         "--role", "receiver", "--report-dir", str(tmp_path / "reports")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(tmp_path.glob("reports/work/*.log")):
            time.sleep(0.05)  # the first part is starting
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in stderr, stderr
    assert process.returncode == 1, stdout + stderr
    assert "stopped by the user" in stderr or "report: " in stdout  # while starting, or (a fast machine) after
    # no part outlives the run: each runs in a session of its own, out of the terminal's Ctrl-C
    assert processes_naming(str(tmp_path)) == [], processes()
