"""Triggers that make a real vendor system act: real commands, a real loopback HTTP server, and a person."""
from __future__ import annotations

import ast
import http.server
import json
import os
import shlex
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from scenarios.triggers import (
    ACTIONS,
    CommandTrigger,
    ManualTrigger,
    TriggerContext,
    UrlTrigger,
    trigger_environment,
    trigger_for,
)

ROOT = Path(__file__).resolve().parents[2]

ENDPOINTS = {"token_url": "http://127.0.0.1:8081/s/acme-sender/token",
             "jwks_url": "http://127.0.0.1:8081/s/acme-sender/jwks", "client_id": "acme-gtk",
             "notification_base": "http://127.0.0.1:8081/s/acme-sender/notify",
             "notification_url": "http://127.0.0.1:8081/s/acme-sender/notify/Task"}
CTX = TriggerContext(action="notify", scenario_id="SND-01", session_id="acme-sender",
                     patient_bsn="999911120", endpoints=ENDPOINTS)
PY = shlex.quote(sys.executable)

HOOK = """\
import json, os, sys
seen = {k: v for k, v in os.environ.items() if k.startswith(("SPEELTUIN_", "ACME_"))}
seen["cwd"] = os.getcwd()
open(sys.argv[1], "w").write(json.dumps(seen))
print("notification queued for", os.environ["SPEELTUIN_PATIENT_BSN"])
"""


def _never(prompt: str) -> None:
    raise AssertionError(f"no person should be asked: {prompt}")


def test_a_command_gets_the_runner_environment_and_every_variable(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_FROM_RUNNER", "kept")
    (tmp_path / "hook.py").write_text(HOOK)
    ctx = TriggerContext(action="cancel", scenario_id="RCV-02", session_id="acme-sender",
                         patient_bsn="999911120", endpoints={**ENDPOINTS, "fhir_base": "http://127.0.0.1:8081/fhir"},
                         extra={"notification_id": "n-1", "task_identifier": "urn:uuid:1234", "action": "not me"})
    outcome = CommandTrigger((sys.executable, "hook.py", "seen.json"), timeout=10, cwd=tmp_path).fire(ctx, ask=_never)
    assert outcome.kind == "command" and outcome.ok, outcome.detail
    assert "exited with status 0" in outcome.detail
    assert "notification queued for 999911120" in outcome.detail
    seen = json.loads((tmp_path / "seen.json").read_text())
    runner = {k: v for k, v in os.environ.items() if k.startswith(("SPEELTUIN_", "ACME_"))}  # e.g. SPEELTUIN_INSTANCE
    assert seen == {
        **runner, "ACME_FROM_RUNNER": "kept", "cwd": str(tmp_path),
        "SPEELTUIN_ACTION": "cancel", "SPEELTUIN_SCENARIO": "RCV-02",
        "SPEELTUIN_SESSION": "acme-sender", "SPEELTUIN_PATIENT_BSN": "999911120",
        "SPEELTUIN_TOKEN_URL": ENDPOINTS["token_url"], "SPEELTUIN_JWKS_URL": ENDPOINTS["jwks_url"],
        "SPEELTUIN_CLIENT_ID": "acme-gtk", "SPEELTUIN_NOTIFICATION_BASE": ENDPOINTS["notification_base"],
        "SPEELTUIN_NOTIFICATION_URL": ENDPOINTS["notification_url"],
        "SPEELTUIN_FHIR_BASE": "http://127.0.0.1:8081/fhir",
        "SPEELTUIN_NOTIFICATION_ID": "n-1", "SPEELTUIN_TASK_IDENTIFIER": "urn:uuid:1234",
    }


def test_a_shell_string_sees_the_variables(tmp_path: Path) -> None:
    command = f'{PY} -c "import sys; print(sys.argv[1:])" "$SPEELTUIN_ACTION" "$SPEELTUIN_NOTIFICATION_URL"'
    outcome = CommandTrigger(command, timeout=10).fire(CTX, ask=_never)
    assert outcome.ok and f"['notify', '{ENDPOINTS['notification_url']}']" in outcome.detail


def test_a_non_zero_exit_fails_with_the_tail_of_its_output() -> None:
    script = "import sys; print('x' * 5000); print('token endpoint said no', file=sys.stderr); sys.exit(3)"
    outcome = CommandTrigger((sys.executable, "-c", script), timeout=10).fire(CTX, ask=_never)
    assert not outcome.ok and outcome.kind == "command"
    assert "exited with status 3" in outcome.detail and "token endpoint said no" in outcome.detail
    assert "[... 4101 bytes left out] xxx" in outcome.detail and len(outcome.detail) < 2100
    assert script not in outcome.detail  # the command line is not evidence: it may carry a secret


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # a zombie has died; only its parent's wait is missing


def test_a_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    command = f"{PY} -c 'import time; time.sleep(30)' & echo $! > {shlex.quote(str(pid_file))}; wait"
    started = time.monotonic()
    outcome = CommandTrigger(command, timeout=0.5).fire(CTX, ask=_never)
    assert time.monotonic() - started < 2
    assert not outcome.ok and "did not finish within 0.5 s and was killed" in outcome.detail
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 1
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(child), "the command's own child outlived the timeout"


def test_what_a_command_leaves_running_does_not_hold_up_the_outcome(tmp_path: Path) -> None:
    pid_file = tmp_path / "daemon.pid"
    command = f"{PY} -c 'import time; time.sleep(5)' & echo $! > {shlex.quote(str(pid_file))}; echo started"
    started = time.monotonic()
    outcome = CommandTrigger(command, timeout=3).fire(CTX, ask=_never)
    try:
        assert time.monotonic() - started < 1
        assert outcome.ok and "exited with status 0" in outcome.detail and "stdout (tail): started" in outcome.detail
    finally:
        os.kill(int(pid_file.read_text()), 9)


def test_a_command_that_cannot_start_is_a_failed_outcome(tmp_path: Path) -> None:
    missing = CommandTrigger((str(tmp_path / "no-such-hook"),), timeout=5).fire(CTX, ask=_never)
    assert not missing.ok and "the notify command could not start" in missing.detail
    assert "No such file" in missing.detail
    shell = CommandTrigger("no-such-hook-speeltuin --now", timeout=5).fire(CTX, ask=_never)
    assert not shell.ok and "exited with status 127 (the shell could not find the command)" in shell.detail
    nowhere = CommandTrigger("true", timeout=5, cwd=tmp_path / "gone").fire(CTX, ask=_never)
    assert not nowhere.ok and "could not start (in" in nowhere.detail


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, dict, dict]] = []
    answer = (202, b'{"queued": true}')

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length", 0))
        type(self).received.append((self.path, dict(self.headers), json.loads(self.rfile.read(length))))
        status, body = type(self).answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_a_url_trigger_posts_the_action_as_json(hook_server: tuple[str, type[_Hook]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    base, handler = hook_server
    monkeypatch.setenv("ACME_HOOK_TOKEN", "s3cret-token")
    ctx = TriggerContext(action="update", scenario_id="SND-01", session_id="acme-sender",
                         patient_bsn="999911120", endpoints=ENDPOINTS, extra={"notification_id": "n-1"})
    trigger = UrlTrigger(f"{base}/hooks/update?key=also-secret", timeout=5,
                         headers={"Authorization": "Bearer ${ACME_HOOK_TOKEN}"})
    outcome = trigger.fire(ctx, ask=_never)
    assert outcome.kind == "url" and outcome.ok, outcome.detail
    [(path, headers, body)] = handler.received
    assert path == "/hooks/update?key=also-secret" and headers["Authorization"] == "Bearer s3cret-token"
    assert body == {"action": "update", "scenario": "SND-01", "session": "acme-sender",
                    "patient_bsn": "999911120", "endpoints": ENDPOINTS, "notification_id": "n-1"}
    assert f"POST {base}/hooks/update answered 202 Accepted" in outcome.detail
    assert '{"queued": true}' in outcome.detail
    assert "s3cret" not in outcome.detail and "also-secret" not in outcome.detail


def test_a_url_trigger_fails_on_an_error_answer_or_a_missing_variable(hook_server: tuple[str, type[_Hook]]) -> None:
    base, handler = hook_server
    handler.answer = (500, b"hook crashed")
    outcome = UrlTrigger(f"{base}/hooks/notify", timeout=5).fire(CTX, ask=_never)
    assert not outcome.ok and "answered 500" in outcome.detail and "hook crashed" in outcome.detail
    unset = UrlTrigger(f"{base}/hooks/notify", timeout=5, headers={"X-Key": "${SPEELTUIN_TEST_UNSET_VARIABLE}"})
    outcome = unset.fire(CTX, ask=_never)
    assert not outcome.ok and "names ${SPEELTUIN_TEST_UNSET_VARIABLE}, which is not set" in outcome.detail
    assert len(handler.received) == 1  # the second was never sent


def test_a_url_trigger_reports_a_refused_connection() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = UrlTrigger(f"http://127.0.0.1:{port}/hooks/notify", timeout=2).fire(CTX, ask=_never)
    assert outcome.kind == "url" and not outcome.ok
    assert f"POST http://127.0.0.1:{port}/hooks/notify failed: " in outcome.detail
    assert "refused" in outcome.detail.lower()


def test_a_person_is_asked_with_the_action_patient_and_endpoint() -> None:
    asked: list[str] = []
    outcome = ManualTrigger().fire(CTX, ask=asked.append)
    [prompt] = asked
    assert outcome == type(outcome)("manual", True, f"asked: {prompt}")
    assert "action notify" in prompt and "send a notification" in prompt
    assert "patient 999911120" in prompt and ENDPOINTS["notification_url"] in prompt
    assert ENDPOINTS["token_url"] in prompt and "client_id acme-gtk" in prompt

    cancel = TriggerContext(action="cancel", scenario_id="RCV-02", session_id="acme-sender",
                            patient_bsn="999911120", endpoints=ENDPOINTS, extra={"task_identifier": "urn:uuid:42"})
    ManualTrigger().fire(cancel, ask=asked.append)
    assert "cancel the notification urn:uuid:42" in asked[1]
    assert f"PUT {ENDPOINTS['notification_url']}?identifier=urn:ietf:rfc:3986|urn:uuid:42" in asked[1]

    pull = TriggerContext(action="pull", scenario_id="RCV-01", session_id="acme-receiver",
                          patient_bsn="999993653", endpoints={"fhir_base": "http://sim/s/acme-receiver/fhir",
                                                              "token_url": "http://sim/s/acme-receiver/token"})
    ManualTrigger().fire(pull, ask=asked.append)
    assert "pull" in asked[2] and "999993653" in asked[2] and "http://sim/s/acme-receiver/fhir" in asked[2]


def test_trigger_for_falls_back_to_a_person() -> None:
    command = CommandTrigger("true")
    assert trigger_for({"notify": command}, "notify") is command
    assert all(isinstance(trigger_for({"notify": command}, a), ManualTrigger) for a in ACTIONS if a != "notify")
    with pytest.raises(ValueError, match="unknown action 'push'; the actions are notify, update, cancel, pull"):
        trigger_for({}, "push")


def test_the_environment_is_not_changed_by_firing() -> None:
    before = dict(os.environ)
    CommandTrigger("true", timeout=5).fire(CTX, ask=_never)
    assert dict(os.environ) == before


def test_a_sending_vendor_is_told_whom_the_task_names() -> None:
    """SPEC §4: owner is the receiver (the simulator), requester.onBehalfOf the sender; a sender that put its own URA
    in owner was refused without knowing which URA to use."""
    asked: list[str] = []
    known = {**ENDPOINTS, "simulator_ura": "90000101"}
    for action in ("notify", "update"):
        ManualTrigger().fire(TriggerContext(action=action, scenario_id="SND-02", session_id="acme-sender",
                                            patient_bsn="999911120", endpoints=known), ask=asked.append)
    assert all("with Task.owner URA 90000101, the receiver, and requester.onBehalfOf your own URA;" in prompt
               for prompt in asked)
    ManualTrigger().fire(CTX, ask=asked.append)  # the session's endpoints name no simulator URA
    assert ("with Task.owner the simulator's URA (own_ura in the session's configuration), the receiver, and "
            "requester.onBehalfOf your own URA;") in asked[-1]


def test_a_person_asked_for_a_workflow_task_is_told_what_that_means() -> None:
    asked: list[str] = []
    workflow = TriggerContext(action="notify", scenario_id="SND-15", session_id="acme-sender",
                              patient_bsn="999911120", endpoints=ENDPOINTS, extra={"workflow_task": "true"})
    ManualTrigger().fire(workflow, ask=asked.append)
    assert "/notify/Task with a Workflow Task (input get-workflow-task = true and basedOn Task/<its id>)," in asked[0]
    assert "workflow_task: true" not in asked[0]
    ManualTrigger().fire(CTX, ask=asked.append)
    assert "Workflow Task" not in asked[1]


def test_extra_values_and_the_simulators_identity_become_variables() -> None:
    update = TriggerContext(action="update", scenario_id="SND-02", session_id="acme-sender", patient_bsn="999911120",
                            endpoints={**ENDPOINTS, "simulator_ura": "90000101", "simulator_client_id": "sim"},
                            extra={"task_identifier": "urn:uuid:1", "group_identifier": "urn:uuid:g",
                                   "action": "not this"})
    env = trigger_environment(update)
    assert (env["SPEELTUIN_TASK_IDENTIFIER"], env["SPEELTUIN_GROUP_IDENTIFIER"]) == ("urn:uuid:1", "urn:uuid:g")
    assert (env["SPEELTUIN_SIMULATOR_URA"], env["SPEELTUIN_SIMULATOR_CLIENT_ID"]) == ("90000101", "sim")
    assert env["SPEELTUIN_ACTION"] == "update"  # an extra value never replaces a fixed variable


def _extra_names_the_scenarios_give() -> set[str]:
    """The keyword names scenario steps pass to `act` (directly, or through a method that hands its **extra on)."""
    trees = [ast.parse(path.read_text()) for path in sorted((ROOT / "scenarios").glob("*.py"))]
    calls = [node for tree in trees for node in ast.walk(tree) if isinstance(node, ast.Call)]

    def name(call: ast.Call) -> str:
        return getattr(call.func, "attr", getattr(call.func, "id", ""))

    forwarders = {"act"} | {function.name for tree in trees for function in ast.walk(tree)
                            if isinstance(function, ast.FunctionDef) and function.args.kwarg is not None
                            and any(isinstance(c, ast.Call) and name(c) == "act"
                                    and any(k.arg is None for k in c.keywords) for c in ast.walk(function))}
    return {k.arg for call in calls if name(call) in forwarders for k in call.keywords if k.arg}


def test_the_readme_lists_every_variable_a_trigger_gets() -> None:
    from simulator.sessions import session_endpoints
    from speeltuin.records import Role, Session, SessionConfig

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### What each trigger receives"):readme.index("## Your session's evidence")]
    config = SessionConfig(vendor_ura="12345678", vendor_client_id="acme", own_ura="90000101", own_client_id="sim")
    extras = _extra_names_the_scenarios_give()
    assert {"task_identifier", "group_identifier", "workflow_task"} <= extras
    given: set[str] = set()
    for role in (Role.SENDER, Role.RECEIVER):
        endpoints = session_endpoints(Session("acme", "Acme", role, config, 0.0), "http://127.0.0.1:8081")
        context = TriggerContext(action="notify", scenario_id="SND-01", session_id="acme", patient_bsn="999911120",
                                 endpoints=endpoints, extra=dict.fromkeys(extras, "x"))
        given |= set(trigger_environment(context))
    undocumented = sorted(v for v in given if f"`{v}`" not in section)
    assert undocumented == []
