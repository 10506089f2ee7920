"""New validation sessions from the web UI (case managers only): the form version of `speeltuin session create`, or
a vendor's vendor.toml uploaded; and a session's vendor.toml (with its registered JWKS) to download.

Routes (under /ui):
- GET  /sessions/new                  both forms
- POST /sessions/new                  the form: name, role, URA, keys (a JWKS or a PEM certificate uploaded, or a
                                      JWKS URL), the vendor's endpoints its role needs, mTLS
- POST /sessions/new/vendor-toml      a vendor.toml, with the keys file it names (jwks_file or certificate)
- GET  /sessions/<id>/vendor.toml     the session's vendor as a vendor.toml, for `speeltuin run --vendor`
- GET  /sessions/<id>/vendor-jwks.json  the JWKS registered for the session's vendor (the file vendor.toml names)

A session made here is the same as one made over the API or the CLI (simulator.sessions.create_session): its
access key is shown once, on the page that answers the form. Every mistake is shown at its field, and what was
typed stays in the form.
"""
from __future__ import annotations

import json
import tempfile
import tomllib
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import urlsplit

from flask import Response, abort, render_template
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileSize
from wtforms import BooleanField, Field, RadioField, StringField
from wtforms.validators import InputRequired, Length, Optional, ValidationError
from werkzeug.datastructures import FileStorage

from simulator.runtime import runtime
from simulator.sessions import SessionError, create_session, session_endpoints
from simulator.web import auth
from simulator.web.common import visible_session, web
from speeltuin.records import SESSION_URL_FIELDS, Session
from speeltuin.session_report import ACCESS_KEY_NOTE
from speeltuin.vendor_config import (
    ROLE_ENDPOINTS,
    VendorConfig,
    VendorConfigError,
    is_jwks,
    jwks_from_certificates,
    load_vendor_config,
    vendor_toml,
)
from validators import safe_json
from validators.rules.identifiers import is_valid_ura

MAX_UPLOAD = 256 * 1024  # a JWKS, a certificate chain or a vendor.toml is a few kB
ROLE_CHOICES = [("receiver", "Receiver: it is notified and pulls from the simulator"),
                ("sender", "Sender: it notifies the simulator and serves the pull")]
URL_LABELS = {"vendor_token_url": "Its token endpoint",
              "vendor_notification_base": "Its notification base (the simulator POSTs to <base>/Task)",
              "vendor_fhir_base": "Its FHIR base (the simulator pulls from it)"}
ONLY_MANAGERS = "Only case managers create validation sessions."
SESSION_ID_HELP = "3 to 64 characters: a-z, 0-9 and '-'. Leave it empty for a generated one."


def _ura(form: FlaskForm, field: Field) -> None:
    if field.data and not is_valid_ura(field.data):
        raise ValidationError("A URA is 8 digits, e.g. 12345678.")


def _http_url(form: FlaskForm, field: Field) -> None:
    parts = urlsplit(field.data or "")
    if field.data and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ValidationError("Give an absolute http(s) address, e.g. https://gtk.example.org/fhir.")


def _text(**kwargs: Any) -> dict[str, Any]:
    return {"filters": [lambda value: value.strip() if isinstance(value, str) else value], **kwargs}


class NewSessionForm(FlaskForm):
    name = StringField("Name of the vendor's system", validators=[InputRequired(), Length(max=200)], **_text())
    session_id = StringField("Session id", validators=[Optional(), Length(min=3, max=64)], **_text())
    vendor_role = RadioField("In this session the vendor's system is the", choices=ROLE_CHOICES,
                             validators=[InputRequired("Choose the role the vendor's system plays.")])
    vendor_ura = StringField("Vendor URA", validators=[InputRequired(), _ura], **_text())
    vendor_client_id = StringField("Vendor client id", validators=[Optional(), Length(max=200)], **_text())
    keys = FileField("Vendor keys: a JWKS (JSON) or a certificate chain (PEM)",
                     validators=[FileSize(MAX_UPLOAD, message=f"At most {MAX_UPLOAD // 1024} kB.")])
    vendor_jwks_url = StringField("Or the URL where it publishes its JWKS",
                                  validators=[Optional(), Length(max=2000), _http_url], **_text())
    vendor_token_url = StringField(URL_LABELS["vendor_token_url"],
                                   validators=[Optional(), Length(max=2000), _http_url], **_text())
    vendor_notification_base = StringField(URL_LABELS["vendor_notification_base"],
                                           validators=[Optional(), Length(max=2000), _http_url], **_text())
    vendor_fhir_base = StringField(URL_LABELS["vendor_fhir_base"],
                                   validators=[Optional(), Length(max=2000), _http_url], **_text())
    mtls = BooleanField("Require its TLS client certificate of the test CA (mutual TLS)")


class VendorTomlForm(FlaskForm):
    vendor_toml = FileField("vendor.toml", validators=[FileSize(MAX_UPLOAD, message=f"At most {MAX_UPLOAD // 1024} kB.")])
    keys_file = FileField("The keys file it names (its jwks_file or certificate)",
                          validators=[FileSize(MAX_UPLOAD, message=f"At most {MAX_UPLOAD // 1024} kB.")])
    vendor_role = RadioField("In this session the vendor's system is the", choices=ROLE_CHOICES,
                             validators=[Optional()])
    session_id = StringField("Session id", validators=[Optional(), Length(min=3, max=64)], **_text())


def _forms(form: NewSessionForm | None = None, toml: VendorTomlForm | None = None) -> dict[str, Any]:
    return {"form": form or NewSessionForm(prefix="new"), "toml": toml or VendorTomlForm(prefix="toml"),
            "session_id_help": SESSION_ID_HELP}


@web.get("/sessions/new")
@auth.signed_in
def new_session() -> Any:
    auth.managers_only(ONLY_MANAGERS)
    return render_template("web/new_session.html", **_forms())


@web.post("/sessions/new")
@auth.signed_in
def new_session_create() -> Any:
    auth.managers_only(ONLY_MANAGERS)
    form = NewSessionForm(prefix="new")
    form.validate_on_submit()  # the fields' own checks; _session_request adds those across fields
    request_body = _session_request(form)
    if request_body is None:
        return render_template("web/new_session.html", **_forms(form=form)), 400
    return _created(request_body, form, lambda message: _field_of(form, message).errors.append(message),
                    forms=_forms(form=form))


@web.post("/sessions/new/vendor-toml")
@auth.signed_in
def new_session_from_toml() -> Any:
    auth.managers_only(ONLY_MANAGERS)
    toml = VendorTomlForm(prefix="toml")
    request_body = _toml_request(toml) if toml.validate_on_submit() else None
    if request_body is None:
        return render_template("web/new_session.html", **_forms(toml=toml)), 400
    return _created(request_body, toml, lambda message: _toml_error(toml, message), forms=_forms(toml=toml))


def _created(request_body: dict[str, Any], form: FlaskForm, refuse: Any, forms: dict[str, Any]) -> Any:
    """Create the session (as the API does); its page with the access key, shown this once, or the form again."""
    rt = runtime()
    try:
        session = create_session(rt.store, request_body, own_ura=rt.config.ura, own_client_id=rt.config.client_id)
    except SessionError as exc:
        refuse(str(exc))
        return render_template("web/new_session.html", **forms), 400
    access_key = rt.store.new_session_key(session.id)
    return render_template("web/session_created.html", session=session, access_key=access_key,
                           access_key_note=ACCESS_KEY_NOTE,
                           endpoints=session_endpoints(session, rt.public_base())), 201


# --- the form ---------------------------------------------------------------------------------------------------
def _session_request(form: NewSessionForm) -> dict[str, Any] | None:
    """The session request of the form (as the API takes it), or None with the fields' errors set (those of the
    fields' own validators included)."""
    role = form.vendor_role.data
    body: dict[str, Any] = {"name": form.name.data, "vendor_role": role, "vendor_ura": form.vendor_ura.data,
                            "mtls": bool(form.mtls.data)}
    for key in ("vendor_client_id", "vendor_jwks_url", *SESSION_URL_FIELDS):
        field = getattr(form, key, None)
        if field is not None and field.data:
            body[key] = field.data
    if form.session_id.data:
        body["id"] = form.session_id.data
    upload = form.keys.data if isinstance(form.keys.data, FileStorage) and form.keys.data.filename else None
    if upload is not None and form.vendor_jwks_url.data:
        form.keys.errors.append("Give the keys as a file or as a URL, not both.")
    elif upload is not None:
        try:
            body["vendor_jwks"] = uploaded_jwks(upload.read(MAX_UPLOAD + 1))
        except ValueError as exc:
            form.keys.errors.append(str(exc))
    for key in ROLE_ENDPOINTS.get(role or "", ()):
        field = getattr(form, f"vendor_{key}")
        if not field.data:
            field.errors.append(f"Needed when the vendor's system is the {role}.")
    if any(field.errors for field in form):
        return None
    return body


def uploaded_jwks(data: bytes) -> dict[str, Any]:
    """The JWKS of an uploaded file: a JWKS as JSON, or a PEM certificate chain whose leaf key signs (the JWKS
    made as `session create --vendor-cert` makes it). ValueError says what the file should be."""
    from cryptography import x509

    text = data.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
    if text.startswith("-----BEGIN"):
        try:
            return jwks_from_certificates(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            raise ValueError(f"Not a usable PEM certificate: {exc}") from None
    try:
        jwks = safe_json.loads(text)
    except ValueError:
        raise ValueError("Not a JWKS (JSON) nor a PEM certificate (-----BEGIN CERTIFICATE-----).") from None
    if not is_jwks(jwks):
        raise ValueError('A JWKS is a JSON object {"keys": [...]} holding at least one key.')
    return jwks


def _field_of(form: NewSessionForm, message: str) -> Field:
    """The field a refusal of create_session is about (its message starts with the request key)."""
    if message.startswith(("id ", "a session with id")):
        return form.session_id
    key = message.split(" ", 1)[0]
    return form.keys if key == "vendor_jwks" else getattr(form, key, None) or form.name


# --- the vendor.toml --------------------------------------------------------------------------------------------
def _toml_request(form: VendorTomlForm) -> dict[str, Any] | None:
    """The session request of an uploaded vendor.toml (and the keys file it names), or None with errors set."""
    upload = form.vendor_toml.data
    if not (isinstance(upload, FileStorage) and upload.filename):
        form.vendor_toml.errors.append("Choose the vendor.toml to upload.")
        return None
    try:
        config = _read_toml(upload, form.keys_file.data)
    except VendorConfigError as exc:
        _toml_error(form, str(exc))
        return None
    role = form.vendor_role.data or (config.roles[0] if len(config.roles) == 1 else None)
    if role is None:
        form.vendor_role.errors.append("This vendor.toml names both roles: choose the one to test in this session.")
        return None
    try:
        body = config.session_request(role, session_id=form.session_id.data or "", name=config.name)
    except VendorConfigError as exc:
        _toml_error(form, str(exc))
        return None
    if not body["id"]:
        del body["id"]
    return body


def _read_toml(upload: FileStorage, keys: Any) -> VendorConfig:
    """Read the upload as `speeltuin vendor check` reads a file: in a folder of its own, with the keys file beside
    it under the name the vendor.toml gives it. A VendorConfigError's message starts "vendor.toml: <key>: "."""
    with tempfile.TemporaryDirectory(prefix="speeltuin-vendor-toml-") as folder:
        path = Path(folder) / "vendor.toml"
        path.write_bytes(upload.read(MAX_UPLOAD + 1))
        named = _named_key_file(path)
        if isinstance(keys, FileStorage) and keys.filename:
            (Path(folder) / (named or "keys")).write_bytes(keys.read(MAX_UPLOAD + 1))
        try:
            return load_vendor_config(path)
        except VendorConfigError as exc:
            message = str(exc).replace(str(path), "vendor.toml")
            if named and f"no file {Path(folder) / named}" in message:
                key = message.split(": ")[1]
                message = (f"vendor.toml: {key}: the vendor.toml names its keys in {named}: choose that file "
                           "here too")
            raise VendorConfigError(message.replace(f"{folder}/", "")) from None


def _named_key_file(path: Path) -> str | None:
    """The file name of keys.jwks_file or keys.certificate in a vendor.toml (only its last part: the upload is put
    beside the vendor.toml whatever folder the vendor keeps it in)."""
    try:
        keys = tomllib.loads(path.read_text(encoding="utf-8")).get("keys")
    except (ValueError, UnicodeDecodeError):
        return None  # load_vendor_config says what is wrong with it
    if not isinstance(keys, dict):
        return None
    for source in ("jwks_file", "certificate"):
        if isinstance(keys.get(source), str):
            name = PurePath(keys[source].replace("\\", "/")).name
            return name if name not in ("", ".", "..") else None
    return None


def _toml_error(form: VendorTomlForm, message: str) -> None:
    """A refusal at the field it concerns: the keys file, the role, the session id, or the vendor.toml itself."""
    if message.startswith(("id ", "a session with id")):
        form.session_id.errors.append(message)
        return
    key = message.split(": ")[1] if message.startswith("vendor.toml: ") else ""
    problem = message.split(": ", 2)[-1]
    problem = problem[:1].upper() + problem[1:]
    if key in ("keys.jwks_file", "keys.certificate"):
        form.keys_file.errors.append(problem)
    elif key == "roles":
        form.vendor_role.errors.append(problem)
    else:
        form.vendor_toml.errors.append(message)


# --- downloads --------------------------------------------------------------------------------------------------
@web.get("/sessions/<session_id>/vendor.toml")
@auth.signed_in
def session_vendor_toml(session_id: str) -> Any:
    session = visible_session(session_id)
    text = vendor_toml(session, jwks_file=_jwks_name(session) if session.config.vendor_jwks else None)
    return _download(text, "vendor.toml", "application/toml; charset=utf-8")


@web.get("/sessions/<session_id>/vendor-jwks.json")
@auth.signed_in
def session_vendor_jwks(session_id: str) -> Any:
    session = visible_session(session_id)
    if not session.config.vendor_jwks:
        abort(404)
    return _download(json.dumps(session.config.vendor_jwks, indent=2) + "\n", _jwks_name(session),
                     "application/json")


def _jwks_name(session: Session) -> str:
    return f"{session.id}-jwks.json"


def _download(text: str, filename: str, content_type: str) -> Response:
    response = Response(text, content_type=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
