"""Best of N and checks: every attempt's work is judged by a command in its own
checkout, the attempts are ranked (check, then diff size, then cost) and only the winner
is delivered. Three real Claude Code agents run at once against the scripted Anthropic
API, each with its own script (by working directory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_anthropic import FakeAnthropic, Reply
from git_repos import git

from rclaude_infra import ConfigError, Deployment, TaskSpec, TaskStatus

CHECK = "python3 -c 'import app; assert app.add(2, 3) == 5, app.add(2, 3)'"


def _edit(new: str, text: str) -> list[Reply]:
    return [Reply.call("Edit", {"file_path": "{cwd}/app.py", "old_string": "    return a - b\n",
                                "new_string": new}),
            Reply.say(text)]


RIGHT = _edit("    return a + b\n", "Fixed: add adds.")
WRONG = _edit("    return a * b\n", "Fixed, I think.")
RIGHT_BUT_LONG = _edit("    # Add the two numbers.\n    total = a + b\n    return total\n",
                       "Fixed, with a comment.")

pytestmark = pytest.mark.usefixtures("private_home")




def _who_got(fake: FakeAnthropic, script_index: int) -> str:
    """The task id whose agent got the script at ``script_index``."""
    cwd = fake.sessions[script_index]
    return next(part for part in Path(cwd).parts if part.startswith("t-"))


def test_a_check_judges_the_work_and_leaves_no_trace_in_it(bare: Path,
                                                           fake_api: FakeAnthropic) -> None:
    d = Deployment("dev", provider="local")
    fake_api.script = list(WRONG)
    failed = d.run_task(TaskSpec(prompt="Fix add()", repo=str(bare), check=CHECK))
    state = failed.wait(timeout=120)
    assert state.status is TaskStatus.FAILED
    assert state.reason == "the check failed (exit code 1): AssertionError: 6"
    check = failed.result().data["check"]
    assert check["passed"] is False and check["exit_code"] == 1
    assert any("AssertionError: 6" in line for line in check["output"])
    assert failed.result().data["diff"] == {"files": 1, "lines": 2}
    # A passing check that leaves a report behind (as pytest leaves caches, and Python
    # __pycache__ unless PYTHONDONTWRITEBYTECODE is set): the branch holds the agent's work
    # only.
    fake_api.rescript(RIGHT)
    passed = d.run_task(TaskSpec(prompt="Fix add()", repo=str(bare),
                                 check=f"{CHECK} && echo ok > check-report.txt",
                                 output="branch"))
    state = passed.wait(timeout=120)
    assert state.status is TaskStatus.SUCCEEDED, state.reason
    assert passed.result().data["check"]["passed"] is True
    branch = passed.result().branch
    assert branch is not None
    assert git("ls-tree", "-r", "--name-only", branch, cwd=bare).split() == ["app.py"]


def test_the_best_of_three_is_delivered_alone(bare: Path, fake_api: FakeAnthropic) -> None:
    fake_api.script_per_session([WRONG, RIGHT_BUT_LONG, RIGHT])
    d = Deployment("dev", provider="local")
    # The check leaves a report behind, as pytest leaves caches: it is never delivered.
    best = d.run_best_of(TaskSpec(prompt="Fix add() in app.py", repo=str(bare),
                                  output="branch", branch="fix/add"),
                         n=3, check=f"{CHECK} && echo ok > check-report.txt", timeout=180)
    wrong, long_fix, right = (_who_got(fake_api, i) for i in range(3))
    assert best.winner == right
    assert [a.task_id for a in best.attempts] == [right, long_fix, wrong]
    by_id = {a.task_id: a for a in best.attempts}
    assert by_id[right].check_passed and by_id[long_fix].check_passed
    assert not by_id[wrong].check_passed and by_id[wrong].status == "FAILED"
    assert by_id[right].diff_lines == 2 and by_id[long_fix].diff_lines == 4
    assert all(a.cost_usd > 0 for a in best.attempts)
    # Only the winner's work is pushed, once, by the delivery task (which checked it again).
    assert best.branch == "fix/add" and best.reason is None
    assert git("show", "fix/add:app.py", cwd=bare) == "def add(a, b):\n    return a + b\n"
    branches = git("branch", "--list", cwd=bare).split()
    assert [b for b in branches if b != "*"] == ["fix/add", "main"]
    message = git("log", "-1", "--format=%B", "fix/add", cwd=bare)
    assert message.startswith("Fix add() in app.py\n") and "Fixed: add adds." in message
    assert f"{right}: check passed, 2 lines" in message
    delivery = d.task(best.delivery_task or "")  # it checked the work again: it passed
    assert delivery.state().status is TaskStatus.SUCCEEDED
    assert delivery.result().data["check"]["passed"] is True
    assert delivery.result().data["diff"] == {"files": 1, "lines": 2}
    assert git("ls-tree", "-r", "--name-only", "fix/add", cwd=bare).split() == ["app.py"]
    assert "winner" in str(best) and right in str(best)


def test_no_winner_when_no_attempt_passes(bare: Path, fake_api: FakeAnthropic) -> None:
    fake_api.script_per_session([WRONG, WRONG])
    best = Deployment("dev", provider="local").run_best_of(
        TaskSpec(prompt="Fix add()", repo=str(bare), output="branch"), n=2, check=CHECK,
        timeout=180)
    assert best.winner is None and best.delivery_task is None
    assert best.reason == "no attempt passed the check (2 tried)"
    assert git("branch", "--list", cwd=bare).split() == ["*", "main"]


def test_best_of_inputs_are_checked() -> None:
    d = Deployment("dev", provider="local")
    spec = TaskSpec(prompt="x", repo="https://github.com/o/app")
    with pytest.raises(ConfigError, match=r"^n: "):
        d.run_best_of(spec, n=1, check="true")
    with pytest.raises(ConfigError, match=r"^check: "):
        d.run_best_of(spec, n=2)
    with pytest.raises(ConfigError, match="a prompt task with a repo"):
        d.run_best_of(TaskSpec(prompt="x"), n=2, check="true")


def test_the_cli_runs_the_best_of(bare: Path, fake_api: FakeAnthropic) -> None:
    fake_api.script_per_session([RIGHT, WRONG])
    done = subprocess.run(
        [sys.executable, "-m", "rclaude_infra", "best-of", "--provider", "local", "--prompt",
         "Fix add()", "--repo", str(bare), "-n", "2", "--check", CHECK, "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ})
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["winner"] == _who_got(fake_api, 0)
    assert [a["check_passed"] for a in data["attempts"]] == [True, False]
