"""rclaude_infra.client over real HTTP against a small scripted server: an event stream
that drops mid-way is read on from the last event received (Last-Event-ID), nothing
missed or repeated; problem details become ServiceError naming the field."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from rclaude_infra import ServiceClient, ServiceError


def _event(kind: str, event_id: str, data: object) -> bytes:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


class _Script(BaseHTTPRequestHandler):
    asked: ClassVar[list[str | None]] = []

    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.endswith("/events"):
            resumed = self.headers.get("Last-Event-ID")
            type(self).asked.append(resumed)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            if resumed is None:
                # Two lines, then the connection drops in the middle of the third.
                self.wfile.write(_event("status", "0-RUNNING", {"status": "RUNNING"}))
                self.wfile.write(_event("log", "1-RUNNING", {"text": "one", "time": None}))
                self.wfile.write(b": still running\n\n")
                self.wfile.write(b"id: 2-RUNNING\nevent: log\ndata: {\"te")
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            assert resumed == "1-RUNNING"
            self.wfile.write(_event("log", "2-RUNNING", {"text": "two", "time": None}))
            self.wfile.write(_event("status", "2-SUCCEEDED", {"status": "SUCCEEDED"}))
            return
        body = json.dumps({"type": "about:blank", "title": "Unprocessable content",
                           "status": 422, "detail": "repo: an https:// URL",
                           "field": "repo"}).encode()
        self.send_response(422)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(name="server")
def _server() -> Iterator[str]:
    _Script.asked = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Script)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_a_dropped_stream_goes_on_from_the_last_event(server: str) -> None:
    client = ServiceClient(server, "rci_test")
    seen = [(e.kind, e.id, e.data.get("text") or e.data.get("status"))
            for e in client.events("t-stream")]
    assert seen == [("status", "0-RUNNING", "RUNNING"), ("log", "1-RUNNING", "one"),
                    ("log", "2-RUNNING", "two"), ("status", "2-SUCCEEDED", "SUCCEEDED")]
    assert _Script.asked == [None, "1-RUNNING"]


def test_problem_details_name_the_field(server: str) -> None:
    with pytest.raises(ServiceError) as raised:
        ServiceClient(server, "rci_test").task("t-any")
    assert raised.value.status == 422 and raised.value.field == "repo"
    assert "rci_test" not in repr(ServiceClient(server, "rci_test"))
