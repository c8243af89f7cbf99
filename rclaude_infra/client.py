"""A client of the hosted service's task API (``rclaude-infra ... --server``): the same
tasks as a :class:`~rclaude_infra.Deployment` runs, over HTTP with a bearer token.

Standard library only (``urllib``, imported when a request is made): a client needs no
``[service]`` extra. Errors are the service's problem details, raised as
:class:`ServiceError` naming the field; a task's events are read as Server-Sent Events
and, when the connection drops, read on from the last event (``Last-Event-ID``) with
nothing missed or repeated."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import attrs

from . import credentials
from .errors import ConfigError, RclaudeError
from .tasks.model import LogLine, TaskState, TaskStatus
from .tasks.spec import check_task_id

#: Reconnections of an event stream in a row before following gives up.
MAX_RECONNECTS = 10


class ServiceError(RclaudeError):
    """The service refused or failed a request: its HTTP ``status``, ``detail`` and the
    ``field`` it names (RFC 9457 problem details).

    >>> error = ServiceError(422, "repo: an https:// URL", "repo")
    >>> error.field, str(error)
    ('repo', 'the service answered 422: repo: an https:// URL')
    """

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(f"the service answered {status}: {detail}")
        self.status, self.detail, self.field = status, detail, field


@attrs.frozen
class Event:
    """One Server-Sent Event: ``log`` (``data`` a line), ``status`` (``data`` the task)
    or ``error``."""

    kind: str
    id: str | None
    data: Any


def _time(value: object) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else None


def state_of(task: Mapping[str, Any]) -> TaskState:
    """A task as the API shows it, as the library's :class:`TaskState`."""
    return TaskState(status=TaskStatus(task["status"]), reason=task.get("reason"),
                     exit_code=task.get("exit_code"), started_at=_time(task.get("started_at")),
                     stopped_at=_time(task.get("stopped_at")),
                     attempt=int(task.get("attempt") or 1))


def line_of(data: Mapping[str, Any]) -> LogLine:
    return LogLine(time=_time(data.get("time")) or dt.datetime.now(dt.UTC),
                   text=str(data.get("text", "")))


class ServiceClient:
    """The task API of the service at ``url``, as the holder of ``token``.

    >>> ServiceClient("ftp://x", "t")
    Traceback (most recent call last):
    ...
    rclaude_infra.errors.ConfigError: --server: got 'ftp://x'; allowed: the service's URL, https://host[:port]
    """

    def __init__(self, url: str, token: str | None, *, timeout: float = 60) -> None:
        """``token`` None: no ``Authorization`` header (a sign-in's own requests)."""
        self.url = credentials.check_server(url)
        self._token = token
        self.timeout = timeout

    def __repr__(self) -> str:  # never the token
        return f"ServiceClient({self.url!r})"

    @classmethod
    def logged_in(cls, server: str | None = None) -> ServiceClient:
        """A client of ``server`` (default: the one ``rclaude-infra login`` signed in to
        last) with the token login kept."""
        url = credentials.check_server(server) if server else credentials.default_server()
        token = credentials.token_for(url) if url else None
        if url is None or token is None:
            raise ConfigError("--server", server, "a service `rclaude-infra login --server "
                              "URL` signed in to: " + (", ".join(credentials.servers())
                                                       or "none yet"))
        return cls(url, token)

    # -- requests ---------------------------------------------------------------------

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None, *,
                params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, raw: bool = False) -> Any:
        """The answer's JSON (``raw``: its text); :class:`ServiceError` for an error."""
        import urllib.error
        import urllib.request

        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = self.url + path + (f"?{urlencode(query)}" if query else "")
        sent = {"Accept": "application/json", **self._auth(), **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                text = answer.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            raise self._error(exc.code, exc.read()) from None
        except (urllib.error.URLError, OSError) as exc:
            raise RclaudeError(f"cannot reach {self.url}: "
                               f"{getattr(exc, 'reason', exc)}") from exc
        if raw:
            return text
        return json.loads(text) if text else {}

    def _auth(self) -> dict[str, str]:
        return {} if self._token is None else {"Authorization": f"Bearer {self._token}"}

    @staticmethod
    def _error(status: int, raw: bytes) -> ServiceError:
        # Problem details, or an OAuth error body (RFC 6749: ``{"error": ...}``).
        try:
            problem = json.loads(raw)
        except ValueError:
            problem = None
        if not isinstance(problem, dict):
            return ServiceError(status, raw.decode(errors="replace")[:300] or "no detail")
        return ServiceError(status, str(problem.get("detail") or problem.get("error")
                                         or problem), problem.get("field"))

    # -- tasks ------------------------------------------------------------------------

    def create_task(self, fields: Mapping[str, Any], *,
                    idempotency_key: str | None = None) -> dict[str, Any]:
        """Start a task (``POST /v1/tasks``); a retry with the same key is the same task."""
        key = idempotency_key or str(uuid.uuid4())
        return dict(self.request("POST", "/v1/tasks", dict(fields),
                                 headers={"Idempotency-Key": key}))

    def follow_up(self, task_id: str, prompt: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/tasks/{self._id(task_id)}/follow-up",
                                 {"prompt": prompt}))

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/tasks/{self._id(task_id)}"))

    def tasks(self, *, limit: int = 20, status: TaskStatus | None = None
              ) -> list[dict[str, Any]]:
        """The caller's tasks, newest first (pages followed up to ``limit``)."""
        found: list[dict[str, Any]] = []
        cursor = None
        while len(found) < limit:
            page = self.request("GET", "/v1/tasks", params={
                "limit": min(100, limit - len(found)), "cursor": cursor,
                "status": None if status is None else status.value})
            found.extend(page["tasks"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return found[:limit]

    def cancel(self, task_id: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/tasks/{self._id(task_id)}/cancel"))

    def logs(self, task_id: str) -> list[LogLine]:
        answer = self.request("GET", f"/v1/tasks/{self._id(task_id)}/logs")
        return [line_of(line) for line in answer["lines"]]

    def result(self, task_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/tasks/{self._id(task_id)}/result"))

    def diff(self, task_id: str) -> str:
        return str(self.request("GET", f"/v1/tasks/{self._id(task_id)}/diff", raw=True))

    def events(self, task_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        """The task's events until its end, reconnecting after the last one received
        when the connection drops."""
        import urllib.error
        import urllib.request

        path = f"{self.url}/v1/tasks/{self._id(task_id)}/events"
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream", **self._auth()}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            try:
                with urllib.request.urlopen(urllib.request.Request(path, headers=headers),
                                            timeout=self.timeout) as stream:
                    for event in _parse(stream):
                        failures = 0
                        last_event_id = event.id or last_event_id
                        yield event
                        if event.kind == "error" or (event.kind == "status" and TaskStatus(
                                event.data["status"]).done):
                            return
            except urllib.error.HTTPError as exc:
                raise self._error(exc.code, exc.read()) from None
            except (urllib.error.URLError, OSError) as exc:
                failures += 1
                if failures > MAX_RECONNECTS:
                    raise RclaudeError(f"lost {self.url} while following {task_id}: "
                                       f"{getattr(exc, 'reason', exc)}") from exc
            time.sleep(min(0.5 * 2 ** failures, 10))

    @staticmethod
    def _id(task_id: str) -> str:
        return quote(check_task_id(task_id, "task"), safe="")


def _parse(stream: Any) -> Iterator[Event]:
    """Events from a ``text/event-stream`` (the WHATWG HTML standard's format: fields
    until a blank line; comments start with a colon)."""
    kind, event_id, data = "message", None, list[str]()
    for raw in stream:
        line = raw.decode(errors="replace").rstrip("\r\n")
        if not line:
            if data:
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    payload = "\n".join(data)
                yield Event(kind, event_id, payload)
            kind, event_id, data = "message", None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "id":
            event_id = value
        elif name == "data":
            data.append(value)
