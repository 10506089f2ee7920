"""FHIR content negotiation: JSON or XML by `_format` (which wins) or by `Accept` (SPEC §3 step 5)."""
from __future__ import annotations

from typing import Literal

from flask import has_request_context, request

Format = Literal["json", "xml"]
FHIR_JSON = "application/fhir+json; charset=utf-8"
FHIR_XML = "application/fhir+xml; charset=utf-8"

_FORMAT_PARAM = {"json": "json", "application/json": "json", "application/fhir+json": "json",
                 "application/json+fhir": "json", "xml": "xml", "text/xml": "xml", "application/xml": "xml",
                 "application/fhir+xml": "xml", "application/xml+fhir": "xml"}


class UnsupportedFormat(ValueError):
    """A `_format` value the server cannot produce."""


def wanted_format() -> Format:
    """The format the current request asks for; JSON when it does not say."""
    if not has_request_context():
        return "json"
    explicit = request.args.get("_format")
    if explicit is not None:
        try:
            return _FORMAT_PARAM[explicit.strip().lower()]  # type: ignore[return-value]
        except KeyError:
            raise UnsupportedFormat(f"_format={explicit!r} is not supported; use json or xml") from None
    best: tuple[float, Format] = (0.0, "json")
    for part in request.headers.get("Accept", "").split(","):
        media, *params = [p.strip() for p in part.split(";")]
        quality = next((float(p[2:]) for p in params if p.startswith("q=") and _is_number(p[2:])), 1.0)
        kind = _FORMAT_PARAM.get(media.lower())
        if kind and quality > best[0]:
            best = (quality, kind)  # type: ignore[assignment]
    return best[1]


def is_fhir_media(media: str) -> bool:
    return "/" in media and media.lower() in _FORMAT_PARAM


def content_type(fmt: Format) -> str:
    return FHIR_XML if fmt == "xml" else FHIR_JSON


def to_xml(resource: dict) -> bytes:
    """FHIR STU3 XML of a JSON resource, written by the STU3 models (element order as the spec's)."""
    from fhir.resources.STU3 import get_fhir_model_class

    return get_fhir_model_class(resource["resourceType"]).model_validate(resource).model_dump_xml()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
