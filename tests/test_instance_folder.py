"""Everything a run keeps lives under one instance folder, never in the working directory (speeltuin.defaults)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from speeltuin import defaults
from tests.conftest import complete_session_options

ROOT = Path(__file__).resolve().parents[1]


def _speeltuin(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speeltuin.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env=env)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (defaults.INSTANCE_ENV, defaults.DATABASE_ENV)}
    return {**env, **extra}


def test_instance_folder_is_given_then_environment_then_xdg(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(defaults.INSTANCE_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert defaults.instance_dir() == tmp_path / "xdg" / "speeltuin"
    monkeypatch.setenv(defaults.INSTANCE_ENV, str(tmp_path / "env"))
    assert defaults.instance_dir() == tmp_path / "env"
    assert defaults.instance_dir(tmp_path / "given") == tmp_path / "given"
    assert defaults.database_url(tmp_path / "given") == f"sqlite:///{tmp_path / 'given' / 'speeltuin.sqlite'}"


def test_commands_keep_their_files_in_the_instance_folder_not_the_working_directory(tmp_path) -> None:
    work, instance = tmp_path / "work", tmp_path / "instance"
    work.mkdir()
    created = _speeltuin("--instance", str(instance), "session", "create", "--name", "n",
                         *complete_session_options("sender"), "--vendor-ura", "12345678", "--id", "vx-1", cwd=work,
                         env=_env())
    assert created.returncode == 0, created.stderr
    assert (instance / "speeltuin.sqlite").is_file()
    by_env = _speeltuin("session", "list", cwd=work, env=_env(SPEELTUIN_INSTANCE=str(instance)))
    assert by_env.stdout.startswith("vx-1\tsender")
    assert _speeltuin("pki", "init", cwd=work, env=_env(SPEELTUIN_INSTANCE=str(instance))).returncode == 0
    assert (instance / "pki" / "ca.cert.pem").is_file()
    assert list(work.iterdir()) == []


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_sigterm_stops_the_proxy_and_frees_its_ports(tmp_path) -> None:
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "speeltuin.cli", "--instance", str(tmp_path), "proxy", "--simulator",
         "http://127.0.0.1:9", "--vendor", "http://127.0.0.1:9", "--front-port", str(ports[0]),
         "--back-port", str(ports[1])], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not all(_listening(p) for p in ports):
            assert process.poll() is None and time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) is not None
        assert not any(_listening(p) for p in ports), "mitmdump still listens after SIGTERM"
        assert (tmp_path / "mitmproxy").is_dir()  # its settings went to the instance folder
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
