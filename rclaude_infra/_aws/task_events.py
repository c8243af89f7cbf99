"""The cluster's task state changes, read from the stack's SQS queue (``task_events``):
EventBridge's "ECS Task State Change" events (Amazon ECS Developer Guide, "Amazon ECS task
state change events"), each the whole event as the message body.

A message is hostile input like anything a task can influence: the task id is taken from
the event's ``detail.startedBy`` only when it is one of ours (a full match of the task-id
pattern) and the event is the kind the rule sends; anything else is a message to drop.
Delivery is at least once and in no order, so the caller treats an event as a reason to
look at the task, never as its state.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ..tasks.spec import is_task_id
from . import client_config

EVENT_TYPE = "ECS Task State Change"
#: The most SQS returns to one receive, and deletes in one batch.
BATCH = 10


@attrs.frozen
class TaskEvent:
    """One message: the task it is about (``None``: not one of ours, or not an ECS task
    state change, to be dropped), the status ECS reported, and its receipt handle."""

    task_id: str | None
    last_status: str | None
    receipt: str
    #: How many times SQS has handed this message out (1 the first time).
    receives: int = 1


def parse(body: str, receipt: str, receives: int = 1) -> TaskEvent:
    """The message ``body`` as a :class:`TaskEvent`.

    >>> event = {"source": "aws.ecs", "detail-type": "ECS Task State Change",
    ...          "detail": {"startedBy": "t-20261204-101500-abc123", "lastStatus": "STOPPED"}}
    >>> parse(json.dumps(event), "r").task_id
    't-20261204-101500-abc123'
    >>> parse('{"detail": {"startedBy": "../../etc"}}', "r").task_id is None
    True
    """
    try:
        event = json.loads(body)
    except ValueError:
        return TaskEvent(None, None, receipt, receives)
    if not isinstance(event, dict) or event.get("source") != "aws.ecs" or event.get(
            "detail-type") != EVENT_TYPE or not isinstance(event.get("detail"), dict):
        return TaskEvent(None, None, receipt, receives)
    detail = event["detail"]
    started_by, status = detail.get("startedBy"), detail.get("lastStatus")
    task_id = started_by if isinstance(started_by, str) and is_task_id(started_by) else None
    return TaskEvent(task_id, status if isinstance(status, str) else None, receipt, receives)


class TaskEventQueue:
    """The queue at ``queue_url``, through ``session`` (the deployment's):
    :meth:`receive` (a long poll), :meth:`done`."""

    def __init__(self, queue_url: str, *, session: Any) -> None:
        self.queue_url = queue_url
        self._sqs = session.client("sqs", config=client_config())

    def receive(self, *, wait_seconds: int = 20) -> list[TaskEvent]:
        """Up to ten messages, waiting up to ``wait_seconds`` for the first."""
        answer = self._sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"])
        return [parse(m.get("Body", ""), m["ReceiptHandle"],
                      int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)))
                for m in answer.get("Messages", [])]

    def done(self, events: list[TaskEvent]) -> None:
        """Delete handled messages (those not passed come back after the visibility
        timeout, and go to the dead-letter queue after the redrive policy's receives)."""
        for start in range(0, len(events), BATCH):
            chunk = events[start:start + BATCH]
            self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": e.receipt} for n, e in enumerate(chunk)])

