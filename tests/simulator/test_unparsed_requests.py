"""Requests the HTTP server refuses before the app sees them (a URI over 64 kB, a header line over 64 kB, a request
line that is none) are answered in the error format of the endpoint asked for: an OperationOutcome for FHIR, an
RFC 6749 §5.2 error for token endpoints, {"error"} for the admin API, a page only for the web UI. The real werkzeug
server on loopback, written to with raw sockets (an HTTP library would refuse to send such requests)."""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Iterator

import pytest

from speeltuin.defaults import sqlite_url
from tests.conftest import LiveNode, start_live_node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    live, server = start_live_node(sqlite_url(tmp_path_factory.mktemp("unparsed") / "s.sqlite"), ura="90000101",
                                   client_id="sim", name="sim")
    yield live
    server.shutdown()  # type: ignore[attr-defined]


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as it is; the status, headers (lower-case names) and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def port_of(node: LiveNode) -> int:
    return int(node.url.rsplit(":", 1)[1])


def long_uri(path: str) -> bytes:
    return f"GET {path}?q={'a' * 70_000} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def long_header(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {'b' * 70_000}\r\n\r\n".encode()


@pytest.mark.parametrize("make", [long_uri, long_header], ids=["uri-over-64kB", "header-over-64kB"])
def test_fhir_endpoints_answer_an_operation_outcome(node: LiveNode, make) -> None:
    status, headers, body = raw_exchange(port_of(node), make("/s/any/fhir/Patient"))
    assert status in (414, 431)
    assert headers["content-type"].startswith("application/fhir+json")
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["severity"] == "error"
    assert ("URI Too Long" if status == 414 else "Too Large") in outcome["issue"][0]["diagnostics"]
    assert int(headers["content-length"]) == len(body)


@pytest.mark.parametrize("make", [long_uri, long_header], ids=["uri-over-64kB", "header-over-64kB"])
def test_token_endpoints_answer_an_oauth_error(node: LiveNode, make) -> None:
    status, headers, body = raw_exchange(port_of(node), make("/s/any/token"))
    assert status in (414, 431) and headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["error"] == "invalid_request" and set(error) == {"error", "error_description"}


def test_the_admin_api_answers_its_own_error(node: LiveNode) -> None:
    status, headers, body = raw_exchange(port_of(node), long_header("/api/sessions"))
    assert status == 431 and headers["content-type"] == "application/json"
    assert set(json.loads(body)) == {"error"}


def test_the_web_ui_answers_a_page(node: LiveNode) -> None:
    status, headers, body = raw_exchange(port_of(node), long_uri("/ui/sessions"))
    assert status == 414 and headers["content-type"].startswith("text/html")
    assert b"URI Too Long</h1>" in body


@pytest.mark.parametrize("request_line", [b"GARBAGE\r\n\r\n", b"GET /s/x/fhir/Patient HTTP/9.9\r\n\r\n",
                                          b"GET /s/x/fhir/Patient HTTP/1.1 extra\r\n\r\n"],
                         ids=["no-request-line", "bad-version", "too-many-words"])
def test_a_request_line_that_is_none_is_a_400_operation_outcome(node: LiveNode, request_line: bytes) -> None:
    status, headers, body = raw_exchange(port_of(node), request_line)
    assert status in (400, 505), (status, body)
    assert json.loads(body)["resourceType"] == "OperationOutcome"
    assert b"<html" not in body.lower()


def test_the_server_keeps_answering_afterwards(node: LiveNode, tmp_path: Path) -> None:
    raw_exchange(port_of(node), long_uri("/s/any/fhir/Patient"))
    status, _, body = raw_exchange(port_of(node), b"GET /s/none/jwks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 404 and json.loads(body)["resourceType"] == "OperationOutcome"
