"""Unmatched traffic in the web UI: what the proxy recorded for no session (a vendor calling a path of no session, a
session since deleted, a typo in a base URL), kept and shown, never dropped (DESIGN.md). Case managers only: the
traffic may come from any vendor.

Routes (under /ui):
- GET /unmatched                  pages of PAGE_SIZE, newest first (`order=oldest`: oldest first), by the store's
                                  cursor (`after`: the last exchange of the page before)
- GET /unmatched/<exchange id>    one unmatched exchange: headers, bodies, findings (the session's exchange page)
"""
from __future__ import annotations

from typing import Any

from flask import abort, render_template, request, url_for

from simulator.runtime import runtime
from simulator.web import auth
from simulator.web.common import web
from simulator.web.views import PAGE_SIZE, exchange_detail, exchange_row
from speeltuin.session_report import BadParameter, ExchangeQuery

ORDERS = {"newest": "Newest first", "oldest": "Oldest first"}
MANAGERS_ONLY = "Unmatched traffic may come from any vendor, so only case managers see it."


@web.get("/unmatched")
@auth.signed_in
def unmatched() -> Any:
    auth.managers_only(MANAGERS_ONLY)
    order = request.args.get("order") or "newest"
    if order not in ORDERS:
        abort(400, description=f"order: {' or '.join(ORDERS)}")
    try:
        after = ExchangeQuery.parse(after=request.args.get("after") or None).after
    except BadParameter as exc:
        abort(400, description=f"{exc.name}: {exc}")
    page, cursor = runtime().store.query_exchanges(None, after=after, limit=PAGE_SIZE, newest_first=order == "newest")
    return render_template(
        "web/unmatched.html", session=None, rows=[exchange_row(ex, {}) for ex in page], order=order, orders=ORDERS,
        after=after, first_url=url_for("web.unmatched", order=order) if after is not None else None,
        next_url=url_for("web.unmatched", order=order, after=cursor) if cursor is not None else None, live_url=None)


@web.get("/unmatched/<int:exchange_id>")
@auth.signed_in
def unmatched_exchange(exchange_id: int) -> Any:
    auth.managers_only(MANAGERS_ONLY)
    ex = runtime().store.get_exchange(exchange_id)
    if ex is None or ex.session_id is not None:  # a session's exchange is shown on that session's pages
        abort(404)
    return exchange_detail(ex, None, {})
