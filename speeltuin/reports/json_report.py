"""The JSON report: the whole result model, for tools."""
from __future__ import annotations

import json
from dataclasses import asdict
from textwrap import indent
from typing import Any, Iterable, Iterator

from speeltuin.records import Exchange
from speeltuin.results import RunResult

_HOLE = "\x00exchanges\x00"  # marks where the streamed exchanges go in the written summary


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def render(run: RunResult) -> str:
    return _dumps(run.to_dict())


def stream(run: RunResult, exchanges: Iterable[Exchange]) -> Iterator[str]:
    """The JSON report of a run of one scenario whose exchanges come from `exchanges` (a big session's, read a batch
    at a time) instead of from the scenario: the document `render` writes, in pieces, so that memory holds a batch
    of exchanges, never the whole session."""
    data = run.to_dict()
    [scenario] = data["scenarios"]
    scenario["exchanges"] = _HOLE
    head, tail = _dumps(data).split(json.dumps(_HOLE))
    key_line = head.rsplit("\n", 1)[-1]  # '      "exchanges": '
    pad = " " * (len(key_line) - len(key_line.lstrip()) + 2)
    yield head + "["
    before = "\n"
    for ex in exchanges:
        yield before + indent(_dumps(asdict(ex)), pad)
        before = ",\n"
    yield ("" if before == "\n" else "\n" + pad[2:]) + "]" + tail
