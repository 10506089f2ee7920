"""The HTTP servers the simulator runs under (werkzeug's threaded server, gunicorn's gthread workers), answering the
requests they cannot parse themselves (a URI over 64 kB, a header line over 64 kB, a bad request line) in the error
format of the endpoint asked for, as the app answers everything else: their own answer is an HTML page."""
from __future__ import annotations

import json
import threading
from html import escape
from http import HTTPStatus
from ssl import SSLContext
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.workers.gthread import ThreadWorker
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from simulator.web import is_web_path
from speeltuin import error_bodies

FHIR_JSON = "application/fhir+json; charset=utf-8"


def endpoint_format(path: str) -> str:
    """Which error format the endpoint at `path` speaks: 'page' (web UI), 'api' ({"error"}), 'oauth' (RFC 6749
    §5.2, token endpoints) or 'fhir' (OperationOutcome: FHIR server, notification endpoint and the rest)."""
    if is_web_path(path):
        return "page"
    if path.startswith("/api/"):
        return "api"
    if path.endswith("/token"):
        return "oauth"
    return "fhir"


def unparsed_request_answer(path: str, status: int, message: str) -> tuple[str, bytes]:
    """Content type and body for a request the server refused before the app saw it (no Accept header is known:
    JSON for programs, a page for the web UI)."""
    kind = endpoint_format(path)
    if kind == "page":
        phrase = escape(HTTPStatus(status).phrase)
        return "text/html; charset=utf-8", (f"<!doctype html><html lang=en><title>{phrase}</title><h1>{phrase}</h1>"
                                            f"<p>{escape(message)}</p></html>").encode()
    if kind == "api":
        body: dict[str, Any] = {"error": message}
        return "application/json", json.dumps(body).encode()
    if kind == "oauth":
        return "application/json", json.dumps(error_bodies.oauth_error("invalid_request", message)).encode()
    return FHIR_JSON, json.dumps(error_bodies.operation_outcome(status, message)).encode()


def _path_of(request_line: bytes | str) -> str:
    """The path of a (possibly cut-off) request line, without its query; '' when there is none."""
    text = request_line.decode("latin-1") if isinstance(request_line, bytes) else request_line
    parts = text.split()
    return parts[1].split("?", 1)[0] if len(parts) >= 2 else ""


class RequestHandler(WSGIRequestHandler):
    """werkzeug's handler with http.server's own error answers (414, 431, 400 before the app runs) in the
    endpoint's format."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        path = getattr(self, "path", None) or _path_of(getattr(self, "raw_requestline", b""))
        detail = explain or message
        said = HTTPStatus(code).phrase + (f": {detail}" if detail and detail != HTTPStatus(code).phrase else "")
        if not str(getattr(self, "request_version", "")).startswith("HTTP/1."):
            self.request_version = "HTTP/1.1"  # a line that is no request: answer with a status line all the same
        self.log_error("code %d, message %s", code, said)
        content_type, body = unparsed_request_answer(path.split("?", 1)[0], code, said)
        self.send_response(code)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if getattr(self, "command", "") != "HEAD":
            self.wfile.write(body)
        self.close_connection = True


def simulator_server(host: str, port: int, app: Any, ssl_context: SSLContext | None = None) -> BaseWSGIServer:
    """werkzeug's threaded server with the simulator's error answers."""
    return make_server(host, port, app, threaded=True, ssl_context=ssl_context, request_handler=RequestHandler)


# gunicorn writes its parse errors with util.write_error(sock, status, reason, message), which knows no path: the
# worker notes the path of the request it was reading (when it got that far) for this thread first.
_reading = threading.local()


def _write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    content_type, body = unparsed_request_answer(getattr(_reading, "path", ""), status_int,
                                                 f"{reason}: {mesg}" if mesg else reason)
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    gunicorn_util.write_nonblock(sock, head + body)


class SimulatorWorker(ThreadWorker):
    """gunicorn's gthread worker answering requests it cannot parse in the endpoint's format."""

    def init_process(self) -> None:
        gunicorn_util.write_error = _write_error  # this worker process only; nothing else in it writes errors
        super().init_process()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        _reading.path = getattr(req, "path", None) or getattr(getattr(exc, "req", None), "path", None) or ""
        try:
            super().handle_error(req, client, addr, exc)
        finally:
            _reading.path = ""


WORKER_CLASS = f"{SimulatorWorker.__module__}.{SimulatorWorker.__qualname__}"
