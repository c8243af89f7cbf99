"""A scripted fake of the Anthropic Messages API on loopback, for the real Claude Code CLI.

It speaks what Claude Code uses headless: ``HEAD /`` (its connectivity probe) and
``POST /v1/messages`` answered as server-sent events (``message_start``,
``content_block_start`` / ``_delta`` / ``_stop`` for text and ``tool_use`` blocks,
``message_delta`` with the stop reason and usage, ``message_stop``), the shapes of the
streaming reference (https://docs.anthropic.com/en/api/messages-streaming), and errors as
the API sends them (``{"type": "error", "error": {"type", "message"}}`` with the HTTP
status, https://docs.anthropic.com/en/api/errors).

The script is a list of :class:`Reply`, one per agent turn: a request that offers tools
is the agent's loop and takes the next reply; a request without tools (a side query such
as a title) gets a short text and takes nothing. Past the end of the script, every turn
ends with a plain text. ``{cwd}`` in a tool call's input becomes the working directory
Claude Code states in its system prompt (Write and Edit take absolute paths). Every
request is logged with its headers and body.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import attrs
from loopback import LoopbackServer

MODEL = "claude-sonnet-4-5-20250929"
#: A key planted for the agent tests: it must never show up in a task's files or logs.
PLANTED_KEY = "sk-ant-api03-PLANTED-test-key-0123456789abcdef"
_CWD_RE = re.compile(r"Primary working directory: ([^\s\\\"]+)")


@attrs.frozen
class Reply:
    """One scripted answer: text and tool calls, or an HTTP error."""

    text: str | None = None
    #: ``(tool name, input)`` pairs, each sent as a ``tool_use`` block.
    tools: tuple[tuple[str, dict[str, Any]], ...] = ()
    error_status: int | None = None
    error_type: str = "invalid_request_error"
    error_message: str = "scripted error"
    input_tokens: int = 100
    output_tokens: int = 20
    #: Seconds the answer waits (an agent in the middle of a turn, for a test to act in),
    #: or until the server closes.
    hold: float = 0.0

    @classmethod
    def say(cls, text: str) -> Reply:
        return cls(text=text)

    @classmethod
    def call(cls, name: str, tool_input: dict[str, Any], text: str | None = None) -> Reply:
        return cls(text=text, tools=((name, tool_input),))

    @classmethod
    def error(cls, status: int, message: str, kind: str = "invalid_request_error") -> Reply:
        return cls(error_status=status, error_message=message, error_type=kind)


@attrs.define
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None

    @property
    def is_turn(self) -> bool:
        return bool(self.body and self.body.get("tools"))

    def user_text(self) -> str:
        """Every text the request's user messages carry, joined (the prompt is the first)."""
        texts: list[str] = []
        for message in (self.body or {}).get("messages", []):
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
                continue
            for block in content or []:
                if block.get("type") == "text":
                    texts.append(block["text"])
        return "\n".join(texts)

    @property
    def cwd(self) -> str | None:
        """The working directory Claude Code names in the request: the last it names (a
        resumed session's request also carries the earlier session's)."""
        found = _CWD_RE.findall(json.dumps(self.body or {}))
        return found[-1] if found else None

    def tool_results(self) -> list[dict[str, Any]]:
        """The ``tool_result`` blocks of the request's last user message."""
        messages = (self.body or {}).get("messages", [])
        last = messages[-1] if messages else {}
        content = last.get("content")
        if not isinstance(content, list):
            return []
        return [b for b in content if b.get("type") == "tool_result"]


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def _events(reply: Reply, ids: Iterator[int]) -> Iterator[bytes]:
    number = next(ids)
    yield _sse("message_start", {"type": "message_start", "message": {
        "id": f"msg_{number:04d}", "type": "message", "role": "assistant", "model": MODEL,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})
    index = 0
    if reply.text is not None:
        yield _sse("content_block_start", {"type": "content_block_start", "index": index,
                                           "content_block": {"type": "text", "text": ""}})
        yield _sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                           "delta": {"type": "text_delta", "text": reply.text}})
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        index += 1
    for name, tool_input in reply.tools:
        yield _sse("content_block_start", {"type": "content_block_start", "index": index,
                                           "content_block": {"type": "tool_use",
                                                             "id": f"toolu_{number:04d}_{index}",
                                                             "name": name, "input": {}}})
        yield _sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                           "delta": {"type": "input_json_delta",
                                                     "partial_json": json.dumps(tool_input)}})
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        index += 1
    yield _sse("message_delta", {"type": "message_delta",
                                 "delta": {"stop_reason": "tool_use" if reply.tools
                                           else "end_turn", "stop_sequence": None},
                                 "usage": {"output_tokens": reply.output_tokens}})
    yield _sse("message_stop", {"type": "message_stop"})


class FakeAnthropic(LoopbackServer):
    """The fake API server; ``url`` for ``ANTHROPIC_BASE_URL``, ``requests`` its log."""

    def __init__(self, script: list[Reply] | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[Request] = []
        self._turns = 0
        #: With :meth:`script_per_session`: working directories in the order first seen,
        #: each with its own script and turn count (agents running at once).
        self.sessions: list[str] = []
        self._per_session: list[list[Reply]] | None = None
        self._session_turns: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        super().__init__(self._handler())

    @property
    def turns(self) -> list[Request]:
        return [r for r in self.requests if r.is_turn]

    def rescript(self, script: list[Reply]) -> None:
        """A new script from its first reply, and a fresh request log (the next task)."""
        with self._lock:
            self.script, self.requests, self._turns = list(script), [], 0

    def script_per_session(self, scripts: list[list[Reply]]) -> None:
        """One script per agent, by working directory: the first directory seen gets the
        first script, and so on (``sessions`` says which directory got which)."""
        with self._lock:
            self._per_session, self.sessions, self._session_turns = list(scripts), [], {}

    def _next(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if not request.is_turn:
                return Reply.say("ok")
            script = self.script
            if self._per_session is not None:
                cwd = request.cwd or ""
                if cwd not in self.sessions:
                    self.sessions.append(cwd)
                index = self.sessions.index(cwd)
                script = self._per_session[index] if index < len(self._per_session) else []
                turn = self._session_turns.get(cwd, 0)
                self._session_turns[cwd] = turn + 1
            else:
                turn, self._turns = self._turns, self._turns + 1
        if turn >= len(script):
            return Reply.say("Done.")
        reply = script[turn]
        cwd = request.cwd or ""
        return attrs.evolve(reply, tools=tuple(
            (name, {k: v.replace("{cwd}", cwd) if isinstance(v, str) else v
                    for k, v in tool_input.items()})
            for name, tool_input in reply.tools))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                fake.requests.append(Request("HEAD", self.path, dict(self.headers), None))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                fake.requests.append(Request("GET", self.path, dict(self.headers), None))
                self._json(404, {"type": "error", "error": {"type": "not_found_error",
                                                            "message": "not here"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                request = Request("POST", self.path, dict(self.headers), body)
                if not self.path.startswith("/v1/messages") or "count_tokens" in self.path:
                    fake.requests.append(request)
                    self._json(200, {"input_tokens": 100})
                    return
                reply = fake._next(request)
                if reply.hold and fake.closing.wait(reply.hold):
                    return  # the test is over: nobody waits for this reply
                if reply.error_status is not None:
                    self._json(reply.error_status, {"type": "error", "error": {
                        "type": reply.error_type, "message": reply.error_message}})
                    return
                if not body.get("stream"):
                    self._json(200, _message(reply, next(fake._ids)))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in _events(reply, fake._ids):
                    self.wfile.write(chunk)
                    self.wfile.flush()
                self.close_connection = True

            def _json(self, status: int, data: dict[str, Any]) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if status >= 400:
                    self.send_header("x-should-retry", "false")
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def _message(reply: Reply, number: int) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text is not None:
        content.append({"type": "text", "text": reply.text})
    for index, (name, tool_input) in enumerate(reply.tools):
        content.append({"type": "tool_use", "id": f"toolu_{number:04d}_{index}", "name": name,
                        "input": tool_input})
    return {"id": f"msg_{number:04d}", "type": "message", "role": "assistant", "model": MODEL,
            "content": content, "stop_reason": "tool_use" if reply.tools else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}
