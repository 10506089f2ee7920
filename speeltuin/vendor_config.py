'''A vendor's own system under test, described in a `vendor.toml` (write one with `speeltuin vendor init`).

Read here (who the system is, its keys and endpoints: what a session needs, so the web UI can take an uploaded
vendor.toml too); the test manager's scenarios/vendor_config.py builds the triggers on top.

Layout (every key below is known; any other key is an error, to catch typos):

    name = "Acme GtK (test)"             # required: how reports name the system
    roles = ["sender", "receiver"]       # required: the roles the system can play (one or both)
    ura = "12345678"                     # required: URA of the care organisation it acts for (8 digits, quoted)
    client_id = "acme-gtk"               # optional: iss = sub of its client assertions (default: per session)
    mtls = false                         # optional: require its client certificate (test CA)

    [keys]                               # required: exactly one of
    jwks_file = "acme-jwks.json"         #   its public keys (JWKS), relative to this file
    jwks_url = "https://..."             #   where it publishes them
    certificate = "acme-signing.pem"     #   the PEM certificate (chain) whose key signs its assertions

    [endpoints]                          # its own servers
    token_url = "https://..."            # its authorization server (both roles)
    fhir_base = "https://..."            # its FHIR server (sender)
    notification_base = "https://..."    # [base] of [base]/Task, where it is notified (receiver)

    [triggers.notify]                    # optional, per action (notify, update, cancel, pull):
    command = "./notify.sh"              #   a shell string, or an argv list; runs in this file's folder
    timeout = 60                         #   seconds (default 60)
    [triggers.cancel]
    url = "https://..."                  #   or a URL the runner POSTs JSON to
    headers = { Authorization = "Bearer ${ACME_HOOK_TOKEN}" }   # URL only; ${NAME} from the environment

An action without a trigger table is done by a person, who is asked (scenarios/triggers.py).

Both roles need `token_url`: as sender the vendor's AS issues the simulator's pull tokens (SPEC §3 step 4), as
receiver it issues the simulator's notification tokens (SPEC §3 step 2).
'''
from __future__ import annotations

import difflib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from speeltuin.records import Session
from validators.rules.identifiers import is_valid_ura

ROLES = ("sender", "receiver")
TOP_KEYS = ("name", "roles", "ura", "client_id", "mtls", "keys", "endpoints", "triggers")
KEY_SOURCES = ("jwks_file", "jwks_url", "certificate")
ENDPOINTS = ("token_url", "fhir_base", "notification_base")
# What the simulator needs of the vendor's system when the vendor plays a role (the session's vendor_* URLs).
ROLE_ENDPOINTS = {"sender": ("token_url", "fhir_base"), "receiver": ("token_url", "notification_base")}
ACTIONS = ("notify", "update", "cancel", "pull")  # what a vendor's system may be made to do (triggers.<action>)
ACTION_ROLES = {"notify": "sender", "update": "sender", "cancel": "sender", "pull": "receiver"}  # who does it


class VendorConfigError(ValueError):
    """A vendor.toml that cannot be used; the message names the file and the key, and says what to fix."""


@dataclass(frozen=True)
class VendorConfig:
    path: Path  # the vendor.toml, as it was named
    name: str
    roles: tuple[str, ...]  # subset of ROLES, at least one
    ura: str
    client_id: str | None
    jwks: dict[str, Any] | None  # from keys.jwks_file, or built from keys.certificate (kid = SHA-256 thumbprint)
    jwks_url: str | None
    certificate: Path | None  # absolute
    token_url: str | None
    fhir_base: str | None
    notification_base: str | None
    # action -> trigger (scenarios/triggers.py builds them); absent: a person is asked
    triggers: dict[str, Any] = field(default_factory=dict)
    mtls: bool = False
    jwks_file: Path | None = None  # absolute; where `jwks` was read from

    def session_request(self, role: str, *, session_id: str, name: str) -> dict[str, Any]:
        """The body of the simulator's `POST /api/sessions` for a session where this system plays `role`."""
        if role not in self.roles:
            played = ", ".join(self.roles)
            raise VendorConfigError(f'{self.path}: roles: the system plays {played}, not the {role}; add "{role}" '
                                    f"to roles to test it as {role}")
        body: dict[str, Any] = {"id": session_id, "name": name, "vendor_role": role, "vendor_ura": self.ura,
                                "mtls": self.mtls}
        if self.client_id:
            body["vendor_client_id"] = self.client_id
        if self.jwks is not None:
            body["vendor_jwks"] = self.jwks
        elif self.jwks_url:
            body["vendor_jwks_url"] = self.jwks_url
        for key in ROLE_ENDPOINTS[role]:
            value = getattr(self, key)
            if not value:
                raise VendorConfigError(f"{self.path}: endpoints.{key}: missing; the simulator needs it when the "
                                        f'system is the {role}: add {key} = "https://..." under [endpoints]')
            body[f"vendor_{key}"] = value
        return body

    def summary(self) -> dict[str, Any]:
        """What `speeltuin vendor check` shows: roles, identity, keys, endpoints and the trigger per action."""
        if self.certificate:
            keys = f"certificate {self.certificate}"
        elif self.jwks_url:
            keys = f"JWKS at {self.jwks_url}"
        else:
            keys = f"JWKS file {self.jwks_file}"
        if self.jwks is not None:
            kids = [str(k.get("kid", "(no kid)")) for k in self.jwks.get("keys", []) if isinstance(k, dict)]
            keys += f" ({len(kids)} key{'s' if len(kids) != 1 else ''}: {', '.join(kids)})"
        triggers = {}
        for action in ACTIONS:  # only the actions of the roles played; a trigger for another is said to be unused
            trigger = self.triggers.get(action)
            played = ACTION_ROLES[action] in self.roles
            if trigger is None and not played:
                continue
            describe = getattr(trigger, "describe", None)
            triggers[action] = describe() if describe else ("manual: a person is asked" if trigger is None
                                                            else type(trigger).__name__)
            if not played:
                triggers[action] += f" (unused: only a {ACTION_ROLES[action]} is asked to {action})"
        return {"path": str(self.path), "name": self.name, "roles": list(self.roles), "ura": self.ura,
                "client_id": self.client_id, "mtls": self.mtls, "keys": keys,
                "endpoints": {k: getattr(self, k) for k in ENDPOINTS if getattr(self, k)}, "triggers": triggers}


def load_vendor_config(path: str | Path, reader: type["VendorReader"] | None = None) -> VendorConfig:
    """Read and check a vendor.toml; files it names are relative to its folder. `reader`: VendorReader or a
    subclass that builds the triggers (the test manager's); VendorReader itself leaves them out."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise VendorConfigError(f"{path}: no such file; write one with `speeltuin vendor init {path}`") from None
    except OSError as exc:
        raise VendorConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise VendorConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise VendorConfigError(f"{path}: not valid TOML: the file is not UTF-8 text") from None
    return (reader or VendorReader)(path).config(data)


class VendorReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.folder = path.resolve().parent

    def error(self, key: str, problem: str) -> VendorConfigError:
        return VendorConfigError(f"{self.path}: {key}: {problem}")

    def known(self, table: dict[str, Any], allowed: tuple[str, ...], prefix: str = "") -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.error(prefix + key, f"unknown key; {hint}the keys here are {', '.join(allowed)}")

    def table(self, data: dict[str, Any], key: str) -> dict[str, Any] | None:
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            raise self.error(key, f"must be a table ([{key}]), got {kind_of(value)}")
        return value

    def text(self, data: dict[str, Any], key: str, dotted: str, *, required: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                raise self.error(dotted, f'missing; add {key} = "..."')
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(dotted, f"must be a non-empty string in quotes, got {kind_of(value)}")
        return value.strip()

    def url(self, data: dict[str, Any], key: str, dotted: str) -> str | None:
        value = self.text(data, key, dotted)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.error(dotted, f"must be an absolute http(s) URL such as https://host/path, got {value!r}")
        return value.rstrip("/")

    def file(self, value: str, dotted: str) -> Path:
        file = Path(value).expanduser()
        file = file if file.is_absolute() else self.folder / file
        if not file.is_file():
            raise self.error(dotted, f"no file {file} (paths are relative to the folder of {self.path.name}); "
                                     "create it or correct the path")
        return file

    def config(self, data: dict[str, Any]) -> VendorConfig:
        self.known(data, TOP_KEYS)
        name = self.text(data, "name", "name", required=True)
        roles = self.roles(data.get("roles"))
        ura = data.get("ura")
        if ura is None:
            raise self.error("ura", 'missing; add ura = "12345678" (the URA of the care organisation, 8 digits)')
        if not isinstance(ura, str):
            raise self.error("ura", f"must be a string in quotes (a number loses leading zeros): ura = \"{ura}\"")
        if not is_valid_ura(ura.strip()):
            raise self.error("ura", f"must be a URA of 8 digits, got {ura!r}")
        client_id = self.text(data, "client_id", "client_id")
        mtls = data.get("mtls", False)
        if not isinstance(mtls, bool):
            raise self.error("mtls", f"must be true or false (no quotes), got {kind_of(mtls)}")
        jwks, jwks_url, certificate, jwks_file = self.keys(self.table(data, "keys"))
        endpoints = self.table(data, "endpoints") or {}
        self.known(endpoints, ENDPOINTS, "endpoints.")
        urls = {key: self.url(endpoints, key, f"endpoints.{key}") for key in ENDPOINTS}
        if urls["notification_base"] and urls["notification_base"].endswith("/Task"):
            raise self.error("endpoints.notification_base", "give the base without /Task: the simulator POSTs to "
                                                            "<notification_base>/Task")
        for role in roles:
            for key in ROLE_ENDPOINTS[role]:
                if not urls[key]:
                    raise self.error(f"endpoints.{key}", f"missing; the simulator needs it when the system is the "
                                                         f'{role}: add {key} = "https://..." under [endpoints]')
        triggers = self.triggers(self.table(data, "triggers") or {})
        return VendorConfig(path=self.path, name=name or "", roles=roles, ura=ura.strip(), client_id=client_id,
                            jwks=jwks, jwks_url=jwks_url, certificate=certificate, token_url=urls["token_url"],
                            fhir_base=urls["fhir_base"], notification_base=urls["notification_base"],
                            triggers=triggers, mtls=mtls, jwks_file=jwks_file)

    def roles(self, value: Any) -> tuple[str, ...]:
        if value is None:
            raise self.error("roles", 'missing; add roles = ["sender"], ["receiver"] or ["sender", "receiver"]')
        listed = [value] if isinstance(value, str) else value
        if not isinstance(listed, list) or not listed:
            got = "an empty list" if listed == [] else kind_of(value)
            raise self.error("roles", f'must be a list such as ["sender", "receiver"], got {got}')
        for role in listed:
            if role not in ROLES:
                raise self.error("roles", f'{role!r} is not a role; the roles are "sender" and "receiver"')
        if len(set(listed)) != len(listed):
            raise self.error("roles", "names a role twice")
        return tuple(listed)

    def keys(self, keys: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str | None, Path | None, Path | None]:
        if keys is None:
            raise self.error("keys", "missing; add a [keys] table with one of jwks_file, jwks_url or certificate "
                                     "(the public keys that check the system's signed assertions)")
        self.known(keys, KEY_SOURCES, "keys.")
        given = [k for k in KEY_SOURCES if keys.get(k) is not None]
        if len(given) != 1:
            problem = f"gives {' and '.join(given)}" if given else "gives none"
            raise self.error("keys", f"{problem}; give exactly one of jwks_file, jwks_url or certificate")
        source = given[0]
        if source == "jwks_url":
            return None, self.url(keys, "jwks_url", "keys.jwks_url"), None, None
        value = self.text(keys, source, f"keys.{source}") or ""
        file = self.file(value, f"keys.{source}")
        if source == "jwks_file":
            return self.jwks_file(file), None, None, file
        return self.certificate_jwks(file), None, file, None

    def triggers(self, triggers: dict[str, Any]) -> dict[str, Any]:
        """The triggers table's actions are checked; building them is the test manager's (a subclass's) work."""
        for action in triggers:
            if action not in ACTIONS:
                close = difflib.get_close_matches(action, ACTIONS, n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.error(f"triggers.{action}", f"unknown action; {hint}the actions are {', '.join(ACTIONS)}")
        return {}

    def jwks_file(self, file: Path) -> dict[str, Any]:
        try:
            jwks = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise self.error("keys.jwks_file", f"cannot read {file}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise self.error("keys.jwks_file", f"{file} is not valid JSON: {exc}") from None
        if not is_jwks(jwks):
            raise self.error("keys.jwks_file", f'{file} must be a JWKS: a JSON object {{"keys": [...]}} holding '
                                               "at least one key")
        return jwks

    def certificate_jwks(self, file: Path) -> dict[str, Any]:
        from cryptography import x509

        try:
            chain = x509.load_pem_x509_certificates(file.read_bytes())
        except OSError as exc:
            raise self.error("keys.certificate", f"cannot read {file}: {exc.strerror or exc}") from None
        except ValueError:
            raise self.error("keys.certificate", f"{file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)") \
                from None
        try:
            return jwks_from_certificates(chain)
        except ValueError as exc:
            raise self.error("keys.certificate", f"{file}: {exc}") from None

def is_jwks(value: Any) -> bool:
    """A JWKS a vendor can sign with: a JSON object {"keys": [...]} holding at least one key (object)."""
    keys = value.get("keys") if isinstance(value, dict) else None
    return isinstance(keys, list) and bool(keys) and all(isinstance(k, dict) for k in keys)


def jwks_from_certificates(chain: list[Any]) -> dict[str, Any]:
    """The JWKS of a certificate chain's leaf key, kid = the leaf's SHA-256 thumbprint, x5c = the chain.

    For an EC P-256 key this is exactly what `speeltuin pki issue` and `session create --vendor-cert` register.
    """
    import base64

    import jwt
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from testdata.pki import jwks_for

    leaf, rest = chain[0], chain[1:]
    key = leaf.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return jwks_for(leaf, *rest)
    if isinstance(key, ec.EllipticCurvePublicKey):
        algs = {"secp384r1": "ES384", "secp521r1": "ES512"}
        if key.curve.name not in algs:
            raise ValueError(f"EC curve {key.curve.name} has no JWS algorithm; use P-256, P-384 or P-521")
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
        jwk["alg"] = algs[key.curve.name]
    elif isinstance(key, rsa.RSAPublicKey):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))  # no alg: RS* and PS* both fit an RSA key
    else:
        raise ValueError(f"the certificate's key ({type(key).__name__}) is neither RSA nor EC, which the "
                         "assertions' algorithms (SPEC §5.2) need")
    der = [c.public_bytes(serialization.Encoding.DER) for c in chain]
    kid = base64.urlsafe_b64encode(leaf.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
    jwk.update({"kid": kid, "use": "sig", "x5c": [base64.b64encode(d).decode() for d in der]})
    return {"keys": [jwk]}


def kind_of(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
             dict: "a table"}
    shown = repr(value) if not isinstance(value, (dict, list)) or len(repr(value)) < 60 else ""
    return f"{names.get(type(value), type(value).__name__)} {shown}".strip()


def vendor_toml(session: Session, *, jwks_file: str | None) -> str:
    """A vendor.toml describing the vendor's system of a session (the web UI's download), for `speeltuin run`.

    `jwks_file`: the name to save the session's registered JWKS under, named in [keys] (None when the session
    reads the vendor's keys from a URL, or has none registered). The triggers are left for the vendor to add."""
    config = session.config
    lines = [f"# vendor.toml of session {session.id}: the vendor's system as the simulator knows it.",
             "# Check it with `speeltuin vendor check vendor.toml`; add [triggers.<action>] tables (see",
             "# `speeltuin vendor init`) to let the test manager make your system act without asking a person.",
             "", f"name = {_toml(session.name)}", f"roles = [{_toml(session.vendor_role.value)}]",
             f"ura = {_toml(config.vendor_ura)}", f"client_id = {_toml(config.vendor_client_id)}",
             f"mtls = {'true' if config.mtls else 'false'}", "", "[keys]"]
    if config.vendor_jwks_url:
        lines.append(f"jwks_url = {_toml(config.vendor_jwks_url)}")
    elif jwks_file:
        lines.append(f"jwks_file = {_toml(jwks_file)}  # the session's registered JWKS: save it beside this file")
    else:
        lines.append('# no keys registered for this session: give jwks_file, jwks_url or certificate')
    lines += ["", "[endpoints]"]
    for key in ENDPOINTS:
        value = getattr(config, f"vendor_{key}")
        needed = key in ROLE_ENDPOINTS[session.vendor_role.value]
        if value:
            lines.append(f"{key} = {_toml(value)}")
        elif needed:
            lines.append(f'# {key} = "https://..."  # needed when the system is the {session.vendor_role.value}')
    return "\n".join(lines) + "\n"


def _toml(value: str) -> str:
    """A TOML basic string: JSON's escapes (\\", \\\\, \\n, \\uXXXX) are TOML's too."""
    return json.dumps(value)
