"""FHIR content negotiation: JSON or XML by `_format` (which wins) or by `Accept` (SPEC §3 step 5)."""
from __future__ import annotations

from flask import has_request_context, request

from validators.stu3 import FHIR_JSON, FHIR_XML, FORMAT_FAMILIES, FormatFamily

# What the server answers with: the FHIR media type, in UTF-8
JSON_CONTENT_TYPE = f"{FHIR_JSON}; charset=utf-8"
XML_CONTENT_TYPE = f"{FHIR_XML}; charset=utf-8"


class UnsupportedFormat(ValueError):
    """A `_format` value the server cannot produce."""


def wanted_format() -> FormatFamily:
    """The format the current request asks for; JSON when it does not say."""
    if not has_request_context():
        return "json"
    explicit = request.args.get("_format")
    if explicit is not None:
        try:
            return FORMAT_FAMILIES[explicit.strip().lower()]  # type: ignore[return-value]
        except KeyError:
            raise UnsupportedFormat(f"_format={explicit!r} is not supported; use json or xml") from None
    best: tuple[float, FormatFamily] = (0.0, "json")
    for part in request.headers.get("Accept", "").split(","):
        media, *params = [p.strip() for p in part.split(";")]
        quality = next((float(p[2:]) for p in params if p.startswith("q=") and _is_number(p[2:])), 1.0)
        kind = FORMAT_FAMILIES.get(media.lower())
        if kind and quality > best[0]:
            best = (quality, kind)  # type: ignore[assignment]
    return best[1]


def is_fhir_media(media: str) -> bool:
    return "/" in media and media.lower() in FORMAT_FAMILIES


def content_type(fmt: FormatFamily) -> str:
    return XML_CONTENT_TYPE if fmt == "xml" else JSON_CONTENT_TYPE


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
