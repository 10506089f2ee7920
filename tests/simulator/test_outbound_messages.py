"""What the simulator says when a vendor's side answers an error: the words of the answer, not its markup."""
from __future__ import annotations

import requests

from simulator.outbound.client import said_by

MITMPROXY_502 = ("<html>\n<head>\n    <title>502 Bad Gateway</title>\n</head>\n<body>\n    <h1>502 Bad Gateway</h1>\n"
                 "    <p>[Errno 111] Connect call failed (&#x27;127.0.0.1&#x27;, 9443)</p>\n</body>\n</html>")


def answer(body: str, content_type: str) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = 502, body.encode()
    response.headers["Content-Type"] = content_type
    return response


def test_an_html_error_page_is_told_as_its_text() -> None:
    said = said_by(answer(MITMPROXY_502, "text/html"))
    assert said == "502 Bad Gateway 502 Bad Gateway [Errno 111] Connect call failed ('127.0.0.1', 9443)"
    assert said_by(answer(MITMPROXY_502, "")) == said  # known by its look when no type is given
    assert said_by(answer("<html><style>p {}</style><p>a &amp; b</p></html>", "text/html")) == "a & b"


def test_other_answers_are_told_as_they_came_within_the_limit() -> None:
    oauth = '{"error": "invalid_client", "error_description": "<no kid>"}'
    assert said_by(answer(oauth, "application/json")) == oauth
    assert len(said_by(answer("x" * 1000, "text/plain"))) == 300
