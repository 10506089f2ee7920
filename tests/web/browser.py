"""What the browser tests of the web UI share: Debian's Chromium (kept off the internet) driven by Playwright, a
fresh context per test that fails the test on any script error or blocked resource, and `check_page`: screenshots
at 1280x800 and 390x844 into test-artifacts/screenshots/ and the accessibility basics checked with axe."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
VIEWPORTS = ({"width": 1280, "height": 800}, {"width": 390, "height": 844})

# In CI (.ci/run installs Chromium) a missing browser is a failure, never a skip.
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                                    reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")


def launch_chromium() -> Iterator[Any]:
    """One browser (for a module's fixture)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_page(chromium: Any, *, timeout_ms: int = 15_000, **options: Any) -> tuple[Any, Any, list[str]]:
    """A fresh context (no cookies) and page; the list collects script errors and whatever the
    Content-Security-Policy blocked."""
    context = chromium.new_context(viewport=VIEWPORTS[0], **options)
    context.set_default_timeout(timeout_ms)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    return context, page, problems


def tab_for(chromium: Any, **options: Any) -> Iterator[Any]:
    """A page for one test (a fixture's body); afterwards no problem may have been seen but the 4xx answers the
    tests ask for on purpose."""
    context, page, problems = new_page(chromium, **options)
    yield page
    context.close()
    assert [p for p in problems if "status of 40" not in p] == []


def check_page(page: Any, name: str) -> None:
    """Screenshots at both sizes, and the accessibility basics: axe finds nothing critical or serious, every input
    has a label, a lang attribute, a skip link, one h1 and headings in order, and Tab reaches every control
    (check_keyboard)."""
    from axe_playwright_python.sync_playwright import Axe

    SHOTS.mkdir(parents=True, exist_ok=True)
    for viewport in VIEWPORTS:
        page.set_viewport_size(viewport)
        page.screenshot(path=str(SHOTS / f"{name}-{viewport['width']}x{viewport['height']}.png"), full_page=True)
    page.set_viewport_size(VIEWPORTS[0])

    violations = Axe().run(page).response["violations"]
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in violations
           if v["impact"] in ("critical", "serious")]
    assert bad == [], f"{name}: {bad}"
    facts = page.evaluate("""() => ({
        lang: document.documentElement.lang,
        unlabelled: [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label')
                          && !el.getAttribute('aria-labelledby')).map(el => el.outerHTML),
        skip: document.querySelector('a.skip-link')?.getAttribute('href'),
        headings: [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')].map(h => Number(h.tagName[1])),
    })""")
    assert facts["lang"] == "en" and facts["unlabelled"] == [] and facts["skip"] == "#main", (name, facts)
    levels = facts["headings"]
    assert levels.count(1) == 1 and levels[0] == 1, (name, levels)
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:])), (name, levels)  # never skips a level down
    check_keyboard(page, name)


def sign_in_as_manager(page: Any, ui_url: str, username: str, password: str, *, there_already: bool = False) -> None:
    """Sign in on the UI's sign-in page (`ui_url`: the UI's base, ending in /ui) with a case manager's account;
    `there_already`: the page shows the sign-in form (a page asked for sent the visitor there)."""
    if not there_already:
        page.goto(f"{ui_url}/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in as case manager").click()


def sign_in_as_vendor(page: Any, ui_url: str, access_key: str) -> Any:
    """Sign in with a session's access key; the response of the page it leads to."""
    page.goto(f"{ui_url}/sign-in")
    page.get_by_label("Session access key").fill(access_key)
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Sign in as vendor").click()
    return navigation.value


FOCUSABLE = ("a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select:not([disabled]), "
             "textarea:not([disabled]), [tabindex]:not([tabindex='-1'])")


def check_keyboard(page: Any, name: str) -> None:
    """Full keyboard navigation: pressing Tab from the top of the page reaches every visible control and link, in
    turn, and each shows where the focus is (an outline or a box shadow)."""
    page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    wanted = page.evaluate(f"""() => {{
        const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
                                && getComputedStyle(el).visibility !== 'hidden';
        // a radio group is one Tab stop; its other options are reached with the arrow keys
        const seen = new Set();
        return [...document.querySelectorAll({json.dumps(FOCUSABLE)})].filter(visible).filter((el) => {{
            if (el.type !== 'radio') return true;
            if (seen.has(el.name)) return false;
            seen.add(el.name);
            return true;
        }}).map((el, n) => {{ el.dataset.tabStop = String(n); return n; }}).length;
    }}""")
    reached: set[str] = set()
    unmarked: list[str] = []
    for _ in range(wanted + 5):
        page.keyboard.press("Tab")
        focused = page.evaluate("""() => {
            const el = document.activeElement;
            if (!el || el === document.body) return null;
            const style = getComputedStyle(el);
            const marked = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0
                           || style.boxShadow !== 'none';
            const stop = el.type === 'radio' ? document.querySelector(`[name="${el.name}"][data-tab-stop]`) : el;
            return {stop: stop?.dataset.tabStop ?? null, marked, what: el.outerHTML.slice(0, 80)};
        }""")
        if focused is None or focused["stop"] is None:
            continue
        reached.add(focused["stop"])
        if not focused["marked"]:
            unmarked.append(focused["what"])
    missing = page.evaluate("""(reached) => [...document.querySelectorAll('[data-tab-stop]')]
        .filter((el) => !reached.includes(el.dataset.tabStop)).map((el) => el.outerHTML.slice(0, 80))""",
                            sorted(reached))
    assert missing == [], f"{name}: not reached with Tab: {missing[:5]}"
    assert unmarked == [], f"{name}: focus not shown on: {unmarked[:5]}"
