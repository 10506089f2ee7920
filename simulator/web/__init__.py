"""The web UI under /ui/: case managers (accounts) and vendors (their session's access key) look at sessions, their
endpoints, exchanges, findings and reports, make the simulator act in a session (notify, cancel, probe) and ask the
test manager for runs, followed live. Server-rendered Jinja2 pages (templates/web/), Pico CSS and htmx shipped
in templates/static/ (served at /ui/static/, nothing from the internet).

`init_web(app, store)` is called by the app factory. It sets what the UI needs and nothing else needs:
- the cookie signing key (SECRET_KEY), made once per installation and kept in the store, so a restart signs no one
  out; the session cookie is HttpOnly, SameSite=Lax, limited to /ui, and Secure when served over HTTPS;
- Flask-WTF's CSRF protection for the UI's forms only: the check runs in the web blueprint's before_request. The
  JSON APIs (/api/...) and the vendor-facing OAuth and FHIR endpoints (/s/...) are called by programs with a key or
  a bearer token in a header, never by a browser carrying the UI's cookie, so they need (and get) no CSRF token.
"""
from __future__ import annotations

from datetime import timedelta
from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from simulator.web import catalogue, new_session, runs, unmatched  # noqa: F401 - their routes join the blueprint
from simulator.web.views import TEMPLATE_DIR, error_page, web
from speeltuin.store import Store

SECRET_KEY_NAME = "web-ui-cookie-key"  # the name of the cookie signing key among the store's instance secrets
SIGNED_IN_FOR = timedelta(hours=8)

__all__ = ["TEMPLATE_DIR", "error_page", "init_web", "is_web_path", "web"]


class _SessionCookies(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over HTTPS (or the node is configured so)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def init_web(app: Flask, store: Store, *, https: bool) -> None:
    """Make the app serve the web UI; `https`: the node is reached over HTTPS (its own TLS or its public URL)."""
    app.config.update(
        SECRET_KEY=store.instance_secret(SECRET_KEY_NAME),
        SESSION_COOKIE_NAME="speeltuin_ui",
        SESSION_COOKIE_PATH="/ui",  # never sent to the APIs or to the endpoints vendors call (and the proxy records)
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        PERMANENT_SESSION_LIFETIME=SIGNED_IN_FOR,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked by the web blueprint only (views.protect_forms)
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as the signed-in UI session it belongs to
    )
    app.session_interface = _SessionCookies()
    CSRFProtect(app)  # kept in app.extensions["csrf"]
    app.register_blueprint(web)


def is_web_path(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")
