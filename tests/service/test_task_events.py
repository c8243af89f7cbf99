"""Task ends from ECS's events instead of polling: an EventBridge rule with the stack's
own pattern (``stack_events.task_event_pattern``) sends "ECS Task State Change" events to
an SQS queue with a dead-letter queue, all on moto's server, and the service's dispatcher
consumes them. The polling fallback is pushed out of the test's reach, so what records a
task's end and its usage here is the event. Events are shaped as the Amazon ECS Developer
Guide's "Amazon ECS task state change events" shows them (``detail``: ``clusterArn``,
``taskArn``, ``startedBy``, ``lastStatus``, ``desiredStatus``, ``stopCode``,
``version``); a duplicate, a late one, one from another cluster and hostile bodies change
nothing twice."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import GENEROUS_PLANS, Service, admin, new_app, started

CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/rclaude-svc-cluster"


class Events:
    def __init__(self, aws: Any, service: Service, queue: str, dead: str,
                 database: Path) -> None:
        self.events, self.sqs = aws.client("events"), aws.client("sqs")
        self.service, self.queue, self.dead = service, queue, dead
        self.database = database

    def record(self, task_id: str) -> tuple[bool, str | None, int]:
        """Read from the database (a GET of the task would look at it): whether it was
        started, its recorded end, and its usage records."""
        import sqlite3

        with sqlite3.connect(self.database) as db:
            started, final = db.execute("SELECT dispatched_at IS NOT NULL, final_status "
                                        "FROM tasks WHERE id = ?", (task_id,)).fetchone()
            (usage,) = db.execute("SELECT count(*) FROM usage_records WHERE task_id = ?",
                                  (task_id,)).fetchone()
        return bool(started), final, usage

    def put(self, task_id: str, last_status: str, version: int, *,
            cluster: str = CLUSTER) -> None:
        detail = {"clusterArn": cluster, "taskArn": f"{cluster}/task/{version:032x}",
                  "startedBy": task_id, "lastStatus": last_status,
                  "desiredStatus": "STOPPED" if last_status == "STOPPED" else "RUNNING",
                  "version": version, "updatedAt": "2026-12-04T10:00:00.000Z",
                  **({"stopCode": "EssentialContainerExited"}
                     if last_status == "STOPPED" else {})}
        answer = self.events.put_events(Entries=[{
            "Source": "aws.ecs", "DetailType": "ECS Task State Change",
            "Resources": [detail["taskArn"]], "Detail": json.dumps(detail)}])
        assert answer["FailedEntryCount"] == 0

    def waiting(self, queue: str) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        return sum(int(v) for v in attributes["Attributes"].values())


@pytest.fixture(name="events")
def _events(aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Events]:
    from rclaude_infra._pulumi.stack_events import task_event_pattern
    from rclaude_infra.service import dispatch

    sqs, rules = aws.client("sqs"), aws.client("events")
    name = tmp_path.name[-40:].replace("_", "-")
    dead = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn,
                                     "maxReceiveCount": 2})})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    rules.put_rule(Name=name, EventPattern=task_event_pattern(CLUSTER))
    rules.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": queue_arn}])
    # Only events make the service see an end here: the 30 s look is out of reach.
    monkeypatch.setattr(dispatch, "RECONCILE_SECONDS", 3600.0)
    monkeypatch.setattr(dispatch, "EVENTS_WAIT_SECONDS", 1)  # a quick stop at the end
    (tmp_path / "plans.toml").write_text(GENEROUS_PLANS)
    for key, value in {"RCLAUDE_HOME": str(tmp_path / "home"),
                       "RCLAUDE_DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
                       "RCLAUDE_PLANS_FILE": str(tmp_path / "plans.toml"),
                       "RCLAUDE_TASK_EVENTS_QUEUE": queue,
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with started(new_app(100_000)) as url:
        yield Events(aws, Service(url, "", 100_000), queue, dead, tmp_path / "service.db")
    rules.remove_targets(Rule=name, Ids=["queue"])
    rules.delete_rule(Name=name)


def _until(check: Any, what: str, timeout: float = 30) -> None:
    from waiting import wait_until

    wait_until(check, what, timeout)


def test_an_event_records_the_end_once(events: Events) -> None:
    admin("users", "add", "alice@example.com")
    token = admin("tokens", "create", "alice@example.com").strip()
    with events.service.client(token) as client:
        task_id = client.post("/v1/tasks", json={"command": "echo hello"}).json()["id"]
        _until(lambda: events.record(task_id)[0], "the task to start")
        # The task ends on its own in a moment; nothing looks at it.
        time.sleep(3)
        assert events.record(task_id) == (True, None, 0)
        # Another cluster's event does not reach the queue; ours does, and is the end.
        events.put(task_id, "STOPPED", 3, cluster=CLUSTER + "-other")
        events.put(task_id, "STOPPED", 3)
        _until(lambda: events.record(task_id) == (True, "SUCCEEDED", 1), "the event to end it")
        # The same event again, then an older RUNNING one: nothing changes twice.
        events.put(task_id, "STOPPED", 3)
        events.put(task_id, "RUNNING", 2)
        _until(lambda: events.waiting(events.queue) == 0, "the queue to empty")
        assert events.record(task_id) == (True, "SUCCEEDED", 1)
        assert events.waiting(events.dead) == 0
        usage = client.get("/v1/usage").json()
        assert usage["tasks"] == 1
        # What the task did, not only how it ended: its line, and its result's exit code.
        assert "hello" in [line["text"] for line in client.get(
            f"/v1/tasks/{task_id}/logs").json()["lines"]]
        assert client.get(f"/v1/tasks/{task_id}/result").json()["exit_code"] == 0


def test_hostile_messages_are_dropped_and_an_unseen_end_goes_to_the_dead_letters(
        events: Events) -> None:
    admin("users", "add", "alice@example.com")
    token = admin("tokens", "create", "alice@example.com").strip()
    for body in ("not json", json.dumps({"source": "aws.ecs"}),
                 json.dumps({"source": "aws.ecs", "detail-type": "ECS Task State Change",
                             "detail": {"startedBy": "../../etc/passwd",
                                        "lastStatus": "STOPPED"}}),
                 json.dumps({"source": "aws.ecs", "detail-type": "ECS Task State Change",
                             "detail": {"startedBy": "t-20261204-000000-aaaaaa",
                                        "lastStatus": "STOPPED"}})):
        events.sqs.send_message(QueueUrl=events.queue, MessageBody=body)
    _until(lambda: events.waiting(events.queue) == 0, "the hostile messages to go")
    assert events.waiting(events.dead) == 0  # dropped, not retried
    with events.service.client(token) as client:
        task_id = client.post("/v1/tasks", json={"command": "sleep 300"}).json()["id"]
        _until(lambda: client.get(f"/v1/tasks/{task_id}").json()["status"] == "RUNNING",
               "the task to run")
        # A STOPPED the task does not show: the message comes back, then goes to the
        # dead-letter queue, and the running task is not marked ended.
        events.put(task_id, "STOPPED", 9)
        _until(lambda: events.waiting(events.dead) == 1, "the message to be dead-lettered",
               timeout=60)
        assert client.get(f"/v1/tasks/{task_id}").json()["status"] == "RUNNING"
        client.post(f"/v1/tasks/{task_id}/cancel")
