"""Dutch identifiers and naming systems (SPEC §6.3): BSN, URA, UZI, AGB, UZOVI, BIG, and the systems that name them."""
from __future__ import annotations

import re
from typing import Callable, Iterator
from urllib.parse import urlsplit

from validators import spec
from validators.evidence import show
from validators.findings import Finding, Rule, emits, rule


# ASCII digits only: str.isdigit() would also accept e.g. Arabic-Indic digits.
_NINE_DIGITS = re.compile(r"[0-9]{9}")
_EIGHT_DIGITS = re.compile(r"[0-9]{8}")
# Words that mark a system copied from a template instead of the real naming system.
_PLACEHOLDER_WORDS = re.compile(r"(?<![a-z0-9])(placeholder|todo|tbd|changeme|change-me|xxx+)(?![a-z0-9])")
_TEMPLATE_CHARACTERS = frozenset("{}<>[]")
# RFC 2606 names reserved for documentation: never a real naming system.
_EXAMPLE_HOSTS = ("example", "example.org", "example.com", "example.net")


def is_valid_bsn(value: str) -> bool:
    """9 digits whose weighted sum (9..2, and -1 for the last digit) is divisible by 11."""
    if not isinstance(value, str) or not _NINE_DIGITS.fullmatch(value):
        return False
    digits = [int(c) for c in value]
    total = sum(d * w for d, w in zip(digits[:8], range(9, 1, -1))) - digits[8]
    return total % 11 == 0


def is_valid_ura(value: object) -> bool:
    return isinstance(value, str) and bool(_EIGHT_DIGITS.fullmatch(value))


def is_placeholder_system(system: object) -> bool:
    """True for systems that are obviously not real: empty, an RFC 2606 example host, TODO-like words, templates."""
    if not isinstance(system, str):
        return False
    lowered = system.strip().lower()
    if not lowered:
        return True
    if _TEMPLATE_CHARACTERS & set(lowered) or _PLACEHOLDER_WORDS.search(lowered):
        return True
    try:
        host = urlsplit(lowered).hostname or ""
    except ValueError:  # e.g. an unbalanced IPv6 bracket; the template check above caught brackets already
        host = ""
    return host in _EXAMPLE_HOSTS or host.endswith(tuple("." + h for h in _EXAMPLE_HOSTS))


BSN_FORMAT = rule("ID-BSN-001", "error", "BSN is not a string of 9 digits", "SPEC §6.3")
BSN_CHECKSUM = rule("ID-BSN-002", "error", "BSN fails the 11-check", "SPEC §6.3")


@emits(BSN_FORMAT, BSN_CHECKSUM)
def check_bsn(value: object, location: str) -> list[Finding]:
    if not isinstance(value, str):
        return [BSN_FORMAT.finding(f"saw {type(value).__name__} {show(value)}; expected a string of 9 digits",
                                   location)]
    if not _NINE_DIGITS.fullmatch(value):
        return [BSN_FORMAT.finding(f"saw {show(value)} ({len(value)} characters); expected 9 digits", location)]
    if not is_valid_bsn(value):
        return [BSN_CHECKSUM.finding(f"BSN {value!r} fails the 11-check (weights 9..2 and -1)", location)]
    return []


URA_FORMAT = rule("ID-URA-001", "error", "URA is not a string of 8 digits", "SPEC §6.3")


@emits(URA_FORMAT)
def check_ura(value: object, location: str) -> list[Finding]:
    if is_valid_ura(value):
        return []
    kind = "" if isinstance(value, str) else f"{type(value).__name__} "
    return [URA_FORMAT.finding(f"saw {kind}{show(value)}; expected a URA of 8 digits", location)]


def _digits(rule_: Rule, pattern: str, expected: str, value: object, location: str) -> list[Finding]:
    if isinstance(value, str) and re.fullmatch(pattern, value):
        return []
    kind = "" if isinstance(value, str) else f"{type(value).__name__} "
    return [rule_.finding(f"saw {kind}{show(value)}; expected {expected}", location)]


UZI_PERSON_FORMAT = rule("ID-UZI-001", "error", "UZI person number (uzi-nr-pers) is not a string of 9 digits",
                         "SPEC §6.3")


@emits(UZI_PERSON_FORMAT)
@emits(UZI_PERSON_FORMAT)
def check_uzi_person(value: object, location: str) -> list[Finding]:
    return _digits(UZI_PERSON_FORMAT, "[0-9]{9}", "a UZI person number of 9 digits", value, location)


# SPEC §6.3 names the system but not the length: a warning, not an error.
UZI_SYSTEM_FORMAT = rule("ID-UZI-002", "warning", "UZI system number (uzi-nr-sys) is not a string of 1 to 9 digits",
                         "SPEC §6.3")


@emits(UZI_SYSTEM_FORMAT)
@emits(UZI_SYSTEM_FORMAT)
def check_uzi_system(value: object, location: str) -> list[Finding]:
    return _digits(UZI_SYSTEM_FORMAT, "[0-9]{1,9}", "a UZI system number of 1 to 9 digits", value, location)


AGB_FORMAT = rule("ID-AGB-001", "error", "AGB code (agb-z) is not a string of 8 digits", "SPEC §6.3")


@emits(AGB_FORMAT)
@emits(AGB_FORMAT)
def check_agb(value: object, location: str) -> list[Finding]:
    return _digits(AGB_FORMAT, "[0-9]{8}", "an AGB code of 8 digits", value, location)


UZOVI_FORMAT = rule("ID-UZOVI-001", "error", "UZOVI number is not a string of 4 digits", "SPEC §6.3")


@emits(UZOVI_FORMAT)
@emits(UZOVI_FORMAT)
def check_uzovi(value: object, location: str) -> list[Finding]:
    return _digits(UZOVI_FORMAT, "[0-9]{4}", "a UZOVI number of 4 digits", value, location)


# The BIG register number has 11 digits; SPEC §6.3 does not state it, hence a warning.
BIG_FORMAT = rule("ID-BIG-001", "warning", "BIG number is not a string of 11 digits", "SPEC §6.3")


@emits(BIG_FORMAT)
@emits(BIG_FORMAT)
def check_big(value: object, location: str) -> list[Finding]:
    return _digits(BIG_FORMAT, "[0-9]{11}", "a BIG number of 11 digits", value, location)


# The value rule of each Dutch naming system (SPEC §6.3).
VALUE_CHECKS: dict[str, Callable[[object, str], list[Finding]]] = {
    spec.BSN_SYSTEM: check_bsn,
    spec.URA_SYSTEM: check_ura,
    spec.UZI_PERSON_SYSTEM: check_uzi_person,
    spec.UZI_SYSTEM_SYSTEM: check_uzi_system,
    spec.AGB_SYSTEM: check_agb,
    spec.UZOVI_SYSTEM: check_uzovi,
    spec.BIG_SYSTEM: check_big,
}


def _normalised(system: str) -> str:
    lowered = system.strip().lower().rstrip("/")
    return "http://" + lowered[len("https://"):] if lowered.startswith("https://") else lowered


_NEAR_MISSES = {_normalised(s): s for s in spec.DUTCH_NAMING_SYSTEMS}


def intended_naming_system(system: object) -> str | None:
    """The Dutch naming system `system` is, or was meant to be (wrong case, https, trailing slash)."""
    if not isinstance(system, str):
        return None
    return system if system in VALUE_CHECKS else _NEAR_MISSES.get(_normalised(system))


SYSTEM_PLACEHOLDER = rule("ID-SYS-002", "error", "identifier system is a placeholder instead of a real naming system "
                          "(known defect)", "SPEC §4, §6.3")


@emits(SYSTEM_PLACEHOLDER)
@emits(SYSTEM_PLACEHOLDER)
def check_not_placeholder(system: object, expected: str, location: str) -> list[Finding]:
    """A placeholder naming system (copied from a template) is never right; `expected` says what belongs there."""
    if not is_placeholder_system(system):
        return []
    return [SYSTEM_PLACEHOLDER.finding(f"placeholder naming system {show(system, 100)}; expected {expected}",
                                       location)]


SYSTEM_WRONG = rule("ID-SYS-001", "error", "identifier system is missing or not the expected naming system",
                    "SPEC §4, §6.3")


@emits(SYSTEM_WRONG)
def check_identifier_system(system: object, expected_system: str, location: str) -> list[Finding]:
    """The identifier's system must be exactly the naming system the element requires."""
    if system == expected_system:
        return []
    if is_placeholder_system(system):
        return check_not_placeholder(system, repr(expected_system), location)
    if not isinstance(system, str):
        return [SYSTEM_WRONG.finding(f"no system (saw {show(system)}); expected {expected_system!r}", location)]
    if _normalised(system) == _normalised(expected_system):
        what = "naming system spelled differently"  # systems are exact, case-sensitive URIs
    else:
        what = "naming system"
    return [SYSTEM_WRONG.finding(f"{what} {show(system, 100)}; expected {expected_system!r}", location)]


def check_identifier(identifier: object, location: str) -> list[Finding]:
    """Apply the value rule of the identifier's Dutch naming system; flag placeholder and misspelled systems.

    Identifiers of other (real) naming systems are not judged here: their rules are not Dutch facts.
    """
    if not isinstance(identifier, dict):
        return []
    system, value = identifier.get("system"), identifier.get("value")
    if is_placeholder_system(system):
        return check_not_placeholder(system, "a real naming system such as the BSN or URA system",
                                     f"{location}.system")
    intended = intended_naming_system(system)
    if intended is None:
        return []
    if system != intended:
        return check_identifier_system(system, intended, f"{location}.system")
    return VALUE_CHECKS[intended](value, f"{location}.value")


def _identifier_nodes(node: object, location: str) -> Iterator[tuple[str, dict]]:
    """Every object that looks like an Identifier of a Dutch naming system, in document order.

    Iterative, so deeply nested input from a system under test cannot exhaust the recursion limit.
    """
    stack: list[tuple[str, object]] = [(location, node)]
    while stack:
        path, current = stack.pop()
        if isinstance(current, dict):
            # A Coding also has a system, but names a code, not a value.
            if "code" not in current and intended_naming_system(current.get("system")) is not None:
                yield path, current
            stack.extend(reversed([(f"{path}.{key}", value) for key, value in current.items()
                                   if isinstance(value, (dict, list))]))
        elif isinstance(current, list):
            stack.extend(reversed([(f"{path}[{i}]", value) for i, value in enumerate(current)]))


def check_identifiers_in(resource: object, location: str) -> list[Finding]:
    """check_identifier on every Identifier in `resource` whose system is (meant to be) a Dutch naming system."""
    findings: list[Finding] = []
    for path, identifier in _identifier_nodes(resource, location):
        findings.extend(check_identifier(identifier, path))
    return findings
