"""Real deploy / preview / destroy on an AWS account. Runs only with --run-aws.

    pytest tests/live --run-aws       # needs AWS credentials and the Pulumi CLI on PATH

It creates a fresh stack named live-<random> in a local state directory, deploys the
default layout with a public image (no Docker build), checks the outputs, checks that a
preview right after finds nothing to change, then destroys and removes the stack.
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
