"""The stack's documents as pure functions (``_pulumi/documents.py``), on their own: no
Pulumi, no plan, plain ARNs in, JSON out."""

from __future__ import annotations

import base64
import json
from typing import Any

from rclaude_infra import DeploymentConfig
from rclaude_infra._pulumi import documents

BUCKET = "arn:aws:s3:::rclaude-dev-results-1a2b3c4"
LOGS = "arn:aws:logs:us-east-1:111122223333:log-group:/rclaude/dev"
SECRET = "arn:aws:secretsmanager:us-east-1:111122223333:secret:rclaude/dev/anthropic-api-key-x"
REPO = "arn:aws:ecr:us-east-1:111122223333:repository/rclaude-dev-runner"


def statements(document: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(document)["Statement"]}


def test_trust_is_for_one_service_and_one_account() -> None:
    [statement] = json.loads(documents.trust_policy("ecs-tasks.amazonaws.com",
                                                    "111122223333"))["Statement"]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "111122223333"}}
    [ec2] = json.loads(documents.trust_policy("ec2.amazonaws.com"))["Statement"]
    assert "Condition" not in ec2


def test_the_execution_role_reads_only_what_the_agent_needs() -> None:
    bare = statements(documents.execution_policy(LOGS, None, None))
    assert set(bare) == {"WriteTaskLogs"} and bare["WriteTaskLogs"]["Resource"] == f"{LOGS}:*"
    full = statements(documents.execution_policy(LOGS, SECRET, REPO))
    assert full["ReadApiKey"]["Resource"] == SECRET
    assert full["PullRunnerImage"]["Resource"] == REPO
    assert full["EcrLogin"]["Resource"] == "*"  # GetAuthorizationToken takes no resource


def test_the_task_role_is_scoped_to_the_deployment() -> None:
    policy = statements(documents.task_policy(DeploymentConfig(), "dev", BUCKET, "aws",
                                              "111122223333"))
    assert policy["OwnRunOnly"]["Resource"] == f"{BUCKET}/tasks/*/runs/${{aws:userid}}/*"
    assert policy["TaskSecrets"]["Resource"] == (
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:rclaude/dev/tasks/*")
    assert policy["TaskSecrets"]["Condition"] == {"StringEquals": {
        "secretsmanager:ResourceTag/rclaude:run": "${aws:userid}"}}
    assert "InvokeClaudeOnBedrock" not in policy
    bedrock = statements(documents.task_policy(
        DeploymentConfig(auth="bedrock", region="eu-west-1"), "dev", BUCKET, "aws",
        "111122223333"))
    assert all(r.startswith(("arn:aws:bedrock:eu-west-1:111122223333:inference-profile/eu.",
                             "arn:aws:bedrock:*::foundation-model/anthropic."))
               for r in bedrock["InvokeClaudeOnBedrock"]["Resource"])


def test_the_container_follows_the_sign_in_mode() -> None:
    def container(auth: str, secret: str | None) -> dict[str, Any]:
        [runner] = json.loads(documents.container_definitions(
            DeploymentConfig(auth=auth), "dev", "runner:1", "bucket", "/rclaude/dev", secret))
        return dict(runner)

    api = container("api-key", SECRET)
    assert api["secrets"] == [{"name": "ANTHROPIC_API_KEY", "valueFrom": SECRET}]
    assert api["user"] == documents.RUNNER_USER and api["readonlyRootFilesystem"] is True
    assert container("oauth-token", SECRET)["secrets"][0]["name"] == "CLAUDE_CODE_OAUTH_TOKEN"
    bedrock = container("bedrock", None)
    assert bedrock["secrets"] == []
    assert {"name": "CLAUDE_CODE_USE_BEDROCK", "value": "1"} in bedrock["environment"]


def test_user_data_runs_the_spot_watcher_on_spot_instances_only() -> None:
    spot = base64.b64decode(documents.user_data("cluster-1", "rclaude-dev-runner", True))
    assert b"ECS_CLUSTER=cluster-1" in spot and b"rclaude-spot-watcher.service" in spot
    plain = base64.b64decode(documents.user_data("cluster-1", "rclaude-dev-runner", False))
    assert b"ECS_CLUSTER=cluster-1" in plain and b"spot-watcher" not in plain
