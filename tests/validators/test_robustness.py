"""Validators judge input from systems under test: odd JSON shapes give findings, never exceptions."""
from __future__ import annotations

import copy
import random
from typing import Any, Callable

import pytest

from validators.rules.bundle import check_searchset
from validators.rules.document import check_document_reference
from validators.rules.notification import check_notification_task

from . import test_bundle, test_document, test_notification
from ._cases import json_paths

ODD_VALUES: list[Any] = [None, 0, 1.5, True, "", "%", "x" * 300, [], {}, [None], [{}], ["x"], {"a": {}},
                         {"reference": 5}, {"coding": "x"}, {"coding": [None]}, {"coding": [{"code": {}}]}]


def _mutate(document: Any, rnd: random.Random) -> None:
    path = rnd.choice(list(json_paths(document))[1:])
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = copy.deepcopy(rnd.choice(ODD_VALUES))


CHECKS: list[tuple[str, Callable[[], Any], Callable[[Any], list]]] = [
    ("task", test_notification.good_task, lambda d: check_notification_task(d, now=test_notification.NOW)),
    ("bundle", test_bundle.good_bundle, lambda d: check_searchset(
        d, request_url=test_bundle.REQUEST, expected_profiles=("p",), patient_reference=test_bundle.PATIENT)),
    ("conditions", test_bundle.condition_bundle, lambda d: check_searchset(d, patient_reference=test_bundle.PATIENT)),
    ("document", test_document.good_reference, check_document_reference),
]


@pytest.mark.parametrize("name,make,check", CHECKS, ids=[c[0] for c in CHECKS])
def test_mutated_documents_never_raise(name: str, make: Callable[[], Any], check: Callable[[Any], list]) -> None:
    rnd = random.Random(name)
    for _ in range(300):
        document = make()
        for _ in range(rnd.randint(1, 3)):
            _mutate(document, rnd)
        assert isinstance(check(document), list)
