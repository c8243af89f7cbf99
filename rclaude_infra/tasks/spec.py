"""A task: what to run (a Claude Code prompt or a command), where (a repository at a
ref), with what (environment, secrets' names, size, limits), validated at construction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from .._validate import Pattern as _Pattern
from .._validate import as_tuple as _tuple
from .._validate import float_between as _float_between
from .._validate import frozen_mapping as _frozen_tags
from .._validate import int_between as _int_between
from .._validate import is_bool as _is_bool
from .._validate import known_fields as _known_fields
from .._validate import one_of as _one_of
from ..config import CREDENTIAL_ENV
from ..errors import ConfigError

_TASK_ID_RE = _Pattern(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,35}$")
_ENV_NAME_RE = _Pattern(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REPO_RE = _Pattern(
    r"^(https://[^\s]+|ssh://[^\s]+|git@[^\s:]+:[^\s]+|file://[^\s]+|/[^\s]*"
    # Plain HTTP only to this machine (a local git server): never a token over the network.
    r"|http://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?/[^\s]*)$")
_REF_RE = _Pattern(r"^[A-Za-z0-9._/-]{1,200}$")
MAX_PROMPT_CHARS = 1_000_000
_MAX_ENV_CHARS = 256 * 1024
_MODEL_RE = _Pattern(r"^[A-Za-z0-9][A-Za-z0-9._:/@\[\]-]{0,199}$")
_MAX_CLAUDE_ARGS_CHARS = 32_768
_MAX_CLAUDE_SETTINGS_CHARS = 65_536
#: Claude Code's tools the agent may use when the runner runs as root, where Claude Code
#: refuses ``--permission-mode bypassPermissions``: allowing each tool by name lets it edit
#: and run commands the same way (names a Claude Code version lacks are ignored).
#: What a task delivers: its diff (``diff.patch`` with its results), a branch pushed to
#: the repository, or that branch and a pull request on GitHub.
OUTPUTS: tuple[str, ...] = ("diff", "branch", "pull-request")
_HTTP_URL_RE = _Pattern(r"^https?://[^\s/]+(/\S*)?$")
_SESSION_RE = _Pattern(r"^[A-Za-z0-9-]{8,64}$")

ROOT_ALLOWED_TOOLS: tuple[str, ...] = (
    "Bash", "Edit", "Write", "MultiEdit", "NotebookEdit", "Read", "Glob", "Grep", "LS",
    "WebFetch", "WebSearch", "TodoWrite", "Task", "Skill",
)
#: Claude Code flags the runner sets itself, each with the TaskSpec field to use instead
#: (``None``: the runner owns it outright).
RUNNER_FLAGS: Mapping[str, str | None] = {
    "-p": None, "--print": None, "--output-format": None, "--input-format": None,
    "--verbose": None, "--permission-mode": None, "--dangerously-skip-permissions": None,
    "--allow-dangerously-skip-permissions": None, "--model": "model",
    "--max-turns": "max_turns", "--max-budget-usd": "max_budget_usd",
    "--settings": "claude_settings", "--resume": None, "-r": None, "--continue": None,
    "-c": None, "--session-id": None, "--fork-session": None,
}


# Claude credentials: never part of a spec (spec.json is stored as it is).
_CREDENTIAL_NAMES = frozenset(
    [*(v for v in CREDENTIAL_ENV.values() if v), "ANTHROPIC_AUTH_TOKEN"])


def new_task_id() -> str:
    """A fresh task id: sortable by time, unique, safe for S3 keys and ECS ``startedBy``."""
    import datetime as dt
    import secrets

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"t-{stamp}-{secrets.token_hex(3)}"


def redact_url(url: str) -> str:
    """``url`` with a password, or an https user that is a token, replaced by ``***``
    (an ssh user, ``git@``, is no secret and stays).

    >>> redact_url("https://me:hunter2@example.com/app.git")
    'https://me:***@example.com/app.git'
    >>> redact_url("https://ghp_abc@github.com/me/app")
    'https://***@github.com/me/app'
    >>> redact_url("ssh://git@github.com/me/app")
    'ssh://git@github.com/me/app'
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name, colon, _ = user.partition(":")
    if colon:
        shown = f"{name}:***"
    elif parts.scheme in ("http", "https"):
        shown = "***"  # a user in an https URL is how tokens are passed
    else:
        return url
    return parts._replace(netloc=f"{shown}@{host}").geturl()


def check_task_id(value: object, field: str = "task_id") -> str:
    """``value`` if it is a task id (the whole of it: a path, a newline or a look-alike
    letter is not), else :class:`~rclaude_infra.errors.ConfigError` naming ``field``.
    Every id that comes in (a spec's, ``Deployment.task(id)``, the CLI's) passes here.

    >>> check_task_id("../x")
    Traceback (most recent call last):
    ...
    rclaude_infra.errors.ConfigError: task_id: got '../x'; allowed: 1 to 36 letters, ...
    """
    if not isinstance(value, str) or not is_task_id(value):
        raise ConfigError(field, value, "1 to 36 letters, digits, '-' or '_', starting "
                          "with a letter or digit (it is the S3 prefix and ECS startedBy)")
    return value


def is_task_id(value: object) -> bool:
    """Whether ``value`` is a task id (:func:`check_task_id` without the error)."""
    return isinstance(value, str) and _TASK_ID_RE.fullmatch(value) is not None


def _check_task_id(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_task_id(value, attribute.name)


def _check_text(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()
                              or len(value) > MAX_PROMPT_CHARS or "\x00" in value):
        raise ConfigError(attribute.name, value if not isinstance(value, str) else value[:40],
                          f"None or non-blank text of at most {MAX_PROMPT_CHARS} characters, "
                          "without NUL bytes")


def _check_command(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, str):
        _check_text(_, attribute, value)
        return
    if (not isinstance(value, tuple) or not value
            or not all(isinstance(a, str) and a and "\x00" not in a for a in value)):
        raise ConfigError(attribute.name, value, "None, a shell command string, or a "
                          "non-empty list of arguments (without NUL bytes)")


def _check_env(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(attribute.name, value, "a mapping of variable names to strings")
    for key, val in value.items():
        if (not isinstance(key, str) or not _ENV_NAME_RE.fullmatch(key)
                or key.startswith("RCLAUDE_")):
            raise ConfigError(f"{attribute.name}[{key!r}]", key,
                              "a variable name like MY_VAR (RCLAUDE_* is reserved)")
        if not isinstance(val, str) or len(val) > 32_768 or "\x00" in val:
            raise ConfigError(f"{attribute.name}[{key!r}]", val[:40] if isinstance(
                val, str) else val, "a string of at most 32 KiB, without NUL bytes")
    if sum(len(k) + len(v) for k, v in value.items()) > _MAX_ENV_CHARS:
        raise ConfigError(attribute.name, f"{len(value)} variables",
                          f"at most {_MAX_ENV_CHARS // 1024} KiB of variables in all (a "
                          "process's environment has a limit)")


def is_env_name(name: object) -> bool:
    """A name a secret or an environment variable may have (``MY_VAR``).

    >>> is_env_name("DEPLOY_TOKEN"), is_env_name("1X"), is_env_name("A B")
    (True, False, False)
    """
    return isinstance(name, str) and _ENV_NAME_RE.fullmatch(name) is not None


def _check_secret_names(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, tuple) or not all(is_env_name(n) for n in value):
        raise ConfigError(attribute.name, value,
                          "names of secrets (environment variable names), not their values")


def _check_model(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not _MODEL_RE.fullmatch(value)):
        raise ConfigError(attribute.name, value, "None or a Claude model name or alias, e.g. "
                          "'sonnet', 'claude-sonnet-4-5' or a Bedrock inference profile id")


def _check_claude_args(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if (not isinstance(value, tuple) or not all(isinstance(a, str) and a for a in value)
            or sum(len(a) for a in value) > _MAX_CLAUDE_ARGS_CHARS):
        raise ConfigError(attribute.name, value, "a list of non-empty strings, at most "
                          f"{_MAX_CLAUDE_ARGS_CHARS} characters in all")
    for arg in value:
        flag = arg.split("=", 1)[0]
        if flag in RUNNER_FLAGS:
            field = RUNNER_FLAGS[flag]
            raise ConfigError(attribute.name, arg, "Claude Code arguments the runner does not "
                              "set itself; " + (f"use TaskSpec.{field} for {flag}" if field
                                                else f"{flag} is the runner's own"))


def _frozen_json(value: object) -> object:
    """A read-only copy of a JSON-able mapping (through JSON: nothing shared, nothing
    that JSON cannot carry); anything else is left for the validator to refuse."""
    if isinstance(value, Mapping):
        from types import MappingProxyType

        try:
            return MappingProxyType(json.loads(json.dumps(dict(value))))
        except (TypeError, ValueError):
            return value
    return value


def _check_claude_settings(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    allowed = (f"a mapping of Claude Code settings (settings.json keys) that JSON can carry, "
               f"at most {_MAX_CLAUDE_SETTINGS_CHARS} characters as JSON")
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(attribute.name, value, allowed)
    try:
        text = json.dumps(dict(value))
    except (TypeError, ValueError):
        raise ConfigError(attribute.name, value, allowed) from None
    if len(text) > _MAX_CLAUDE_SETTINGS_CHARS:
        raise ConfigError(attribute.name, text[:40], allowed)


def _check_optional_usd(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _float_between(0, 100_000, low_open=True)(_, attribute, value)


def _check_optional_int(low: int, high: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            _int_between(low, high)(_, attribute, value)

    return check


@attrs.frozen(kw_only=True)
class TaskSpec:
    """One coding-agent task: a prompt for Claude Code, or a command, in an optional repo.

    >>> spec = TaskSpec(prompt="Fix the failing tests", repo="https://github.com/me/app",
    ...                 max_turns=30, max_budget_usd=2.5)
    >>> spec.task_id.startswith("t-"), spec.timeout
    (True, 3600)
    >>> TaskSpec(command=["pytest", "-q"]).argv()
    ['pytest', '-q']

    Exactly one of ``prompt`` and ``command`` is given. A prompt runs Claude Code headless
    (the prompt on its standard input, allowed to edit files and run commands in the task's
    sandbox); ``model``, ``max_turns``, ``max_budget_usd``, ``claude_args`` and
    ``claude_settings`` go to it and are for prompts only. ``secrets`` names secrets the
    task receives as environment variables (their values never enter the spec). Invalid
    values raise :class:`~rclaude_infra.errors.ConfigError` naming the field.
    """

    prompt: str | None = attrs.field(default=None, validator=_check_text)
    #: A shell command string (run with ``bash -lc``) or a list of arguments.
    command: str | tuple[str, ...] | None = attrs.field(
        default=None, converter=_tuple, validator=_check_command)
    repo: str | None = attrs.field(default=None)
    #: Branch, tag or commit to check out (default: the repository's default branch).
    ref: str | None = attrs.field(default=None)
    env: Mapping[str, str] = attrs.field(
        factory=dict, converter=_frozen_tags, validator=_check_env, hash=False)
    secrets: tuple[str, ...] = attrs.field(
        default=(), converter=_tuple, validator=_check_secret_names)
    #: CPU units / MiB for this task (default: the deployment's task size).
    cpu: int | None = attrs.field(default=None, validator=_check_optional_int(128, 196608))
    memory: int | None = attrs.field(default=None, validator=_check_optional_int(128, 1048576))
    #: Seconds before the task is stopped as timed out.
    timeout: int = attrs.field(default=3600, validator=_int_between(1, 86400))
    max_retries_on_preemption: int = attrs.field(default=1, validator=_int_between(0, 5))
    #: Start the task so a shell can be opened in it (:meth:`Task.exec`; ECS Exec on a
    #: stack deployed with ``interactive_tasks=True``). Such a task runs from the stack's
    #: interactive task definition, whose root file system is writable; locally every task
    #: takes a shell, and this changes nothing.
    interactive: bool = attrs.field(default=False, validator=_is_bool)
    task_id: str = attrs.field(factory=new_task_id, validator=_check_task_id)
    #: Claude Code's model (``--model``): an alias (``"sonnet"``), a full name, or with
    #: Bedrock one of the deployment's ``bedrock_models``. Default: Claude Code's own.
    model: str | None = attrs.field(default=None, validator=_check_model)
    #: Agent turns before Claude Code stops with ``error_max_turns`` (the task FAILS).
    max_turns: int | None = attrs.field(default=None, validator=_check_optional_int(1, 10_000))
    #: USD of model use before Claude Code stops with ``error_max_budget_usd`` (the task
    #: FAILS, saying the budget was reached).
    max_budget_usd: float | None = attrs.field(default=None, validator=_check_optional_usd)
    #: More Claude Code arguments, for advanced use (e.g. ``["--disallowedTools",
    #: "WebFetch"]``); the flags the runner sets itself are refused.
    claude_args: tuple[str, ...] = attrs.field(
        default=(), converter=_tuple, validator=_check_claude_args)
    #: Claude Code settings (``settings.json`` keys) for this task, given with ``--settings``.
    claude_settings: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_frozen_json, validator=_check_claude_settings, hash=False)
    #: Which of ``secrets`` is a token for the repository's host (a private repository over
    #: HTTPS): git gets it from a credential helper, never in the URL or an argument.
    git_token_secret: str | None = attrs.field(default=None)
    #: What the task delivers (:data:`OUTPUTS`): ``"diff"``; ``"branch"``: the work
    #: committed on ``branch`` and pushed (with ``git_token_secret`` for a host that wants
    #: one); ``"pull-request"``: that, and a pull request on GitHub into ``ref`` (default:
    #: the repository's default branch), its URL in the result.
    output: str = attrs.field(default="diff", validator=_one_of(OUTPUTS))
    #: The branch the work is pushed to (default ``rclaude/<task_id>``).
    branch: str | None = attrs.field(default=None)
    #: GitHub's REST API for the pull request (default: ``https://api.github.com`` for a
    #: github.com repository; GitHub Enterprise: ``https://HOST/api/v3``).
    github_api_url: str | None = attrs.field(default=None)
    #: The task this one continues (:meth:`Task.resume`): its agent session is resumed
    #: (``claude --resume``) and its work is where this task starts.
    resume_from: str | None = attrs.field(default=None)
    #: The session to resume (the earlier task's ``agent.session_id``).
    resume_session: str | None = attrs.field(default=None)
    #: A command run after the agent (or the command), in the same checkout: its outcome
    #: is in the result (``check``), a failure fails the task, and only checked work is
    #: delivered (e.g. ``"pytest -q"``).
    check: str | tuple[str, ...] | None = attrs.field(
        default=None, converter=_tuple, validator=_check_command)
    #: A task whose diff this one starts from (applied to the checkout before anything
    #: runs): how the best of several attempts is delivered.
    apply_from: str | None = attrs.field(default=None)
    #: The commit message and pull request description of the delivered work (default:
    #: the prompt, and the agent's final text).
    description: str | None = attrs.field(default=None, validator=_check_text)

    def __attrs_post_init__(self) -> None:
        if (self.prompt is None) == (self.command is None):
            raise ConfigError("prompt/command", (self.prompt, self.command),
                              "exactly one of prompt and command")
        if self.repo is not None and (not isinstance(self.repo, str)
                                      or not _REPO_RE.fullmatch(self.repo)):
            raise ConfigError("repo", self.repo, "None or a git URL (https://, ssh://, "
                              "git@host:path, file://, http:// to this machine only) or an "
                              "absolute local path")
        if self.repo is not None and redact_url(self.repo) != self.repo:
            # The spec is stored, logged and shown: a credential never goes in it.
            raise ConfigError("repo", redact_url(self.repo), "a URL without a password or "
                              "token in it: pass the token as a secret and name it "
                              "git_token_secret")
        if self.ref is not None and (not isinstance(self.ref, str) or not _REF_RE.fullmatch(
                self.ref) or ".." in self.ref or self.ref.startswith(("-", "/"))):
            raise ConfigError("ref", self.ref, "None or a branch, tag or commit name")
        if self.ref is not None and self.repo is None:
            raise ConfigError("ref", self.ref, "None unless repo is given")
        if self.command is not None:
            for name in ("model", "max_turns", "max_budget_usd"):
                if getattr(self, name) is not None:
                    raise ConfigError(name, getattr(self, name), "None unless prompt is given "
                                      "(it is passed to Claude Code)")
            for name in ("claude_args", "claude_settings"):
                if getattr(self, name):
                    raise ConfigError(name, getattr(self, name),
                                      "empty unless prompt is given (it is passed to Claude Code)")
        if self.git_token_secret is not None and (
                self.git_token_secret not in self.secrets or self.repo is None
                or not self.repo.startswith(("https://", "http://"))):
            raise ConfigError("git_token_secret", self.git_token_secret,
                              "None, or one of secrets when repo is an https:// URL")
        self._check_output()
        if self.resume_from is not None and (
                self.prompt is None or not isinstance(self.resume_from, str)
                or not _TASK_ID_RE.fullmatch(self.resume_from)):
            raise ConfigError("resume_from", self.resume_from,
                              "None, or with a prompt the id of the task to continue")
        if self.apply_from is not None and (
                self.resume_from is not None or self.repo is None
                or not isinstance(self.apply_from, str) or not _TASK_ID_RE.fullmatch(
                    self.apply_from)):
            raise ConfigError("apply_from", self.apply_from, "None, or with repo (and not "
                              "with resume_from, which brings its own work) a task id")
        if (self.resume_session is None) != (self.resume_from is None) or (
                self.resume_session is not None and (not isinstance(self.resume_session, str)
                                                     or not _SESSION_RE.fullmatch(
                                                         self.resume_session))):
            raise ConfigError("resume_session", self.resume_session,
                              "the session id of the task in resume_from (given together)")
        leaked = [name for name in self.env if name in _CREDENTIAL_NAMES]
        if leaked:
            raise ConfigError(f"env[{leaked[0]!r}]", "[hidden]", "no Claude credential in env "
                              "(it would be stored with the spec): the runner takes it from "
                              "the deployment's secret, or locally from your environment")

    def _check_output(self) -> None:
        if self.output != "diff" and self.repo is None:
            raise ConfigError("output", self.output, "'diff' unless repo is given (the "
                              "work is pushed to that repository)")
        if self.branch is not None and (
                self.output == "diff" or not isinstance(self.branch, str)
                or not _REF_RE.fullmatch(self.branch) or ".." in self.branch
                or self.branch.startswith(("-", "/")) or self.branch.endswith((".lock", "/"))):
            raise ConfigError("branch", self.branch, "None, or with output 'branch' or "
                              "'pull-request' a branch name such as 'rclaude/fix-tests'")
        if self.github_api_url is not None and (
                self.output != "pull-request" or not isinstance(self.github_api_url, str)
                or not _HTTP_URL_RE.fullmatch(self.github_api_url)):
            raise ConfigError("github_api_url", self.github_api_url,
                              "None, or with output 'pull-request' an http(s) URL")
        if self.output != "pull-request":
            return
        if self.git_token_secret is None:
            raise ConfigError("git_token_secret", None, "the secret holding a token that may "
                              "push and open pull requests, with output 'pull-request'")
        if self.github_api_url is None and self.repo_host != "github.com":
            raise ConfigError("github_api_url", None, "the GitHub API URL for a repository "
                              f"not on github.com ({self.repo_host}); GitHub Enterprise: "
                              f"'https://{self.repo_host}/api/v3'")

    @property
    def repo_host(self) -> str | None:
        """The repository's host, for an http(s) URL."""
        if self.repo is None or not self.repo.startswith(("https://", "http://")):
            return None
        return self.repo.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]

    @property
    def branch_name(self) -> str:
        """The branch the work goes to (``output`` branch or pull-request)."""
        return self.branch or f"rclaude/{self.task_id}"

    def argv(self, *, as_root: bool = False, settings_file: str | None = None) -> list[str]:
        """The command the runner executes.

        For a prompt, Claude Code headless reading the prompt on its standard input (no
        length limit, never parsed as options) and printing its JSON event stream. The
        runner is the sandbox, so the agent may edit and run commands without asking:
        ``--permission-mode bypassPermissions``, or, as root (which Claude Code refuses
        that mode to), every tool allowed by name (:data:`ROOT_ALLOWED_TOOLS`).

        >>> TaskSpec(prompt="-v is a prompt, not a flag", max_turns=5).argv()[-4:]
        ['--permission-mode', 'bypassPermissions', '--max-turns', '5']
        """
        if self.prompt is not None:
            args = ["claude", "-p", "--output-format", "stream-json", "--verbose"]
            if as_root:
                args += ["--allowedTools", ",".join(ROOT_ALLOWED_TOOLS)]
            else:
                args += ["--permission-mode", "bypassPermissions"]
            if self.model is not None:
                args += ["--model", self.model]
            if self.max_turns is not None:
                args += ["--max-turns", str(self.max_turns)]
            if self.max_budget_usd is not None:
                args += ["--max-budget-usd", repr(float(self.max_budget_usd))]
            if settings_file is not None:
                args += ["--settings", settings_file]
            if self.resume_session is not None:
                args += ["--resume", self.resume_session]
            return args + list(self.claude_args)
        if isinstance(self.command, str):
            return ["bash", "-lc", self.command]
        assert self.command is not None
        return list(self.command)

    def check_argv(self) -> list[str] | None:
        """The check's command line (a string runs with ``bash -lc``)."""
        if self.check is None:
            return None
        return ["bash", "-lc", self.check] if isinstance(self.check, str) else list(self.check)

    @property
    def earlier_work(self) -> str | None:
        """The task whose work this one starts from (resumed, or applied)."""
        return self.resume_from or self.apply_from

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=False)
        data["env"] = dict(self.env)
        data["secrets"] = list(self.secrets)
        data["claude_args"] = list(self.claude_args)
        data["claude_settings"] = dict(self.claude_settings)
        for name in ("command", "check"):
            if isinstance(data[name], tuple):
                data[name] = list(data[name])
        return data

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TaskSpec:
        """From plain data (``spec.json``); unknown keys are errors naming the key."""
        return cls(**_known_fields(cls, data, "spec"))
