"""Triggers: how a real vendor system is made to act where a scenario needs the vendor to act.

A vendor.toml (scenarios/vendor_config.py) names one trigger per action:

- a **command** (a shell string, or an argv list) run with the runner's environment plus SPEELTUIN_* variables
  that say what to do (action, scenario, session, patient, the simulator's endpoints, extra values such as the
  notification to cancel); exit status 0 means done;
- a **URL** the runner POSTs a JSON description of the action to; a 2xx answer means done;
- nobody configured: a **person** is asked (ManualTrigger), with an instruction built from the same facts.

Firing a trigger never raises for the vendor's failures: the outcome says whether it worked and carries the
evidence a report shows (exit status and the tail of the output, or the HTTP status and a body excerpt, or the
prompt shown). The evidence holds nothing of the trigger's own configuration (a command line or a header may
carry a secret); only what the vendor's command or endpoint itself answered, truncated.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Mapping, Protocol
from urllib.parse import urlsplit, urlunsplit

import requests

from speeltuin.vendor_config import ACTIONS  # noqa: F401 - the actions a trigger may be named for

DEFAULT_TIMEOUT = 60.0  # seconds a command or URL trigger may take
_TAIL = 900  # characters kept of stdout and of stderr each, so a detail stays near 2000 characters
_BODY_EXCERPT = 1500
_ENV_PREFIX = "SPEELTUIN_"
_HEADER_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class TriggerContext:
    """What the vendor is asked to do, and where: passed to every trigger."""

    action: str  # one of ACTIONS
    scenario_id: str
    session_id: str
    patient_bsn: str
    endpoints: dict[str, str]  # the simulator's endpoints for the session: token_url, fhir_base, notification_url...
    extra: dict[str, str] = field(default_factory=dict)  # e.g. notification_id for cancel/update


@dataclass(frozen=True)
class TriggerOutcome:
    kind: str  # "command" | "url" | "manual"
    ok: bool  # command exit 0 / url answered 2xx / manual: True once the person was asked
    detail: str  # the evidence for the report


class Trigger(Protocol):
    def fire(self, ctx: TriggerContext, *, ask: Callable[[str], None]) -> TriggerOutcome: ...


def trigger_environment(ctx: TriggerContext) -> dict[str, str]:
    """The SPEELTUIN_* variables a command trigger gets on top of the runner's environment.

    SPEELTUIN_ACTION, _SCENARIO, _SESSION, _PATIENT_BSN; one variable per endpoint (SPEELTUIN_TOKEN_URL,
    _FHIR_BASE, _NOTIFICATION_URL, _NOTIFICATION_BASE, _JWKS_URL, _CLIENT_ID: those the session has; and
    SPEELTUIN_SIMULATOR_URA, _SIMULATOR_CLIENT_ID once the session's endpoints carry simulator_ura and
    simulator_client_id); one per extra value (SPEELTUIN_TASK_IDENTIFIER, _GROUP_IDENTIFIER, _WORKFLOW_TASK, ...).
    Names are upper-cased, other characters become '_'. An extra value never replaces one of the fixed variables.
    """
    env = {f"{_ENV_PREFIX}ACTION": ctx.action, f"{_ENV_PREFIX}SCENARIO": ctx.scenario_id,
           f"{_ENV_PREFIX}SESSION": ctx.session_id, f"{_ENV_PREFIX}PATIENT_BSN": ctx.patient_bsn}
    for key, value in ctx.endpoints.items():
        env[_ENV_PREFIX + _env_name(key)] = str(value)
    for key, value in ctx.extra.items():
        env.setdefault(_ENV_PREFIX + _env_name(key), str(value))
    return env


def trigger_payload(ctx: TriggerContext) -> dict[str, object]:
    """The JSON a URL trigger POSTs: action, scenario, session, patient_bsn, endpoints, then the extra values
    (which never replace those five)."""
    payload: dict[str, object] = {str(k): str(v) for k, v in ctx.extra.items()}
    payload.update({"action": ctx.action, "scenario": ctx.scenario_id, "session": ctx.session_id,
                    "patient_bsn": ctx.patient_bsn, "endpoints": dict(ctx.endpoints)})
    return payload


def _env_name(key: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", str(key).upper())


def _tail_of(file: IO[bytes], limit: int = _TAIL) -> str:
    """The last `limit` characters or so of what a command wrote to `file`, and how much was left out."""
    size = file.seek(0, os.SEEK_END)
    keep = limit * 4  # bytes: enough for `limit` characters of UTF-8
    file.seek(max(0, size - keep))
    text = file.read().decode("utf-8", "replace")
    skipped = max(0, size - keep)
    if len(text) > limit:
        skipped += len(text[:-limit].encode("utf-8", "replace"))
        text = text[-limit:]
    text = text.strip()
    return f"[... {skipped} bytes left out] {text}" if skipped else text


def _output(stdout: IO[bytes], stderr: IO[bytes]) -> str:
    parts = [f"{name} (tail): {tail}" for name, tail in (("stdout", _tail_of(stdout)), ("stderr", _tail_of(stderr)))
             if tail]
    return "\n".join(parts) if parts else "no output"


@dataclass(frozen=True)
class CommandTrigger:
    """Runs a command: a string goes through the shell (/bin/sh -c), a tuple/list is run as argv without one.

    It runs in `cwd` (the folder of the vendor.toml when loaded from one), in a process group of its own, so a
    timeout kills the command and everything it started.
    """

    argv_or_shell: str | tuple[str, ...]
    timeout: float = DEFAULT_TIMEOUT
    cwd: Path | None = None

    def describe(self) -> str:
        shown = self.argv_or_shell if isinstance(self.argv_or_shell, str) else " ".join(self.argv_or_shell)
        return f"command: {shown} (timeout {self.timeout:g} s)"

    def fire(self, ctx: TriggerContext, *, ask: Callable[[str], None]) -> TriggerOutcome:
        env = {**os.environ, **trigger_environment(ctx)}
        shell = isinstance(self.argv_or_shell, str)
        command: str | list[str] = self.argv_or_shell if shell else list(self.argv_or_shell)  # type: ignore[assignment]
        what = f"the {ctx.action} command"
        with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            # Files, not pipes: something the command leaves running in the background cannot hold up the wait.
            started = time.monotonic()
            try:
                process = subprocess.Popen(command, shell=shell, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
                                           stdout=stdout, stderr=stderr, start_new_session=True)
            except OSError as exc:
                where = f" (in {self.cwd})" if self.cwd else ""
                return TriggerOutcome("command", False, f"{what} could not start{where}: {exc.strerror or exc}")
            try:
                process.wait(timeout=self.timeout)
                elapsed = time.monotonic() - started
            except subprocess.TimeoutExpired:
                _kill_group(process)
                process.wait()
                return TriggerOutcome("command", False, f"{what} did not finish within {self.timeout:g} s and was "
                                                        f"killed with its process group\n{_output(stdout, stderr)}")
            output = _output(stdout, stderr)
        code = process.returncode
        if code == 0:
            status = "exited with status 0"
        elif code < 0:
            status = f"was killed by signal {-code}"
        else:
            status = f"exited with status {code}"
            if shell and code == 127:
                status += " (the shell could not find the command)"
            elif shell and code == 126:
                status += " (the shell could not execute the command: is it executable?)"
        return TriggerOutcome("command", code == 0, f"{what} {status} after {elapsed:.1f} s\n{output}")


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


@dataclass(frozen=True)
class UrlTrigger:
    """POSTs the action as JSON (trigger_payload) to the vendor's URL; any 2xx answer means done.

    Header values may name environment variables as ${NAME} (so a webhook secret need not sit in the file);
    they are filled in when the trigger fires and never shown.
    """

    url: str
    timeout: float = DEFAULT_TIMEOUT
    headers: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"url: POST {_shown_url(self.url)} (timeout {self.timeout:g} s)"

    def fire(self, ctx: TriggerContext, *, ask: Callable[[str], None]) -> TriggerOutcome:
        shown = _shown_url(self.url)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            missing = [v for v in _HEADER_VARIABLE.findall(value) if v not in os.environ]
            if missing:
                return TriggerOutcome("url", False, f"header {name} of the {ctx.action} URL trigger names "
                                                    f"${{{missing[0]}}}, which is not set in the environment")
            headers[name] = _HEADER_VARIABLE.sub(lambda m: os.environ[m.group(1)], value)
        started = time.monotonic()
        try:
            response = requests.post(self.url, json=trigger_payload(ctx), headers=headers, timeout=self.timeout,
                                     allow_redirects=False)
        except requests.Timeout:
            return TriggerOutcome("url", False, f"POST {shown} got no answer within {self.timeout:g} s")
        except requests.RequestException as exc:
            return TriggerOutcome("url", False, f"POST {shown} failed: {_reason(exc)}")
        elapsed = time.monotonic() - started
        ok = 200 <= response.status_code < 300
        body = response.text.strip()
        excerpt = body if len(body) <= _BODY_EXCERPT else body[:_BODY_EXCERPT] + \
            f" [... {len(body) - _BODY_EXCERPT} characters left out]"
        status = " ".join(str(p) for p in (response.status_code, response.reason) if p)
        return TriggerOutcome("url", ok, f"POST {shown} answered {status} after {elapsed:.1f} s\n"
                                         + (f"body: {excerpt}" if excerpt else "no body"))


def _shown_url(url: str) -> str:
    """The URL without user info, query and fragment: those may carry a secret."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause of a connection error, in one line (no URL with a query in it)."""
    cause: BaseException = exc
    while True:
        inner = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
        inner = inner or getattr(cause, "reason", None) or cause.__cause__
        if not isinstance(inner, BaseException) or inner is cause:
            break
        cause = inner
    text = str(cause)
    if isinstance(cause, OSError) and cause.strerror:
        text = cause.strerror
    text = re.sub(r"<[^>]*>: ", "", text)  # urllib3's "<HTTPConnection object at 0x...>: "
    return f"{type(cause).__name__}: {text}"[:300]


@dataclass(frozen=True)
class ManualTrigger:
    """No trigger configured: a person is asked to make the vendor's system act, with everything they need."""

    def describe(self) -> str:
        return "manual: a person is asked"

    def fire(self, ctx: TriggerContext, *, ask: Callable[[str], None]) -> TriggerOutcome:
        prompt = manual_prompt(ctx)
        ask(prompt)
        return TriggerOutcome("manual", True, f"asked: {prompt}")


def manual_prompt(ctx: TriggerContext) -> str:
    """The instruction for a person: what to do in their system, for which patient, to which endpoint."""
    ep = ctx.endpoints
    bsn = ctx.patient_bsn
    notification = ctx.extra.get("notification_id")
    token = f"get the access token at {ep['token_url']}" if ep.get("token_url") else "get an access token"
    client = f" with client_id {ep['client_id']}" if ep.get("client_id") else ""
    target = ep.get("notification_url") or (ep["notification_base"] + "/Task" if ep.get("notification_base")
                                            else "the simulator's notification endpoint")
    if ctx.action == "notify":
        workflow = (" with a Workflow Task (input get-workflow-task = true and basedOn Task/<its id>)"
                    if ctx.extra.get("workflow_task") == "true" else "")
        what = (f"In your system, send a notification (Notification Task) for patient {bsn} to {target}"
                f"{workflow}, {_parties(ep)}; {token}{client} first.")
    elif ctx.action == "update":
        of = f" of notification {notification}" if notification else ""
        what = (f"In your system, send an updated notification{of} for patient {bsn} to {target}: a new "
                f"Notification Task with the same groupIdentifier, {_parties(ep)}; {token}{client} first.")
    elif ctx.action == "cancel":
        task = ctx.extra.get("task_identifier")
        of = f" {task}" if task else (f" {notification}" if notification else "")
        match = f"urn:ietf:rfc:3986|{task}" if task else "<system>|<value>"
        what = (f"In your system, cancel the notification{of} for patient {bsn}: send its Task again with "
                f"status 'cancelled' as a conditional update (PUT {target}?identifier={match}); "
                f"{token}{client} first.")
    elif ctx.action == "pull":
        base = ep.get("fhir_base", "the simulator's FHIR server")
        what = (f"In your system, pull what the notification for patient {bsn} offers from {base}; "
                f"{token}{client}, sending back the notification's authorization base.")
    else:
        what = f"In your system, do '{ctx.action}' for patient {bsn}."
    others = {k: v for k, v in ctx.extra.items() if k not in ("notification_id", "task_identifier", "workflow_task")}
    if others:
        what += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(others.items())) + ")"
    return f"[scenario {ctx.scenario_id}, session {ctx.session_id}, action {ctx.action}] {what}"


def _parties(endpoints: Mapping[str, str]) -> str:
    """Whom the Notification Task names (SPEC §4): the receiver, the simulator, is its owner; the vendor's own URA goes
    in requester.onBehalfOf (a sender's own URA as owner is refused 403)."""
    receiver = f"URA {endpoints['simulator_ura']}" if endpoints.get("simulator_ura") else \
        "the simulator's URA (own_ura in the session's configuration)"
    return f"with Task.owner {receiver}, the receiver, and requester.onBehalfOf your own URA"


def trigger_for(config_triggers: Mapping[str, Trigger], action: str) -> Trigger:
    """The configured trigger for `action`, or a ManualTrigger (a person is asked) when none is configured."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; the actions are {', '.join(ACTIONS)}")
    return config_triggers.get(action) or ManualTrigger()
