"""User mistakes get one clear line and exit status 2, never a traceback."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speeltuin.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_unknown_patient_is_a_usage_error(tmp_path) -> None:
    result = _run("demo", "--patient", "123", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == "speeltuin: no built-in test patient with BSN 123"


def test_port_in_use_is_a_usage_error(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run("serve", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'x.sqlite'}")
    assert result.returncode == 2
    assert "cannot listen on 127.0.0.1" in result.stderr and "Traceback" not in result.stderr


def test_missing_command_shows_usage() -> None:
    result = _run()
    assert result.returncode == 2 and "usage: speeltuin" in result.stderr


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    """`speeltuin ... | head -3`: when the reader closes the pipe, the command ends quietly, with status 0."""
    process = subprocess.Popen([sys.executable, "-m", "speeltuin.cli", "scenarios", "--format", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before it writes anything: its first write meets a closed pipe
    stderr = process.stderr.read().decode()
    assert process.wait(60) == 0 and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["service", "--port", "0"],
                                     ["proxy", "--simulator", "http://127.0.0.1:9", "--vendor", "http://127.0.0.1:9",
                                      "--front-port", "0", "--back-port", "0"]], ids=lambda c: c[0])
@pytest.mark.parametrize("url", ["speeltuin.example.nl", "ftp://speeltuin.example.nl", "https://x.nl/?a=1"])
def test_a_public_url_that_is_no_http_url_is_a_usage_error(tmp_path, command: list[str], url: str) -> None:
    result = _run(*command, "--public-url", url, "--db", f"sqlite:///{tmp_path / 'x.sqlite'}")
    assert result.returncode == 2, result.stderr
    assert "--public-url must be an absolute http(s) URL" in result.stderr and url in result.stderr
    assert "Traceback" not in result.stderr
