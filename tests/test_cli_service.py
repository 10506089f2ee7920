"""`speeltuin service` and `speeltuin proxy` as real processes: stopping them (SIGTERM) stops every process they
started and leaves nothing listening; a part that dies takes the service down with a message naming it."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from speeltuin.defaults import sqlite_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listens(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _processes() -> dict[int, tuple[int, str]]:
    """Every live process: pid -> (parent pid, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                status = dict(line.split(":\t", 1) for line in (entry / "status").read_text().splitlines()
                              if ":\t" in line)
            except OSError:
                continue
            if not status.get("State", "").startswith("Z"):
                found[int(entry.name)] = (int(status.get("PPid", "0")), cmdline)
    return found


def _processes_naming(marker: str) -> list[int]:
    """The live processes whose command line names `marker` (the test's own database file), and their
    descendants (the proxy's writer names no file)."""
    table = _processes()
    found = {pid for pid, (_, cmdline) in table.items() if marker in cmdline}
    grew = True
    while grew:
        more = {pid for pid, (parent, _) in table.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return sorted(found)


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "SPEELTUIN_ADMIN_KEY": "test-admin-key-of-the-service"}
    return subprocess.Popen([sys.executable, "-m", "speeltuin.cli", *args], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_port(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 60
    while not _listens(port):
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        assert time.monotonic() < deadline, "did not listen within 60 s"
        time.sleep(0.1)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, str]]:
    port, db = _free_port(), sqlite_url(tmp_path / "service.sqlite")
    process = _start(["service", "--host", "127.0.0.1", "--port", str(port), "--db", db], tmp_path)
    _wait_for_port(process, port)
    yield process, port, str(tmp_path / "service.sqlite")
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    for pid in _processes_naming(str(tmp_path / "service.sqlite")):
        os.kill(pid, signal.SIGKILL)


def test_the_service_stops_every_process_it_started_on_sigterm(service: tuple[subprocess.Popen[str], int, str],
                                                               tmp_path: Path) -> None:
    process, port, db_file = service
    created = requests.post(f"http://127.0.0.1:{port}/api/sessions", timeout=10,
                            headers={"X-Admin-Key": "test-admin-key-of-the-service"},
                            json={"id": "svc-1", "vendor_role": "sender", "vendor_ura": "12345678"})
    assert created.status_code == 201, created.text
    assert created.json()["endpoints"]["token_url"] == f"http://127.0.0.1:{port}/s/svc-1/token"
    # `session show` names the address the service announced, without being told
    shown = subprocess.run([sys.executable, "-m", "speeltuin.cli", "session", "show", "svc-1", "--db",
                            sqlite_url(Path(db_file))], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert f"notification_url: http://127.0.0.1:{port}/s/svc-1/notify/Task" in shown.stdout, shown

    started = _processes_naming(db_file)
    assert len(started) >= 3, started  # the simulator, mitmdump and the proxy's writer (and its helpers)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    assert not _listens(port)
    assert _processes_naming(db_file) == []
    output = process.stdout.read() if process.stdout else ""
    assert f"vendors reach the simulator at http://127.0.0.1:{port}" in output and "Traceback" not in output


def test_a_part_that_dies_stops_the_service_with_a_message(service: tuple[subprocess.Popen[str], int, str]) -> None:
    process, port, db_file = service
    table = _processes()
    [simulator] = [pid for pid in _processes_naming(db_file) if " serve " in table[pid][1]]
    os.kill(simulator, signal.SIGKILL)
    assert process.wait(60) == 1
    assert "the simulator ended" in (process.stdout.read() if process.stdout else "")
    assert not _listens(port) and _processes_naming(db_file) == []


def test_the_proxy_stops_with_its_writer_on_sigterm(tmp_path: Path) -> None:
    front, back, db_file = _free_port(), _free_port(), tmp_path / "proxy.sqlite"
    process = _start(["proxy", "--simulator", "http://127.0.0.1:9", "--vendor", "http://127.0.0.1:9",
                      "--front-port", str(front), "--back-port", str(back), "--db", sqlite_url(db_file)], tmp_path)
    try:
        _wait_for_port(process, front)
        assert len(_processes_naming(str(db_file))) >= 2  # mitmdump and its writer
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert not _listens(front) and not _listens(back)
        assert _processes_naming(str(db_file)) == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_a_store_the_proxy_cannot_open_is_a_clear_error(tmp_path: Path) -> None:
    process = _start(["proxy", "--simulator", "http://127.0.0.1:9", "--vendor", "http://127.0.0.1:9",
                      "--front-port", str(_free_port()), "--back-port", str(_free_port()),
                      "--db", "postgresql+psycopg://someone:s3cret@127.0.0.1:1/none"], tmp_path)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "speeltuin_db: cannot open the store at postgresql+psycopg://someone:***@127.0.0.1:1/none" in output
    assert "s3cret" not in output and "Traceback" not in output
