"""The hosted service's IAM and container documents (``mode="service"``), as pure
functions of plain values: what :mod:`.stack_service` fills in from its resources.

The API and the worker processes run one image with two commands. Their task role is the
submitter's policy (:func:`rclaude_infra.permissions.submitter_policy`: exactly what the
task verbs call on this stack) plus reading the task events' queue and the database's
login; their execution role pulls the image, writes the log and resolves the settings'
secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..permissions import submitter_policy
from ..service_config import HEALTH_PATH, SERVICE_PORT
from .documents import kms_statements, policy_document

SERVICE_CONTAINER = "service"
SERVICE_USER = "1000:1000"
#: The service processes' two commands: the HTTP API (tasks started by the workers) and
#: the workers.
API_COMMAND = ("serve", "--host", "0.0.0.0", "--port", str(SERVICE_PORT), "--no-dispatch",
               "--provider", "ecs-ec2")
WORKER_COMMAND = ("worker", "--provider", "ecs-ec2")
#: The container's own check of the API (the load balancer checks the same path).
_HEALTH_SCRIPT = (f"import urllib.request; urllib.request.urlopen("
                  f"'http://127.0.0.1:{SERVICE_PORT}{HEALTH_PATH}', timeout=4)")


def service_task_policy(outputs: Mapping[str, Any], queue_arn: str, db_secret_arn: str,
                        key_arn: str | None) -> str:
    """What the service's processes may do: run tasks on this stack as a submitter does,
    consume its task events, read the database's login (RDS's secret, and its key)."""
    statements = list(submitter_policy(outputs)["Statement"])
    statements += [
        {"Sid": "ConsumeTaskEvents", "Effect": "Allow",
         "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes"],
         "Resource": queue_arn},
        {"Sid": "ReadDatabaseLogin", "Effect": "Allow",
         "Action": "secretsmanager:GetSecretValue", "Resource": db_secret_arn},
        *kms_statements(key_arn, ("kms:Decrypt", "kms:GenerateDataKey")),
    ]
    return policy_document(*statements)


def service_containers(*, name: str, region: str, image: str,
                       log_group: str, settings_secret_arn: str, outputs: Mapping[str, Any],
                       db_host: str, db_port: int, db_name: str, db_secret_arn: str,
                       public_url: str, worker: bool) -> str:
    """The API's (``worker=False``) or the workers' container definition (JSON)."""
    command = WORKER_COMMAND if worker else API_COMMAND
    environment = {
        "RCLAUDE_STACK_OUTPUTS": json.dumps(
            {k: v for k, v in outputs.items() if v is not None}, sort_keys=True),
        "RCLAUDE_DB_HOST": db_host,
        "RCLAUDE_DB_PORT": str(db_port),
        "RCLAUDE_DB_NAME": db_name,
        "RCLAUDE_DB_LOGIN_ARN": db_secret_arn,
        # A new release's tasks bring its schema (one at a time: an advisory lock).
        "RCLAUDE_DB_MIGRATE": "1",
        "RCLAUDE_PUBLIC_URL": public_url,
        "RCLAUDE_HOME": "/tmp/rclaude",
        "AWS_REGION": region,
    }
    container: dict[str, Any] = {
        "name": SERVICE_CONTAINER,
        "image": image,
        "essential": True,
        "command": ["python", "-m", "rclaude_infra", *command, "--deployment", name],
        "user": SERVICE_USER,
        "privileged": False,
        "readonlyRootFilesystem": True,
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        # The whole settings object, resolved by the agent at start: sign-in providers,
        # Stripe, the secrets' key (service.settings.expand_settings_secret).
        "secrets": [{"name": "RCLAUDE_SERVICE_SETTINGS", "valueFrom": settings_secret_arn}],
        "mountPoints": [{"sourceVolume": "tmp", "containerPath": "/tmp"}],
        "linuxParameters": {"initProcessEnabled": True},
        "stopTimeout": 30,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group, "awslogs-region": region,
                        "awslogs-stream-prefix": "service-worker" if worker else "service-api"},
        },
    }
    if not worker:
        container["portMappings"] = [{"containerPort": SERVICE_PORT, "protocol": "tcp"}]
        container["healthCheck"] = {"command": ["CMD", "python", "-c", _HEALTH_SCRIPT],
                                    "interval": 30, "timeout": 5, "retries": 3,
                                    "startPeriod": 60}
    return json.dumps([container])
