"""The test manager's vendor.toml: speeltuin/vendor_config.py reads who the system is, its keys and endpoints; this
module builds its triggers (scenarios/triggers.py) and holds the commented template `speeltuin vendor init` writes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from scenarios.triggers import DEFAULT_TIMEOUT, CommandTrigger, Trigger, UrlTrigger
from speeltuin.vendor_config import (
    ROLE_ENDPOINTS,
    ROLES,
    VendorConfig,
    VendorConfigError,
    VendorReader,
    jwks_from_certificates,
    kind_of,
)
from speeltuin.vendor_config import load_vendor_config as _load

__all__ = ["ROLES", "ROLE_ENDPOINTS", "TEMPLATE", "VendorConfig", "VendorConfigError", "jwks_from_certificates",
           "load_vendor_config"]

_TRIGGER_KEYS = ("command", "url", "timeout", "headers")


def load_vendor_config(path: str | Path) -> VendorConfig:
    """Read and check a vendor.toml, its triggers built; files it names are relative to its folder."""
    return _load(path, _TriggerReader)


class _TriggerReader(VendorReader):
    def triggers(self, triggers: dict[str, Any]) -> dict[str, Trigger]:
        super().triggers(triggers)  # the actions' names
        built: dict[str, Trigger] = {}
        for action, table in triggers.items():
            dotted = f"triggers.{action}"
            if not isinstance(table, dict):
                raise self.error(dotted, f"must be a table [{dotted}] with command = ... or url = ..., "
                                         f"got {kind_of(table)}")
            self.known(table, _TRIGGER_KEYS, dotted + ".")
            timeout = table.get("timeout", DEFAULT_TIMEOUT)
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 86400:
                raise self.error(f"{dotted}.timeout", "must be a number of seconds above 0 (at most 86400), "
                                                      f"got {kind_of(timeout)}")
            has_command, has_url = "command" in table, "url" in table
            if has_command == has_url:
                raise self.error(dotted, "give exactly one of command = ... (run on this machine) or "
                                         f"url = ... (POSTed to), got {'both' if has_command else 'neither'}")
            if has_command:
                if "headers" in table:
                    raise self.error(f"{dotted}.headers", "only a url trigger takes headers")
                built[action] = CommandTrigger(self.command(table["command"], f"{dotted}.command"), float(timeout),
                                               cwd=self.folder)
            else:
                url = self.url(table, "url", f"{dotted}.url") or ""
                built[action] = UrlTrigger(url, float(timeout), self.headers(table.get("headers", {}), dotted))
        return built

    def command(self, value: Any, dotted: str) -> str | tuple[str, ...]:
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value) and value[0]:
            return tuple(value)
        raise self.error(dotted, 'must be a string run by the shell ("./notify.sh --patient $SPEELTUIN_PATIENT_BSN") '
                                 'or a non-empty list of strings run without one (["./notify.sh", "--fast"]), '
                                 f"got {kind_of(value)}")

    def headers(self, value: Any, dotted: str) -> dict[str, str]:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.error(f"{dotted}.headers", 'must be a table of strings: headers = { Name = "value" }, got '
                                                  f"{kind_of(value)}")
        return dict(value)


TEMPLATE = '''\
# vendor.toml: your own system under test, for the speeltuin test manager (Twiin TA Notified Pull).
#
# The simulator plays the other node of the exchange. It needs to know who your system is (name, URA,
# client id, the keys that check its signed assertions), where your servers are (token endpoint, FHIR
# server, notification endpoint), and how to make your system act when a scenario needs it to
# (send a notification, an update, a cancellation; pull). Check this file with:
#
#     speeltuin vendor check vendor.toml
#
# Strings go in quotes. Paths are relative to the folder of this file. Unknown keys are refused, so a
# typo does not go unnoticed.

# How reports name your system.
name = "My GtK (test)"

# The roles your system plays: "sender" (it notifies and serves the pull: the simulator pulls from it)
# and/or "receiver" (it is notified and pulls from the simulator). Remove the one you do not test.
roles = ["sender", "receiver"]

# The URA of the care organisation your system acts for: 8 digits, in quotes. It must be the `sub` of
# your authorization assertions and the owner / requester URA in the Notification Tasks.
ura = "12345678"

# The client id your system's client assertions carry (iss = sub). Leave it out and the simulator
# names one per session, "vendor-<session id>", shown with the session's endpoints.
# client_id = "my-gtk"

# Require your system's TLS client certificate (issued by the test CA: `speeltuin pki issue`).
# mtls = false

[keys]
# How the simulator checks the signatures of your assertions: give exactly ONE of these three.
jwks_file = "vendor-jwks.json"                  # your public keys as a JWKS: {"keys": [...]}
# jwks_url = "https://gtk.example.org/jwks"     # or where your system publishes them
# certificate = "my-gtk.cert.pem"               # or the PEM certificate (chain) whose key signs them

[endpoints]
# Your system's own servers, as absolute http(s) URLs.
# Your authorization server's token endpoint: the simulator gets its tokens here (both roles).
token_url = "https://gtk.example.org/oauth/token"
# Your FHIR STU3 server with the BgZ and the referral letter (needed when your system is the sender).
fhir_base = "https://gtk.example.org/fhir"
# Your notification base (needed when your system is the receiver): the simulator POSTs the
# Notification Task to <notification_base>/Task, so leave /Task off.
notification_base = "https://gtk.example.org/twiin"

# Triggers: how the test manager makes your system act. One table per action:
#   notify  (sender)    send a Notification Task to the simulator
#   update  (sender)    send an updated notification (a new Task, same groupIdentifier)
#   cancel  (sender)    cancel the notification (the Task again with status cancelled, a conditional update)
#   pull    (receiver)  pull what a notification offers (leave it out if your system pulls by itself)
# An action without a table is done by a person: the test manager prints what to do and waits.
#
# A table holds either `command` or `url`, and optionally `timeout` (seconds, default 60):
#   command = "..."        run through the shell, in the folder of this file; exit status 0 = done
#   command = ["a", "b"]   or run as a list of arguments, without a shell
#   url = "https://..."    POSTed a JSON object; any 2xx answer = done. Optional:
#   headers = { Authorization = "Bearer ${MY_HOOK_TOKEN}" }   (${NAME} is read from the environment)
#
# A command gets these environment variables: SPEELTUIN_ACTION, SPEELTUIN_SCENARIO, SPEELTUIN_SESSION,
# SPEELTUIN_PATIENT_BSN, the simulator's endpoints for the session (SPEELTUIN_TOKEN_URL,
# SPEELTUIN_CLIENT_ID, SPEELTUIN_JWKS_URL, and SPEELTUIN_NOTIFICATION_URL / SPEELTUIN_NOTIFICATION_BASE
# when your system notifies, SPEELTUIN_FHIR_BASE when it pulls), and extra values such as
# SPEELTUIN_TASK_IDENTIFIER (cancel). A url gets the same as JSON:
#   {"action": ..., "scenario": ..., "session": ..., "patient_bsn": ..., "endpoints": {...}, <extra values>}
#
# Uncomment ONE of `command` or `url` in each table you use.

# [triggers.notify]
# command = "./speeltuin-hooks/notify.sh"
# url = "https://gtk.example.org/test-hooks/notify"
# timeout = 60

# [triggers.update]
# command = ["python3", "speeltuin-hooks/update.py"]
# url = "https://gtk.example.org/test-hooks/update"
# timeout = 60

# [triggers.cancel]
# command = "./speeltuin-hooks/cancel.sh \\"$SPEELTUIN_TASK_IDENTIFIER\\""
# url = "https://gtk.example.org/test-hooks/cancel"
# timeout = 60

# [triggers.pull]
# command = "./speeltuin-hooks/pull.sh"
# url = "https://gtk.example.org/test-hooks/pull"
# timeout = 120
'''
