"""Fault switches: the reference vendor misbehaving on purpose, one way each (`speeltuin serve --fault NAME`).

The test manager proves each negative scenario on the built-in reference vendor twice: faultless (a faultless
simulator is conformant, so the scenario passes) and with the fault the scenario exists to catch (it fails). A
fault changes exactly one behaviour and only in the role it names: receiving-side faults act where the simulator
is the receiving node of a session (its notification endpoint and puller), sending-side faults where it is the
sending node (its AS and FHIR server, and its notifier).

A leaf that imports nothing (the CLI lists FAULTS in its help): the switches are read from
`SimulatorConfig.faults` at request time, and what a faulty behaviour needs lives in simulator/lenient.py.
"""
from __future__ import annotations

from typing import Iterable

# --- receiving side (the simulator plays the receiving node: its notification endpoint and puller) ----------
ACCEPTS_DEFECTIVE_TASK = "accepts-defective-task"
ACCEPTS_OTHER_OWNER = "accepts-other-owner"
ACCEPTS_EXPIRED_PERIOD = "accepts-expired-period"
IGNORES_CANCELLATION = "ignores-cancellation"
ACCEPTS_NOTIFICATION_WITHOUT_TOKEN = "accepts-notification-without-token"
RETRIES_REFUSED_TOKEN = "retries-refused-token"
IGNORES_RETRY_AFTER = "ignores-retry-after"
# --- sending side (the simulator plays the sending node: its authorization server and FHIR server) ----------
ACCEPTS_WRONG_AUD = "accepts-wrong-aud"
ACCEPTS_EXPIRED_ASSERTION = "accepts-expired-assertion"
ACCEPTS_UNKNOWN_KEY = "accepts-unknown-key"
ACCEPTS_ALG_NONE = "accepts-alg-none"
ACCEPTS_ALG_HMAC = "accepts-alg-hmac"
ACCEPTS_REPLAYED_JTI = "accepts-replayed-jti"
ACCEPTS_UNKNOWN_AUTHORIZATION_BASE = "accepts-unknown-authorization-base"
GRANTS_AFTER_CANCELLATION = "grants-after-cancellation"
ACCEPTS_UNKNOWN_CLIENT = "accepts-unknown-client"
ACCEPTS_LONG_LIVED_ASSERTION = "accepts-long-lived-assertion"
GRANTS_OTHER_ORGANISATION = "grants-other-organisation"
SERVES_WITHOUT_TOKEN = "serves-without-token"
ACCEPTS_UNKNOWN_TOKEN = "accepts-unknown-token"
LEAKS_OTHER_PATIENT = "leaks-other-patient"
SERVES_EVERY_PATIENT = "serves-every-patient"
MALFORMED_QUERY_NOT_400 = "malformed-query-not-400"
IGNORES_ACCEPT_XML = "ignores-accept-xml"
# --- sending side, where the simulator notifies (simulator/outbound/notifier.py) ---------------------------------
UPDATE_WITH_NEW_GROUP = "update-with-new-group"

# How often the puller asks for a pull token that is refused: faultless once (invalid_grant is no transient error,
# SPEC §5.2), with retries-refused-token this often, this far apart (bounded, so nothing runs forever).
REFUSED_TOKEN_TRIES = 8
REFUSED_TOKEN_INTERVAL_S = 0.1

FAULTS: dict[str, str] = {
    ACCEPTS_DEFECTIVE_TASK: "receiver: answers 201 to a Notification Task with error findings (except an ended "
                            "period) and pulls it as if it were fine",
    ACCEPTS_OTHER_OWNER: "receiver: accepts a Notification Task whose owner URA is not its own",
    ACCEPTS_EXPIRED_PERIOD: "receiver: accepts a Notification Task whose restriction.period.end has passed",
    IGNORES_CANCELLATION: "receiver: answers the cancellation 200 but keeps the notification live and pulls it again",
    ACCEPTS_NOTIFICATION_WITHOUT_TOKEN: "receiver: answers 201 to a Notification Task POSTed without an "
                                        "Authorization header (and pulls it)",
    RETRIES_REFUSED_TOKEN: f"receiver: when its pull-token request is refused, asks again and again "
                           f"({REFUSED_TOKEN_TRIES} tries, {REFUSED_TOKEN_INTERVAL_S} s apart) instead of once",
    IGNORES_RETRY_AFTER: "receiver: its puller does not retry a 5xx answer (nor wait for Retry-After): the pull fails",
    ACCEPTS_WRONG_AUD: "sender AS: grants a pull token to assertions whose aud is not its exact token URL",
    ACCEPTS_EXPIRED_ASSERTION: "sender AS: grants a pull token to expired assertions",
    ACCEPTS_UNKNOWN_KEY: "sender AS: grants a pull token to assertions signed with a key (kid) it does not know",
    ACCEPTS_ALG_NONE: "sender AS: grants a pull token to unsigned assertions (alg none)",
    ACCEPTS_ALG_HMAC: "sender AS: grants a pull token to HS256 assertions keyed with the client's public key",
    ACCEPTS_REPLAYED_JTI: "sender AS: grants a pull token to an assertion whose jti was used before",
    ACCEPTS_UNKNOWN_AUTHORIZATION_BASE: "sender AS: grants a pull token (for its latest live notification) to an "
                                        "authorization base it never issued",
    GRANTS_AFTER_CANCELLATION: "sender AS: keeps granting pull tokens for a notification it cancelled",
    ACCEPTS_UNKNOWN_CLIENT: "sender AS: grants a pull token to a client id it never registered (signed with a known "
                            "key)",
    ACCEPTS_LONG_LIVED_ASSERTION: "sender AS: grants a pull token to assertions that live longer than 300 s",
    GRANTS_OTHER_ORGANISATION: "sender AS: grants a pull token to an authorization assertion whose sub is not the "
                               "Task's owner URA",
    SERVES_WITHOUT_TOKEN: "sender FHIR server: answers requests without a bearer token (latest live notification)",
    ACCEPTS_UNKNOWN_TOKEN: "sender FHIR server: answers requests with a bearer token it never issued (latest live "
                           "notification)",
    LEAKS_OTHER_PATIENT: "sender FHIR server: a search naming another patient returns that patient's data",
    SERVES_EVERY_PATIENT: "sender FHIR server: does not narrow searches and reads to the token's patient: every "
                          "patient's data is served",
    MALFORMED_QUERY_NOT_400: "sender FHIR server: answers a malformed search 200 with an empty searchset",
    IGNORES_ACCEPT_XML: "sender FHIR server: answers JSON when Accept asks for FHIR XML only",
    UPDATE_WITH_NEW_GROUP: "sender notifier: an update (notify with update_of) gets a new groupIdentifier instead "
                           "of the updated notification's",
}

# The rule id the failure is reported with, when the faulty node meets the probe (simulator/outbound/probes.py)
# or the Notification Task (simulator/outbound/defects.py) that targets the fault.
FAULT_RULES: dict[str, str] = {
    # the defect the receiver should have refused: RCV-11 sends identifier-object (DEFECT_RULES has each defect's)
    ACCEPTS_DEFECTIVE_TASK: "NOTIF-002",
    # the Task is valid; the receiving side judges the owner as the sender's AS will judge its pull-token request
    # (validators.rules.token_request.check_pull_grant: sub = own URA is not the Task's owner)
    ACCEPTS_OTHER_OWNER: "TOK-011",
    ACCEPTS_EXPIRED_PERIOD: "NOTIF-016",
    # IGNORES_CANCELLATION has no rule: the catalogue has none for "the receiver pulls after the cancellation";
    # RCV-02's step no-pull-after-cancel sees the requests it makes afterwards.
    # The Task came without a token: the notification endpoint's answer is judged as a resource server's (SPEC §5.4)
    ACCEPTS_NOTIFICATION_WITHOUT_TOKEN: "HTTP-006",
    # RETRIES_REFUSED_TOKEN has no rule: the catalogue has none for "the receiver stops asking after a bounded
    # number of tries"; RCV-12 counts the token requests it makes after the refusal.
    # IGNORES_RETRY_AFTER has no rule: the catalogue has none for "the receiver retries a 503"; RCV-13 sees the pull
    # end without the resource that was unavailable once.
    ACCEPTS_WRONG_AUD: "JWT-013",
    ACCEPTS_EXPIRED_ASSERTION: "JWT-015",
    ACCEPTS_UNKNOWN_KEY: "JWT-005",
    ACCEPTS_ALG_NONE: "JWT-003",
    ACCEPTS_ALG_HMAC: "JWT-003",
    ACCEPTS_REPLAYED_JTI: "JWT-024",
    ACCEPTS_UNKNOWN_AUTHORIZATION_BASE: "TOK-015",
    GRANTS_AFTER_CANCELLATION: "TOK-015",
    ACCEPTS_UNKNOWN_CLIENT: "JWT-012",
    ACCEPTS_LONG_LIVED_ASSERTION: "JWT-017",
    GRANTS_OTHER_ORGANISATION: "TOK-015",
    SERVES_WITHOUT_TOKEN: "HTTP-006",
    ACCEPTS_UNKNOWN_TOKEN: "HTTP-007",
    LEAKS_OTHER_PATIENT: "HTTP-008",
    # SND-01's pull answers hold every patient's matches: the proxy sees two patients in one answer
    SERVES_EVERY_PATIENT: "BUNDLE-020",
    MALFORMED_QUERY_NOT_400: "HTTP-009",
    IGNORES_ACCEPT_XML: "HTTP-005",
    # UPDATE_WITH_NEW_GROUP has no rule: each Task is valid on its own (NOTIF-035 compares a cancellation, not an
    # update, with its original); SND-02 compares the update's groupIdentifier with the first notification's.
}

# What provokes each fault: a probe of simulator/outbound/probes.py (the vendor is the sender), a defect of
# simulator/outbound/defects.py sent in a notification, "cancel" (the simulator cancels its notification),
# "notify:<option>" (an option of the admin API's notify: the simulator notifies that way), "update" (the vendor,
# as sender, is asked to send an update), "pull" (the simulator's own pull of what the vendor notified, judged by
# the proxy) or "provoke:<name>" (a provocation of simulator/provocations.py in the
# simulator's session).
FAULT_TRIGGERS: dict[str, str] = {
    ACCEPTS_DEFECTIVE_TASK: "defect:identifier-object",
    ACCEPTS_OTHER_OWNER: "defect:owner-other-organisation",
    ACCEPTS_EXPIRED_PERIOD: "defect:period-end-in-the-past",
    IGNORES_CANCELLATION: "cancel",
    ACCEPTS_NOTIFICATION_WITHOUT_TOKEN: "notify:without_token",
    RETRIES_REFUSED_TOKEN: "provoke:refuse-pull-tokens",
    IGNORES_RETRY_AFTER: "provoke:unavailable-once",
    ACCEPTS_WRONG_AUD: "probe:wrong-aud",
    ACCEPTS_EXPIRED_ASSERTION: "probe:expired-assertion",
    ACCEPTS_UNKNOWN_KEY: "probe:unknown-key",
    ACCEPTS_ALG_NONE: "probe:alg-none",
    ACCEPTS_ALG_HMAC: "probe:alg-hmac",
    ACCEPTS_REPLAYED_JTI: "probe:replayed-jti",
    ACCEPTS_UNKNOWN_AUTHORIZATION_BASE: "probe:unknown-authorization-base",
    GRANTS_AFTER_CANCELLATION: "probe:token-after-cancellation",
    ACCEPTS_UNKNOWN_CLIENT: "probe:unknown-client",
    ACCEPTS_LONG_LIVED_ASSERTION: "probe:long-lived-assertion",
    GRANTS_OTHER_ORGANISATION: "probe:other-ura",
    SERVES_WITHOUT_TOKEN: "probe:no-token",
    ACCEPTS_UNKNOWN_TOKEN: "probe:unknown-token",
    LEAKS_OTHER_PATIENT: "probe:other-patient",
    SERVES_EVERY_PATIENT: "pull",
    MALFORMED_QUERY_NOT_400: "probe:malformed-query",
    IGNORES_ACCEPT_XML: "probe:accept-xml",
    UPDATE_WITH_NEW_GROUP: "update",
}


class UnknownFault(ValueError):
    """A fault name that is not in FAULTS; the message lists the known ones."""


def check_faults(names: Iterable[str]) -> frozenset[str]:
    """The fault switches named, or UnknownFault for the first unknown name."""
    chosen = frozenset(names)
    for name in sorted(chosen):
        if name not in FAULTS:
            raise UnknownFault(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
    return chosen
