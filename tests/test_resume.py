"""Sessions that survive: a task continues an earlier one (``task.resume``), on another
process, with Claude Code's session (``claude --resume``) and the earlier task's work in
place. The real Claude Code against the scripted Anthropic API shows the conversation
carried over (the resumed request holds the earlier turns) and the work (the file the
agent reads holds the earlier edit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_anthropic import FakeAnthropic, Reply
from git_repos import FIX_ADD, git

from rclaude_infra import ConfigError, Deployment, StackOutputs, TaskSpec, TaskStatus
from rclaude_infra.tasks.model import TaskNotFoundError

FIX = [
    FIX_ADD,
    Reply.say("Fixed add(); remember the word PAPAYA."),
]
DOCUMENT = [
    Reply.call("Read", {"file_path": "{cwd}/app.py"}),
    Reply.call("Edit", {"file_path": "{cwd}/app.py", "old_string": "def add(a, b):\n",
                        "new_string": 'def add(a, b):\n    """The sum."""\n'}),
    Reply.say("Documented."),
]

pytestmark = pytest.mark.usefixtures("private_home")




def _texts(request_body: dict[str, Any]) -> str:
    return json.dumps(request_body.get("messages", []))


def test_a_task_resumes_the_session_and_the_work(bare: Path, fake_api: FakeAnthropic,
                                                 tmp_path: Path) -> None:
    d = Deployment("dev", provider="local")
    fake_api.script = list(FIX)
    first = d.run_task(TaskSpec(prompt="Fix add() in app.py", repo=str(bare)))
    assert first.wait(timeout=120).status is TaskStatus.SUCCEEDED
    session = first.agent.session_id if first.agent else None
    assert session
    assert "session.jsonl" in first.result().files

    fake_api.rescript(DOCUMENT)
    second = first.resume("Now document it.")
    state = second.wait(timeout=120)
    assert state.status is TaskStatus.SUCCEEDED, state.reason
    # The conversation went on: the first request of the resumed task holds the first
    # task's prompt and its final words, then the new prompt.
    opening = _texts(fake_api.turns[0].body)
    assert "Fix add() in app.py" in opening and "PAPAYA" in opening
    assert "Now document it." in opening
    # The work went on: the file the agent read, in this task's own clone, had the first
    # task's fix in it.
    (read,) = fake_api.turns[1].tool_results()
    assert "return a + b" in read["content"]
    assert second.task_id in (fake_api.turns[0].cwd or "")
    assert second.agent is not None and second.agent.session_id == session
    diff = {p.name: p for p in second.result().download(tmp_path / "out")}["diff.patch"]
    assert '+    """The sum."""' in diff.read_text() and "+    return a + b" in diff.read_text()
    spec = second.spec
    assert (spec.resume_from, spec.resume_session) == (first.task_id, session)
    assert spec.ref == first.result().data["commit"] and spec.repo == str(bare)


def test_a_resumed_task_goes_on_on_the_branch_it_pushed(bare: Path,
                                                        fake_api: FakeAnthropic) -> None:
    d = Deployment("dev", provider="local")
    fake_api.script = list(FIX)
    first = d.run_task(TaskSpec(prompt="Fix add()", repo=str(bare), output="branch"))
    assert first.wait(timeout=120).status is TaskStatus.SUCCEEDED
    branch = first.result().branch
    assert branch is not None
    fake_api.rescript(DOCUMENT)
    second = d.resume(first.task_id, "Now document it.")
    state = second.wait(timeout=120)
    assert state.status is TaskStatus.SUCCEEDED, state.reason
    assert second.result().branch == branch
    log = git("log", "--format=%s", branch, cwd=bare).splitlines()
    assert log == ["Now document it.", "Fix add()", "first"]
    assert '"""The sum."""' in git("show", f"{branch}:app.py", cwd=bare)


def test_what_cannot_be_resumed(fake_api: FakeAnthropic) -> None:
    d = Deployment("dev", provider="local")
    command = d.run_task(TaskSpec(command="true"))
    command.wait(timeout=60)
    with pytest.raises(ConfigError, match="a prompt task that has ended"):
        command.resume("go on")
    with pytest.raises(TaskNotFoundError):
        d.resume("t-nothing-here", "go on")
    with pytest.raises(ConfigError, match="resume_session"):
        TaskSpec(prompt="x", resume_from="t-1")
    with pytest.raises(ConfigError, match="resume_from"):
        TaskSpec(command="true", resume_from="t-1", resume_session="0123abcd-ef")


def test_the_cli_resumes(bare: Path, fake_api: FakeAnthropic) -> None:
    fake_api.script = list(FIX)
    d = Deployment("dev", provider="local")
    first = d.run_task(TaskSpec(prompt="Fix add()", repo=str(bare)))
    first.wait(timeout=120)
    fake_api.rescript(DOCUMENT)
    done = subprocess.run(
        [sys.executable, "-m", "rclaude_infra", "run", "--provider", "local", "--resume",
         first.task_id, "--prompt", "Now document it.", "--max-turns", "9", "--follow",
         "--json"], capture_output=True, text=True, timeout=180, env={**os.environ})
    assert done.returncode == 0, done.stderr
    second = d.tasks(limit=1)[0]
    assert second.spec.max_turns == 9
    assert "PAPAYA" in _texts(fake_api.turns[0].body)
    refused = subprocess.run(
        [sys.executable, "-m", "rclaude_infra", "run", "--provider", "local", "--resume",
         first.task_id, "--command", "true"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--resume" in refused.stderr


def test_on_ecs_the_submitter_copies_what_the_container_resumes_from(
        aws: Any, stack: StackOutputs, tmp_path: Path) -> None:
    """The earlier task's session and diff are copied under the new task's prefix by
    the submitter (the new task reads only its own), and the container takes them."""
    from moto_stack import run_folder

    from rclaude_infra._aws import s3_tasks
    from rclaude_infra._aws.container import wait_for_inputs
    from rclaude_infra._aws.ecs import EcsProvider

    provider = EcsProvider(aws, stack, deployment="dev")
    earlier = TaskSpec(prompt="Fix add()", task_id="t-earlier")
    provider.submit(earlier)
    outputs = tmp_path / "earlier"
    outputs.mkdir()
    (outputs / "session.jsonl").write_text('{"type":"user"}\n')
    (outputs / "diff.patch").write_text("diff --git a/x b/x\n")
    earlier_run = run_folder(aws, stack.bucket or "", "t-earlier").split("/runs/")[1][:-1]
    s3_tasks.upload_outputs(provider.s3, stack.bucket, "t-earlier", outputs, run=earlier_run)
    later = TaskSpec(prompt="Go on", task_id="t-later", resume_from="t-earlier",
                     resume_session="0123abcd-ef")
    provider.submit(later)
    task_dir = tmp_path / "later"
    task_dir.mkdir()
    # What the later task's container does: read what was staged in its own run's folder.
    run = run_folder(aws, stack.bucket or "", "t-later").split("/runs/")[1][:-1]
    staged = wait_for_inputs(provider.s3, stack.bucket or "", "t-later", run, timeout=5)
    assert sorted(staged["files"]) == ["resume/diff.patch", "resume/session.jsonl"]
    assert staged["spec"] == later.to_dict()
    s3_tasks.download_files(provider.s3, stack.bucket, "t-later", tuple(staged["files"]),
                            task_dir, flatten=False, run=run)
    assert (task_dir / "resume" / "session.jsonl").read_text() == '{"type":"user"}\n'
    assert (task_dir / "resume" / "diff.patch").read_text() == "diff --git a/x b/x\n"
    assert provider.spec("t-later") == later
