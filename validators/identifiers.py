"""Dutch identifiers and naming systems (SPEC §6.3): BSN, URA, and the systems that name them."""
from __future__ import annotations

import re

from validators.findings import Finding, rule

BSN_FORMAT = rule("ID-BSN-001", "error", "BSN is not a string of 9 digits", "SPEC §6.3")
BSN_CHECKSUM = rule("ID-BSN-002", "error", "BSN fails the 11-check", "SPEC §6.3")
URA_FORMAT = rule("ID-URA-001", "error", "URA is not a string of 8 digits", "SPEC §6.3")
SYSTEM_WRONG = rule("ID-SYS-001", "error",
                    "identifier system is missing, a placeholder or not the expected naming system", "SPEC §4, §6.3")

# ASCII digits only: str.isdigit() would also accept e.g. Arabic-Indic digits.
_NINE_DIGITS = re.compile(r"[0-9]{9}")
_EIGHT_DIGITS = re.compile(r"[0-9]{8}")
# Markers of systems copied from templates and examples instead of the real naming system.
_PLACEHOLDER_MARKERS = ("example", "placeholder", "todo", "xxx", "changeme", "{", "}", "<", ">", "[", "]")


def show(value: object, limit: int = 60) -> str:
    """Evidence text for a seen value: its repr, shortened so a message never carries a whole payload."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_valid_bsn(value: str) -> bool:
    """9 digits whose weighted sum (9..2, and -1 for the last digit) is divisible by 11."""
    if not isinstance(value, str) or not _NINE_DIGITS.fullmatch(value):
        return False
    digits = [int(c) for c in value]
    total = sum(d * w for d, w in zip(digits[:8], range(9, 1, -1))) - digits[8]
    return total % 11 == 0


def is_valid_ura(value: object) -> bool:
    return isinstance(value, str) and bool(_EIGHT_DIGITS.fullmatch(value))


def check_bsn(value: object, location: str) -> list[Finding]:
    if not isinstance(value, str):
        return [BSN_FORMAT.finding(f"saw {type(value).__name__} {show(value)}; expected a string of 9 digits",
                                   location)]
    if not _NINE_DIGITS.fullmatch(value):
        return [BSN_FORMAT.finding(f"saw {show(value)} ({len(value)} characters); expected 9 digits", location)]
    if not is_valid_bsn(value):
        return [BSN_CHECKSUM.finding(f"BSN {value!r} fails the 11-check (weights 9..2 and -1)", location)]
    return []


def check_ura(value: object, location: str) -> list[Finding]:
    if is_valid_ura(value):
        return []
    kind = "" if isinstance(value, str) else f"{type(value).__name__} "
    return [URA_FORMAT.finding(f"saw {kind}{show(value)}; expected a URA of 8 digits", location)]


def check_identifier_system(system: object, expected_system: str, location: str) -> list[Finding]:
    """The identifier's system must be exactly the naming system the element requires."""
    if system == expected_system:
        return []
    if not isinstance(system, str) or not system:
        return [SYSTEM_WRONG.finding(f"no system (saw {show(system)}); expected {expected_system!r}", location)]
    lowered = system.lower()
    if any(marker in lowered for marker in _PLACEHOLDER_MARKERS):
        what = "placeholder naming system"
    elif lowered == expected_system.lower():
        what = "naming system with wrong letter case"  # systems are case-sensitive URIs
    else:
        what = "naming system"
    return [SYSTEM_WRONG.finding(f"{what} {show(system, 100)}; expected {expected_system!r}", location)]
