"""The vendor is a driver: the same scenario runs against the built-in reference vendor or a real system.

A driver opens the simulator session a scenario runs in and makes the vendor act where the vendor must act
(send a notification, an update, a cancellation; pull). The reference vendor is a second simulator driven
through its admin API, with a fresh pair of sessions per scenario. A real system is described by its
vendor.toml: it gets one simulator session per role, kept across runs so it is configured once, and acts
through the triggers of its vendor.toml (a command, a URL, or a person who is asked).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol
from urllib.parse import urlsplit, urlunsplit

from scenarios.pairing import PairingError, pair_sessions
from scenarios.stack import Node
from speeltuin.records import new_id

if TYPE_CHECKING:
    from scenarios.base import Scenario
    from scenarios.runner import Harness
    from scenarios.triggers import Trigger, TriggerOutcome
    from scenarios.vendor_config import VendorConfig


# the vendor's endpoints the simulator calls, which the proxy stands in front of (a JWKS URL is fetched directly)
PROXIED_FIELDS = ("vendor_token_url", "vendor_fhir_base", "vendor_notification_base")


class DriverError(Exception):
    """The vendor could not be made to act or a session could not be opened; the message is the evidence."""


@dataclass
class ScenarioSession:
    """The simulator session a scenario runs in, and the endpoints the vendor uses in it."""

    id: str
    endpoints: dict[str, str]
    mirror: str | None = None  # the reference vendor's own session, paired with this one


class VendorDriver(Protocol):
    label: str  # how reports name the vendor system

    def open_session(self, h: Harness, scenario: Scenario) -> ScenarioSession: ...

    def act(self, h: Harness, scenario: Scenario, action: str, **extra: str) -> str: ...


@dataclass
class ReferenceVendor:
    """The built-in reference vendor: a second simulator, configured and driven through its admin API."""

    node: Node
    label: str = "the built-in reference vendor"
    # which fault switches the reference vendor has in a scenario's session (none: it is conformant)
    faults_for: Callable[[Scenario], tuple[str, ...]] = lambda scenario: ()
    _notified: dict[str, list[str]] = field(default_factory=dict)  # mirror session -> notification ids

    def open_session(self, h: Harness, scenario: Scenario) -> ScenarioSession:
        suffix = new_id()
        simulator_id, mirror = f"{scenario.session_prefix}-sim-{suffix}", f"{scenario.session_prefix}-ref-{suffix}"
        try:
            endpoints = pair_sessions(h.simulator, self.node, vendor_role=scenario.vendor_role, sim_id=simulator_id,
                                      ven_id=mirror, name=scenario.title, ven_faults=self.faults_for(scenario))
        except PairingError as exc:
            raise DriverError(str(exc)) from exc
        return ScenarioSession(simulator_id, endpoints, mirror)

    def act(self, h: Harness, scenario: Scenario, action: str, **extra: str) -> str:
        mirror = scenario.session.mirror if scenario.session else None
        if mirror is None:
            raise DriverError("the scenario has no session with the reference vendor")
        if action == "pull":
            return "the reference vendor pulls by itself when notified"
        if action in ("notify", "update"):
            sent = self._notified.get(mirror, [])
            if action == "update" and not sent:
                raise DriverError("the reference vendor has sent no notification to update")
            body: dict[str, Any] = {"update_of": sent[-1]} if action == "update" else {"bsn": h.patient_bsn}
            if extra.get("workflow_task") == "true":  # with a Workflow Task listing the queries (SPEC §3 step 1)
                body["workflow_task"] = True
            response = self.node.api("POST", f"/sessions/{mirror}/notify", json=body)
            if response.status_code != 200:
                raise DriverError(f"could not make the reference vendor notify: {response.status_code} "
                                  f"{response.text[:300]}")
            notification_id = response.json()["notification_id"]
            self._notified.setdefault(mirror, []).append(notification_id)
            return f"the reference vendor sent notification {notification_id}"
        if action == "cancel":
            sent = self._notified.get(mirror)
            if not sent:
                raise DriverError("the reference vendor has sent no notification to cancel")
            response = self.node.api("POST", f"/sessions/{mirror}/notifications/{sent[-1]}/cancel")
            if response.status_code != 200:
                raise DriverError(f"could not make the reference vendor cancel: {response.status_code} "
                                  f"{response.text[:300]}")
            return f"the reference vendor cancelled notification {sent[-1]}"
        raise DriverError(f"the reference vendor cannot {action!r}")


@dataclass
class ConfiguredVendor:
    """A real vendor system described by its vendor.toml.

    Its traffic goes through the proxy: the simulator session points at the proxy's back listener, which
    forwards to the vendor's origin (`vendor_origin`). One session per role, named after the vendor, is
    opened once and kept: the vendor configures its system with the endpoints once, and every run adds
    evidence to the same session.
    """

    config: VendorConfig
    proxy_back_url: str  # where the simulator reaches the vendor: the proxy's back listener
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or f"{self.config.name} ({self.config.path})"

    def session_id(self, role: str) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.config.name.lower()).strip("-")[:50] or "vendor"
        return f"{slug}-{role}"

    def open_session(self, h: Harness, scenario: Scenario) -> ScenarioSession:
        role = scenario.vendor_role
        session_id = self.session_id(role)
        found = h.simulator.api("GET", f"/sessions/{session_id}")
        if found.status_code == 200:
            return ScenarioSession(session_id, found.json()["endpoints"])
        from scenarios.vendor_config import VendorConfigError

        try:
            body = self.config.session_request(role, session_id=session_id, name=self.config.name)
        except VendorConfigError as exc:
            raise DriverError(str(exc)) from exc
        if body.get("vendor_token_url"):  # its AS knows itself by its own URL, not the proxy's that the simulator calls
            body["vendor_token_audience"] = body["vendor_token_url"]
        body = {key: self._through_proxy(value) if key in PROXIED_FIELDS else value for key, value in body.items()}
        created = h.simulator.api("POST", "/sessions", json=body)
        if created.status_code != 201:
            raise DriverError(f"the simulator refused the session for {self.config.path}: "
                              f"{created.status_code} {created.text[:300]}")
        return ScenarioSession(session_id, created.json()["endpoints"])

    def act(self, h: Harness, scenario: Scenario, action: str, **extra: str) -> str:
        if action == "pull" and "pull" not in self.config.triggers:
            return "no pull trigger in the vendor.toml: the vendor pulls by itself when notified"
        from scenarios.triggers import trigger_for

        outcome = _fire(trigger_for(self.config.triggers, action), h, scenario, action, extra)
        if not outcome.ok:
            raise DriverError(f"the {outcome.kind} trigger for {action!r} failed: {outcome.detail}")
        return f"{outcome.kind} trigger for {action!r}: {outcome.detail}"

    def _through_proxy(self, url: Any) -> Any:
        if not isinstance(url, str):
            return url
        parts = urlsplit(url)
        back = urlsplit(self.proxy_back_url)
        return urlunsplit((back.scheme, back.netloc, parts.path, parts.query, parts.fragment))


@dataclass
class SessionVendor:
    """A vendor system known only by the simulator session it was given (created over the API, no vendor.toml):
    every scenario runs in that session, and whatever the vendor must do is asked of a person (the step's
    instruction, shown by the API), but a pull: a receiver pulls by itself once notified."""

    session_id: str
    label: str = ""

    def open_session(self, h: Harness, scenario: Scenario) -> ScenarioSession:
        found = h.simulator.api("GET", f"/sessions/{self.session_id}")
        if found.status_code != 200:
            raise DriverError(f"no session {self.session_id!r} on the simulator ({found.status_code})")
        view = found.json()
        if view["vendor_role"] != scenario.vendor_role:
            raise DriverError(f"{scenario.id} needs a vendor playing the {scenario.vendor_role}; in session "
                              f"{self.session_id} it plays the {view['vendor_role']}")
        return ScenarioSession(self.session_id, view["endpoints"])

    def act(self, h: Harness, scenario: Scenario, action: str, **extra: str) -> str:
        from scenarios.triggers import ManualTrigger

        if action == "pull":
            return "the vendor pulls by itself when notified"
        return _fire(ManualTrigger(), h, scenario, action, extra).detail


def _fire(trigger: Trigger, h: Harness, scenario: Scenario, action: str, extra: dict[str, str]) -> TriggerOutcome:
    """Make the vendor act through `trigger`, with everything the scenario's session tells; a person who must act
    is told through the run's progress (the terminal, and the step's instruction in the store and the API)."""
    from scenarios.triggers import TriggerContext

    session = scenario.session
    if session is None:
        raise DriverError("the scenario has no session")
    context = TriggerContext(action=action, scenario_id=scenario.id, session_id=session.id,
                             patient_bsn=h.patient_bsn, endpoints=dict(session.endpoints), extra=dict(extra))
    return trigger.fire(context, ask=lambda instruction: h.progress.asked(scenario.id, instruction))


def vendor_origin(config: VendorConfig) -> str:
    """The one origin (scheme://host:port) of the vendor's endpoints, which the proxy forwards to."""
    from scenarios.vendor_config import VendorConfigError

    urls = [u for u in (config.token_url, config.fhir_base, config.notification_base) if u]
    origins = sorted({f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in urls})
    if len(origins) != 1:
        raise VendorConfigError(f"{config.path}: the endpoints must share one origin (scheme://host:port) so the "
                                f"proxy can stand in front of them; found {', '.join(origins) or 'none'}")
    return origins[0]
