"""Attacks on ``result().download(dest)``: what a task leaves is an agent's work, and a
hostile agent chooses its file names and links. Nothing is written outside ``dest``,
nothing through a link, no link is followed, and what was skipped is reported."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from moto_stack import QUICK_POLL, hold_tasks_running, run_folder

from rclaude_infra import Deployment, StackOutputs, TaskSpec, TaskStatus
from rclaude_infra.tasks.downloads import place


def _everything_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_keys_a_run_chooses_cannot_write_outside_the_destination(
        aws: Any, stack: StackOutputs, scaffold: Any, moto_endpoint: str,
        tmp_path: Path) -> None:
    """The task's role may write any key under its run's folder: `..` segments, a
    leading `/` (an empty segment), a name through a link planted in the destination."""
    hold_tasks_running(moto_endpoint)
    try:
        d = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL)
        task = d.run_task(TaskSpec(command="true"))
        folder = run_folder(scaffold, stack.bucket or "", task.task_id)
    finally:
        hold_tasks_running(moto_endpoint, hold=False)
    s3 = scaffold.client("s3")
    hostile = ["../../escaped.txt", "/absolute.txt", "artifacts/../../../up.txt",
               "artifacts//double.txt", "artifacts/./dot.txt", "artifacts/linked/x.txt"]
    for name in [*hostile, "artifacts/ok.txt", "result.json"]:
        body = (json.dumps({"status": "succeeded", "exit_code": 0}) if name == "result.json"
                else f"planted as {name}")
        s3.put_object(Bucket=stack.bucket, Key=f"{folder}{name}", Body=body.encode())
    dest = tmp_path / "work" / "out"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # A link already in the destination (left by an earlier download, or by the user).
    (dest / task.task_id / "artifacts").mkdir(parents=True)
    (dest / task.task_id / "artifacts" / "linked").symlink_to(outside)
    before = _everything_under(tmp_path) - _everything_under(dest)

    files = task.result().download(dest)

    assert {p.relative_to(dest / task.task_id).as_posix() for p in files} == {
        "artifacts/ok.txt", "result.json"}
    assert sorted(name for name, _ in files.skipped) == sorted(hostile)
    assert _everything_under(tmp_path) - _everything_under(dest) == before  # none outside
    assert list(outside.iterdir()) == []  # nothing through the link
    assert not (tmp_path / "escaped.txt").exists() and not Path("/absolute.txt").exists()


@pytest.fixture(name="local")
def _local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    return Deployment("dev", provider="local")


def test_links_a_local_task_leaves_are_skipped_never_followed(
        local: Deployment, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not the task's to give away")
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    (outside / "inner.txt").write_text("outside")
    task = local.run_task(TaskSpec(command=(
        'a="$RCLAUDE_ARTIFACTS"; echo fine > "$a/ok.txt";'
        f' ln -s {secret} "$a/passwd"; ln -s loop1 "$a/loop2"; ln -s loop2 "$a/loop1";'
        f' ln -s {outside} "$a/dir-link"; mkfifo "$a/fifo";'
        ' mkdir "$a/nested"; echo deep > "$a/nested/deep.txt"; ln -s ../ok.txt "$a/nested/up"')))
    assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED
    dest = tmp_path / "out"

    files = task.result().download(dest)

    names = {p.relative_to(dest / task.task_id).as_posix() for p in files}
    assert {"artifacts/ok.txt", "artifacts/nested/deep.txt", "result.json"} <= names
    skipped = dict(files.skipped)
    assert set(skipped) == {"artifacts/passwd", "artifacts/loop1", "artifacts/loop2",
                            "artifacts/dir-link", "artifacts/fifo", "artifacts/nested/up"}
    assert "not followed" in skipped["artifacts/passwd"]
    assert "not a regular file" in skipped["artifacts/fifo"]
    for path in (dest / task.task_id).rglob("*"):
        assert not path.is_symlink(), path
        if path.is_file():
            assert "not the task's to give away" not in path.read_text(), path
    assert not (dest / task.task_id / "artifacts" / "dir-link").exists()


def test_the_cli_reports_what_it_skipped(local: Deployment, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from rclaude_infra.cli import main

    task = local.run_task(TaskSpec(command='ln -s /etc/passwd "$RCLAUDE_ARTIFACTS/pw"'))
    task.wait(timeout=60)
    monkeypatch.chdir(tmp_path)
    assert main(["result", task.task_id, "--provider", "local", "--download", "out",
                 "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["skipped"] == [
        {"name": "artifacts/pw", "why": "a link (to /etc/passwd): not followed"}]
    assert "skipped 'artifacts/pw'" in err
    assert not any(p.is_symlink() for p in (tmp_path / "out").rglob("*"))


@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "/etc/passwd", "a//b", "./a",
                                  "a/.", "", "a\x00b"])
def test_place_refuses_every_way_out(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        place(tmp_path, name)


def test_place_refuses_a_link_on_the_way(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    os.symlink("/tmp", tmp_path / "out" / "via")
    with pytest.raises(ValueError, match="through the link"):
        place(tmp_path / "out", "via/x.txt")
    assert place(tmp_path / "out", "fine/x.txt") == tmp_path / "out" / "fine" / "x.txt"
