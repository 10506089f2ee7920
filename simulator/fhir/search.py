"""FHIR STU3 search semantics over in-memory resources (the subset SPEC §6 needs).

The simulator's FHIR server narrows the resources to the token's patient and hands them here with
the shared resources (practitioners, organizations) that references may point at:

    result = search(patient_resources, shared, "Observation", params, lastn=True)

Supported:

- token parameters (``code``, ``category``, ``class``, ``status``, ``identifier``, ``_id`` …) in the
  forms ``code``, ``system|code``, ``|code`` and ``system|``; a comma is OR, a repeated parameter AND;
  ``\\,`` ``\\|`` ``\\\\`` escape;
- reference parameters (``patient``, ``subject``, ``beneficiary`` …) with ``Type/id``, ``id`` or an
  absolute URL, and chained on the target's identifier: ``patient.identifier=system|value``;
- ``_include=Type:param[:TargetType]`` and ``_revinclude=Type:param[:TargetType]`` (one level);
- ``Observation/$lastn``: the most recent ``max`` (default 1) observations per code;
- ``_count`` is validated and otherwise ignored (no paging: every match is returned), ``_format``
  is ignored.

Anything else (unknown parameter, modifier, include, malformed token) raises `SearchError`, which the
server answers with 400 and an OperationOutcome carrying the message.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Sequence

from validators.query import QueryError
from validators.stu3 import (
    IGNORED_SEARCH_PARAMS,
    REF_PARAMS,
    SEARCHABLE_TYPES,
    RefParam,
    target_allowed,
    token_params,
)


class SearchError(QueryError):
    """A malformed or unsupported search; the message names the offending parameter."""


@dataclass
class SearchResult:
    matches: list[dict] = field(default_factory=list)
    includes: list[dict] = field(default_factory=list)


# --- tokens ----------------------------------------------------------------------------------

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


# --- element access ---------------------------------------------------------------------------


def values_at(resource: dict, path: str) -> list[Any]:
    """All values at a dotted element path, lists flattened."""
    current: list[Any] = [resource]
    for step in path.split("."):
        following: list[Any] = []
        for item in current:
            if not isinstance(item, dict) or step not in item:
                continue
            value = item[step]
            following.extend(value if isinstance(value, list) else [value])
        current = following
    return current


def _token_matches(element: Any, token: Token) -> bool:
    if isinstance(element, bool):
        element = "true" if element else "false"
    if isinstance(element, str):  # a code: its system is implicit
        return token.code is None or element == token.code
    if not isinstance(element, dict):
        return False
    if "coding" in element or ("text" in element and "system" not in element):  # CodeableConcept
        return any(_token_matches(c, token) for c in element.get("coding", []) if isinstance(c, dict))
    if "value" in element and "code" not in element:  # Identifier
        system, code = element.get("system"), element.get("value")
    else:  # Coding
        system, code = element.get("system"), element.get("code")
    if token.system is not None and (system or "") != token.system:
        return False
    return token.code is None or code == token.code


# --- references -------------------------------------------------------------------------------


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


class _Index:
    def __init__(self, resources: Iterable[dict]):
        self._by_key: dict[tuple[str, str], dict] = {}
        for resource in resources:
            key = (resource.get("resourceType"), resource.get("id"))
            self._by_key.setdefault(key, resource)  # type: ignore[arg-type]

    def get(self, key: tuple[str, str] | None) -> dict | None:
        return None if key is None else self._by_key.get(key)


def _references(resource: dict, ref_param: RefParam) -> Iterator[dict]:
    for path in ref_param.paths:
        for value in values_at(resource, path):
            if isinstance(value, dict):
                yield value


def _reference_value_matches(reference: dict, value: str, ref_param: RefParam) -> bool:
    key = reference_key(reference)
    if key is None or not target_allowed(key[0], ref_param):
        return False
    wanted = value.rstrip("/").split("/")
    if len(wanted) == 1:
        return key[1] == wanted[0]
    return (wanted[-2], wanted[-1]) == key


def _chain_matches(reference: dict, tokens: list[Token], ref_param: RefParam, index: _Index) -> bool:
    key = reference_key(reference)
    if key is not None and not target_allowed(key[0], ref_param):
        return False
    identifiers: list[Any] = []
    if isinstance(reference.get("identifier"), dict):  # logical reference
        identifiers.append(reference["identifier"])
    target = index.get(key)
    if target is not None:
        identifiers.extend(values_at(target, "identifier"))
    return any(_token_matches(i, t) for i in identifiers for t in tokens)


# --- criteria ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Criterion:
    name: str
    value: str
    kind: str  # "token", "reference", "chain"
    paths: tuple[str, ...] = ()
    tokens: tuple[Token, ...] = ()
    ref_param: RefParam | None = None

    def matches(self, resource: dict, index: _Index) -> bool:
        if self.kind == "token":
            return any(_token_matches(el, t) for p in self.paths for el in values_at(resource, p)
                       for t in self.tokens)
        assert self.ref_param is not None
        refs = list(_references(resource, self.ref_param))
        if self.kind == "chain":
            return any(_chain_matches(r, list(self.tokens), self.ref_param, index) for r in refs)
        alternatives = [_unescape(a) for a in _split_escaped(self.value, ",")]
        return any(_reference_value_matches(r, a, self.ref_param) for r in refs for a in alternatives)


def _criterion(resource_type: str, name: str, value: str) -> _Criterion:
    if ":" in name:
        raise SearchError(f"parameter {name!r}: modifiers are not supported")
    tokens = token_params(resource_type)
    refs = REF_PARAMS.get(resource_type, {})
    if name in tokens:
        return _Criterion(name, value, "token", paths=tokens[name], tokens=tuple(parse_token(value, name)))
    if name in refs:
        if value == "" or any(not a for a in _split_escaped(value, ",")):
            raise SearchError(f"parameter {name!r} has an empty reference")
        return _Criterion(name, value, "reference", ref_param=refs[name])
    base, dot, chained = name.partition(".")
    if dot and base in refs:
        if chained != "identifier":
            raise SearchError(f"parameter {name!r}: only chaining on '.identifier' is supported")
        return _Criterion(name, value, "chain", tokens=tuple(parse_token(value, name)), ref_param=refs[base])
    known = sorted(set(tokens) | set(refs) | {f"{r}.identifier" for r in refs})
    raise SearchError(f"unknown search parameter {name!r} for {resource_type} (supported: {', '.join(known)})")


@dataclass(frozen=True)
class _Include:
    source_type: str
    param: str
    target_type: str | None
    ref_param: RefParam


def _parse_include(name: str, value: str, resource_type: str) -> _Include:
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise SearchError(f"parameter {name!r}: expected 'Type:param[:TargetType]', got {value!r}")
    source_type, param = parts[0], parts[1]
    target_type = parts[2] if len(parts) == 3 else None
    if name == "_include" and source_type != resource_type:
        raise SearchError(f"parameter {name!r}: {value!r} does not start with the searched type {resource_type}")
    ref_param = REF_PARAMS.get(source_type, {}).get(param)
    if ref_param is None:
        raise SearchError(f"parameter {name!r}: {source_type} has no reference search parameter {param!r}")
    if target_type is not None and not target_allowed(target_type, ref_param):
        raise SearchError(f"parameter {name!r}: {source_type}:{param} cannot refer to {target_type}")
    if name == "_revinclude" and not target_allowed(target_type or resource_type, ref_param):
        raise SearchError(f"parameter {name!r}: {source_type}:{param} cannot refer to {resource_type}")
    return _Include(source_type, param, target_type, ref_param)


def _positive_int(name: str, value: str, *, allow_zero: bool = False) -> int:
    if not value.isdigit() or (int(value) == 0 and not allow_zero):
        raise SearchError(f"parameter {name!r} must be a {'non-negative' if allow_zero else 'positive'} "
                          f"integer, got {value!r}")
    return int(value)


# --- $lastn -----------------------------------------------------------------------------------


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


# --- the search itself ------------------------------------------------------------------------


def search(resources: Sequence[dict], shared: Sequence[dict], resource_type: str,
           params: Sequence[tuple[str, str]], *, lastn: bool = False) -> SearchResult:
    """Search `resources` (one patient's) for `resource_type`; includes resolve in resources + shared."""
    if resource_type not in SEARCHABLE_TYPES:
        raise SearchError(f"searching {resource_type!r} is not supported")
    if lastn and resource_type != "Observation":
        raise SearchError(f"$lastn is only defined for Observation, not {resource_type}")

    criteria: list[_Criterion] = []
    includes: list[_Include] = []
    revincludes: list[_Include] = []
    max_per_code = 1
    for name, value in params:
        if name in IGNORED_SEARCH_PARAMS:
            continue
        if name == "_count":
            _positive_int(name, value, allow_zero=True)
        elif name == "max":
            if not lastn:
                raise SearchError("parameter 'max' is only allowed with $lastn")
            max_per_code = _positive_int(name, value)
        elif name == "_include":
            includes.append(_parse_include(name, value, resource_type))
        elif name == "_revinclude":
            revincludes.append(_parse_include(name, value, resource_type))
        else:
            criteria.append(_criterion(resource_type, name, value))

    everything = list(resources) + list(shared)
    index = _Index(everything)
    matches = [r for r in resources
               if r.get("resourceType") == resource_type and all(c.matches(r, index) for c in criteria)]
    if lastn:
        matches = _lastn(matches, max_per_code)

    seen = {(m.get("resourceType"), m.get("id")) for m in matches}
    included: list[dict] = []

    def add(resource: dict | None) -> None:
        if resource is None:
            return
        key = (resource.get("resourceType"), resource.get("id"))
        if key not in seen:
            seen.add(key)
            included.append(resource)

    for inc in includes:
        for match in matches:
            for reference in _references(match, inc.ref_param):
                key = reference_key(reference)
                if key is None or (inc.target_type is not None and key[0] != inc.target_type):
                    continue
                if target_allowed(key[0], inc.ref_param):
                    add(index.get(key))
    if revincludes:
        match_keys = {(m.get("resourceType"), m.get("id")) for m in matches}
        for rev in revincludes:
            for candidate in everything:
                if candidate.get("resourceType") != rev.source_type:
                    continue
                for reference in _references(candidate, rev.ref_param):
                    key = reference_key(reference)
                    if key in match_keys and (rev.target_type is None or key[0] == rev.target_type):
                        add(candidate)
                        break
    return SearchResult(matches=matches, includes=included)


def read(resources: Sequence[dict], resource_type: str, resource_id: str) -> dict | None:
    """The resource of this type and id, or None."""
    for resource in resources:
        if resource.get("resourceType") == resource_type and resource.get("id") == resource_id:
            return resource
    return None
