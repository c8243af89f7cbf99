"""The examples run as users run them: the notebook top to bottom in a real kernel, the
scripts in subprocesses, all offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_pulumi import FakePulumi

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(name="offline_env")
def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PULUMI_"))}
    env.update(RCLAUDE_HOME=str(tmp_path / "home"), AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    return env


def test_the_quickstart_notebook_runs_top_to_bottom(
    tmp_path: Path, offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nbformat
    from nbclient import NotebookClient

    for key in list(os.environ):
        if key not in offline_env:
            monkeypatch.delenv(key)
    for key, value in offline_env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this environment
    notebook = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code"
               for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") + json.dumps(o.get("data", {})) for o in outputs)
    assert "Deployment notebook" in text                 # the Deployment's HTML repr
    assert "resources; t3.medium" in text                # the plan's
    assert "rules, ok=True" in text
    assert "monthly total" in text                       # the what-if diff
    assert "a NAT gateway adds $" in text
    assert "hello from a task" in text and "42" in text  # the local task's logs
    assert "SUCCEEDED" in text
    assert (tmp_path / "quickstart-results").is_dir()
    assert list((tmp_path / "quickstart-results").rglob("report.txt"))


def test_embed_runs_offline(tmp_path: Path, offline_env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / "embed.py")], cwd=tmp_path,
                            env=offline_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "gate passed" in result.stderr
    data = json.loads(result.stdout)
    assert [(t["status"], t["exit_code"]) for t in data["tasks"]] == [
        ("SUCCEEDED", 0), ("SUCCEEDED", 0), ("FAILED", 3)]
    assert data["tasks"][1]["output"] == ["42"]


def test_embed_reacts_to_progress_events(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``deploy()`` through the Automation API boundary (the recording PulumiCommand)."""
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import embed

    from rclaude_infra import Deployment

    events = embed.EventLog()
    outputs = embed.deploy(Deployment("embed", pulumi_command=FakePulumi()), events)
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


