"""Per-task secrets on ECS: one Secrets Manager secret per task that names ``secrets``.

Container overrides cannot carry ``secrets`` (only environment, which ECS shows in
``DescribeTasks``), and the task definition is shared by every task. So the submitter
puts the values, taken from its own environment, into
``rclaude/<deployment>/tasks/<task_id>`` (JSON ``{name: value}``, tagged with the
deployment and the task); the runner reads it with the task role when the task starts,
puts the values in the command's environment, and deletes it when the task is done. A
task that never got that far has it deleted by the submitter's next step
(``advance``/``wait``) once it has ended for good, and the leak sweep finds any left by its
tag. The values never enter the spec, S3, RunTask's parameters, the task definition, the
log or the result. On a stack that scopes runs, the task role reads and deletes only a
secret tagged ``rclaude:run`` with its session's ``aws:userid``: the submitter tags the
secret for each run it starts (:func:`grant`), so no other task can read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..config import DEPLOYMENT_TAG
from ..tasks.layout import RUN_TAG
from . import error_code

TASK_TAG = "rclaude:task-id"


def secret_name(deployment: str, task_id: str) -> str:
    """``rclaude/<deployment>/tasks/<task_id>``: under the prefix the task role may read."""
    return f"rclaude/{deployment}/tasks/{task_id}"


def put(client: Any, deployment: str, task_id: str, values: Mapping[str, str]) -> None:
    """Create the task's secret, or replace its value (a submission taken up again)."""
    from botocore.exceptions import ClientError

    name, body = secret_name(deployment, task_id), json.dumps(dict(values))
    try:
        client.create_secret(
            Name=name, SecretString=body,
            Description=f"secrets of rclaude task {task_id}; deleted when the task is done",
            Tags=[{"Key": DEPLOYMENT_TAG, "Value": deployment},
                  {"Key": TASK_TAG, "Value": task_id}])
    except ClientError as exc:
        if error_code(exc) != "ResourceExistsException":
            raise
        client.put_secret_value(SecretId=name, SecretString=body)


def grant(client: Any, deployment: str, task_id: str, run: str) -> None:
    """Let ``run`` (an attempt's ``aws:userid``), and no other, read the task's secret."""
    client.tag_resource(SecretId=secret_name(deployment, task_id),
                        Tags=[{"Key": RUN_TAG, "Value": run}])


def read(client: Any, deployment: str, task_id: str) -> dict[str, str]:
    value = client.get_secret_value(SecretId=secret_name(deployment, task_id))["SecretString"]
    data: dict[str, str] = json.loads(value)
    return data


def delete(client: Any, deployment: str, task_id: str) -> bool:
    """Delete the task's secret at once (no recovery window); ``False`` when it was gone."""
    from botocore.exceptions import ClientError

    try:
        client.delete_secret(SecretId=secret_name(deployment, task_id),
                             ForceDeleteWithoutRecovery=True)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return True
