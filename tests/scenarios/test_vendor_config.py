"""vendor.toml: a vendor's own system under test; loading, the session requests it yields, and its errors."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from scenarios.triggers import CommandTrigger, UrlTrigger
from scenarios.vendor_config import TEMPLATE, VendorConfig, VendorConfigError, load_vendor_config
from simulator.sessions import create_session
from speeltuin.defaults import sqlite_url
from speeltuin.records import Role
from speeltuin.store import Store
from testdata.pki import init_ca, issue

BOTH = '''\
name = "Acme GtK (test)"
roles = ["sender", "receiver"]
ura = "12345678"
client_id = "acme-gtk"

[keys]
jwks_file = "acme-jwks.json"

[endpoints]
token_url = "https://gtk.acme.test/oauth/token"
fhir_base = "https://gtk.acme.test/fhir/"
notification_base = "https://gtk.acme.test/twiin"
'''
SENDER = BOTH.replace('["sender", "receiver"]', '["sender"]').replace(
    'notification_base = "https://gtk.acme.test/twiin"\n', "")
RECEIVER = BOTH.replace('["sender", "receiver"]', '["receiver"]').replace(
    'fhir_base = "https://gtk.acme.test/fhir/"\n', "")


def _jwks() -> dict:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
    return {"keys": [{**jwk, "kid": "acme-1", "use": "sig", "alg": "ES256"}]}


def _write(folder: Path, text: str, *, jwks: object | None = None) -> Path:
    (folder / "acme-jwks.json").write_text(json.dumps(jwks if jwks is not None else _jwks()))
    path = folder / "vendor.toml"
    path.write_text(text)
    return path


def _store(tmp_path: Path) -> Store:
    return Store(sqlite_url(tmp_path / "store.sqlite"))


def _accepted(store: Store, body: dict) -> object:
    """The simulator's own session creation accepts the body (raises SessionError if not)."""
    return create_session(store, body, own_ura="90000101", own_client_id="speeltuin-simulator")


def test_a_sender_config_and_its_session_request(tmp_path: Path) -> None:
    config = load_vendor_config(_write(tmp_path, SENDER))
    assert (config.name, config.roles, config.ura, config.client_id) == ("Acme GtK (test)", ("sender",),
                                                                         "12345678", "acme-gtk")
    assert config.jwks == json.loads((tmp_path / "acme-jwks.json").read_text())
    assert config.jwks_file == tmp_path / "acme-jwks.json" and config.jwks_url is None and config.certificate is None
    assert config.fhir_base == "https://gtk.acme.test/fhir"  # trailing slash dropped
    assert config.notification_base is None and config.triggers == {} and config.mtls is False
    body = config.session_request("sender", session_id="acme-sender", name="Acme as sender")
    assert body == {"id": "acme-sender", "name": "Acme as sender", "vendor_role": "sender", "vendor_ura": "12345678",
                    "mtls": False, "vendor_client_id": "acme-gtk", "vendor_jwks": config.jwks,
                    "vendor_token_url": "https://gtk.acme.test/oauth/token",
                    "vendor_fhir_base": "https://gtk.acme.test/fhir"}
    session = _accepted(_store(tmp_path), body)
    assert session.id == "acme-sender" and session.vendor_role == Role.SENDER
    assert session.config.vendor_client_id == "acme-gtk" and session.config.vendor_jwks == config.jwks
    assert session.config.vendor_fhir_base == "https://gtk.acme.test/fhir"
    with pytest.raises(VendorConfigError, match=r"vendor\.toml: roles: the system plays sender, not the receiver"):
        config.session_request("receiver", session_id="acme-receiver", name="x")


def test_a_receiver_config_and_its_session_request(tmp_path: Path) -> None:
    text = RECEIVER.replace('client_id = "acme-gtk"\n', "mtls = true\n").replace(
        'jwks_file = "acme-jwks.json"', 'jwks_url = "https://gtk.acme.test/jwks"')
    config = load_vendor_config(_write(tmp_path, text))
    assert config.roles == ("receiver",) and config.client_id is None and config.mtls is True
    assert config.jwks is None and config.jwks_url == "https://gtk.acme.test/jwks"
    body = config.session_request("receiver", session_id="acme-receiver", name="Acme as receiver")
    assert body == {"id": "acme-receiver", "name": "Acme as receiver", "vendor_role": "receiver",
                    "vendor_ura": "12345678", "mtls": True, "vendor_jwks_url": "https://gtk.acme.test/jwks",
                    "vendor_token_url": "https://gtk.acme.test/oauth/token",
                    "vendor_notification_base": "https://gtk.acme.test/twiin"}
    session = _accepted(_store(tmp_path), body)
    assert session.vendor_role == Role.RECEIVER and session.config.mtls is True
    assert session.config.vendor_client_id == "vendor-acme-receiver"  # the simulator names one
    assert session.config.vendor_notification_base == "https://gtk.acme.test/twiin"
    with pytest.raises(VendorConfigError, match="not the sender"):
        config.session_request("sender", session_id="acme-sender", name="x")


def test_a_config_for_both_roles_yields_both_sessions(tmp_path: Path) -> None:
    config = load_vendor_config(_write(tmp_path, BOTH))
    store = _store(tmp_path)
    for role in ("sender", "receiver"):
        session = _accepted(store, config.session_request(role, session_id=f"acme-{role}", name=f"Acme {role}"))
        assert session.vendor_role == role and session.config.vendor_ura == "12345678"
    assert sorted(s.id for s in store.list_sessions()) == ["acme-receiver", "acme-sender"]
    assert "vendor_fhir_base" not in config.session_request("receiver", session_id="r1", name="r")
    assert "vendor_notification_base" not in config.session_request("sender", session_id="s1", name="s")


def test_session_request_names_the_endpoint_a_role_needs(tmp_path: Path) -> None:
    config = dataclasses.replace(load_vendor_config(_write(tmp_path, BOTH)), fhir_base=None)
    with pytest.raises(VendorConfigError) as raised:
        config.session_request("sender", session_id="acme-sender", name="x")
    assert str(raised.value).startswith(f"{tmp_path / 'vendor.toml'}: endpoints.fhir_base: missing")
    assert "add fhir_base" in str(raised.value)
    with pytest.raises(VendorConfigError, match="roles: the system plays sender, receiver, not the nobody"):
        config.session_request("nobody", session_id="x-1", name="x")


def test_keys_from_a_certificate_are_the_jwks_pki_issue_registers(tmp_path: Path) -> None:
    init_ca(tmp_path / "pki")
    issued = issue(tmp_path / "pki", name="acme-gtk", ura="12345678")
    text = BOTH.replace('jwks_file = "acme-jwks.json"', 'certificate = "pki/acme-gtk.cert.pem"')
    config = load_vendor_config(_write(tmp_path, text))
    assert config.certificate == issued.cert_path and config.jwks_file is None
    assert config.jwks == json.loads(issued.jwks_path.read_text())
    body = config.session_request("receiver", session_id="acme-receiver", name="x")
    assert _accepted(_store(tmp_path), body).config.vendor_jwks["keys"][0]["x5c"]


def test_triggers_per_action(tmp_path: Path) -> None:
    text = BOTH + '''
[triggers.notify]
command = "./hooks/notify.sh --bsn $SPEELTUIN_PATIENT_BSN"

[triggers.update]
command = ["python3", "hooks/update.py"]
timeout = 5

[triggers.cancel]
url = "https://gtk.acme.test/hooks/cancel"
timeout = 2.5
headers = { Authorization = "Bearer ${ACME_HOOK_TOKEN}" }
'''
    config = load_vendor_config(_write(tmp_path, text))
    assert sorted(config.triggers) == ["cancel", "notify", "update"]  # pull: a person is asked
    assert config.triggers["notify"] == CommandTrigger("./hooks/notify.sh --bsn $SPEELTUIN_PATIENT_BSN", 60.0,
                                                       cwd=tmp_path)
    assert config.triggers["update"] == CommandTrigger(("python3", "hooks/update.py"), 5.0, cwd=tmp_path)
    assert config.triggers["cancel"] == UrlTrigger("https://gtk.acme.test/hooks/cancel", 2.5,
                                                   {"Authorization": "Bearer ${ACME_HOOK_TOKEN}"})
    summary = config.summary()["triggers"]
    assert summary["pull"] == "manual: a person is asked" and summary["update"].startswith("command: python3 ")


def test_the_trigger_listing_names_only_the_actions_of_the_roles_played(tmp_path: Path) -> None:
    """A sender is never asked to pull, a receiver never to notify, update or cancel: `vendor check` does not list
    those as "a person is asked"; a trigger written for one anyway is listed as unused."""
    sender = load_vendor_config(_write(tmp_path, SENDER)).summary()["triggers"]
    assert sender == dict.fromkeys(("notify", "update", "cancel"), "manual: a person is asked")
    receiver = load_vendor_config(_write(tmp_path, RECEIVER)).summary()["triggers"]
    assert receiver == {"pull": "manual: a person is asked"}
    both = load_vendor_config(_write(tmp_path, BOTH)).summary()["triggers"]
    assert list(both) == ["notify", "update", "cancel", "pull"]
    with_pull = load_vendor_config(_write(tmp_path, SENDER + '\n[triggers.pull]\ncommand = "./pull.sh"\n'))
    assert with_pull.summary()["triggers"]["pull"] == ("command: ./pull.sh (timeout 60 s) (unused: only a receiver "
                                                       "is asked to pull)")


# (old, new) replaced in BOTH (or a whole text), the key the message must name, and words of the fix it gives.
ERRORS = {
    "unknown key": (("client_id =", "clientid ="), "clientid", "unknown key; did you mean 'client_id'?"),
    "unknown endpoint key": (("fhir_base =", "fhir_url ="), "endpoints.fhir_url", "did you mean 'fhir_base'?"),
    "unknown keys key": (("jwks_file =", "jwks_path ="), "keys.jwks_path", "unknown key"),
    "bad URA": (('"12345678"', '"1234567"'), "ura", "must be a URA of 8 digits, got '1234567'"),
    "URA as a number": (('"12345678"', "12345678"), "ura", "must be a string in quotes"),
    "missing URA": (('ura = "12345678"\n', ""), "ura", 'add ura = "12345678"'),
    "bad URL": (('"https://gtk.acme.test/fhir/"', '"gtk.acme.test/fhir"'), "endpoints.fhir_base",
                "must be an absolute http(s) URL"),
    "ftp URL": (('"https://gtk.acme.test/oauth/token"', '"ftp://gtk.acme.test/token"'), "endpoints.token_url",
                "absolute http(s) URL"),
    "Task in the notification base": (('/twiin"', '/twiin/Task"'), "endpoints.notification_base",
                                      "without /Task"),
    "jwks_file and jwks_url": (('jwks_file = "acme-jwks.json"',
                                'jwks_file = "acme-jwks.json"\njwks_url = "https://gtk.acme.test/jwks"'),
                               "keys", "gives jwks_file and jwks_url; give exactly one"),
    "no key source": (('jwks_file = "acme-jwks.json"', ""), "keys", "gives none; give exactly one"),
    "no keys table": (('[keys]\njwks_file = "acme-jwks.json"', ""), "keys", "add a [keys] table"),
    "missing jwks file": (('"acme-jwks.json"', '"nowhere/jwks.json"'), "keys.jwks_file",
                          "no file"),
    "missing certificate": (('jwks_file = "acme-jwks.json"', 'certificate = "acme.pem"'), "keys.certificate",
                            "no file"),
    "sender without fhir_base": (('fhir_base = "https://gtk.acme.test/fhir/"\n', ""), "endpoints.fhir_base",
                                 "needs it when the system is the sender"),
    "receiver without notification_base": (('notification_base = "https://gtk.acme.test/twiin"\n', ""),
                                           "endpoints.notification_base", "needs it when the system is the receiver"),
    "no token_url": (('token_url = "https://gtk.acme.test/oauth/token"\n', ""), "endpoints.token_url",
                     "missing"),
    "unknown role": (('["sender", "receiver"]', '["sender", "pusher"]'), "roles", "'pusher' is not a role"),
    "no roles": (('["sender", "receiver"]', "[]"), "roles", "must be a list"),
    "role twice": (('["sender", "receiver"]', '["sender", "sender"]'), "roles", "names a role twice"),
    "no name": (('name = "Acme GtK (test)"\n', ""), "name", 'add name = "..."'),
    "mtls as a string": (('client_id = "acme-gtk"', 'mtls = "yes"'), "mtls", "must be true or false"),
    "endpoints not a table": ((BOTH[BOTH.index("[keys]"):], '[keys]\njwks_file = "acme-jwks.json"\n'),
                              "endpoints", "must be a table"),
    "unknown action": (("", '[triggers.notfy]\ncommand = "./n.sh"\n'), "triggers.notfy",
                       "unknown action; did you mean 'notify'?"),
    "trigger with command and url": (("", '[triggers.notify]\ncommand = "./n.sh"\nurl = "https://h.test/n"\n'),
                                     "triggers.notify", "exactly one of command"),
    "trigger with neither": (("", "[triggers.cancel]\ntimeout = 5\n"), "triggers.cancel", "got neither"),
    "trigger not a table": (("", '[triggers]\npull = "./pull.sh"\n'), "triggers.pull", "must be a table"),
    "trigger unknown key": (("", '[triggers.pull]\ncmd = "./pull.sh"\n'), "triggers.pull.cmd",
                            "did you mean 'command'?"),
    "trigger bad timeout": (("", '[triggers.pull]\ncommand = "./pull.sh"\ntimeout = "60"\n'),
                            "triggers.pull.timeout", "must be a number of seconds"),
    "trigger zero timeout": (("", '[triggers.pull]\ncommand = "./pull.sh"\ntimeout = 0\n'),
                             "triggers.pull.timeout", "above 0"),
    "trigger empty command": (("", "[triggers.notify]\ncommand = []\n"), "triggers.notify.command",
                              "non-empty list of strings"),
    "trigger bad url": (("", '[triggers.update]\nurl = "hooks/update"\n'), "triggers.update.url",
                        "absolute http(s) URL"),
    "headers on a command": (("", '[triggers.update]\ncommand = "./u.sh"\nheaders = { A = "b" }\n'),
                             "triggers.update.headers", "only a url trigger"),
}


@pytest.mark.parametrize("case", ERRORS, ids=list(ERRORS))
def test_each_mistake_names_the_file_and_the_key(tmp_path: Path, case: str) -> None:
    (old, new), key, fix = ERRORS[case]
    text = BOTH + new if old == "" else BOTH.replace(old, new)
    if case == "endpoints not a table":  # a top-level key must come before the first table
        text = text.replace('client_id = "acme-gtk"', 'endpoints = "https://gtk.acme.test"')
    assert text != BOTH
    path = _write(tmp_path, text)
    with pytest.raises(VendorConfigError) as raised:
        load_vendor_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert fix in message, message
    assert "\n" not in message


@pytest.mark.parametrize("jwks, fix", [
    ({"kid": "acme-1", "kty": "EC"}, 'must be a JWKS: a JSON object {"keys": [...]}'),
    ({"keys": []}, "at least one key"),
    ([{"kid": "acme-1"}], "must be a JWKS"),
    ("not json", "is not valid JSON"),
])
def test_the_jwks_file_must_be_a_jwks(tmp_path: Path, jwks: object, fix: str) -> None:
    path = _write(tmp_path, BOTH)
    jwks_path = tmp_path / "acme-jwks.json"
    jwks_path.write_text(jwks if isinstance(jwks, str) else json.dumps(jwks))
    with pytest.raises(VendorConfigError) as raised:
        load_vendor_config(path)
    assert str(raised.value).startswith(f"{path}: keys.jwks_file: {jwks_path}") and fix in str(raised.value)


def test_a_file_that_is_not_toml_or_not_there(tmp_path: Path) -> None:
    path = _write(tmp_path, BOTH.replace('name = "Acme GtK (test)"', "name = Acme"))
    with pytest.raises(VendorConfigError, match=re.escape(f"{path}: not valid TOML: ") + ".*line 1"):
        load_vendor_config(path)
    with pytest.raises(VendorConfigError, match="no-vendor.toml: no such file; write one with `speeltuin vendor init"):
        load_vendor_config(tmp_path / "no-vendor.toml")


def _uncomment(text: str, *keys: str) -> str:
    """The template with the trigger tables and the given keys of its examples uncommented."""
    pattern = "|".join([r"\[triggers\.", *(re.escape(k) + " =" for k in keys)])
    return re.sub(rf"^# ((?:{pattern}).*)$", r"\1", text, flags=re.MULTILINE)


def test_the_template_loads_once_its_jwks_file_exists(tmp_path: Path) -> None:
    path = tmp_path / "vendor.toml"
    path.write_text(TEMPLATE)
    with pytest.raises(VendorConfigError, match="keys.jwks_file: no file"):
        load_vendor_config(path)
    (tmp_path / "vendor-jwks.json").write_text(json.dumps(_jwks()))
    config = load_vendor_config(path)
    assert isinstance(config, VendorConfig) and config.roles == ("sender", "receiver") and config.triggers == {}
    assert config.token_url and config.fhir_base and config.notification_base
    store = _store(tmp_path)
    for role in config.roles:
        _accepted(store, config.session_request(role, session_id=f"template-{role}", name="template"))

    path.write_text(_uncomment(TEMPLATE, "command"))
    commands = load_vendor_config(path).triggers
    assert sorted(commands) == ["cancel", "notify", "pull", "update"]
    assert all(isinstance(t, CommandTrigger) and t.cwd == tmp_path for t in commands.values())
    assert isinstance(commands["update"].argv_or_shell, tuple) and isinstance(commands["notify"].argv_or_shell, str)

    path.write_text(_uncomment(TEMPLATE, "url", "timeout"))
    urls = load_vendor_config(path).triggers
    assert sorted(urls) == ["cancel", "notify", "pull", "update"]
    assert all(isinstance(t, UrlTrigger) and t.url.startswith("https://") for t in urls.values())
    assert urls["pull"].timeout == 120
