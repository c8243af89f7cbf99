"""The cluster's task state changes as messages: an EventBridge rule on this cluster's
"ECS Task State Change" events, targeting an SQS queue that a service's workers read,
with a dead-letter queue for a message no worker could handle (``task_events``).

EventBridge delivers at least once and in no promised order (Amazon EventBridge User
Guide, "Event delivery"); the consumer (``_aws.task_events``) treats an event as a reason
to look at the task, so a duplicate or a late event changes nothing twice.

A part of :class:`~rclaude_infra._pulumi.program.RclaudeStack`.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from .documents import policy_document, task_events_rule
from .stack_base import StackBase

#: Receives of one message before it goes to the dead-letter queue.
MAX_RECEIVES = 5
#: Seconds a received message is hidden from other workers while one handles it.
VISIBILITY_SECONDS = 60
#: How long either queue keeps a message (the most SQS allows: 14 days).
RETENTION_SECONDS = 14 * 24 * 3600


def task_event_pattern(cluster_arn: str) -> str:
    """The rule's pattern: this cluster's task state changes, nothing else.

    >>> json.loads(task_event_pattern("arn:aws:ecs:us-east-1:1:cluster/c"))["detail-type"]
    ['ECS Task State Change']
    """
    return json.dumps({"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"],
                       "detail": {"clusterArn": [cluster_arn]}})


class EventsPart(StackBase):
    def _task_events(self) -> None:
        self.task_events_queue = self.task_events_dead_letters = None
        if not self._config.sends_task_events:
            return
        encrypted: dict[str, Any] = (
            {"kms_master_key_id": self.key.arn, "kms_data_key_reuse_period_seconds": 300}
            if self.key is not None else {"sqs_managed_sse_enabled": True})
        dead = aws.sqs.Queue(
            f"{self._prefix}-task-events-dlq",
            name=f"{self._prefix}-task-events-dlq",
            message_retention_seconds=RETENTION_SECONDS,
            tags=self.tags, opts=self._child, **encrypted)
        queue = aws.sqs.Queue(
            f"{self._prefix}-task-events",
            name=f"{self._prefix}-task-events",
            message_retention_seconds=RETENTION_SECONDS,
            visibility_timeout_seconds=VISIBILITY_SECONDS,
            receive_wait_time_seconds=20,
            redrive_policy=dead.arn.apply(lambda arn: json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVES})),
            tags=self.tags, opts=self._child, **encrypted)
        aws.sqs.RedriveAllowPolicy(
            f"{self._prefix}-task-events-dlq",
            queue_url=dead.url,
            redrive_allow_policy=queue.arn.apply(lambda arn: json.dumps(
                {"redrivePermission": "byQueue", "sourceQueueArns": [arn]})),
            opts=self._child)
        rule = aws.cloudwatch.EventRule(
            f"{self._prefix}-task-events",
            name=task_events_rule(self._name),
            description=f"rclaude-infra {self._name}: the cluster's task state changes",
            event_pattern=self.cluster.arn.apply(task_event_pattern),
            tags=self.tags, opts=self._child)
        # Only this rule may send to the queue (the confused-deputy guard of EventBridge's
        # "Amazon SQS permissions" documentation).
        aws.sqs.QueuePolicy(
            f"{self._prefix}-task-events",
            queue_url=queue.url,
            policy=pulumi.Output.all(queue.arn, rule.arn).apply(lambda arns: policy_document({
                "Sid": "FromThisRuleOnly", "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage", "Resource": arns[0],
                "Condition": {"ArnEquals": {"aws:SourceArn": arns[1]}}})),
            opts=self._child)
        aws.cloudwatch.EventTarget(
            f"{self._prefix}-task-events",
            rule=rule.name, arn=queue.arn,
            opts=self._child)
        self.task_events_queue, self.task_events_dead_letters = queue, dead
