"""Real deploy / preview / run / destroy on an AWS account. Runs only with --run-aws.

    pytest tests/live --run-aws       # needs AWS credentials and the Pulumi CLI on PATH

It creates a fresh stack named live-<random> in a local state directory, deploys the
default layout with a public image (no Docker build), checks the outputs, checks that a
preview right after finds nothing to change, then destroys and removes the stack. A
second test deploys with a runner image and runs one task end to end.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from rclaude_infra import Deployment, DeploymentConfig

pytestmark = pytest.mark.live


@pytest.fixture(name="live_deployment")
def _live_deployment(tmp_path: Path) -> Deployment:
    if shutil.which("pulumi") is None:
        pytest.skip("the Pulumi CLI is not on PATH")
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        boto3.client("sts").get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        pytest.skip(f"no usable AWS credentials: {exc}")
    config = DeploymentConfig(image="public.ecr.aws/docker/library/python:3.11-slim",
                              build_image=False)
    return Deployment(f"live-{uuid.uuid4().hex[:8]}", config,
                      backend=(tmp_path / "state").as_uri())


def test_up_preview_destroy(live_deployment: Deployment) -> None:
    d = live_deployment
    try:
        outputs = d.up(progress=False)
        assert outputs.cluster_name and outputs.bucket and outputs.task_definition_arn
        assert len(outputs.subnet_ids) == 2
        changes = d.preview(progress=False)
        assert {op: n for op, n in changes.items() if op != "same"} == {}
    finally:
        d.destroy(remove=True, progress=False)
    assert d.sweep(known=()).swept == ()


def test_a_task_runs_on_the_stack(tmp_path: Path) -> None:
    """Deploy with a runner image, run one task from zero instances, read what it left.

    The image must contain the runner: ``RCLAUDE_LIVE_IMAGE`` names a pushed one, or the
    stack builds ``rclaude_infra/_pulumi/runner/Dockerfile``: with Docker when it runs
    here, else in the account with CodeBuild (``build_image="remote"``).
    """
    import os
    import subprocess

    from rclaude_infra import TaskSpec, TaskStatus

    if shutil.which("pulumi") is None:
        pytest.skip("the Pulumi CLI is not on PATH")
    image = os.environ.get("RCLAUDE_LIVE_IMAGE")
    docker = shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True).returncode == 0
    config = (DeploymentConfig(image=image, build_image=False) if image else
              DeploymentConfig(build_image=True if docker else "remote"))
    d = Deployment(f"live-{uuid.uuid4().hex[:8]}", config,
                   backend=(tmp_path / "state").as_uri())
    try:
        d.up(progress=False)
        if config.image_mode == "remote":
            assert d.ensure_image().status == "present"  # up built it; nothing to redo
        task = d.run_task(TaskSpec(command="echo live-ok; echo x > $RCLAUDE_ARTIFACTS/a.txt",
                                   timeout=600))
        state = task.wait(timeout=1200)  # the group scales out from zero first
        assert state.status is TaskStatus.SUCCEEDED, state
        assert "live-ok" in [line.text for line in task.logs()]
        files = task.result().download(tmp_path / "out")
        assert any(p.name == "a.txt" for p in files)
        assert task.cost().compute_usd > 0
        assert d.status().instances  # the instance that ran it is still registered
    finally:
        d.destroy(remove=True, progress=False)
    assert d.sweep(known=()).swept == ()
