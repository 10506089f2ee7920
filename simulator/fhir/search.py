"""FHIR STU3 search over in-memory resources: one patient's resources plus the shared ones they may refer to.

The simulator's FHIR server narrows the resources to the token's patient and hands them here with the shared
resources (practitioners, organizations, medications …) that references may point at:

    result = search(patient_resources, shared, "Observation", params, lastn=True)

Matches come only from the patient's own resources. Includes, revincludes and chains see the patient's resources
and those shared resources that belong to no other patient (no Patient resource, nothing that refers to another
Patient or carries another BSN), so no search can bring in another patient's data.

Supported (the parameters themselves: `validators.stu3.SEARCH_PARAMS`, STU3's definitions for ~40 types):

- token (code, Coding, CodeableConcept, Identifier, ContactPoint, boolean): ``code``, ``system|code``, ``|code``,
  ``system|``; modifiers ``:not`` (also matches resources without a value) and ``:text`` (starts-with on
  CodeableConcept.text and Coding.display);
- string (plain strings, HumanName and Address parts): case- and accent-insensitive starts-with, ``:exact``,
  ``:contains``;
- date (date, dateTime, instant, Period, Timing) with the prefixes eq ne lt gt le ge sa eb ap; a value of lower
  precision is a range (``2013`` is the whole year) and so is the element it is compared with;
- quantity ``[prefix]number|system|code`` (``number||code`` matches code or unit), number ``[prefix]number``
  (the value's precision makes the range of eq), uri (exact);
- reference: ``Type/id``, ``id`` or an absolute URL, a ``:Type`` modifier, and chains one level deep on any
  parameter of the target type: ``patient.identifier=system|value``, ``subject:Patient.name=…``,
  ``participant.name:exact=…``; a logical reference (Reference.identifier) answers ``.identifier`` chains;
- ``:missing=true|false`` on every parameter; a comma is OR (``\\,`` escapes), a repeated parameter AND;
- ``_include`` and ``_revinclude`` ``=Type:param[:TargetType]`` on every reference parameter (one level,
  ``search.mode = include``); ``Observation/$lastn`` (the newest ``max``, default 1, per code, newest first);
- ``_id``, ``_lastUpdated``, ``_profile``, ``_tag``, ``_security``; ``_sort=param,-param`` on token, string,
  date, number, quantity and uri parameters (a resource without a value sorts last);
- paging: ``_count=N`` (0: only the total) and ``_offset=N``; `SearchResult` says the total and the offsets of
  the next and previous pages (stateless: the server writes them into the links). ``_format`` is ignored.

Anything else (unknown parameter, a modifier the type does not take, ``_include=*``, ``_include:iterate``,
chains of two levels, composite and special parameters, ``_has``, ``_summary``, ``_elements``, a malformed value)
raises `SearchError`, which the server answers with 400 and an OperationOutcome naming the parameter.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator, Sequence

from validators.query import QueryError
from validators.spec import BSN_SYSTEM
from validators.stu3 import (
    ANY,
    IGNORED_SEARCH_PARAMS,
    MODIFIERS,
    RESULT_PARAMS,
    SEARCH_PARAMS,
    SEARCHABLE_TYPES,
    SearchParam,
    search_params,
    target_allowed,
)


class SearchError(QueryError):
    """A malformed or unsupported search; the message names the offending parameter."""


@dataclass
class SearchResult:
    matches: list[dict] = field(default_factory=list)  # this page's matches (every match without _count)
    includes: list[dict] = field(default_factory=list)  # what the page's matches include or are referred by
    total: int | None = None  # the number of matches over all pages (len(matches) when not given)
    offset: int = 0  # the position of this page's first match
    count: int | None = None  # the page size asked with _count; None: no paging

    def __post_init__(self) -> None:
        if self.total is None:
            self.total = len(self.matches)

    @property
    def next_offset(self) -> int | None:
        """Where the next page starts, or None when this page holds the last match."""
        if not self.count or self.offset + len(self.matches) >= (self.total or 0):
            return None
        return self.offset + self.count

    @property
    def previous_offset(self) -> int | None:
        if not self.count or self.offset == 0:
            return None
        return max(0, self.offset - self.count)


# --- escaping and tokens ------------------------------------------------------------------------

_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]+$")


def _split_escaped(text: str, sep: str) -> list[str]:
    """Split on `sep` unless backslash-escaped; escapes stay in the parts."""
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _alternatives(value: str, name: str) -> list[str]:
    """The comma-separated alternatives of a value, unescaped; an empty one is an error."""
    if value == "":
        raise SearchError(f"parameter {name!r} has an empty value")
    parts = [_unescape(a) for a in _split_escaped(value, ",")]
    if any(not a for a in parts):
        raise SearchError(f"parameter {name!r}: empty alternative in {value!r}")
    return parts


@dataclass(frozen=True)
class Token:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code (``system|`` form)

    def __str__(self) -> str:
        if self.system is None:
            return self.code or ""
        return f"{self.system}|{self.code or ''}"


def parse_token(value: str, name: str) -> list[Token]:
    """Comma-separated alternatives of ``code``, ``system|code``, ``|code`` or ``system|``."""
    if value == "":
        raise SearchError(f"parameter {name!r} has an empty value")
    tokens = []
    for alternative in _split_escaped(value, ","):
        parts = _split_escaped(alternative, "|")
        if len(parts) > 2:
            raise SearchError(f"parameter {name!r}: malformed token {alternative!r} (more than one '|')")
        if len(parts) == 1:
            code = _unescape(parts[0])
            if not code:
                raise SearchError(f"parameter {name!r}: empty alternative in {value!r}")
            tokens.append(Token(None, code))
        else:
            system, code = _unescape(parts[0]), _unescape(parts[1])
            if not system and not code:
                raise SearchError(f"parameter {name!r}: malformed token {alternative!r}")
            tokens.append(Token(system, code or None))
    return tokens


# --- element access ----------------------------------------------------------------------------

_STEP = re.compile(r"^(?P<name>[A-Za-z]+)(?P<choice>\[x\])?(?:\((?P<key>[A-Za-z]+)=(?P<value>[^)]*)\))?$")


@lru_cache(maxsize=None)
def _compile_path(path: str) -> tuple[tuple[str, bool, str | None, str | None], ...]:
    steps = []
    for step in path.split("."):
        found = _STEP.match(step)
        if found is None:
            raise ValueError(f"unreadable element path {path!r}")
        steps.append((found["name"], bool(found["choice"]), found["key"], found["value"]))
    return tuple(steps)


def values_at(resource: dict, path: str) -> list[Any]:
    """All values at an element path, lists flattened: dotted names, ``x[x]`` for any choice type
    (``effective[x]``: effectiveDateTime, effectivePeriod …), ``telecom(system=email)`` to filter on a child."""
    current: list[Any] = [resource]
    for name, choice, key, wanted in _compile_path(path):
        following: list[Any] = []
        for item in current:
            if not isinstance(item, dict):
                continue
            if choice:
                size = len(name)
                keys = [k for k in item if len(k) > size and k.startswith(name) and k[size].isupper()]
            elif name in item:
                keys = [name]
            else:
                continue
            for k in keys:
                value = item[k]
                for v in value if isinstance(value, list) else (value,):
                    if key is None or (isinstance(v, dict) and v.get(key) == wanted):
                        following.append(v)
        current = following
    return current


def _values(resource: dict, paths: Iterable[str]) -> list[Any]:
    return [v for path in paths for v in values_at(resource, path)]


# --- token -------------------------------------------------------------------------------------


def _token_matches(element: Any, token: Token) -> bool:
    if isinstance(element, bool):
        element = "true" if element else "false"
    if isinstance(element, str):  # a code (or id, uri): its system is implicit
        return token.code is None or element == token.code
    if not isinstance(element, dict):
        return False
    if "coding" in element or ("text" in element and "system" not in element):  # CodeableConcept
        return any(_token_matches(c, token) for c in element.get("coding", []) if isinstance(c, dict))
    if "value" in element and "code" not in element:  # Identifier, ContactPoint
        system, code = element.get("system"), element.get("value")
    else:  # Coding
        system, code = element.get("system"), element.get("code")
    if token.system is not None and (system or "") != token.system:
        return False
    return token.code is None or code == token.code


def _token_texts(element: Any) -> list[str]:
    """The text a `:text` search looks at: CodeableConcept.text, Coding.display, Identifier.type.text."""
    if not isinstance(element, dict):
        return []
    texts = [element.get("text"), element.get("display")]
    texts += [c.get("display") for c in element.get("coding", []) if isinstance(c, dict)]
    if isinstance(element.get("type"), dict):
        texts.append(element["type"].get("text"))
    return [t for t in texts if isinstance(t, str)]


# --- string ------------------------------------------------------------------------------------

_STRING_PARTS = ("text", "family", "given", "prefix", "suffix", "line", "city", "district", "state", "postalCode",
                 "country")


@lru_cache(maxsize=8192)
def _fold(text: str) -> str:
    """Case- and accent-insensitive form: NFKD without combining marks, case-folded."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _strings(element: Any) -> list[str]:
    """A plain string, or the parts of a HumanName or Address."""
    if isinstance(element, str):
        return [element]
    if not isinstance(element, dict):
        return []
    found: list[str] = []
    for key in _STRING_PARTS:
        value = element.get(key)
        for v in value if isinstance(value, list) else (value,):
            if isinstance(v, str):
                found.append(v)
    return found


def _string_test(alternatives: list[str], modifier: str | None) -> Callable[[Any], bool]:
    if modifier == "exact":
        wanted = set(alternatives)
        return lambda element: any(s in wanted for s in _strings(element))
    folded = [_fold(a) for a in alternatives]
    if modifier == "contains":
        return lambda element: any(f in _fold(s) for s in _strings(element) for f in folded)
    return lambda element: any(_fold(s).startswith(f) for s in _strings(element) for f in folded)


# --- date --------------------------------------------------------------------------------------

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
                   r"(Z|[+-]\d{2}:\d{2})?)?)?)?$")
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_INF = float("inf")


@lru_cache(maxsize=16384)
def date_range(text: str) -> tuple[float, float] | None:
    """[start, end) in POSIX seconds of a FHIR date/dateTime/instant, by its precision; None if unreadable.
    Without a timezone the time is taken as UTC."""
    found = _DATE.match(text.strip())
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    if zone is None or zone == "Z":
        tz = timezone.utc
    else:
        sign = -1 if zone[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        if month is None:
            start, end = datetime(int(year), 1, 1, tzinfo=tz), datetime(int(year) + 1, 1, 1, tzinfo=tz)
        elif day is None:
            y, m = int(year), int(month)
            start = datetime(y, m, 1, tzinfo=tz)
            end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=tz)
        else:
            start = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                             tzinfo=tz)
            if hour is None:
                end = start + timedelta(days=1)
            elif second is None:
                end = start + timedelta(minutes=1)
            elif fraction is None:
                end = start + timedelta(seconds=1)
            else:
                step = 10.0 ** -(len(fraction) - 1)
                begin = start.timestamp() + float(fraction)
                return begin, begin + step
    except ValueError:  # month 13, day 31 in April …
        return None
    return start.timestamp(), end.timestamp()


def _target_ranges(element: Any) -> list[tuple[float, float]]:
    """The ranges an element covers: a date(Time)/instant, a Period (open ends unbounded) or a Timing."""
    if isinstance(element, str):
        found = date_range(element)
        return [found] if found else []
    if not isinstance(element, dict):
        return []
    if "start" in element or "end" in element:  # Period
        start = date_range(element["start"]) if isinstance(element.get("start"), str) else None
        end = date_range(element["end"]) if isinstance(element.get("end"), str) else None
        return [(start[0] if start else -_INF, end[1] if end else _INF)]
    ranges: list[tuple[float, float]] = []
    if "event" in element or "repeat" in element:  # Timing
        for event in element.get("event", []) or []:
            ranges += _target_ranges(event)
        repeat = element.get("repeat")
        if isinstance(repeat, dict) and isinstance(repeat.get("boundsPeriod"), dict):
            ranges += _target_ranges(repeat["boundsPeriod"])
    return ranges


def _split_prefix(text: str) -> tuple[str, str]:
    if len(text) > 2 and text[:2] in _PREFIXES:
        return text[:2], text[2:]
    return "eq", text


def _date_test(alternatives: list[str], name: str) -> Callable[[Any], bool]:
    tests: list[Callable[[float, float], bool]] = []
    for alternative in alternatives:
        prefix, text = _split_prefix(alternative)
        # a `+` of a timezone arrives as a space when a client form-encoded the URL
        found = date_range(re.sub(r" (\d{2}:\d{2})$", r"+\1", text))
        if found is None:
            raise SearchError(f"parameter {name!r}: {alternative!r} is not a [prefix]date (e.g. ge2020-01-01, "
                              "lt2021-03-04T10:00:00+01:00)")
        tests.append(_date_comparison(prefix, *found))

    def test(element: Any) -> bool:
        return any(t(lo, hi) for lo, hi in _target_ranges(element) for t in tests)
    return test


def _date_comparison(prefix: str, low: float, high: float) -> Callable[[float, float], bool]:
    """STU3 §3.1.1.4.2 on ranges: the search value [low, high) against the element's [lo, hi)."""
    def eq(lo: float, hi: float) -> bool:
        return low <= lo and hi <= high

    if prefix == "eq":
        return eq
    if prefix == "ne":
        return lambda lo, hi: not eq(lo, hi)
    if prefix == "gt":
        return lambda lo, hi: hi > high
    if prefix == "lt":
        return lambda lo, hi: lo < low
    if prefix == "ge":
        return lambda lo, hi: hi > high or eq(lo, hi)
    if prefix == "le":
        return lambda lo, hi: lo < low or eq(lo, hi)
    if prefix == "sa":
        return lambda lo, hi: lo >= high
    if prefix == "eb":
        return lambda lo, hi: hi <= low
    # ap: overlaps the value widened by 10 % of its distance from now
    margin = abs(datetime.now(timezone.utc).timestamp() - low) * 0.1
    return lambda lo, hi: lo < high + margin and hi > low - margin


# --- number and quantity -----------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _number_comparison(prefix: str, text: str, name: str) -> Callable[[Decimal], bool]:
    if not _NUMBER.match(text):
        raise SearchError(f"parameter {name!r}: {text!r} is not a number")
    number = Decimal(text)
    exponent = number.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1) if isinstance(exponent, int) else Decimal(0)
    low, high = number - half, number + half  # the value's precision makes the range of eq
    if prefix in ("eq", "ne"):
        inside: Callable[[Decimal], bool] = lambda v: low <= v < high  # noqa: E731
        return inside if prefix == "eq" else (lambda v: not inside(v))
    if prefix in ("gt", "sa"):
        return lambda v: v > number
    if prefix in ("lt", "eb"):
        return lambda v: v < number
    if prefix == "ge":
        return lambda v: v >= number
    if prefix == "le":
        return lambda v: v <= number
    margin = abs(number) * Decimal("0.1")  # ap
    return lambda v: abs(v - number) <= margin


def _number_test(alternatives: list[str], name: str) -> Callable[[Any], bool]:
    tests = [_number_comparison(*_split_prefix(a), name) for a in alternatives]

    def test(element: Any) -> bool:
        value = _decimal(element)
        return value is not None and any(t(value) for t in tests)
    return test


def _quantity_test(value: str, name: str) -> Callable[[Any], bool]:
    tests: list[tuple[Callable[[Decimal], bool], str | None, str | None]] = []
    if value == "":
        raise SearchError(f"parameter {name!r} has an empty value")
    for alternative in _split_escaped(value, ","):
        parts = [_unescape(p) for p in _split_escaped(alternative, "|")]
        if len(parts) not in (1, 3):
            raise SearchError(f"parameter {name!r}: expected [prefix]number or [prefix]number|system|code, "
                              f"got {alternative!r}")
        prefix, number = _split_prefix(parts[0])
        system, code = (parts[1] or None, parts[2] or None) if len(parts) == 3 else (None, None)
        tests.append((_number_comparison(prefix, number, name), system, code))

    def test(element: Any) -> bool:
        if not isinstance(element, dict):
            return False
        amount = _decimal(element.get("value"))
        if amount is None:
            return False
        for compare, system, code in tests:
            if system is not None and (element.get("system") != system or element.get("code") != code):
                continue
            if system is None and code is not None and code not in (element.get("code"), element.get("unit")):
                continue
            if compare(amount):
                return True
        return False
    return test


# --- references and the patient's scope --------------------------------------------------------


def reference_key(reference: Any) -> tuple[str, str] | None:
    """(type, id) of a literal reference: ``Type/id``, an absolute URL, optionally with _history."""
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str) or ref.startswith("#"):
        return None
    parts = ref.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or not _TYPE_NAME.match(parts[-2]):
        return None
    return parts[-2], parts[-1]


def _walk_references(node: Any) -> Iterator[dict]:
    """Every Reference-like object (with `reference` or `identifier`) inside a resource, contained ones too."""
    if isinstance(node, dict):
        if "reference" in node or "identifier" in node:
            yield node
        for value in node.values():
            if isinstance(value, (dict, list)):
                yield from _walk_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_references(item)


class _Scope:
    """What one search may see: the patient's own resources, and the shared resources of no other patient.
    The indexes are built on first use: a search without includes, revincludes or chains needs none."""

    def __init__(self, own: Sequence[dict], shared: Sequence[dict]):
        self.own = own
        self._shared = shared
        self._indexed = False
        self._own_keys: dict[tuple[str, str], dict] = {}
        self._shared_keys: dict[tuple[str, str], dict] = {}
        self._patient_ids: set[str] = set()
        self._bsns: set[str] = set()
        self._verdicts: dict[tuple[str, str], bool] = {}

    def _index(self) -> None:
        if self._indexed:
            return
        self._indexed = True
        for resources, keys in ((self.own, self._own_keys), (self._shared, self._shared_keys)):
            for resource in resources:
                keys.setdefault((resource.get("resourceType"), resource.get("id")), resource)  # type: ignore[arg-type]
        for (resource_type, resource_id), resource in self._own_keys.items():
            if resource_type == "Patient":
                self._patient_ids.add(resource_id)
                self._bsns.update(i.get("value") for i in resource.get("identifier", []) or []
                                  if isinstance(i, dict) and i.get("system") == BSN_SYSTEM)

    def get(self, key: tuple[str, str] | None) -> dict | None:
        """The resource with this (type, id) if this patient may see it."""
        if key is None:
            return None
        self._index()
        resource = self._own_keys.get(key)
        if resource is None:
            resource = self._shared_keys.get(key)
            if resource is None or not self._of_no_other_patient(key, resource):
                return None
        return resource

    def candidates(self, resource_type: str) -> Iterator[dict]:
        """The visible resources of a type (own first), for _revinclude."""
        self._index()
        for key, resource in self._own_keys.items():
            if key[0] == resource_type:
                yield resource
        for key, resource in self._shared_keys.items():
            if key[0] == resource_type and key not in self._own_keys and self._of_no_other_patient(key, resource):
                yield resource

    def _of_no_other_patient(self, key: tuple[str, str], resource: dict) -> bool:
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = key[0] != "Patient" and not any(self._names_other_patient(r)
                                                      for r in _walk_references(resource))
            self._verdicts[key] = verdict
        return verdict

    def _names_other_patient(self, reference: dict) -> bool:
        key = reference_key(reference)
        if key is not None and key[0] == "Patient" and key[1] not in self._patient_ids:
            return True
        identifier = reference.get("identifier")
        if isinstance(identifier, dict):
            return identifier.get("system") == BSN_SYSTEM and identifier.get("value") not in self._bsns
        return False


def visible(own: Sequence[dict], shared: Sequence[dict], resource_type: str, resource_id: str) -> dict | None:
    """The resource of this type and id that the patient of `own` may see (own, or shared of no other patient)."""
    return _Scope(own, shared).get((resource_type, resource_id))


def _references(resource: dict, param: SearchParam) -> Iterator[dict]:
    for path in param.paths:
        for value in values_at(resource, path):
            if isinstance(value, dict):
                yield value


def _reference_test(alternatives: list[str], param: SearchParam, type_modifier: str | None
                    ) -> Callable[[Any], bool]:
    wanted: list[tuple[str | None, str]] = []
    for alternative in alternatives:
        parts = alternative.rstrip("/").split("/")
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        if type_modifier is not None:
            if len(parts) > 1 and parts[-2] != type_modifier:
                continue  # `subject:Patient=Group/1` can match nothing
            wanted.append((type_modifier, parts[-1]))
        else:
            wanted.append((parts[-2] if len(parts) > 1 else None, parts[-1]))

    def test(element: Any) -> bool:
        key = reference_key(element)
        if key is None or not target_allowed(key[0], param):
            return False
        return any(key[1] == rid and (rtype is None or rtype == key[0]) for rtype, rid in wanted)
    return test


# --- criteria ----------------------------------------------------------------------------------


@dataclass
class _Criterion:
    """One search parameter of the request: a test on the elements at the parameter's paths."""

    name: str
    param: SearchParam
    test: Callable[[Any], bool] | None = None  # on one element value
    negate: bool = False  # :not
    missing: bool | None = None  # :missing=true/false
    chain: _Chain | None = None

    def matches(self, resource: dict, scope: _Scope) -> bool:
        if self.chain is not None:
            return self.chain.matches(resource, scope)
        if self.missing is not None:
            return (not _values(resource, self.param.paths)) == self.missing
        test = self.test
        assert test is not None
        hit = any(test(v) for path in self.param.paths for v in values_at(resource, path))
        return not hit if self.negate else hit


@dataclass
class _Chain:
    """`ref[:Type].param=value`: a reference whose (visible) target matches the chained parameter."""

    param: SearchParam
    type_modifier: str | None
    inner: dict[str, _Criterion]  # target type -> the chained parameter on that type

    def matches(self, resource: dict, scope: _Scope) -> bool:
        for reference in _references(resource, self.param):
            key = reference_key(reference)
            if key is not None:
                inner = self.inner.get(key[0])
                if inner is not None and target_allowed(key[0], self.param):
                    target = scope.get(key)
                    if target is not None and inner.matches(target, scope):
                        return True
            elif isinstance(reference.get("identifier"), dict):  # a logical reference answers `.identifier`
                for inner in self.inner.values():
                    if inner.param.name == "identifier" and inner.test is not None and inner.missing is None:
                        if inner.test(reference["identifier"]) != inner.negate:
                            return True
        return False


def _unknown(resource_type: str, name: str) -> SearchError:
    known = ", ".join(sorted(search_params(resource_type)))
    also = ", ".join(sorted(RESULT_PARAMS - {"max"}))
    return SearchError(f"unknown search parameter {name!r} for {resource_type} (supported: {known}; and {also})")


def _criterion(resource_type: str, name: str, value: str) -> _Criterion:
    base, dot, rest = name.partition(".")
    code, colon, modifier = base.partition(":")
    param = search_params(resource_type).get(code)
    if param is None:
        raise _unknown(resource_type, name)
    if dot:
        return _chain(resource_type, name, value, param, modifier or None, rest)
    type_modifier = None
    if colon:
        if param.type == "reference" and _TYPE_NAME.match(modifier):
            if not target_allowed(modifier, param):
                raise SearchError(f"parameter {name!r}: {resource_type}.{code} cannot refer to {modifier}")
            type_modifier = modifier
        elif modifier not in MODIFIERS[param.type]:
            raise SearchError(f"parameter {name!r}: modifier ':{modifier}' is not supported on {param.type} "
                              f"parameters (supported: {', '.join(sorted(MODIFIERS[param.type]))})")
    if modifier == "missing":
        if value not in ("true", "false"):
            raise SearchError(f"parameter {name!r} must be true or false, got {value!r}")
        return _Criterion(name, param, missing=value == "true")
    if param.type == "token":
        if modifier == "text":
            folded = [_fold(a) for a in _alternatives(value, name)]
            return _Criterion(name, param, lambda el: any(_fold(t).startswith(f) for t in _token_texts(el)
                                                          for f in folded))
        tokens = parse_token(value, name)
        return _Criterion(name, param, lambda el: any(_token_matches(el, t) for t in tokens),
                          negate=modifier == "not")
    if param.type == "string":
        return _Criterion(name, param, _string_test(_alternatives(value, name), modifier or None))
    if param.type == "date":
        return _Criterion(name, param, _date_test(_alternatives(value, name), name))
    if param.type == "number":
        return _Criterion(name, param, _number_test(_alternatives(value, name), name))
    if param.type == "quantity":
        return _Criterion(name, param, _quantity_test(value, name))
    if param.type == "uri":
        uris = set(_alternatives(value, name))
        return _Criterion(name, param, lambda el: isinstance(el, str) and el in uris)
    if value == "" or any(not a for a in _split_escaped(value, ",")):
        raise SearchError(f"parameter {name!r} has an empty reference")
    return _Criterion(name, param, _reference_test(_alternatives(value, name), param, type_modifier))


def _chain(resource_type: str, name: str, value: str, param: SearchParam, type_modifier: str | None,
           chained_name: str) -> _Criterion:
    if param.type != "reference":
        raise SearchError(f"parameter {name!r}: {param.name} is a {param.type} parameter; only reference "
                          "parameters can be chained")
    if type_modifier is not None and (not _TYPE_NAME.match(type_modifier) or not target_allowed(type_modifier, param)):
        raise SearchError(f"parameter {name!r}: {resource_type}.{param.name} cannot refer to {type_modifier!r}")
    if type_modifier is not None:
        types: Iterable[str] = (type_modifier,)
    else:
        types = SEARCHABLE_TYPES if param.targets == ANY else param.targets
    if "." in chained_name:
        raise SearchError(f"parameter {name!r}: only one level of chaining is supported")
    code = chained_name.split(":", 1)[0]
    inner: dict[str, _Criterion] = {}
    for target_type in sorted(types):
        if code in search_params(target_type):
            try:
                inner[target_type] = _criterion(target_type, chained_name, value)
            except SearchError as exc:
                raise SearchError(f"parameter {name!r} ({target_type}.{code}): {exc}") from None
    if not inner:
        where = type_modifier or " or ".join(t for t in param.targets if t != "*") or "any type"
        raise SearchError(f"parameter {name!r}: {where} has no search parameter {code!r} to chain on")
    return _Criterion(name, param, chain=_Chain(param, type_modifier, inner))


# --- _include, _revinclude, _sort, numbers -----------------------------------------------------


@dataclass(frozen=True)
class _Include:
    source_type: str
    param: str
    target_type: str | None
    ref_param: SearchParam


def _parse_include(name: str, value: str, resource_type: str) -> _Include:
    if value == "*":
        raise SearchError(f"parameter {name!r}: '*' is not supported; name the reference parameter "
                          f"({resource_type}:param)")
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise SearchError(f"parameter {name!r}: expected 'Type:param[:TargetType]', got {value!r}")
    source_type, code = parts[0], parts[1]
    target_type = parts[2] if len(parts) == 3 else None
    if name == "_include" and source_type != resource_type:
        raise SearchError(f"parameter {name!r}: {value!r} does not start with the searched type {resource_type}")
    ref_param = search_params(source_type).get(code)
    if ref_param is None or ref_param.type != "reference":
        raise SearchError(f"parameter {name!r}: {source_type} has no reference search parameter {code!r}")
    if target_type is not None and not target_allowed(target_type, ref_param):
        raise SearchError(f"parameter {name!r}: {source_type}:{code} cannot refer to {target_type}")
    if name == "_revinclude" and not target_allowed(target_type or resource_type, ref_param):
        raise SearchError(f"parameter {name!r}: {source_type}:{code} cannot refer to {resource_type}")
    return _Include(source_type, code, target_type, ref_param)


def _non_negative(name: str, value: str, *, allow_zero: bool = True) -> int:
    # ASCII digits only and a bounded length: str.isdigit() also takes '²' (which int() cannot read) and int()
    # refuses more than 4,300 digits; nothing is served beyond a 12-digit count or offset anyway
    if not (value.isascii() and value.isdigit() and len(value) <= 12) or (int(value) == 0 and not allow_zero):
        raise SearchError(f"parameter {name!r} must be a {'non-negative' if allow_zero else 'positive'} "
                          f"integer, got {value!r}")
    return int(value)


_SORTABLE = ("token", "string", "date", "number", "quantity", "uri")


def _sort_keys(resource_type: str, value: str) -> list[tuple[SearchParam, bool]]:
    keys = []
    for part in value.split(","):
        descending = part.startswith("-")
        code = part[1:] if descending else part
        param = search_params(resource_type).get(code)
        if param is None:
            raise SearchError(f"parameter '_sort': {resource_type} has no search parameter {code!r}")
        if param.type not in _SORTABLE:
            raise SearchError(f"parameter '_sort': sorting on the {param.type} parameter {code!r} is not supported")
        keys.append((param, descending))
    return keys


def _sort_value(resource: dict, param: SearchParam, descending: bool) -> Any:
    values = _values(resource, param.paths)
    if param.type == "date":
        ranges = [r for v in values for r in _target_ranges(v)]
        return (max(hi for _, hi in ranges) if descending else min(lo for lo, _ in ranges)) if ranges else None
    if param.type in ("number", "quantity"):
        numbers = [n for n in (_decimal(v.get("value") if isinstance(v, dict) else v) for v in values)
                   if n is not None]
        return (max(numbers) if descending else min(numbers)) if numbers else None
    texts: list[str] = []
    for v in values:
        if param.type == "string":
            texts += [_fold(s) for s in _strings(v)]
        elif isinstance(v, (str, bool)):
            texts.append(str(v).lower() if isinstance(v, bool) else v)
        elif isinstance(v, dict):
            codings = v.get("coding") if isinstance(v.get("coding"), list) else [v]
            texts += [str(c.get("code") or c.get("value")) for c in codings
                      if isinstance(c, dict) and (c.get("code") or c.get("value"))]
    return (max(texts) if descending else min(texts)) if texts else None


def _sorted(matches: list[dict], keys: list[tuple[SearchParam, bool]]) -> list[dict]:
    ordered = list(matches)
    for param, descending in reversed(keys):  # stable sorts, least significant key first
        valued = [(_sort_value(r, param, descending), r) for r in ordered]
        present = [pair for pair in valued if pair[0] is not None]
        present.sort(key=lambda pair: pair[0], reverse=descending)
        ordered = [r for _, r in present] + [r for value, r in valued if value is None]
    return ordered


# --- $lastn ------------------------------------------------------------------------------------


def _instant(value: Any) -> datetime | None:
    """A FHIR date/dateTime/instant (possibly partial) as an aware datetime; None if absent."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    for fmt_len, pad in ((4, "-01-01"), (7, "-01"), (10, "")):
        if len(text) == fmt_len:
            text = text + pad
            break
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def effective_time(observation: dict) -> datetime | None:
    period = observation.get("effectivePeriod") or {}
    for value in (observation.get("effectiveDateTime"), period.get("start"), observation.get("issued")):
        moment = _instant(value)
        if moment is not None:
            return moment
    return None


def _code_key(observation: dict) -> str:
    code = observation.get("code") or {}
    codings = code.get("coding") or []
    if codings and isinstance(codings[0], dict):
        return f"{codings[0].get('system', '')}|{codings[0].get('code', '')}"
    return "text:" + str(code.get("text", ""))


_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


def _lastn(matches: list[dict], max_per_code: int) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for observation in matches:
        groups.setdefault(_code_key(observation), []).append(observation)
    kept: list[dict] = []
    for members in groups.values():
        members.sort(key=lambda o: effective_time(o) or _OLDEST, reverse=True)
        kept.extend(members[:max_per_code])
    kept.sort(key=lambda o: effective_time(o) or _OLDEST, reverse=True)
    return kept


# --- the search itself -------------------------------------------------------------------------


@dataclass
class _Request:
    criteria: list[_Criterion] = field(default_factory=list)
    includes: list[_Include] = field(default_factory=list)
    revincludes: list[_Include] = field(default_factory=list)
    sort: list[tuple[SearchParam, bool]] = field(default_factory=list)
    max_per_code: int = 1
    count: int | None = None
    offset: int = 0


def _read_params(resource_type: str, params: Sequence[tuple[str, str]], lastn: bool) -> _Request:
    asked = _Request()
    for name, value in params:
        if name in IGNORED_SEARCH_PARAMS:
            continue
        if name == "_count":
            asked.count = _non_negative(name, value)
        elif name == "_offset":
            asked.offset = _non_negative(name, value)
        elif name == "max":
            if not lastn:
                raise SearchError("parameter 'max' is only allowed with $lastn")
            asked.max_per_code = _non_negative(name, value, allow_zero=False)
        elif name in ("_include", "_revinclude"):
            (asked.includes if name == "_include" else asked.revincludes).append(
                _parse_include(name, value, resource_type))
        elif name.startswith(("_include:", "_revinclude:")):
            raise SearchError(f"parameter {name!r}: only one level of includes is supported (no :iterate)")
        elif name == "_sort":
            asked.sort += _sort_keys(resource_type, value)
        else:
            asked.criteria.append(_criterion(resource_type, name, value))
    return asked


def search(resources: Sequence[dict], shared: Sequence[dict], resource_type: str,
           params: Sequence[tuple[str, str]], *, lastn: bool = False) -> SearchResult:
    """Search `resources` (one patient's) for `resource_type`; includes resolve in resources + shared."""
    if resource_type not in SEARCHABLE_TYPES:
        if resource_type in SEARCH_PARAMS:
            raise SearchError(f"searching {resource_type!r} is not supported (read it: {resource_type}/<id>)")
        raise SearchError(f"searching {resource_type!r} is not supported")
    if lastn and resource_type != "Observation":
        raise SearchError(f"$lastn is only defined for Observation, not {resource_type}")
    asked = _read_params(resource_type, params, lastn)

    scope = _Scope(resources, shared)
    matches = [r for r in resources
               if r.get("resourceType") == resource_type and all(c.matches(r, scope) for c in asked.criteria)]
    if lastn:
        matches = _lastn(matches, asked.max_per_code)
    if asked.sort:
        matches = _sorted(matches, asked.sort)
    total = len(matches)
    end = None if asked.count is None else asked.offset + asked.count
    page = matches[asked.offset:end]

    seen = {(m.get("resourceType"), m.get("id")) for m in page}
    included: list[dict] = []

    def add(resource: dict | None) -> None:
        if resource is None:
            return
        key = (resource.get("resourceType"), resource.get("id"))
        if key not in seen:
            seen.add(key)
            included.append(resource)

    for inc in asked.includes:
        for match in page:
            for reference in _references(match, inc.ref_param):
                key = reference_key(reference)
                if key is None or (inc.target_type is not None and key[0] != inc.target_type):
                    continue
                if target_allowed(key[0], inc.ref_param):
                    add(scope.get(key))
    if asked.revincludes:
        page_keys = {(m.get("resourceType"), m.get("id")) for m in page}
        for rev in asked.revincludes:
            for candidate in scope.candidates(rev.source_type):
                for reference in _references(candidate, rev.ref_param):
                    key = reference_key(reference)
                    if key is not None and key in page_keys and rev.target_type in (None, key[0]):
                        add(candidate)
                        break
    return SearchResult(matches=page, includes=included, total=total, offset=asked.offset, count=asked.count)


def read(resources: Sequence[dict], resource_type: str, resource_id: str) -> dict | None:
    """The resource of this type and id, or None."""
    for resource in resources:
        if resource.get("resourceType") == resource_type and resource.get("id") == resource_id:
            return resource
    return None
