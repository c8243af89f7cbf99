"""The examples run as users run them: the notebook top to bottom in a real kernel, the
scripts in subprocesses, all offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_pulumi import FakePulumi

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def execute(notebook: Any, tmp_path: Path, env: dict[str, str],
            monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Run ``notebook`` top to bottom in a python3 kernel with ``env``; its outputs."""
    from nbclient import NotebookClient

    for key in list(os.environ):
        if key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this environment
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code"
               for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    return outputs


def test_the_quickstart_notebook_runs_top_to_bottom(
    tmp_path: Path, offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nbformat

    notebook = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    outputs = execute(notebook, tmp_path, offline_env, monkeypatch)
    text = "\n".join(o.get("text", "") + json.dumps(o.get("data", {})) for o in outputs)
    assert "Deployment notebook" in text                 # the Deployment's HTML repr
    assert "t3.medium, t3a.medium (spot, 0-4 instances)" in text  # the plan's
    assert "rules, ok=True" in text
    assert "monthly total" in text                       # the what-if diff
    assert "a NAT gateway adds $" in text
    assert "hello from a task" in text and "42" in text  # the local task's logs
    assert "SUCCEEDED" in text
    assert (tmp_path / "quickstart-results").is_dir()
    assert list((tmp_path / "quickstart-results").rglob("report.txt"))
    # The AWS section: the image built in the account, priced, and nothing deployed here.
    assert "rclaude-notebook-image-build" in text and "Image builds" in text
    assert "Image storage" in text
    assert "RCLAUDE_DEPLOY is not 1: nothing deployed" in text


def test_up_shows_its_progress_in_the_cell(
    tmp_path: Path, offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    moto_endpoint: str,
) -> None:
    """``up()`` in a cell (the engine behind the recording PulumiCommand): an HTML progress
    bar updated in place, with the failed resource listed under it. AWS is moto's server:
    up() looks for ECS's service-linked role first."""
    offline_env = {**offline_env, "AWS_ENDPOINT_URL": moto_endpoint,
                   "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    tests = Path(__file__).resolve().parent
    notebook = nbformat.from_dict(new_notebook(cells=[new_code_cell(f"""
import sys
sys.path.insert(0, {str(tests)!r})
from fake_pulumi import FakePulumi, failure_events
from rclaude_infra import Deployment, DeploymentFailedError
outputs = Deployment("nb", pulumi_command=FakePulumi(), api_key="sk-ant-test").up()
outputs.bucket"""), new_code_cell("""
try:
    Deployment("nb2", pulumi_command=FakePulumi(events=failure_events),
               api_key="sk-ant-test").up()
except DeploymentFailedError as exc:
    print("refused:", exc.resource)""")]))
    execute(notebook, tmp_path, offline_env, monkeypatch)
    first, second = ([o for o in cell.outputs if o.output_type == "display_data"]
                     for cell in notebook.cells)
    (bar,) = first
    shown = bar.data["text/html"]
    assert "<progress value='2' max='2'" in shown and "up nb" in shown
    assert "changed in" in shown  # the summary, after the last update
    (failed_bar,) = second
    assert "failed</span> create rclaude-dev-asg" in failed_bar.data["text/html"]
    assert any("refused: " in o.get("text", "") for o in notebook.cells[1].outputs)


def test_embed_runs_offline(tmp_path: Path, offline_env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / "embed.py")], cwd=tmp_path,
                            env=offline_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "gate passed" in result.stderr
    data = json.loads(result.stdout)
    assert [(t["status"], t["exit_code"]) for t in data["tasks"]] == [
        ("SUCCEEDED", 0), ("SUCCEEDED", 0), ("FAILED", 3)]
    assert data["tasks"][1]["output"] == ["42"]


def test_embed_reacts_to_progress_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         aws: Any) -> None:
    """``deploy()`` through the Automation API boundary (the recording PulumiCommand);
    AWS is moto's server."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import embed

    from rclaude_infra import Deployment

    events = embed.EventLog()
    outputs = embed.deploy(Deployment("embed", pulumi_command=FakePulumi(), api_key="sk-ant-t"),
                           events)
    assert outputs.bucket
    assert events.counts["ResourceStarted"] >= 1 and events.counts["Summary"] == 1
    assert events.failed == []


def test_aws_quickstart_stops_at_the_check_without_credentials(
    tmp_path: Path, offline_env: dict[str, str],
) -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / "aws_quickstart.py")],
                            cwd=tmp_path, env=offline_env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "Pulumi CLI" in result.stdout and "AWS credentials" in result.stdout
    assert "nothing was created" in result.stderr


