"""One browser for every browser test of the web UI, and a fresh page (no cookies) per test (tests/web/browser.py)."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.web.browser import launch_chromium, tab_for


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture
def tab(chromium: Any) -> Iterator[Any]:
    yield from tab_for(chromium, accept_downloads=True)
