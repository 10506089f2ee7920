"""Trigger command for the test manager: make the vendor node act.

    python -m tests.external_vendor.ctl ACTION --node http://127.0.0.1:P

ACTION is notify | update | cancel | pull (default: $SPEELTUIN_ACTION). Read from the environment:
SPEELTUIN_ACTION, SPEELTUIN_SCENARIO, SPEELTUIN_SESSION, SPEELTUIN_PATIENT_BSN, SPEELTUIN_TOKEN_URL,
SPEELTUIN_FHIR_BASE, SPEELTUIN_NOTIFICATION_URL, SPEELTUIN_JWKS_URL, SPEELTUIN_CLIENT_ID,
SPEELTUIN_TASK_IDENTIFIER.

- notify / update: POST /_control/notify with the BSN, and the simulator's notification and token URLs (and
  its JWKS URL and client id, used to check its pull-token requests for this notification) when given;
  update keeps the groupIdentifier of the last notification for that patient.
- cancel: POST /_control/cancel (the notification named by SPEELTUIN_TASK_IDENTIFIER, else the last one).
- pull: nothing to do, the node pulls by itself when notified.

Prints one line. Exit 0 on success, 1 when the node or the peer refused (or could not be reached),
2 on a usage error.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import requests

ACTIONS = ("notify", "update", "cancel", "pull")


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _context() -> str:
    parts = [f"{label} {_env(name)}" for label, name in (("scenario", "SPEELTUIN_SCENARIO"),
                                                          ("session", "SPEELTUIN_SESSION")) if _env(name)]
    return f" [{', '.join(parts)}]" if parts else ""


def _reason(body: Any) -> str:
    if not isinstance(body, dict):
        return str(body)[:300]
    if body.get("error") and not body.get("peer_status"):
        return str(body["error"])
    peer = body.get("peer_body")
    detail = ""
    if isinstance(peer, dict):
        if peer.get("resourceType") == "OperationOutcome":
            detail = "; ".join(str(i.get("diagnostics", i.get("code"))) for i in peer.get("issue", [])
                               if isinstance(i, dict))
        elif peer.get("error"):
            detail = f"{peer['error']}: {peer.get('error_description', '')}"
    elif peer:
        detail = str(peer)
    stage = body.get("stage", "request")
    return f"peer refused the {stage} with {body.get('peer_status')}" + (f": {detail[:300]}" if detail else "")


def _post(node: str, path: str, payload: dict[str, Any]) -> tuple[int | None, Any]:
    try:
        response = requests.post(node.rstrip("/") + path, json=payload, timeout=60)
    except requests.RequestException as exc:
        return None, {"error": f"node not reachable at {node}: {exc}"}
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, {"error": response.text[:300]}


def run(action: str, node: str) -> int:
    if action == "pull":
        print(f"pull: nothing to do, the node pulls by itself when it is notified{_context()}")
        return 0
    if action in ("notify", "update"):
        bsn = _env("SPEELTUIN_PATIENT_BSN")
        if not bsn:
            print(f"{action}: SPEELTUIN_PATIENT_BSN is not set", file=sys.stderr)
            return 2
        payload: dict[str, Any] = {"bsn": bsn, "update": action == "update"}
        # SPEELTUIN_CLIENT_ID is the client id the test environment registered for *this* node (README), not
        # the peer's: the node's own --client-id says it already.
        for key, name in (("notification_url", "SPEELTUIN_NOTIFICATION_URL"), ("token_url", "SPEELTUIN_TOKEN_URL"),
                          ("jwks_url", "SPEELTUIN_JWKS_URL")):
            if _env(name):
                payload[key] = _env(name)
        status, body = _post(node, "/_control/notify", payload)
        if status == 200 and isinstance(body, dict) and body.get("ok"):
            print(f"{action}: sent Task {body.get('identifier')} (group {body.get('group_identifier')}) for BSN {bsn};"
                  f" peer answered {body.get('peer_status')}, Location {body.get('location')}{_context()}")
            return 0
        print(f"{action}: failed for BSN {bsn}: {_reason(body)}{_context()}")
        return 1
    payload = {}
    if _env("SPEELTUIN_TASK_IDENTIFIER"):
        payload["identifier"] = _env("SPEELTUIN_TASK_IDENTIFIER")
    for key, name in (("notification_url", "SPEELTUIN_NOTIFICATION_URL"), ("token_url", "SPEELTUIN_TOKEN_URL")):
        if _env(name):
            payload[key] = _env(name)
    status, body = _post(node, "/_control/cancel", payload)
    if status == 200 and isinstance(body, dict) and body.get("ok"):
        print(f"cancel: cancelled Task {body.get('identifier')}; peer answered {body.get('peer_status')}{_context()}")
        return 0
    print(f"cancel: failed: {_reason(body)}{_context()}")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.external_vendor.ctl",
                                     description="make the external vendor node act (test manager trigger)")
    parser.add_argument("action", nargs="?", default=_env("SPEELTUIN_ACTION"), help=" | ".join(ACTIONS))
    parser.add_argument("--node", required=True, help="the node's origin, e.g. http://127.0.0.1:8090")
    args = parser.parse_args(argv)
    if args.action not in ACTIONS:
        parser.error(f"ACTION must be one of {', '.join(ACTIONS)} (or set SPEELTUIN_ACTION), not {args.action!r}")
    return run(args.action, args.node)


if __name__ == "__main__":
    raise SystemExit(main())
