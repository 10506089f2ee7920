"""FHIR content negotiation: JSON or XML by `_format` (which wins) or by `Accept` (SPEC §3 step 5); when the request
states no preference, the format of the body it sent (if an endpoint said so), else JSON."""
from __future__ import annotations

from flask import g, has_request_context, request

from validators.stu3 import FHIR_JSON, FHIR_XML, FORMAT_FAMILIES, FormatFamily

# What the server answers with: the FHIR media type, in UTF-8
JSON_CONTENT_TYPE = f"{FHIR_JSON}; charset=utf-8"
XML_CONTENT_TYPE = f"{FHIR_XML}; charset=utf-8"


class UnsupportedFormat(ValueError):
    """A `_format` value the server cannot produce."""


def wanted_format() -> FormatFamily:
    """The format the current request asks for; when it does not say, the one `answer_by_default` set, or JSON."""
    if not has_request_context():
        return "json"
    explicit = request.args.get("_format")
    if explicit is not None:
        try:
            return FORMAT_FAMILIES[explicit.strip().lower()]  # type: ignore[return-value]
        except KeyError:
            raise UnsupportedFormat(f"_format={explicit!r} is not supported; use json or xml") from None
    best: tuple[float, FormatFamily] = (0.0, g.get(_DEFAULT_KEY, "json"))
    for part in request.headers.get("Accept", "").split(","):
        media, *params = [p.strip() for p in part.split(";")]
        quality = next((float(p[2:]) for p in params if p.startswith("q=") and _is_number(p[2:])), 1.0)
        kind = FORMAT_FAMILIES.get(media.lower())
        if kind and quality > best[0]:
            best = (quality, kind)  # type: ignore[assignment]
    return best[1]


def is_fhir_media(media: str) -> bool:
    return "/" in media and media.lower() in FORMAT_FAMILIES


# The media types a FHIR body may be sent as (application/fhir+xml, text/xml, the DSTU2 names, ...)
FHIR_BODY_MEDIA: tuple[str, ...] = tuple(sorted(m for m in FORMAT_FAMILIES if is_fhir_media(m)))
_DEFAULT_KEY = "speeltuin_answer_format"


def body_format(mimetype: str | None) -> FormatFamily | None:
    """The format of a request body by its media type (without parameters); None when it is not a FHIR format."""
    return FORMAT_FAMILIES.get(mimetype.lower()) if mimetype and is_fhir_media(mimetype) else None


def answer_by_default(fmt: FormatFamily) -> None:
    """Answer the current request in `fmt` unless it asks otherwise: a FHIR server answers in the client's format."""
    setattr(g, _DEFAULT_KEY, fmt)


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
