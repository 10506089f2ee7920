"""Who is looking at the web UI: a case manager (an account, `speeltuin users add`) or a vendor (its session's access
key, shown once when the session was created), kept in Flask's signed session cookie.

The cookie holds no secret: a case manager's username and when the account was made; a vendor's session id and a
fingerprint of the access key's stored hash. Both are checked against the store on every request, so removing the
account or replacing the session's key ends what was signed in with it.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import wraps
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import abort, g, redirect, request, session, url_for

from simulator.runtime import runtime

MANAGER, VENDOR = "case-manager", "vendor"
_FINGERPRINT = 16  # hex characters of the key's stored SHA-256 hash kept in the cookie


@dataclass(frozen=True)
class Viewer:
    kind: str  # MANAGER or VENDOR
    name: str  # the username, or the session's name
    session_id: str | None = None  # a vendor's own session

    @property
    def is_manager(self) -> bool:
        return self.kind == MANAGER

    def may_see(self, session_id: str) -> bool:
        return self.is_manager or self.session_id == session_id


def sign_in_manager(username: str, password: str) -> bool:
    """Check the account; on success start a fresh UI session for it."""
    store = runtime().store
    if not store.verify_user(username, password):
        return False
    account = store.get_user(username)
    if account is None:  # removed in the meantime
        return False
    _fresh_session({"kind": MANAGER, "user": username, "since": account["created_at"]})
    return True


def sign_in_vendor(access_key: str) -> str | None:
    """Check a session's access key; on success start a fresh UI session for that session and return its id."""
    store = runtime().store
    session_id = store.session_of_key(access_key) if access_key else None
    if session_id is None or not store.session_key_opens(session_id, access_key):
        return None
    key_hash = store.session_key_hash(session_id) or ""
    _fresh_session({"kind": VENDOR, "session": session_id, "key": key_hash[:_FINGERPRINT]})
    return session_id


def _fresh_session(values: dict[str, Any]) -> None:
    session.clear()  # nothing of before the sign-in (fixation): a new CSRF token too
    session.update(values)
    session.permanent = True


def sign_out() -> None:
    session.clear()


def current_viewer() -> Viewer | None:
    """The signed-in viewer of this request, checked against the store (once per request)."""
    if "viewer" not in g:
        g.viewer = _viewer_from_cookie()
    return g.viewer


def _viewer_from_cookie() -> Viewer | None:
    store = runtime().store
    kind = session.get("kind")
    if kind == MANAGER:
        account = store.get_user(str(session.get("user", "")))
        if account is not None and account["created_at"] == session.get("since"):
            return Viewer(MANAGER, account["username"])
    elif kind == VENDOR:
        session_id = str(session.get("session", ""))
        key_hash = store.session_key_hash(session_id)
        found = store.get_session(session_id)
        if key_hash and found and hmac.compare_digest(key_hash[:_FINGERPRINT], str(session.get("key", ""))):
            return Viewer(VENDOR, found.name, session_id)
    if kind is not None:
        session.clear()  # an account removed or a key replaced: signed out
    return None


def safe_next(target: str | None) -> str | None:
    """A place to return to after signing in: only a path of this UI, never another site."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/ui/") or target.startswith("//") or "\\" in target:
        return None
    return target


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send a visitor who is not signed in to the sign-in page (htmx requests: by HX-Redirect, answering 401)."""
    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if current_viewer() is None:
            if request.headers.get("HX-Request"):  # a fragment: come back to the page it is part of
                page = urlsplit(request.headers.get("HX-Current-URL", ""))
                back = safe_next(page.path + (f"?{page.query}" if page.query else ""))
                return "", 401, {"HX-Redirect": url_for("web.sign_in", next=back)}
            return redirect(url_for("web.sign_in", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return checked


def managers_only(why: str) -> None:
    """403 with `why` (the error page shows it) unless the viewer is a case manager."""
    viewer = current_viewer()
    if viewer is None or not viewer.is_manager:
        abort(403, description=why)


def may_see_session(session_id: str) -> None:
    """403 when the viewer may not see this session (a vendor and another session, known or not)."""
    viewer = current_viewer()
    if viewer is None or not viewer.may_see(session_id):
        abort(403)
