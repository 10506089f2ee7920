"""Reading FHIR STU3 resources from bytes (JSON or XML) and checking their structure (SPEC §8).

- `parse_fhir` turns bytes into the FHIR JSON representation (a dict). XML is parsed by lxml with
  entity resolution, DTD loading and network access off, and any DOCTYPE or entity declaration is
  refused outright (XXE, billion laughs). The XML is then converted by our own walker, driven by the
  field definitions of the fhir.resources STU3 models (cardinality, primitive types), so primitives
  keep their exact text and extensions on primitives land in `_field` as FHIR JSON wants.
- `check_structure` judges a dict against the STU3 definitions in one walk: unknown resource types
  and elements, JSON kinds such as "true" for a boolean, arrays for single elements, nulls, empty
  values, required elements and choice types; each primitive value is checked by the library's own
  type for it (its format: dates, codes, ids, …). Building the whole pydantic model as well would
  add nothing (tests/fuzz/test_structure_oracle_fuzz.py holds the walk to that) and cost most of
  the time: it allocates an object per element, which also makes big Bundles cost more than linear.
  Findings are STRUCT-001 with a FHIRPath-like location, never exceptions.
- Serialisation (SPEC §6.4): the JSON reader reports a key given twice in one object (STRUCT-004; the
  last value is kept, as json.loads does), the XML reader child elements out of the STU3 order
  (STRUCT-005). A primitive with only extensions (ele-1) counts as present everywhere.

Only input that is not FHIR at all (not JSON or XML, no resourceType, root outside the FHIR
namespace) raises `FhirParseError`.
"""
from __future__ import annotations

import bisect
import copy
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Literal

from lxml import etree
from pydantic import TypeAdapter, ValidationError

from validators import safe_json
from validators.evidence import show
from validators.findings import Finding, emits, rule
from validators.stu3 import XML_NAMESPACE

_REF = "SPEC §8"
# Each rule is reported in several places of one pass (the XML reader, the JSON walk, the STU3 model):
# each has one maker of its findings, which is where the catalogue says it is checked.
STRUCTURE = rule("STRUCT-001", "error", "element does not fit the FHIR STU3 definition (unknown element, "
                 "cardinality, primitive value, required element)", _REF)


@emits(STRUCTURE)
def _misfit(message: str, location: str) -> Finding:
    """An element that the JSON walk, the STU3 model or the XML reader finds not to fit the STU3 definition."""
    return STRUCTURE.finding(message, location)


UNKNOWN_TYPE = rule("STRUCT-002", "error", "not an STU3 resource type", _REF)


@emits(UNKNOWN_TYPE)
def _not_a_resource(message: str, location: str) -> Finding:
    """A resource (at the root or contained) whose resourceType STU3 does not define."""
    return UNKNOWN_TYPE.finding(message, location)


XML_FORM = rule("STRUCT-003", "error", "XML does not follow the FHIR XML form (namespace, attributes, text, "
                "repeated single element)", _REF)


@emits(XML_FORM)
def _xml_form(message: str, location: str) -> Finding:
    """XML that the reader finds not to follow the FHIR XML form."""
    return XML_FORM.finding(message, location)


_SERIAL_REF = "SPEC §6.4"
DUPLICATE_KEY = rule("STRUCT-004", "error", "JSON object has a key twice (which value counts is undefined)",
                     _SERIAL_REF)


@emits(DUPLICATE_KEY)
def _duplicate_key(key: str, values: list[Any], location: str) -> Finding:
    """A key the JSON reader saw more than once in one object; the last value is the one the checks judge."""
    times = f"{len(values)} times" if len(values) > 2 else "twice"
    return DUPLICATE_KEY.finding(f"key {key!r} appears {times} in one object (readers differ on which counts; the "
                                 f"last is judged here): first {show(values[0])}, last {show(values[-1])}"
                                 f"{_difference(values[0], values[-1])}", location)


def _difference(first: Any, last: Any) -> str:
    """Where two JSON values first differ, as evidence that stays short even for large objects."""
    path = ""
    while isinstance(first, (dict, list)) and type(first) is type(last):
        if isinstance(first, dict):
            key = next((k for k in {**first, **last} if first.get(k, ...) != last.get(k, ...)), None)
            if key is None:
                break
            first, last, path = first.get(key), last.get(key), f"{path}.{key}"
        else:
            index = next((i for i, (a, b) in enumerate(zip(first, last)) if a != b), None)
            if index is None or len(first) != len(last):
                break
            first, last, path = first[index], last[index], f"{path}[{index}]"
    if first == last:
        return "; both the same"
    return f"; they differ at {path.lstrip('.')}: {show(first)} vs {show(last)}" if path else ""


ELEMENT_ORDER = rule("STRUCT-005", "error", "XML element out of the order of the STU3 definition", _SERIAL_REF)


@emits(ELEMENT_ORDER)
def _out_of_order(name: str, type_name: str, relation: str, other: str, location: str) -> Finding:
    """An XML element that stands elsewhere than the STU3 definition of its parent's type puts it."""
    return ELEMENT_ORDER.finding(f"element {name!r} is out of the STU3 order of {type_name}: it must come "
                                 f"{relation} {other!r}", location)


XHTML_NS = "http://www.w3.org/1999/xhtml"
_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_ABSTRACT_TYPES = frozenset({"Resource", "DomainResource"})
_INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt", "integer64"})
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class FhirParseError(ValueError):
    """The input is not FHIR at all (exit status 2: unreadable input); the message is one line for people."""


@dataclass
class ParsedFhir:
    resource: dict
    format: Literal["json", "xml"]
    findings: list[Finding] = field(default_factory=list)


# --- the STU3 model definitions, reduced to what a walker needs ---------------------------------
@dataclass(frozen=True)
class _Field:
    type: str  # FHIR type: a primitive ("dateTime"), complex type, backbone ("ObservationComponent") or "Resource"
    is_list: bool
    is_primitive: bool
    required: bool = False  # min cardinality 1
    choice: str = ""  # the choice element this is a variant of: "value" for valueQuantity
    choice_required: bool = False
    check: Callable[[Any], Any] | None = field(default=None, compare=False)  # a primitive's format check


@lru_cache(maxsize=None)
def _model(type_name: str) -> Any:
    """The STU3 model class of a type name, or None."""
    from fhir.resources.STU3 import fhirtypes, get_fhir_model_class

    if not _KEY.fullmatch(type_name) or not hasattr(fhirtypes, type_name + "Type"):
        return None
    try:
        return get_fhir_model_class(type_name)
    except (ValueError, ImportError):
        return None


def is_resource_type(name: object) -> bool:
    """True for the concrete resource types of FHIR STU3."""
    return isinstance(name, str) and _is_resource_type(name)


@lru_cache(maxsize=None)
def _is_resource_type(name: str) -> bool:
    if name in _ABSTRACT_TYPES:
        return False
    model = _model(name)
    return model is not None and model.has_resource_base() and model.get_resource_type() == name


@lru_cache(maxsize=None)
def _schema(type_name: str) -> dict[str, _Field]:
    """Element name (JSON key) -> definition, for a resource, data type or backbone element."""
    from fhir_core.utils import get_fhir_type_name, is_list_type, is_primitive_type

    model = _model(type_name)
    fields: dict[str, _Field] = {}
    if model is None:
        return fields
    for info in model.model_fields.values():
        if info.alias == "fhir_comments":
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        # FHIRPrimitiveExtension (the `_x` of a primitive) marks none of its fields as elements
        if not info.alias or not (extra.get("element_property") or type_name == "FHIRPrimitiveExtension"):
            continue
        primitive = is_primitive_type(info)
        fields[info.alias] = _Field(get_fhir_type_name(info, prefix="STU3."), is_list_type(info), primitive,
                                    # a primitive's min 1 is in its metadata; a complex element's makes pydantic require it
                                    bool(extra.get("element_required")) or info.is_required(),
                                    str(extra.get("one_of_many") or ""),
                                    bool(extra.get("one_of_many_required")),
                                    _value_check(_item_type(info.annotation)) if primitive else None)
    return fields


def _item_type(annotation: Any) -> Any:
    """The type of one value of a field: Optional[...] and List[...] taken off."""
    while typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


@lru_cache(maxsize=None)
def _value_check(value_type: Any) -> Callable[[Any], Any]:
    """The library's validator of one value of a primitive type (raises ValidationError)."""
    return TypeAdapter(value_type).validator.validate_python


def _primitive_problem(value: object, spec: _Field) -> str | None:
    """What the library's type for this primitive (its regex, date ranges, base64) says is wrong, or None."""
    if spec.check is None:
        return None
    try:
        spec.check(value)
    except ValidationError as e:
        errors = e.errors()
        return " ".join(str(errors[0].get("msg", "")).split()) if errors else "not a valid " + spec.type
    except (ValueError, TypeError, OverflowError) as e:  # a type's own code must never crash the check
        return f"not a valid {spec.type} ({type(e).__name__})"
    return None


@lru_cache(maxsize=None)
def _element_order(type_name: str) -> dict[str, int]:
    """Element name -> its place among the children of a type in STU3 (the XML order).

    The variants of one choice element share a place: only one may be present. For resources the
    model puts id, meta, implicitRules, language, text, contained, extension, modifierExtension first;
    for data types extension (id is an XML attribute there).
    """
    model = _model(type_name)
    sequence = getattr(model, "elements_sequence", None)
    if sequence is None:
        return {}
    schema = _schema(type_name)
    order: dict[str, int] = {}
    choices: dict[str, int] = {}
    for place, name in enumerate(sequence()):
        spec = schema.get(name)
        order[name] = choices.setdefault(spec.choice, place) if spec is not None and spec.choice else place
    return order


def _misplaced(places: list[int]) -> list[tuple[int, bool, int]]:
    """The fewest elements to move so `places` is in order: (index, before?, index of the element named).

    The elements kept are a longest non-decreasing run (O(n log n)); each other one must come before
    the first kept element that belongs after it, or else after the last kept one that belongs before it.
    """
    if all(a <= b for a, b in zip(places, places[1:])):
        return []
    tails: list[int] = []  # tails[k]: smallest last place of a kept run of length k + 1
    ends: list[int] = []  # ... and the index where that run ends
    previous = [-1] * len(places)
    for i, place in enumerate(places):
        k = bisect.bisect_right(tails, place)
        if k == len(tails):
            tails.append(place)
            ends.append(i)
        else:
            tails[k], ends[k] = place, i
        previous[i] = ends[k - 1] if k else -1
    kept: list[int] = []
    i = ends[-1]
    while i != -1:
        kept.append(i)
        i = previous[i]
    kept.reverse()
    kept_places = [places[i] for i in kept]
    moves: list[tuple[int, bool, int]] = []
    for i, place in enumerate(places):
        j = bisect.bisect_left(kept, i)
        if j < len(kept) and kept[j] == i:
            continue
        after = bisect.bisect_right(kept_places, place, 0, j)  # first kept element before i that belongs after it
        if after < j:
            moves.append((i, True, kept[after]))
        else:  # the last kept element after i that belongs before it
            moves.append((i, False, kept[bisect.bisect_left(kept_places, place, j) - 1]))
    return moves


def _path(root: str, parts: tuple[str | int, ...]) -> str:
    """FHIRPath-like text: keys joined by dots, indexes in brackets; `_x` (a primitive's extensions) is `x`."""
    text = root
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else "." + (part[1:] if part.startswith("_") else part)
    return text


# --- parsing -------------------------------------------------------------------------------------
def parse_fhir(data: bytes, *, source: str = "", structure: bool = True) -> ParsedFhir:
    """Read one FHIR STU3 resource from JSON or XML bytes (told apart by the first non-blank byte).

    `structure=False` skips `check_structure` (the model check) for callers on a hot path; the
    findings then hold only what reading itself found (XML form, unknown resource type).
    """
    prefix = f"{source}: " if source else ""
    if not isinstance(data, (bytes, bytearray)):
        raise FhirParseError(f"{prefix}expected bytes, got {type(data).__name__}")
    data = bytes(data)
    start = (data[3:] if data.startswith(b"\xef\xbb\xbf") else data).lstrip(b" \t\r\n")[:1]
    if start == b"{" or start == b"[":
        resource, findings = _read_json(data, prefix)
        fmt: Literal["json", "xml"] = "json"
    elif start == b"<" or data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 XML starts with its BOM
        resource, findings = _read_xml(data, prefix)
        fmt = "xml"
    elif not start:
        raise FhirParseError(f"{prefix}empty input; expected a FHIR resource in JSON or XML")
    else:
        raise FhirParseError(f"{prefix}neither JSON nor XML (starts with {show(data[:20])}); "
                             "expected a FHIR resource")
    if structure:
        findings.extend(f for f in check_structure(resource) if f not in findings)
    elif not is_resource_type(resource["resourceType"]) and not any(f.rule == UNKNOWN_TYPE.id for f in findings):
        findings.append(_unknown_type(resource["resourceType"], _root(resource["resourceType"])))
    return ParsedFhir(resource, fmt, findings)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _read_json(data: bytes, prefix: str) -> tuple[dict, list[Finding]]:
    duplicated: list[tuple[dict, list[tuple[str, Any]]]] = []

    def keep_last(pairs: list[tuple[str, Any]]) -> dict:
        # dict() keeps the last value as json.loads does; only an object that shrank had a key twice
        obj = dict(pairs)
        if len(obj) != len(pairs):
            duplicated.append((obj, pairs))
        return obj

    try:
        value = json.loads(data.decode("utf-8-sig"), parse_constant=_reject_constant, object_pairs_hook=keep_last)
    except UnicodeDecodeError as e:
        raise FhirParseError(f"{prefix}JSON is not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise FhirParseError(f"{prefix}not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise FhirParseError(f"{prefix}not valid JSON: nested too deep") from None
    except ValueError as e:
        raise FhirParseError(f"{prefix}not valid JSON: {e}") from None
    try:  # deep enough to parse may still be too deep for every walk over it; a lone surrogate no UTF-8 can write
        safe_json.check_decoded(data, value)
    except ValueError as e:
        raise FhirParseError(f"{prefix}not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise FhirParseError(f"{prefix}JSON {type(value).__name__} is not a FHIR resource; expected an object "
                             "with a resourceType")
    if not isinstance(value.get("resourceType"), str) or not value["resourceType"]:
        raise FhirParseError(f"{prefix}JSON object has no resourceType (saw {show(value.get('resourceType'))}); "
                             "not a FHIR resource")
    return value, _duplicate_findings(value, duplicated) if duplicated else []


def _duplicate_findings(resource: dict, duplicated: list[tuple[dict, list[tuple[str, Any]]]]) -> list[Finding]:
    """One finding per key seen twice, located by one walk over the document (made only when there are any)."""
    pending = {id(obj): pairs for obj, pairs in duplicated}  # the objects are alive, so their ids are unique
    root = _root(resource.get("resourceType"))
    findings: list[Finding] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(resource, ())]
    while stack:
        node, parts = stack.pop()
        if isinstance(node, dict):
            pairs = pending.get(id(node))
            if pairs is not None:
                values: dict[str, list[Any]] = {}
                for key, value in pairs:
                    values.setdefault(key, []).append(value)
                findings += [_duplicate_key(key, seen, _path(root, parts + (key,)))
                             for key, seen in values.items() if len(seen) > 1]
            children: list[tuple[Any, tuple[str | int, ...]]] = [(v, parts + (k,)) for k, v in node.items()
                                                                  if isinstance(v, (dict, list))]
        elif isinstance(node, list):
            children = [(v, parts + (i,)) for i, v in enumerate(node) if isinstance(v, (dict, list))]
        else:
            continue
        stack.extend(reversed(children))  # depth first in document order
    return findings


def _xml_parser() -> etree.XMLParser:
    """A parser that never resolves entities, reads a DTD or touches the network."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           dtd_validation=False, remove_comments=True, remove_pis=True)


_DTD_MARKERS = (b"<!DOCTYPE", b"<!ENTITY", "<!DOCTYPE".encode("utf-16-le"), "<!ENTITY".encode("utf-16-le"),
                "<!DOCTYPE".encode("utf-16-be"), "<!ENTITY".encode("utf-16-be"))


def _read_xml(data: bytes, prefix: str) -> tuple[dict, list[Finding]]:
    refused = FhirParseError(f"{prefix}XML DOCTYPE/entities are not allowed in FHIR (XXE and entity expansion "
                             "risk); remove the DOCTYPE and any entity references")
    # Refuse before parsing, so the parser never sees an internal subset at all.
    if any(marker in data for marker in _DTD_MARKERS):
        raise refused
    try:
        root = etree.fromstring(data, _xml_parser())
    except etree.XMLSyntaxError as e:
        if "entity" in str(e).lower():  # e.g. amplification stopped by libxml2, or an undeclared entity
            raise refused from None
        raise FhirParseError(f"{prefix}not well-formed XML: {e}") from None
    except ValueError as e:  # e.g. an encoding declaration lxml cannot honour
        raise FhirParseError(f"{prefix}not readable XML: {e}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise refused
    qname = etree.QName(root)
    if qname.namespace != XML_NAMESPACE:
        raise FhirParseError(f"{prefix}XML root element {root.tag!r} is not in the FHIR namespace {XML_NAMESPACE!r}; "
                             "not a FHIR resource")
    findings: list[Finding] = []
    resource = _XmlReader(findings).resource(root, _root(qname.localname))
    return resource, findings


class _XmlReader:
    """FHIR XML -> FHIR JSON, element by element, guided by the STU3 field definitions."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings

    def resource(self, element: etree._Element, path: str) -> dict:
        rtype = etree.QName(element).localname
        if not is_resource_type(rtype):
            self.findings.append(_unknown_type(rtype, path))
            out: dict = {"resourceType": rtype}
            kept = self._generic(element)
            out.update(kept if isinstance(kept, dict) else {})
            return out
        return {"resourceType": rtype, **self.complex(element, rtype, path)}

    def complex(self, element: etree._Element, type_name: str, path: str) -> dict:
        schema = _schema(type_name)
        out: dict[str, Any] = {}
        self._attributes(element, type_name, path, out)
        self._no_text(element, path)
        counts: dict[str, int] = {}
        primitive_lists: dict[str, tuple[list, list]] = {}
        order = _element_order(type_name)
        placed: list[tuple[int, str, str]] = []  # (place in the STU3 order, name, path) of each known child
        for child in element:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions may stand anywhere
            namespace, name = _split_tag(child.tag)
            spec = schema.get(name)
            if namespace == XHTML_NS and name == "div" and spec is not None and spec.type == "xhtml":
                out["div"] = _xhtml(child)
                placed.append((order.get(name, 0), name, f"{path}.div"))
                continue
            if namespace != XML_NAMESPACE:
                self.findings.append(_xml_form(f"element {child.tag!r} is not in the FHIR namespace",
                                               f"{path}.{name}"))
                continue
            index = counts.get(name, 0)
            counts[name] = index + 1
            child_path = f"{path}.{name}[{index}]" if spec is None or spec.is_list else f"{path}.{name}"
            if spec is None:  # kept, so check_structure reports it as for JSON
                value = self._generic(child)
                if name in out:
                    out[name] = (out[name] if isinstance(out[name], list) else [out[name]]) + [value]
                else:
                    out[name] = value
                continue
            if not spec.is_list and index > 0:
                self.findings.append(_xml_form(f"element {name!r} appears {index + 1} times; it allows at "
                                               "most one (later ones ignored)", f"{path}.{name}"))
                continue
            if name in order:
                placed.append((order[name], name, child_path))
            if spec.is_primitive:
                value, extension = self._primitive(child, spec.type, child_path)
                if spec.is_list:
                    values, extensions = primitive_lists.setdefault(name, ([], []))
                    values.append(value)
                    extensions.append(extension)
                else:
                    if value is not None:
                        out[name] = value
                    if extension is not None:
                        out["_" + name] = extension
                continue
            if spec.type == "Resource":
                value = self._wrapped_resource(child, child_path)
            else:
                value = self.complex(child, spec.type, child_path)
            if spec.is_list:
                out.setdefault(name, []).append(value)
            else:
                out[name] = value
        for name, (values, extensions) in primitive_lists.items():
            if any(v is not None for v in values):
                out[name] = values
            if any(e is not None for e in extensions):
                out["_" + name] = extensions
        for i, before, other in _misplaced([place for place, _, _ in placed]):
            self.findings.append(_out_of_order(placed[i][1], type_name, "before" if before else "after",
                                               placed[other][1], placed[i][2]))
        return out

    def _attributes(self, element: etree._Element, type_name: str, path: str, out: dict) -> None:
        for key, value in element.attrib.items():
            if key == "id" and not is_resource_type(type_name):
                out["id"] = value  # element id; a resource's id is an element
            elif key == "url" and type_name == "Extension":
                out["url"] = value
            elif not key.startswith("{" + _XSI_NS):
                self.findings.append(_xml_form(f"attribute {key!r} (value {show(value)}) is not allowed "
                                               f"on a {type_name} element", path))

    def _no_text(self, element: etree._Element, path: str) -> None:
        texts = [t for t in (element.text, *(child.tail for child in element)) if t and not t.isspace()]
        if texts:
            text = " ".join(t.strip() for t in texts)
            self.findings.append(_xml_form(f"text {show(text)} inside an element; FHIR XML carries values "
                                           "in value attributes", path))

    def _primitive(self, element: etree._Element, type_name: str, path: str) -> tuple[Any, dict | None]:
        extension: dict[str, Any] = {}
        value: Any = None
        for key, raw in element.attrib.items():
            if key == "value":
                value = _typed(raw, type_name)
            elif key == "id":
                extension["id"] = raw
            elif not key.startswith("{" + _XSI_NS):
                self.findings.append(_xml_form(f"attribute {key!r} (value {show(raw)}) is not allowed on a "
                                               f"{type_name} element", path))
        self._no_text(element, path)
        for child in (c for c in element if isinstance(c.tag, str)):
            namespace, name = _split_tag(child.tag)
            if namespace == XML_NAMESPACE and name == "extension":
                extension.setdefault("extension", []).append(
                    self.complex(child, "Extension", f"{path}.extension[{len(extension.get('extension', []))}]"))
            else:
                self.findings.append(_misfit(f"element {name!r} is not allowed in a "
                                             f"{type_name} value (only extension)", f"{path}"))
        if value is None and not extension:
            self.findings.append(_xml_form(f"{type_name} element has neither a value attribute nor an "
                                           "extension", path))
        return value, extension or None

    def _wrapped_resource(self, element: etree._Element, path: str) -> dict:
        """`<contained><Patient>…</Patient></contained>`: the one child element is the resource."""
        self._no_text(element, path)
        children = [c for c in element if isinstance(c.tag, str)]
        for key in element.attrib:
            self.findings.append(_xml_form(f"attribute {key!r} is not allowed here", path))
        if len(children) != 1:
            self.findings.append(_xml_form(f"holds {len(children)} elements; expected exactly one resource",
                                           path))
            return {}
        inner = children[0]
        if etree.QName(inner).namespace != XML_NAMESPACE:
            self.findings.append(_xml_form(f"resource element {inner.tag!r} is not in the FHIR namespace",
                                           path))
        return self.resource(inner, path)

    def _generic(self, element: etree._Element) -> Any:
        """An element the STU3 definitions do not know: keep its shape (value or children) for the report."""
        children = [c for c in element if isinstance(c.tag, str)]
        if not children:
            return element.get("value", "")
        out: dict[str, Any] = {}
        for child in children:
            name = etree.QName(child).localname
            value = self._generic(child)
            if name in out:
                out[name] = (out[name] if isinstance(out[name], list) else [out[name]]) + [value]
            else:
                out[name] = value
        return out


def _split_tag(tag: str) -> tuple[str | None, str]:
    """(namespace, local name) of an lxml tag `{namespace}name` (what etree.QName gives, without building one)."""
    if tag[:1] == "{":
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return None, tag


def _typed(raw: str, type_name: str) -> Any:
    """The JSON value of a primitive's XML text; text that does not fit stays a string for the walk to flag."""
    if type_name == "boolean":
        return {"true": True, "false": False}.get(raw, raw)
    if type_name in _INTEGER_TYPES:
        return int(raw) if _INTEGER.fullmatch(raw) else raw
    if type_name == "decimal" and _DECIMAL.fullmatch(raw):
        if "." not in raw and "e" not in raw.lower():
            return int(raw)
        number = float(raw)  # precision beyond a double is lost; no rule depends on it
        return number if math.isfinite(number) else raw
    return raw


def _xhtml(element: etree._Element) -> str:
    div = copy.deepcopy(element)
    etree.cleanup_namespaces(div)  # drop declarations inherited from the resource (xsi, fhir)
    div.tail = None
    return etree.tostring(div, encoding="unicode")


def _root(rtype: object) -> str:
    """The location of a resource's root: its type name, or `resourceType` when that is no name."""
    return rtype if isinstance(rtype, str) and _KEY.fullmatch(rtype) else "resourceType"


def _unknown_type(rtype: object, location: str) -> Finding:
    return _not_a_resource(f"resourceType {show(rtype)} is not a FHIR STU3 resource type", location)


# --- structure ---------------------------------------------------------------------------------
def check_structure(resource: dict) -> list[Finding]:
    """Judge a FHIR JSON resource against the STU3 model of its resourceType."""
    if not isinstance(resource, dict):
        return [_not_a_resource(f"saw JSON {type(resource).__name__}; expected a resource object", "Resource")]
    rtype = resource.get("resourceType")
    if not is_resource_type(rtype):
        return [_unknown_type(rtype, _root(rtype))]
    walk = _JsonWalk(rtype)
    try:
        walk.resource(resource, ())
    except RecursionError:  # JSON nested deeper than any FHIR resource: report, never crash
        return [_misfit("resource too deeply nested to check against the STU3 model", rtype)]
    return walk.findings


# JSON kinds of the primitives that are not strings
_KINDS: dict[str, tuple[type, ...]] = {"boolean": (bool,), "decimal": (int, float),
                                       **{name: (int,) for name in _INTEGER_TYPES}}


def _kind_fits(value: object, type_name: str) -> bool:
    kinds = _KINDS.get(type_name, (str,))
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


class _JsonWalk:
    """A resource's JSON against the STU3 definitions, element by element."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.findings: list[Finding] = []

    def flag(self, parts: tuple[str | int, ...], message: str,
             make: Callable[[str, str], Finding] = _misfit) -> None:
        self.findings.append(make(message, _path(self.root, parts)))

    def resource(self, node: object, parts: tuple[str | int, ...]) -> None:
        rtype = node.get("resourceType") if isinstance(node, dict) else None
        if not isinstance(node, dict) or not is_resource_type(rtype):
            what = f"resourceType {show(rtype)}" if isinstance(node, dict) else f"JSON {type(node).__name__}"
            self.flag(parts, f"{what} is not a FHIR STU3 resource type", _not_a_resource)
            return
        self.complex(node, str(rtype), parts, is_resource=True)

    def complex(self, node: dict, type_name: str, parts: tuple[str | int, ...], is_resource: bool = False) -> None:
        schema = _schema(type_name)
        for key, value in node.items():
            if is_resource and key == "resourceType" or key == "fhir_comments":
                continue
            here = parts + (key,)
            if key.startswith("_"):
                spec = schema.get(key[1:])
                if spec is None or not spec.is_primitive:
                    self.flag(here, f"{key!r} is not the extension part of a primitive element of {type_name}")
                else:
                    self._values(value, _Field("FHIRPrimitiveExtension", spec.is_list, False), key, here,
                                 nulls=True)
                continue
            spec = schema.get(key)
            if spec is None:
                self.flag(here, f"unknown element {key!r} in {type_name} (saw {show(value)})")
                continue
            self._values(value, spec, key, here, nulls=spec.is_primitive and "_" + key in node)
        self._cardinality(node, type_name, parts)

    def _cardinality(self, node: dict, type_name: str, parts: tuple[str | int, ...]) -> None:
        """Required elements and choice types; pydantic only checks these when everything else is right."""
        required, choices = _constraints(type_name)
        for name in required:
            if name not in node and "_" + name not in node:
                self.flag(parts + (name,), f"{type_name}.{name} is required (min 1) but absent")
        present: dict[str, list[str]] = {}
        schema = _schema(type_name)
        for key in node:
            spec = schema.get(key[1:] if key.startswith("_") else key)
            if spec is not None and spec.choice and key.lstrip("_") not in present.get(spec.choice, []):
                present.setdefault(spec.choice, []).append(key.lstrip("_"))
        for choice, choice_required in choices.items():
            variants = present.get(choice, [])
            if len(variants) > 1 or (choice_required and not variants):
                what = f"saw {', '.join(variants)}" if variants else "none is present"
                how = "exactly one" if choice_required else "at most one"
                self.findings.append(_misfit(f"{type_name}.{choice}[x] takes {how} type; {what}",
                                             _path(self.root, parts)))

    def _values(self, value: object, spec: _Field, key: str, parts: tuple[str | int, ...], nulls: bool) -> None:
        if value is None:
            self.flag(parts, f"{key!r} is null; FHIR JSON leaves absent elements out")
        elif spec.is_list:
            if not isinstance(value, list):
                self.flag(parts, f"{key!r} repeats (0..*) and must be a JSON array; saw {show(value)}")
            elif not value:
                self.flag(parts, f"{key!r} is an empty array; FHIR JSON leaves absent elements out")
            else:
                for i, item in enumerate(value):
                    if item is None and nulls:
                        continue  # aligned with the values or extensions of a primitive array
                    self._value(item, spec, key, parts + (i,))
        elif isinstance(value, list):
            self.flag(parts, f"{key!r} allows at most one value but is an array of {len(value)}")
        else:
            self._value(value, spec, key, parts)

    def _value(self, value: object, spec: _Field, key: str, parts: tuple[str | int, ...]) -> None:
        if value is None:
            self.flag(parts, f"{key!r} holds a null")
        elif spec.type == "Resource":
            self.resource(value, parts)
        elif spec.is_primitive:
            if not _kind_fits(value, spec.type):
                self.flag(parts, f"{spec.type} given as JSON {type(value).__name__} {show(value)}")
            elif isinstance(value, str) and not value.strip():
                self.flag(parts, f"{key!r} is an empty string; FHIR values have content")
            elif (problem := _primitive_problem(value, spec)) is not None:
                self.flag(parts, f"{problem} (saw {show(value)})")
        elif not isinstance(value, dict):
            self.flag(parts, f"{spec.type} must be a JSON object; saw {show(value)}")
        elif not value:
            self.flag(parts, f"{key!r} is an empty object; FHIR elements have a value or children")
        else:
            self.complex(value, spec.type, parts)


@lru_cache(maxsize=None)
def _constraints(type_name: str) -> tuple[tuple[str, ...], dict[str, bool]]:
    """(required elements, choice element -> whether one of its types is required) of a type."""
    schema = _schema(type_name)
    required = tuple(name for name, spec in schema.items() if spec.required)
    choices: dict[str, bool] = {}
    for spec in schema.values():
        if spec.choice:
            choices[spec.choice] = choices.get(spec.choice, False) or spec.choice_required
    return required, choices
