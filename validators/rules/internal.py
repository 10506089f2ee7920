"""When speeltuin itself fails to judge a message: the exchange is still recorded, with a finding that says which
rule module failed, so the evidence is kept and the gap in the judgement is visible (and can be reported)."""
from __future__ import annotations

import traceback
from typing import Callable

from validators.findings import Finding, emits, rule

VALIDATOR_FAILED = rule("INTERNAL-001", "error", "A validator failed on this exchange: it was not (fully) judged",
                        "SPEC §1 (validators check the data of each transaction); an internal error of speeltuin: "
                        "please report it with the exchange")


@emits(VALIDATOR_FAILED)
def judged(check: Callable[[], list[Finding]]) -> list[Finding]:
    """The findings of `check`, or, when it raises, the one finding that names the rule module that failed."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - any failure of a validator is reported, never lost
        return [VALIDATOR_FAILED.finding(f"{failing_module(exc)} raised {type(exc).__name__}: {str(exc)[:200]}",
                                         "exchange")]


def failing_module(exc: BaseException) -> str:
    """The innermost module of validators/ in the exception's traceback (where the rule code failed)."""
    modules = [frame.f_globals.get("__name__", "") for frame, _ in traceback.walk_tb(exc.__traceback__)]
    ours = [name for name in modules if name.startswith("validators.") and name != __name__]
    return ours[-1] if ours else (modules[-1] if modules else "unknown")
