"""What whoever submits tasks to a deployed stack needs in IAM: the submitter's policy.

One table, :data:`SUBMITTER_GRANTS`, names every AWS action the task verbs call
(``run_task``, ``wait``, ``logs``, ``result``, ``stop``, ``tasks``, ``cost``, ``status``,
``reconcile``, ``exec``) and the resources of this stack it calls them on;
:func:`submitter_policy` fills it in from the stack's outputs. The tests record every
call the submitter makes against moto's server and check each against this policy
(``tests/test_permissions.py``), so a new call without its grant fails there.

What it does not cover: ``up``/``destroy`` (the Pulumi engine creates the whole stack
and needs far more) and ``check()``'s read-only look at quotas.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import ConfigError
from .outputs import StackOutputs


@attrs.frozen
class Grant:
    """One statement of the submitter's policy: ``actions`` on ``resources`` (templates
    filled from the stack's outputs), and why the library calls them."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    why: str
    #: Condition operator -> key -> template, as IAM takes it.
    conditions: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    #: Only for stacks that have this output (the interactive task definition, an image
    #: built in the account).
    needs: str | None = None


_TASK = "arn:{partition}:ecs:{region}:{account}:task/{cluster_name}/*"
_CLUSTER_CONDITION = {"ArnEquals": {"ecs:cluster": "{cluster_arn}"}}

#: Every call the task verbs make, by statement. Resources: ``{bucket_arn}``,
#: ``{cluster_arn}``, ``{cluster_name}``, ``{log_group_arn}``, ``{task_definition}``
#: (the family's revisions), ``{interactive_task_definition}``, ``{task_role_arn}``,
#: ``{execution_role_arn}``, ``{deployment}`` and the ARN parts.
SUBMITTER_GRANTS: tuple[Grant, ...] = (
    Grant("TaskRecords", ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"),
          ("{bucket_arn}/tasks/*", "{bucket_arn}/queue/*"),
          "each task's spec, attempts, stop record and runs' inputs and outputs; the queue"),
    Grant("ListTaskRecords", ("s3:ListBucket",), ("{bucket_arn}",),
          "task history (tasks/) and the queue (queue/)"),
    Grant("ReadClosedMarker", ("s3:GetObject",), ("{bucket_arn}/control/closed.json",),
          "before and after each RunTask: whether destroy() has closed the deployment to "
          "new tasks (writing and deleting it is destroy's and up's)"),
    Grant("BudgetLedger", ("s3:GetObject", "s3:PutObject"), ("{bucket_arn}/ledger/*",),
          "with max_monthly_usd: each month's budget reservations, changed by conditional "
          "writes (a conditional PutObject with If-Match needs s3:GetObject too)"),
    Grant("StartTasks", ("ecs:RunTask",), ("{task_definition}",),
          "RunTask from the stack's runner task definition, on its cluster only",
          conditions=_CLUSTER_CONDITION),
    Grant("StartInteractiveTasks", ("ecs:RunTask",), ("{interactive_task_definition}",),
          "interactive tasks (interactive_tasks=True) start from their own definition",
          conditions=_CLUSTER_CONDITION, needs="interactive_task_definition_arn"),
    Grant("TagStartedTasks", ("ecs:TagResource",), (_TASK,),
          "RunTask tags each task with its task id and deployment (AWS asks for "
          "ecs:TagResource on RunTask with tags)",
          conditions={"StringEquals": {"ecs:CreateAction": "RunTask"}}),
    Grant("PassTaskRoles", ("iam:PassRole",), ("{task_role_arn}", "{execution_role_arn}"),
          "RunTask passes the task definition's task and execution roles to ECS",
          conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}),
    Grant("WatchAndStopTasks", ("ecs:DescribeTasks", "ecs:StopTask"), (_TASK,),
          "status (one DescribeTasks per 100 tasks), stop and destroy's stop of tasks",
          conditions=_CLUSTER_CONDITION),
    Grant("ListTasks", ("ecs:ListTasks",),
          ("arn:{partition}:ecs:{region}:{account}:container-instance/{cluster_name}/*",),
          "tasks in flight (capacity, status) and a start that may have happened",
          conditions=_CLUSTER_CONDITION),
    Grant("ClusterInstances", ("ecs:ListContainerInstances", "ecs:DescribeContainerInstances"),
          ("{cluster_arn}",
           "arn:{partition}:ecs:{region}:{account}:container-instance/{cluster_name}/*"),
          "status's instances, and which instance a task ran on (its cost)"),
    Grant("InstanceTypes", ("ec2:DescribeInstances",), ("*",),
          "the type and lifecycle (spot or not) of the instances tasks ran on; "
          "DescribeInstances takes no resource"),
    Grant("TaskSecrets", ("secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
                          "secretsmanager:TagResource", "secretsmanager:DeleteSecret"),
          ("arn:{partition}:secretsmanager:{region}:{account}:secret:rclaude/{deployment}/"
           "tasks/*",),
          "per-task secrets: created with their tags, granted to each run, deleted after"),
    Grant("ReadTaskLogs", ("logs:GetLogEvents",), ("{log_group_arn}:log-stream:task/*",),
          "a task's output (logs, follow)"),
    Grant("ShellIntoInteractiveTasks", ("ecs:ExecuteCommand",), ("{cluster_arn}", _TASK),
          "exec() into an interactive task", needs="interactive_task_definition_arn"),
    Grant("CheckRunnerImage", ("ecr:DescribeImages",), ("{image_repository_arn}",),
          "before a task starts on a stack that builds its image: the image exists",
          needs="image_build_project"),
)


def _values(outputs: StackOutputs) -> dict[str, str]:
    missing = [name for name in ("cluster_arn", "cluster_name", "bucket", "log_group",
                                 "task_definition_arn", "task_role_arn",
                                 "execution_role_arn", "deployment")
               if not getattr(outputs, name)]
    if missing:
        raise ConfigError("outputs", ", ".join(missing),
                          "the outputs of a deployed stack (these are missing)")
    assert outputs.cluster_arn is not None and outputs.task_definition_arn is not None
    arn = outputs.cluster_arn.split(":")
    if len(arn) < 6 or arn[2] != "ecs":
        raise ConfigError("outputs.cluster_arn", outputs.cluster_arn, "an ECS cluster ARN")
    partition, region, account = arn[1], arn[3], arn[4]

    def family_revisions(definition: str) -> str:
        return definition.rsplit(":", 1)[0] + ":*"  # a new revision keeps its family

    values = {
        "partition": partition, "region": region, "account": account,
        "cluster_arn": outputs.cluster_arn, "cluster_name": str(outputs.cluster_name),
        "bucket_arn": f"arn:{partition}:s3:::{outputs.bucket}",
        "log_group_arn": f"arn:{partition}:logs:{region}:{account}:log-group:"
                         f"{outputs.log_group}",
        "task_definition": family_revisions(outputs.task_definition_arn),
        "task_role_arn": str(outputs.task_role_arn),
        "execution_role_arn": str(outputs.execution_role_arn),
        "deployment": str(outputs.deployment),
    }
    if outputs.image_build_project and outputs.image:
        # <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>
        registry, _, repository = outputs.image.rsplit(":", 1)[0].partition("/")
        values["image_repository_arn"] = (
            f"arn:{partition}:ecr:{registry.split('.')[3]}:{registry.split('.')[0]}:"
            f"repository/{repository}")
    if outputs.interactive_task_definition_arn:
        values["interactive_task_definition"] = family_revisions(
            outputs.interactive_task_definition_arn)
    return values


def submitter_policy(outputs: StackOutputs | Mapping[str, Any]) -> dict[str, Any]:
    """The IAM policy document (as a dict) that lets a principal run tasks on the stack
    whose outputs are given, and nothing else: attach it to the role or user of whoever
    calls ``run_task``, ``wait``, ``logs``, ``result``, ``stop``, ``tasks``, ``cost``,
    ``status``, ``reconcile`` or ``exec``.

    >>> outputs = {"deployment": "dev", "cluster_name": "c",
    ...     "cluster_arn": "arn:aws:ecs:us-east-1:123456789012:cluster/c", "bucket": "b",
    ...     "log_group": "/rclaude/dev", "task_role_arn": "arn:aws:iam::123456789012:role/t",
    ...     "execution_role_arn": "arn:aws:iam::123456789012:role/e",
    ...     "task_definition_arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/r:3"}
    >>> policy = submitter_policy(outputs)
    >>> [s["Sid"] for s in policy["Statement"]][:5]
    ['TaskRecords', 'ListTaskRecords', 'ReadClosedMarker', 'BudgetLedger', 'StartTasks']
    """
    if not isinstance(outputs, StackOutputs):
        outputs = StackOutputs.from_mapping(outputs)
    values = _values(outputs)
    statements = []
    for grant in SUBMITTER_GRANTS:
        if grant.needs is not None and not getattr(outputs, grant.needs):
            continue
        statement: dict[str, Any] = {
            "Sid": grant.sid, "Effect": "Allow", "Action": list(grant.actions),
            "Resource": [r.format(**values) for r in grant.resources]}
        if grant.conditions:
            statement["Condition"] = {
                operator: {key: value.format(**values) for key, value in keys.items()}
                for operator, keys in grant.conditions.items()}
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def submitter_policy_json(outputs: StackOutputs | Mapping[str, Any]) -> str:
    """:func:`submitter_policy` as JSON text, as ``aws iam put-role-policy`` takes it."""
    return json.dumps(submitter_policy(outputs), indent=2)
