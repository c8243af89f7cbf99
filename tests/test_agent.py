"""Prompt tasks through the real Claude Code CLI (npm, pinned) against a scripted Anthropic
Messages API on loopback (:mod:`fake_anthropic`), on the local provider.

Each test judges the task by what it produced (the diff, the files, ``result.json``), and
the fake's request log shows what reached the API. Claude Code's behaviour these tests
rely on is recorded in ``shared/reference/claude-code-headless.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fake_anthropic import PLANTED_KEY, FakeAnthropic, Reply
from git_repos import FIX_ADD

from rclaude_infra import ConfigError, Deployment, TaskSpec
from rclaude_infra.tasks.model import TaskStatus

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}


pytestmark = pytest.mark.usefixtures("private_home")


@pytest.fixture(name="local")
def _local() -> Deployment:
    return Deployment("dev", provider="local")


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True,
                       env={**os.environ, **GIT_ENV})

    git("init", "--quiet", "--initial-branch", "main")
    (path / "app.py").write_text("def add(a, b):\n    return a - b\n")
    git("add", ".")
    git("commit", "--quiet", "-m", "first")
    return path


@pytest.fixture(name="repo")
def _repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "origin")


def fix_and_run() -> list[Reply]:
    """The agent edits a file (Read first: Edit needs it), writes a new one and runs a
    command that writes a third, then says it is done."""
    return [
        Reply.call("Read", {"file_path": "{cwd}/app.py"}),
        FIX_ADD,
        Reply.call("Write", {"file_path": "{cwd}/NOTES.md", "content": "fixed add()\n"}),
        Reply.call("Bash", {"command": "python3 -c 'print(1+1)' > ran.txt",
                            "description": "run a command"}),
        Reply.say("Fixed add() and wrote notes."),
    ]


def task_files(local: Deployment, task_id: str) -> Path:
    from rclaude_infra.paths import rclaude_home

    return rclaude_home() / "local" / local.name / "tasks" / task_id


def test_the_agent_edits_writes_and_runs_and_the_diff_shows_it(
        local: Deployment, repo: Path, fake_api: FakeAnthropic) -> None:
    fake_api.script = fix_and_run()
    task = local.run_task(TaskSpec(prompt="Fix add() and take notes", repo=str(repo)))
    state = task.wait(timeout=120)
    assert state.status is TaskStatus.SUCCEEDED, state.reason
    diff = (task_files(local, task.task_id) / "diff.patch").read_text()
    assert "-    return a - b" in diff and "+    return a + b" in diff
    assert "+fixed add()" in diff  # the new file Write made
    assert "+2" in diff and "ran.txt" in diff  # the command Bash ran
    # Every tool call was executed, none denied.
    results = [r for turn in fake_api.turns for r in turn.tool_results()]
    assert len(results) == 4 and not any(r.get("is_error") for r in results)

    agent = task.agent
    assert agent is not None and agent.subtype == "success" and not agent.is_error
    assert agent.turns == 5
    assert agent.text == "Fixed add() and wrote notes."
    assert agent.session_id and len(agent.session_id) >= 32
    assert agent.cost_usd is not None and agent.cost_usd > 0
    assert agent.usage["input_tokens"] == 500 and agent.usage["output_tokens"] == 100
    assert sum(m["inputTokens"] for m in agent.model_usage.values()) == 500
    assert agent.permission_denials == ()
    # The same, as stored: result.json's agent section.
    stored = json.loads((task_files(local, task.task_id) / "result.json").read_text())
    assert stored["agent"]["session_id"] == agent.session_id
    assert stored["agent"]["cost_usd"] == agent.cost_usd
    assert stored["agent"]["turns"] == 5


def test_as_root_every_tool_is_allowed_by_name(
        local: Deployment, repo: Path, fake_api: FakeAnthropic) -> None:
    """Claude Code refuses bypassPermissions as root; the runner allows the tools by name
    instead, and the agent's own init line says which mode it ran in."""
    if os.geteuid() != 0:
        pytest.skip("runs as root only; test_as_a_normal_user covers this user")
    fake_api.script = [Reply.call("Bash", {"command": "touch made-by-root"})]
    task = local.run_task(TaskSpec(prompt="touch a file", repo=str(repo)))
    assert task.wait(timeout=120).status is TaskStatus.SUCCEEDED
    assert "made-by-root" in (task_files(local, task.task_id) / "diff.patch").read_text()
    assert task.agent is not None and task.agent.permission_mode == "default"


def test_as_a_normal_user_the_runner_uses_bypass_permissions(
        claude_bin: Path, fake_api: FakeAnthropic) -> None:
    """The whole local provider as a non-root user (uid 1000, as in the container)."""
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to run the provider as a normal user")
    base = Path(tempfile.mkdtemp(prefix="rclaude-user-"))
    try:
        repo = make_repo(base / "origin")
        code = (
            "import json, sys; from rclaude_infra import Deployment, TaskSpec;"
            "t = Deployment('dev', provider='local').run_task("
            "TaskSpec(prompt='touch a file', repo=sys.argv[1]));"
            "s = t.wait(timeout=120);"
            "print(json.dumps({'uid': __import__('os').getuid(), 'status': s.status.value,"
            " 'reason': s.reason, 'mode': t.agent.permission_mode,"
            " 'diff': (t.result().download(sys.argv[2]) and "
            "open(sys.argv[2] + '/' + t.task_id + '/diff.patch').read())}))"
        )
        env = {**os.environ, "HOME": str(base / "home"), "RCLAUDE_HOME": str(base / "rc")}
        python = sys.executable
        become: list[str] = []
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "1000:1000", str(base)], check=True)
            become = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"]
            python, env["PYTHONPATH"] = _python_for(become)
        argv = [*become, python, "-c", code, str(repo), str(base / "out")]
        fake_api.script = [Reply.call("Bash", {"command": "touch made-by-user"})]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        seen = json.loads(done.stdout)
        assert seen["uid"] != 0
        assert seen["status"] == "SUCCEEDED", seen["reason"]
        assert seen["mode"] == "bypassPermissions"
        assert "made-by-user" in seen["diff"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _python_for(become: list[str]) -> tuple[str, str]:
    """An interpreter the other user can run, with this checkout and attrs importable (a
    local task needs nothing else): this one, or the system's when this one lives in a
    home the user cannot enter (pyenv under /root)."""
    import attrs

    import rclaude_infra

    path = os.pathsep.join([str(Path(rclaude_infra.__file__).parents[1]),
                            str(Path(attrs.__file__).parents[1])])
    # As the provider does: the interpreter starts itself again (sys.executable).
    probe = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
             "'import rclaude_infra'], check=True)")
    for python in (sys.executable, "/usr/bin/python3"):
        if subprocess.run([*become, python, "-c", probe], env={**os.environ, "PYTHONPATH": path},
                          capture_output=True).returncode == 0:
            return python, path
    pytest.fail("no Python 3.11 that uid 1000 may run (this one is in a private home)")


@pytest.mark.parametrize("prompt", [
    "--help me: this prompt starts with a dash",
    "-p " + "0123456789abcdef" * 12_800 + " END",  # 200 KiB: over the argv limit
])
def test_the_prompt_reaches_the_api_whole(local: Deployment, fake_api: FakeAnthropic,
                                          prompt: str) -> None:
    task = local.run_task(TaskSpec(prompt=prompt))
    assert task.wait(timeout=120).status is TaskStatus.SUCCEEDED, task.reason
    assert prompt in fake_api.turns[0].user_text()


def test_an_api_error_fails_the_task_in_the_agents_words(
        local: Deployment, fake_api: FakeAnthropic) -> None:
    # Every attempt is refused, as the real API refuses the same request each time
    # (Claude Code 2.1 sends a refused request up to six times before it gives up).
    fake_api.script = [Reply.error(400, "messages.0.content: text blocks must be non-empty")] * 10
    task = local.run_task(TaskSpec(prompt="anything"))
    state = task.wait(timeout=120)
    assert state.status is TaskStatus.FAILED
    assert state.reason is not None
    assert "API Error: 400" in state.reason and "text blocks must be non-empty" in state.reason
    assert task.agent is not None and task.agent.api_error_status == 400
    assert task.agent.is_error


def test_max_turns_is_passed_and_its_stop_fails_the_task(
        local: Deployment, fake_api: FakeAnthropic) -> None:
    fake_api.script = [Reply.call("Bash", {"command": f"echo {i}"}) for i in range(10)]
    task = local.run_task(TaskSpec(prompt="loop", max_turns=2))
    state = task.wait(timeout=120)
    assert state.status is TaskStatus.FAILED
    assert state.reason == ("Claude Code: reached the maximum number of turns: "
                            "Reached maximum number of turns (2)")
    assert task.agent is not None and task.agent.subtype == "error_max_turns"
    assert len(fake_api.turns) == 2


def test_a_budget_stop_says_so(local: Deployment, fake_api: FakeAnthropic) -> None:
    fake_api.script = [Reply.call("Bash", {"command": f"echo {i}"}) for i in range(10)]
    task = local.run_task(TaskSpec(prompt="spend", max_budget_usd=0.001))
    state = task.wait(timeout=120)
    assert state.status is TaskStatus.FAILED
    assert state.reason is not None and "budget exceeded" in state.reason
    assert task.agent is not None and task.agent.subtype == "error_max_budget_usd"


def test_no_result_line_fails_the_task_with_claudes_stderr(
        local: Deployment, fake_api: FakeAnthropic) -> None:
    task = local.run_task(TaskSpec(prompt="x", claude_args=["--no-such-flag"]))
    state = task.wait(timeout=120)
    assert state.status is TaskStatus.FAILED
    assert state.reason is not None
    assert state.reason.startswith("Claude Code ended without a result (exit code 1)")
    assert "--no-such-flag" in state.reason
    assert fake_api.turns == []


def test_model_and_settings_reach_claude_code(local: Deployment,
                                              fake_api: FakeAnthropic) -> None:
    # The settings' env reaches the agent's commands only if Claude Code read the file.
    fake_api.script = [Reply.call("Bash", {
        "command": "echo $FROM_SETTINGS > $RCLAUDE_ARTIFACTS/seen.txt"})]
    task = local.run_task(TaskSpec(prompt="hi", model="claude-sonnet-4-5-20250929",
                                   claude_settings={"env": {"FROM_SETTINGS": "yes"}}))
    assert task.wait(timeout=120).status is TaskStatus.SUCCEEDED, task.reason
    assert fake_api.turns[0].body is not None
    assert fake_api.turns[0].body["model"] == "claude-sonnet-4-5-20250929"
    settings = task_files(local, task.task_id) / "claude" / "task-settings.json"
    assert json.loads(settings.read_text()) == {"env": {"FROM_SETTINGS": "yes"}}
    seen = task_files(local, task.task_id) / "artifacts" / "seen.txt"
    assert seen.read_text() == "yes\n"


def test_transcript_is_the_json_stream_and_stderr_has_its_own_file(
        local: Deployment, fake_api: FakeAnthropic) -> None:
    task = local.run_task(TaskSpec(prompt="hi", claude_args=["--debug-file", "/dev/stderr"]))
    assert task.wait(timeout=120).status is TaskStatus.SUCCEEDED, task.reason
    files = task_files(local, task.task_id)
    events = [json.loads(line) for line in (files / "transcript.jsonl").read_text().splitlines()]
    assert events[0]["type"] == "system" and events[-1]["type"] == "result"
    stderr = (files / "stderr.log").read_text()
    assert stderr.strip()  # its debug log
    logged = {line.text for line in task.logs()}
    assert stderr.splitlines()[0] in logged
    assert "stderr.log" in task.result().files


def test_the_key_appears_in_no_file_and_no_log(local: Deployment, repo: Path,
                                               fake_api: FakeAnthropic) -> None:
    fake_api.script = [Reply.call("Bash", {
        "command": 'test -n "$ANTHROPIC_API_KEY" && echo the agent has a key > key.txt'})]
    task = local.run_task(TaskSpec(prompt="check the key", repo=str(repo)))
    assert task.wait(timeout=120).status is TaskStatus.SUCCEEDED, task.reason
    # The agent had the key (the API saw it, its command found it) ...
    assert fake_api.turns[0].headers.get("x-api-key") == PLANTED_KEY
    root = task_files(local, task.task_id)
    assert "+the agent has a key" in (root / "diff.patch").read_text()
    # ... and nothing the runner or Claude Code kept holds it.
    for path in root.rglob("*"):
        if path.is_file():
            assert PLANTED_KEY not in path.read_text(errors="replace"), path
    assert all(PLANTED_KEY not in line.text for line in task.logs())


def test_the_agent_env_turns_updates_and_traffic_off(local: Deployment,
                                                     fake_api: FakeAnthropic) -> None:
    fake_api.script = [Reply.call("Bash", {"command": "env > $RCLAUDE_ARTIFACTS/env.txt"})]
    task = local.run_task(TaskSpec(prompt="show env"))
    assert task.wait(timeout=120).status is TaskStatus.SUCCEEDED, task.reason
    env = dict(line.split("=", 1) for line in (
        task_files(local, task.task_id) / "artifacts" / "env.txt").read_text().splitlines()
        if "=" in line)
    assert env["DISABLE_AUTOUPDATER"] == "1"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["CLAUDE_CONFIG_DIR"] == str(task_files(local, task.task_id) / "claude")
    # Only the Messages API was called: no update checks, telemetry or other traffic.
    assert {r.path.split("?")[0] for r in fake_api.requests} == {"/v1/messages"}


# -- without Claude Code: the spec and the stream, as values ----------------------------


@pytest.mark.parametrize(("fields", "field"), [
    ({"prompt": "x", "max_turns": 0}, "max_turns"),
    ({"prompt": "x", "max_budget_usd": 0}, "max_budget_usd"),
    ({"prompt": "x", "max_budget_usd": float("nan")}, "max_budget_usd"),
    ({"prompt": "x", "model": "bad model"}, "model"),
    ({"prompt": "x", "claude_args": ["--permission-mode", "plan"]}, "claude_args"),
    ({"prompt": "x", "claude_args": ["--max-turns=3"]}, "claude_args"),
    ({"prompt": "x", "claude_args": [""]}, "claude_args"),
    ({"prompt": "x", "claude_settings": {"hooks": {1, 2}}}, "claude_settings"),
    ({"prompt": "x", "claude_settings": ["not", "a", "mapping"]}, "claude_settings"),
    ({"command": "x", "model": "sonnet"}, "model"),
    ({"command": "x", "claude_args": ["--debug"]}, "claude_args"),
    ({"prompt": "x", "env": {"CLAUDE_CODE_OAUTH_TOKEN": "t"}}, "env['CLAUDE_CODE_OAUTH_TOKEN']"),
])
def test_agent_fields_are_validated(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        TaskSpec(**fields)
    assert info.value.field == field


def test_a_flag_the_runner_owns_names_the_field_to_use() -> None:
    with pytest.raises(ConfigError, match=r"use TaskSpec\.max_budget_usd"):
        TaskSpec(prompt="x", claude_args=["--max-budget-usd", "3"])


def test_the_command_line_never_carries_the_prompt() -> None:
    spec = TaskSpec(prompt="-rf /", model="opus", max_turns=7, max_budget_usd=1.5,
                    claude_args=["--add-dir", "/data"])
    user = spec.argv(as_root=False, settings_file="/t/s.json")
    assert "-rf /" not in user
    assert user[:5] == ["claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert user[5:] == ["--permission-mode", "bypassPermissions", "--model", "opus",
                        "--max-turns", "7", "--max-budget-usd", "1.5", "--settings",
                        "/t/s.json", "--add-dir", "/data"]
    root = spec.argv(as_root=True)
    assert root[5] == "--allowedTools" and {"Bash", "Edit", "Write"} <= set(root[6].split(","))
    assert "--permission-mode" not in root


def test_the_cli_runs_a_prompt_and_shows_its_turns_and_cost(
        fake_api: FakeAnthropic, tmp_path: Path) -> None:
    fake_api.script = [Reply.call("Bash", {"command": "echo hi"}), Reply.say("done")]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rclaude_infra", *args], cwd=tmp_path,
                              env={**os.environ, "COLUMNS": "200"}, capture_output=True,
                              text=True, timeout=180)

    run = cli("run", "--provider", "local", "--prompt", "say hi", "--max-turns", "5",
              "--model", "sonnet", "--task-id", "t-cli-agent", "--follow")
    assert run.returncode == 0, run.stderr
    listed = json.loads(cli("tasks", "--provider", "local", "--json").stdout)
    [row] = [r for r in listed if r["task_id"] == "t-cli-agent"]
    assert row["turns"] == 2 and row["model_usd"] > 0
    table = cli("tasks", "--provider", "local").stdout
    assert "turns" in table and "model $" in table
    shown = cli("result", "t-cli-agent", "--provider", "local").stdout
    assert "turns" in shown and "model cost" in shown and "done" in shown
    bad = cli("run", "--provider", "local", "--prompt", "x", "--claude-arg=--verbose")
    assert bad.returncode == 2 and "--verbose is the runner's own" in bad.stderr
