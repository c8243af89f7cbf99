"""What Claude Code reports about its own run, read from its JSON event stream.

``claude -p --output-format stream-json --verbose`` prints one JSON object a line: a
``system``/``init`` line first (session id, model, permission mode), the conversation, and
last a ``result`` line with the outcome in the agent's own words (``subtype``,
``is_error``, ``api_error_status``, ``result`` or ``errors``), its turns, its cost and its
token usage per model. Claude Code exits 0 even when every tool call was denied, so the
runner judges a task by this line (and by what the task produced), not by the exit code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

#: The Claude Code release the runner image installs and the tests run (npm
#: ``@anthropic-ai/claude-code``): pinned, so a new release cannot change a task unseen.
CLAUDE_CODE_VERSION = "2.1.332"
#: Environment the runner gives Claude Code in every task: no auto-update, no telemetry,
#: error reports or other traffic beyond the model's API.
AGENT_ENV: Mapping[str, str] = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
}
#: The longest final text kept in ``result.json`` (the transcript has all of it).
MAX_TEXT_CHARS = 4000
_ERROR_WORDS = {
    "error_max_turns": "reached the maximum number of turns",
    "error_max_budget_usd": "budget exceeded",
    "error_during_execution": "error during execution",
}


@attrs.frozen(kw_only=True)
class AgentResult:
    """Claude Code's own account of a task: ``result.json``'s ``agent`` section.

    >>> line = {"type": "result", "subtype": "error_max_turns", "is_error": True,
    ...         "num_turns": 3, "total_cost_usd": 0.42, "session_id": "s-1",
    ...         "errors": ["Reached maximum number of turns (2)"]}
    >>> agent = AgentResult.from_result_line(line)
    >>> agent.failure_reason
    'Claude Code: reached the maximum number of turns: Reached maximum number of turns (2)'
    >>> agent.cost_usd, agent.turns
    (0.42, 3)
    """

    #: ``success``, ``error_max_turns``, ``error_max_budget_usd``, ``error_during_execution``;
    #: ``None`` when Claude Code ended without a result line.
    subtype: str | None = None
    is_error: bool = False
    #: The HTTP status of the model API's error that ended the run, if one did.
    api_error_status: int | None = None
    turns: int | None = None
    session_id: str | None = None
    #: Claude Code's own estimate of the model cost, from its price table.
    cost_usd: float | None = None
    #: Total tokens: ``input_tokens``, ``output_tokens``, ``cache_read_input_tokens``,
    #: ``cache_creation_input_tokens``.
    usage: Mapping[str, int] = attrs.field(factory=dict)
    #: Per model: tokens and ``costUSD`` (Claude Code's ``modelUsage``).
    model_usage: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    #: Tool calls the agent was refused: ``{tool_name, tool_use_id, tool_input}`` each.
    permission_denials: tuple[Mapping[str, Any], ...] = ()
    #: The final text (or the error message), cut to :data:`MAX_TEXT_CHARS`.
    text: str | None = None
    errors: tuple[str, ...] = ()
    duration_ms: int | None = None
    #: From the stream's first line: the model and the permission mode Claude Code ran with.
    model: str | None = None
    permission_mode: str | None = None

    @classmethod
    def from_result_line(cls, line: Mapping[str, Any],
                         init: Mapping[str, Any] | None = None) -> AgentResult:
        """From the stream's ``result`` line (and its ``system``/``init`` line)."""
        init = init or {}
        text = line.get("result")
        usage = line.get("usage")
        if not isinstance(usage, Mapping):
            usage = {}
        model_usage = line.get("modelUsage")
        return cls(
            subtype=line.get("subtype"),
            is_error=bool(line.get("is_error")),
            api_error_status=_int(line.get("api_error_status")),
            turns=_int(line.get("num_turns")),
            session_id=line.get("session_id") or init.get("session_id"),
            cost_usd=_float(line.get("total_cost_usd")),
            usage={k: v for k, v in usage.items() if isinstance(v, int)
                   and not isinstance(v, bool)},
            model_usage=dict(model_usage) if isinstance(model_usage, Mapping) else {},
            permission_denials=tuple(d for d in line.get("permission_denials") or []
                                     if isinstance(d, Mapping)),
            text=text[:MAX_TEXT_CHARS] if isinstance(text, str) else None,
            errors=tuple(str(e) for e in line.get("errors") or []),
            duration_ms=_int(line.get("duration_ms")),
            model=init.get("model"),
            permission_mode=init.get("permissionMode"),
        )

    @property
    def failure_reason(self) -> str | None:
        """Why the agent failed, in its own words; ``None`` when it did not."""
        if self.subtype is None:
            return "Claude Code ended without a result"
        if not self.is_error and self.subtype == "success":
            return None
        words = _ERROR_WORDS.get(self.subtype or "", "")
        detail = "; ".join(self.errors) or (self.text or "")
        text = ": ".join(part for part in (words, detail) if part)
        return f"Claude Code: {text or self.subtype}"

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=False)
        data["usage"] = dict(self.usage)
        data["model_usage"] = {k: dict(v) for k, v in self.model_usage.items()}
        data["permission_denials"] = [dict(d) for d in self.permission_denials]
        data["errors"] = list(self.errors)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentResult:
        """From ``result.json``'s ``agent`` section (unknown keys are ignored: a newer
        runner may write more)."""
        names = {a.name for a in attrs.fields(cls)}
        fields = {k: v for k, v in data.items() if k in names}
        fields["permission_denials"] = tuple(fields.get("permission_denials") or ())
        fields["errors"] = tuple(fields.get("errors") or ())
        return cls(**fields)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class AgentStream:
    """Reads Claude Code's stream line by line, as it is printed, keeping what the result
    needs: the ``init`` line and the last ``result`` line."""

    def __init__(self) -> None:
        self.init: dict[str, Any] = {}
        self.result_line: dict[str, Any] | None = None

    def feed(self, line: str) -> bool:
        """Take one line; ``True`` when it is a JSON event (it belongs in the transcript)."""
        try:
            event = json.loads(line)
        except ValueError:
            return False
        if not isinstance(event, dict):
            return False
        if event.get("type") == "system" and event.get("subtype") == "init":
            self.init = event
        elif event.get("type") == "result":
            self.result_line = event
        return True

    def summary(self) -> AgentResult:
        """The agent's account; ``subtype=None`` when it printed no result line (it was
        stopped, timed out or crashed), with what the ``init`` line told."""
        if self.result_line is not None:
            return AgentResult.from_result_line(self.result_line, self.init)
        return AgentResult(session_id=self.init.get("session_id"),
                           model=self.init.get("model"),
                           permission_mode=self.init.get("permissionMode"))
