"""A task's work delivered where developers want it: committed on its own branch and
pushed (a local bare repository; a git host on loopback that wants a token), and a pull
request opened through a fake of GitHub's REST API on loopback. The agent is the real
Claude Code against the scripted Anthropic API; a failed push or pull request fails the
task, says why and keeps the diff."""

from __future__ import annotations

import json
import os
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from fake_anthropic import FakeAnthropic, Reply
from git_repos import FIX_ADD, git
from git_server import GitServer
from loopback import LoopbackServer

from rclaude_infra import ConfigError, Deployment, TaskSpec, TaskStatus

TOKEN = "ghp_PLANTEDdeliveryToken0123456789abcdefAB"
FIX = [
    Reply.call("Read", {"file_path": "{cwd}/app.py"}),
    FIX_ADD,
    Reply.say("Fixed add(): it subtracted."),
]

pytestmark = pytest.mark.usefixtures("private_home")




class FakeGitHub(LoopbackServer):
    """``POST /repos/{owner}/{repo}/pulls`` as GitHub answers it (REST API reference,
    "Create a pull request": 201 with ``html_url`` and ``number``; 422 "Validation
    Failed" with ``errors``)."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.refuse = refuse
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((self.path, dict(self.headers), body))
                if server.refuse:
                    status, answer = 422, {"message": "Validation Failed", "errors": [
                        {"resource": "PullRequest", "code": "custom", "message":
                         f"A pull request already exists for o:{body['head']}."}]}
                else:
                    status, answer = 201, {"number": 7,
                                           "html_url": "https://github.com/o/app/pull/7"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)


def test_the_work_is_committed_on_its_branch_and_pushed(
        bare: Path, fake_api: FakeAnthropic, tmp_path: Path) -> None:
    fake_api.script = list(FIX)
    task = Deployment("dev", provider="local").run_task(TaskSpec(
        prompt="Fix add() in app.py\n\nIt must add.", repo=str(bare), output="branch"))
    state = task.wait(timeout=120)
    assert state.status is TaskStatus.SUCCEEDED, state.reason
    result = task.result()
    branch = f"rclaude/{task.task_id}"
    assert result.branch == branch and result.pull_request_url is None
    assert result.delivery is not None and result.delivery["pushed"] is True
    # In the repository: the branch, with the fix, its message from the prompt; main as it was.
    assert git("show", f"{branch}:app.py", cwd=bare) == "def add(a, b):\n    return a + b\n"
    assert git("rev-parse", branch, cwd=bare).strip() == result.delivery["commit"]
    message = git("log", "-1", "--format=%s%n%b", branch, cwd=bare)
    assert message.startswith("Fix add() in app.py\n")
    assert f"rclaude-infra task {task.task_id}:" in message and "It must add." in message
    assert "a - b" in git("show", "main:app.py", cwd=bare)
    files = {p.name: p for p in result.download(tmp_path / "out")}
    assert "+    return a + b" in files["diff.patch"].read_text()  # the diff is kept too


def test_a_pull_request_is_opened_with_the_agents_words(
        bare: Path, fake_api: FakeAnthropic, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_api.script = list(FIX)
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    with GitServer(tmp_path / "served", TOKEN) as host, FakeGitHub() as github:
        task = Deployment("dev", provider="local").run_task(TaskSpec(
            prompt="Fix add() in app.py", repo=f"{host.url}/o/app.git", ref="main",
            secrets=["GH_TOKEN"], git_token_secret="GH_TOKEN", output="pull-request",
            branch="fix/add", github_api_url=github.url))
        monkeypatch.delenv("GH_TOKEN")
        state = task.wait(timeout=120)
    assert state.status is TaskStatus.SUCCEEDED, state.reason
    result = task.result()
    assert result.pull_request_url == "https://github.com/o/app/pull/7"
    assert result.branch == "fix/add" and result.delivery is not None
    assert result.delivery["base"] == "main"
    assert any(method == "POST" and ok for method, _, ok in host.log)  # pushed, with the token
    assert "a + b" in git("show", "fix/add:app.py", cwd=bare)
    ((path, headers, body),) = github.requests
    assert path == "/repos/o/app/pulls"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/vnd.github+json"
    assert (body["head"], body["base"], body["title"]) == ("fix/add", "main",
                                                          "Fix add() in app.py")
    assert body["body"].startswith("Fixed add(): it subtracted.")
    assert task.task_id in body["body"] and "model cost $" in body["body"]
    for file in result.download(tmp_path / "out"):
        assert TOKEN not in file.read_text(errors="replace"), file


def test_a_refused_pull_request_fails_the_task_and_keeps_the_work(
        bare: Path, fake_api: FakeAnthropic, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_api.script = list(FIX)
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    with GitServer(tmp_path / "served", TOKEN) as host, FakeGitHub(refuse=True) as github:
        task = Deployment("dev", provider="local").run_task(TaskSpec(
            prompt="Fix add()", repo=f"{host.url}/o/app.git", secrets=["GH_TOKEN"],
            git_token_secret="GH_TOKEN", output="pull-request", github_api_url=github.url))
        state = task.wait(timeout=120)
    assert state.status is TaskStatus.FAILED
    assert state.reason is not None
    assert "GitHub answered 422: Validation Failed; A pull request already exists" in \
        state.reason
    assert "the branch is pushed" in state.reason and "the work is in diff.patch" in state.reason
    result = task.result()
    assert result.delivery is not None and result.delivery["pushed"] is True
    assert result.pull_request_url is None
    files = {p.name: p for p in result.download(tmp_path / "out")}
    assert "+    return a + b" in files["diff.patch"].read_text()


def test_a_rejected_push_fails_the_task_and_keeps_the_work(
        bare: Path, fake_api: FakeAnthropic, tmp_path: Path) -> None:
    # Someone else's branch of that name, with other history: the push is not a fast-forward.
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "--quiet", str(bare), str(other)], check=True)
    git("checkout", "--quiet", "--orphan", "taken", cwd=other)
    git("commit", "--quiet", "--allow-empty", "-m", "theirs", cwd=other)
    git("push", "--quiet", "origin", "taken:rclaude/taken", cwd=other)
    fake_api.script = list(FIX)
    task = Deployment("dev", provider="local").run_task(TaskSpec(
        prompt="Fix add()", repo=str(bare), output="branch", branch="rclaude/taken"))
    state = task.wait(timeout=120)
    assert state.status is TaskStatus.FAILED
    assert state.reason is not None and "the branch could not be pushed" in state.reason
    assert task.result().branch is None
    assert git("log", "-1", "--format=%s", "rclaude/taken", cwd=bare).strip() == "theirs"
    files = {p.name: p for p in task.result().download(tmp_path / "out")}
    assert "+    return a + b" in files["diff.patch"].read_text()


def test_nothing_changed_is_nothing_delivered(bare: Path, fake_api: FakeAnthropic) -> None:
    fake_api.script = [Reply.say("Nothing to fix.")]
    task = Deployment("dev", provider="local").run_task(TaskSpec(
        prompt="Look at app.py", repo=str(bare), output="branch"))
    state = task.wait(timeout=120)
    assert state.status is TaskStatus.FAILED
    assert state.reason is not None and "the agent changed nothing" in state.reason
    assert f"rclaude/{task.task_id}" not in git("branch", "--list", cwd=bare)


@pytest.mark.parametrize(("fields", "field"), [
    ({"output": "branch"}, "output"),  # no repo
    ({"output": "patch", "repo": "https://github.com/o/app"}, "output"),
    ({"branch": "x", "repo": "https://github.com/o/app"}, "branch"),  # output is diff
    ({"output": "branch", "branch": "../up", "repo": "https://github.com/o/app"}, "branch"),
    ({"output": "branch", "branch": "-f", "repo": "https://github.com/o/app"}, "branch"),
    ({"output": "pull-request", "repo": "https://github.com/o/app"}, "git_token_secret"),
    ({"output": "pull-request", "repo": "https://gitlab.com/o/app", "secrets": ["T"],
      "git_token_secret": "T"}, "github_api_url"),
    ({"output": "branch", "repo": "https://github.com/o/app",
      "github_api_url": "https://api.github.com"}, "github_api_url"),
])
def test_delivery_fields_are_checked(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        TaskSpec(prompt="x", **fields)
    assert info.value.field == field


def test_the_cli_asks_for_a_branch(bare: Path, fake_api: FakeAnthropic) -> None:
    """``rclaude-infra run --output branch``: the flags reach the spec."""
    import sys

    fake_api.script = list(FIX)
    done = subprocess.run(
        [sys.executable, "-m", "rclaude_infra", "run", "--provider", "local", "--prompt",
         "Fix add()", "--repo", str(bare), "--output", "branch", "--branch", "cli/fix",
         "--follow", "--json"], capture_output=True, text=True, timeout=180,
        env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert "a + b" in git("show", "cli/fix:app.py", cwd=bare)
