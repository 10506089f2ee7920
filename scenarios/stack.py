"""Starts the whole environment on loopback: simulator, reference vendor and the proxy between them.

The reference vendor is a second simulator instance playing the opposite role, so the product can
test itself end to end with no outside system. Every part is a real process on a real port.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

import requests

from speeltuin import defaults
from speeltuin.defaults import sqlite_url
from speeltuin.records import ProxyPorts


class StackError(Exception):
    """A part of the environment did not start; the message names it and its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    """One simulator process as seen from outside."""

    name: str
    url: str  # where it really listens
    public_url: str  # where its counterpart reaches it (through the proxy)
    admin_key: str
    database_url: str
    ura: str
    client_id: str

    def api(self, method: str, path: str, **kwargs: object) -> requests.Response:
        session = requests.Session()
        session.trust_env = False
        return session.request(method, f"{self.url}/api{path}", headers={"X-Admin-Key": self.admin_key},
                               timeout=30, **kwargs)  # type: ignore[arg-type]

    def jwks(self) -> dict:
        return requests.get(f"{self.url}/jwks", timeout=10).json()


@dataclass
class Stack:
    workdir: Path
    simulator: Node
    vendor: Node | None  # the reference vendor; None when the proxy stands in front of a real vendor system
    proxy: ProxyPorts
    vendor_url: str = ""  # where the proxy's back listener forwards to
    processes: list[tuple[str, subprocess.Popen, Path]] = field(default_factory=list)

    def stop(self) -> None:
        for _name, process, _log in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _name, process, _log in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start_stack(workdir: Path, *, vendor_url: str | None = None, database_url: str | None = None,
                ports: ProxyPorts | None = None, simulator_options: tuple[str, ...] = ()) -> Stack:
    """Start simulator, proxy and (without `vendor_url`) the reference vendor; return when all answer.

    With `vendor_url` (a real vendor system's origin) the proxy's back listener forwards there. The
    simulator keeps its store in `workdir` unless `database_url` names one; the proxy listens on free
    ports unless `ports` are given (a real vendor configures its system with them once). `simulator_options`
    are added to the simulator's `speeltuin serve` (e.g. --test-manager).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    sim_port, vendor_port = free_port(), free_port()
    sim_db = database_url or sqlite_url(workdir / "simulator.sqlite")
    ports = ports or ProxyPorts(free_port(), free_port())
    front, back = ports.front_port, ports.back_port
    simulator = Node("simulator", f"http://{defaults.HOST}:{sim_port}", ports.front_url, secrets.token_urlsafe(24),
                     sim_db, defaults.OWN_URA, defaults.OWN_CLIENT_ID)
    vendor = None if vendor_url else Node(
        "reference-vendor", f"http://{defaults.HOST}:{vendor_port}", ports.back_url, secrets.token_urlsafe(24),
        sqlite_url(workdir / "reference-vendor.sqlite"), defaults.REFERENCE_VENDOR_URA,
        defaults.REFERENCE_VENDOR_CLIENT_ID)
    stack = Stack(workdir, simulator, vendor, ports, vendor_url or (vendor.url if vendor else ""))
    nodes = [(simulator, sim_port)] + ([(vendor, vendor_port)] if vendor else [])
    try:
        for node, port in nodes:
            _spawn(stack, node.name, _serve_command(node, port) + list(simulator_options if node is simulator else ()))
        _spawn(stack, "proxy", _proxy_command(stack))
        for node, _port in nodes:
            _wait_until(stack, node.name, lambda url=f"{node.url}/": _answers_http(url))
        for port in (front, back):  # a TCP check, so readiness probes never show up as recorded traffic
            _wait_until(stack, "proxy", lambda port=port: accepts_tcp(port))
    except BaseException:
        stack.stop()
        raise
    return stack


def _serve_command(node: Node, port: int) -> list[str]:
    return [*_SPEELTUIN, "serve", "--host", defaults.HOST, "--port", str(port),
            "--db", node.database_url, "--public-url", node.public_url, "--ura", node.ura,
            "--client-id", node.client_id, "--name", node.name]


def _proxy_command(stack: Stack) -> list[str]:
    return [*_SPEELTUIN, "proxy", "--simulator", stack.simulator.url, "--vendor", stack.vendor_url,
            "--host", stack.proxy.host, "--front-port", str(stack.proxy.front_port),
            "--back-port", str(stack.proxy.back_port), "--db", stack.simulator.database_url,
            "--confdir", str(stack.workdir / "mitmproxy")]


_SPEELTUIN = (sys.executable, "-m", "speeltuin.cli")  # the command as a process: the stack knows parts only so


def _spawn(stack: Stack, name: str, command: list[str]) -> None:
    log_path = stack.workdir / f"{name}.log"
    log: IO[bytes] = open(log_path, "wb")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    node = next((n for n in (stack.simulator, stack.vendor) if n is not None and n.name == name), None)
    if node is not None:
        env["SPEELTUIN_ADMIN_KEY"] = node.admin_key  # by environment, so it never shows in `ps`
    # its own session: Ctrl-C at the terminal stops the run, which then stops its parts (Stack.stop) in order
    with _interrupt_deferred():  # a part started is a part on the list, which Stack.stop stops
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=Path(__file__).resolve().parent.parent, start_new_session=True)
        stack.processes.append((name, process, log_path))
    log.close()


@contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """Ctrl-C (SIGINT) in the block is raised when it ends. A part runs in a session of its own, so the terminal's
    Ctrl-C never reaches it: one started but not yet listed would outlive the run. Only the main thread can."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: interrupted.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if interrupted:
        raise KeyboardInterrupt


def _answers_http(url: str) -> bool:
    client = requests.Session()
    client.trust_env = False
    try:
        client.get(url, timeout=2)
        return True
    except requests.RequestException:
        return False


def accepts_tcp(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> bool:
    """Something listens there (a TCP check: readiness probes never show up as recorded traffic)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_until(stack: Stack, name: str, ready: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc_name, process, log_path in stack.processes:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise StackError(f"{proc_name} exited with {process.returncode}; log {log_path}:\n{tail}")
        if ready():
            return
        time.sleep(0.1)
    raise StackError(f"{name} did not become ready within {timeout:.0f} s; see the logs in {stack.workdir}")
