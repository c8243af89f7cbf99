"""The stack's documents as pure functions of plain values: the IAM policies, the trust
policies, the runner's container definition and the instances' user data. The program
(``program.py``) wires them to the resources' outputs; tests call them directly.

Nothing here imports pulumi: each function takes strings (ARNs, names) and the config.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from ..config import DeploymentConfig
from ..tasks.layout import RUN_KEY_PATTERN, RUN_TAG

RUNNER_CONTAINER = "runner"
#: The runner's uid:gid inside the image (its Dockerfile, ``runner/``, creates it).
RUNNER_USER = "1000:1000"
#: The only writable paths of the runner's container (its root file system is read-only),
#: each a task-scoped volume: the work space and /tmp. Nothing is mounted at ECS Exec's
#: paths: for an exec-enabled task the ECS agent bind-mounts its SSM agent there itself
#: (:data:`EXEC_AGENT_MOUNTS`), and Docker refuses a container with two mounts at one
#: destination ("Duplicate mount point").
WRITABLE_VOLUMES = {
    "workspace": "/workspace",
    "tmp": "/tmp",
}
#: Where the ECS agent mounts ECS Exec's SSM agent into an exec-enabled task's container
#: (amazon-ecs-agent, agent/engine/execcmd: ``ContainerDepsDirPrefix`` and
#: ``ContainerLogDir``): its binaries, configuration and certificates under
#: ``/ecs-execute-command-<uuid>/``, and its log directory.
EXEC_AGENT_DIR_PREFIX = "/ecs-execute-command-"
EXEC_AGENT_MOUNTS = ("amazon-ssm-agent", "ssm-agent-worker", "ssm-session-worker",
                     "configuration/amazon-ssm-agent.json", "configuration/seelog.xml",
                     "certs/amazon-ssm-agent.crt")
EXEC_AGENT_LOG_DIR = "/var/log/amazon/ssm"

#: The spot watcher (``runner/spot-watcher.sh``) on each instance, and where it leaves the
#: notice: a host directory the runner's container reads (read-only) as ``SPOT_NOTICE_DIR``.
SPOT_WATCHER = Path(__file__).resolve().parent / "runner" / "spot-watcher.sh"
HOST_NOTICE_DIR = "/var/run/rclaude"
SPOT_NOTICE_DIR = "/run/rclaude"


def runner_families(prefix: str, config: DeploymentConfig) -> tuple[str, ...]:
    """The runner's task definition families (and resource names): ``<prefix>-runner``,
    and with ``interactive_tasks`` the interactive tasks' ``<prefix>-runner-interactive``.

    >>> runner_families("rclaude-dev", DeploymentConfig(interactive_tasks=True))
    ('rclaude-dev-runner', 'rclaude-dev-runner-interactive')
    """
    runner = f"{prefix}-runner"
    return (runner, f"{runner}-interactive") if config.interactive_tasks else (runner,)


def user_data(cluster_name: str, families: tuple[str, ...], spot: bool) -> str:
    """The instances' boot script: join the cluster; with ``spot``, run the spot watcher
    for the runner containers of the task definition ``families``."""
    lines = [
        "#!/bin/bash",
        "cat >> /etc/ecs/ecs.config <<'EOF'",
        f"ECS_CLUSTER={cluster_name}",
        "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true",
        "ECS_ENABLE_TASK_IAM_ROLE=true",
        "ECS_IMAGE_PULL_BEHAVIOR=prefer-cached",
        "ECS_CONTAINER_STOP_TIMEOUT=60s",
        "EOF",
    ]
    if spot:
        # RunTask tasks die with a reclaimed host: the watcher stops them gracefully on the
        # two-minute notice, so they upload their work first.
        lines += [
            f"mkdir -p {HOST_NOTICE_DIR}",
            "cat > /usr/local/bin/rclaude-spot-watcher <<'WATCHER'",
            SPOT_WATCHER.read_text().rstrip("\n"),
            "WATCHER",
            "chmod 755 /usr/local/bin/rclaude-spot-watcher",
            "cat > /etc/systemd/system/rclaude-spot-watcher.service <<'UNIT'",
            "[Unit]",
            "Description=rclaude: stop runner tasks gracefully on a spot interruption notice",
            "After=docker.service ecs.service",
            "[Service]",
            f"ExecStart=/usr/local/bin/rclaude-spot-watcher {' '.join(families)}",
            "Restart=on-failure",
            "[Install]",
            "WantedBy=multi-user.target",
            "UNIT",
            "systemctl daemon-reload",
            "systemctl enable --now --no-block rclaude-spot-watcher.service",
        ]
    return base64.b64encode(("\n".join(lines) + "\n").encode()).decode()


def policy_document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def trust_policy(service: str, account_id: str | None = None) -> str:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if account_id is not None:
        # Confused-deputy guard: only the service acting for this account may assume it.
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
    return policy_document(statement)


def bedrock_statements(partition: str, region: str, account_id: str,
                       models: tuple[str, ...]) -> list[dict[str, Any]]:
    """The task role's Bedrock statements: invoke only ``models``.

    A cross-region inference profile (``us.anthropic...``) is invoked in the stack's
    region and routes to the same foundation model in other regions of its geography, so
    the profile is allowed here and its model in any region; a plain model id is allowed
    in the stack's region only. Claude Code lists inference profiles to resolve model
    names (``ListInferenceProfiles`` takes no resource).
    """
    profiles, foundation = [], []
    for model in models:
        prefix, _, base = model.partition(".")
        if prefix == "anthropic":
            foundation.append(f"arn:{partition}:bedrock:{region}::foundation-model/{model}")
            continue
        profiles.append(f"arn:{partition}:bedrock:{region}:{account_id}:inference-profile/{model}")
        foundation.append(f"arn:{partition}:bedrock:*::foundation-model/{base}")
    statements: list[dict[str, Any]] = [{
        "Sid": "InvokeClaudeOnBedrock",
        "Effect": "Allow",
        "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
        "Resource": profiles + foundation,
    }]
    if profiles:
        statements.append({"Sid": "ReadInferenceProfiles", "Effect": "Allow",
                           "Action": "bedrock:GetInferenceProfile", "Resource": profiles})
    statements.append({"Sid": "ListInferenceProfiles", "Effect": "Allow",
                       "Action": "bedrock:ListInferenceProfiles", "Resource": "*"})
    return statements




def write_logs(sid: str, log_group_arn: str) -> dict[str, Any]:
    """Write the streams of one log group, nothing else."""
    return {"Sid": sid, "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{log_group_arn}:*"}


def kms_statements(key_arn: str | None, actions: tuple[str, ...] = (
        "kms:Decrypt",)) -> list[dict[str, Any]]:
    """Use of the stack's customer-managed key (security_profile="strict"), if it has one."""
    if key_arn is None:
        return []
    return [{"Sid": "UseStackKey", "Effect": "Allow", "Action": list(actions),
             "Resource": key_arn}]


def task_events_rule(name: str) -> str:
    """The name of deployment ``name``'s rule of task state changes (``task_events``)."""
    return f"rclaude-{name}-task-events"


def key_policy(account_id: str, partition: str, region: str, name: str, *,
               task_events: bool = False) -> str:
    """The stack key's policy: the account administers it through IAM (AWS's default
    statement), CloudWatch Logs may use it for this deployment's log groups only, and with
    ``task_events`` EventBridge may use it for this deployment's rule only (to send to the
    encrypted queue: EventBridge User Guide, "Amazon SQS permissions")."""
    events = [{
        "Sid": "EventsSendThisDeploymentsTaskEvents",
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": "*",
        "Condition": {"ArnEquals": {"aws:SourceArn": f"arn:{partition}:events:{region}:"
                                    f"{account_id}:rule/{task_events_rule(name)}"}},
    }] if task_events else []
    return policy_document(
        {
            "Sid": "AccountAdministersThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "LogsEncryptThisDeployment",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*",
                       "kms:GenerateDataKey*", "kms:Describe*"],
            "Resource": "*",
            "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                      f"arn:{partition}:logs:{region}:{account_id}:"
                                      f"log-group:/rclaude/{name}*"}},
        },
        *events,
    )


def execution_policy(log_group_arn: str, secret_arn: str | None,
                     repo_arn: str | None, key_arn: str | None = None, *,
                     secret_sid: str = "ReadApiKey") -> str:
    """The execution role's policy: the ECS agent writes the log stream, reads the
    credential's secret (when there is one) and pulls the image (when it is in ECR)."""
    statements: list[dict[str, Any]] = [
        write_logs("WriteTaskLogs", log_group_arn),
        *(kms_statements(key_arn) if secret_arn is not None else []),
    ]
    if secret_arn is not None:
        statements.append({
            "Sid": secret_sid,
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": secret_arn,
        })
    if repo_arn is not None:
        statements += _ecr_statements("PullRunnerImage", _ECR_PULL, repo_arn)
    return policy_document(*statements)


_ECR_PULL = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
             "ecr:GetDownloadUrlForLayer")
_ECR_PUSH = (*_ECR_PULL, "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
             "ecr:CompleteLayerUpload", "ecr:PutImage")


def _ecr_statements(sid: str, actions: tuple[str, ...], repo_arn: str) -> list[dict[str, Any]]:
    """``actions`` on one repository, and the registry login they need."""
    return [
        {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": repo_arn},
        # GetAuthorizationToken has no resource-level permissions.
        {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken",
         "Resource": "*"},
    ]


#: CodeBuild's environment per config ``arch``: container type and the managed image
#: (both have Docker; ``privileged_mode`` lets the build run it).
CODEBUILD_ENVIRONMENTS = {
    "x86_64": ("LINUX_CONTAINER", "aws/codebuild/amazonlinux2-x86_64-standard:5.0"),
    "arm64": ("ARM_CONTAINER", "aws/codebuild/amazonlinux2-aarch64-standard:3.0"),
}
#: The smallest compute type, enough for the runner image (apt, npm, pip).
CODEBUILD_COMPUTE = "BUILD_GENERAL1_SMALL"
#: Images the lifecycle policy keeps in the repository: the current one and a few to
#: roll back to; older ones expire (every change of the package makes a new tag).
KEEP_IMAGES = 5


def image_build_policy(log_group_arn: str, bucket_arn: str, source_key: str, repo_arn: str,
                       key_arn: str | None = None) -> str:
    """The image build's policy: write its own log group, read the uploaded sources (one
    object of the results bucket), push to the stack's repository, nothing else."""
    return policy_document(
        write_logs("WriteBuildLogs", log_group_arn),
        {
            "Sid": "ReadSources",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": f"{bucket_arn}/{source_key}",
        },
        {
            # CodeBuild looks at the source's bucket before it downloads (AWS CodeBuild
            # User Guide, "Create a CodeBuild service role": s3:GetBucketAcl and
            # s3:GetBucketLocation on an S3 source's bucket).
            "Sid": "LocateSources",
            "Effect": "Allow",
            "Action": ["s3:GetBucketAcl", "s3:GetBucketLocation"],
            "Resource": bucket_arn,
        },
        *_ecr_statements("PushRunnerImage", _ECR_PUSH, repo_arn),
        *kms_statements(key_arn),
    )


def flow_logs_policy(log_group_arn: str) -> str:
    """What VPC Flow Logs may do: write streams of its own log group, nothing else."""
    statement = write_logs("WriteFlowLogs", log_group_arn)
    # Flow Logs also looks at the group's streams (AWS's documented role policy).
    statement["Action"].append("logs:DescribeLogStreams")
    statement["Resource"] = [log_group_arn, statement["Resource"]]
    return policy_document(statement)


def ecr_lifecycle_policy(keep: int = KEEP_IMAGES) -> str:
    """Expire all but the newest ``keep`` images of the repository."""
    return json.dumps({"rules": [{
        "rulePriority": 1,
        "description": f"keep the newest {keep} runner images",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                      "countNumber": keep},
        "action": {"type": "expire"},
    }]})


def task_policy(config: DeploymentConfig, name: str, bucket_arn: str, partition: str,
                account_id: str, key_arn: str | None = None) -> str:
    """The task role's policy: the task's records in the bucket, the deployment's per-task
    secrets, ECS Exec's channel when tasks may be interactive and, with Bedrock, the
    configured models."""
    bedrock = (bedrock_statements(partition, config.region, account_id, config.models)
               if config.auth == "bedrock" else [])
    exec_channel = [{
        # ECS Exec's channel, for interactive tasks only; ssmmessages has no
        # resource-level permissions.
        "Sid": "EcsExec",
        "Effect": "Allow",
        "Action": [
            "ssmmessages:CreateControlChannel",
            "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel",
            "ssmmessages:OpenDataChannel",
        ],
        "Resource": "*",
    }] if config.interactive_tasks else []
    return policy_document(
        {
            # Each ECS task reads and writes its own run's folder only: ECS names the task
            # role's session after the task's id, so aws:userid is "<role id>:<ECS task
            # id>", a value no other task has. The submitter copies the task's inputs
            # there (rclaude_infra._aws.s3_tasks.stage_run) and reads the outputs back.
            "Sid": "OwnRunOnly",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"{bucket_arn}/{RUN_KEY_PATTERN}",
        },
        *exec_channel,
        {
            # Per-task secrets (rclaude_infra._aws.task_secrets): read at start, deleted
            # when done; under this deployment's prefix, and only the one the submitter
            # tagged for this run (its session's aws:userid, as for the bucket).
            "Sid": "TaskSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret"],
            "Resource": f"arn:{partition}:secretsmanager:{config.region}:{account_id}:"
                        f"secret:rclaude/{name}/tasks/*",
            "Condition": {"StringEquals": {
                f"secretsmanager:ResourceTag/{RUN_TAG}": "${aws:userid}"}},
        },
        *bedrock,
        # Objects of the bucket are encrypted with the stack key (security_profile="strict").
        *kms_statements(key_arn, ("kms:Decrypt", "kms:GenerateDataKey")),
    )


def container_definitions(config: DeploymentConfig, name: str, image: str, bucket: str,
                          log_group: str, secret_arn: str | None, *,
                          interactive: bool = False) -> str:
    """The runner's container definition (JSON, as ECS takes it). ``interactive``: the
    definition of tasks started for ECS Exec, whose SSM agent needs a writable root file
    system (AWS: ECS Exec "considerations"); everything else is the same."""
    # The credential reaches the container through the agent, never as plain text in the
    # task definition; with Bedrock there is none.
    secrets = ([] if secret_arn is None else
               [{"name": config.credential_env, "valueFrom": secret_arn}])
    agent_env = [{"name": k, "value": v} for k, v in config.agent_environment().items()
                 if k != "AWS_REGION"]
    return json.dumps([{
        "name": RUNNER_CONTAINER,
        "image": image,
        "essential": True,
        "user": RUNNER_USER,
        "privileged": False,
        "readonlyRootFilesystem": not interactive,
        "environment": [
            {"name": "RCLAUDE_BUCKET", "value": bucket},
            {"name": "RCLAUDE_DEPLOYMENT", "value": name},
            # The role's S3 rights cover the task's run folder only (task_policy).
            {"name": "RCLAUDE_RUN_SCOPED", "value": "1"},
            {"name": "AWS_REGION", "value": config.region},
            {"name": "HOME", "value": "/workspace/home"},
            {"name": "RCLAUDE_SPOT_NOTICE", "value": f"{SPOT_NOTICE_DIR}/spot-notice"},
            *agent_env,
        ],
        "secrets": secrets,
        "mountPoints": [
            *({"sourceVolume": volume, "containerPath": path}
              for volume, path in WRITABLE_VOLUMES.items()),
            {"sourceVolume": "spot-notice", "containerPath": SPOT_NOTICE_DIR,
             "readOnly": True},
        ],
        # An init process reaps what the agent's tools leave behind and forwards ECS's
        # stop signal; ECS Exec needs one too.
        "linuxParameters": {"initProcessEnabled": True},
        "stopTimeout": 30,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": config.region,
                "awslogs-stream-prefix": "task",
            },
        },
    }])
