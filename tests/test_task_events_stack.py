"""``task_events=True``: the plan's EventBridge rule, SQS queue and dead-letter queue,
who may send to the queue and with which key, the outputs that name them, and
``Deployment.task_events()`` reading the queue on moto's server."""

from __future__ import annotations

import json
from typing import Any

from plan_helpers import PlanFor, policy_document

from rclaude_infra._aws.task_events import parse


def _only(plan: Any, typ: str, suffix: str = "") -> Any:
    [found] = [r for r in plan.by_type(typ) if r.name.endswith(suffix)]
    return found


def test_no_queue_unless_asked(plan_for: PlanFor) -> None:
    plan = plan_for()
    assert not plan.by_type("aws:sqs:Queue") and not plan.by_type("aws:cloudwatch:EventRule")
    assert "task_events_queue_url" not in plan.outputs


def test_the_rule_sends_this_clusters_task_changes_to_the_queue(plan_for: PlanFor) -> None:
    plan = plan_for(task_events=True)
    cluster = _only(plan, "aws:ecs:Cluster")
    rule = _only(plan, "aws:cloudwatch:EventRule")
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern == {"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"],
                       "detail": {"clusterArn": [plan.outputs["cluster_arn"]]}}
    assert cluster.name in plan.outputs["cluster_arn"]
    queue = _only(plan, "aws:sqs:Queue", "-task-events")
    dead = _only(plan, "aws:sqs:Queue", "-dlq")
    target = _only(plan, "aws:cloudwatch:EventTarget")
    assert target.inputs["rule"] == rule.inputs["name"]
    assert target.inputs["arn"].endswith(queue.inputs["name"])
    redrive = json.loads(queue.inputs["redrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(dead.inputs["name"])
    assert redrive["maxReceiveCount"] == 5
    assert queue.inputs["sqsManagedSseEnabled"] and dead.inputs["sqsManagedSseEnabled"]
    # Only EventBridge, for this rule, may send.
    [statement] = policy_document(_only(plan, "aws:sqs:QueuePolicy"))["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"].endswith(
        f":rule/{rule.inputs['name']}")
    assert plan.outputs["task_events_queue_url"].endswith("/" + queue.inputs["name"])
    assert plan.outputs["task_events_dead_letter_url"].endswith("/" + dead.inputs["name"])


def test_strict_encrypts_with_the_stack_key_that_eventbridge_may_use(
        plan_for: PlanFor) -> None:
    plan = plan_for(task_events=True, security_profile="strict", nat="single",
                    log_retention_days=365)
    key = _only(plan, "aws:kms:Key")
    for queue in plan.by_type("aws:sqs:Queue"):
        assert queue.inputs["kmsMasterKeyId"].startswith(
            f"arn:aws:kms:us-east-1:123456789012:key/{key.name}")
    statements = {s["Sid"]: s for s in policy_document(key)["Statement"]}
    events = statements["EventsSendThisDeploymentsTaskEvents"]
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    assert sorted(events["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    rule = _only(plan, "aws:cloudwatch:EventRule")
    assert events["Condition"]["ArnEquals"]["aws:SourceArn"].endswith(
        f":rule/{rule.inputs['name']}")
    assert plan.check_policies().violations == []


def test_an_event_is_read_from_the_stacks_queue(aws: Any) -> None:
    from rclaude_infra import Deployment

    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="rclaude-dev-task-events-lib")["QueueUrl"]
    deployment = Deployment.from_outputs("dev", {"region": "us-east-1", "bucket": "b",
                                                 "task_events_queue_url": url}, session=aws)
    queue = deployment.task_events()
    assert queue is not None and queue.queue_url == url
    event = {"source": "aws.ecs", "detail-type": "ECS Task State Change",
             "detail": {"startedBy": "t-20261204-101500-abc123", "lastStatus": "STOPPED"}}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
    [got] = queue.receive(wait_seconds=1)
    assert (got.task_id, got.last_status, got.receives) == (
        "t-20261204-101500-abc123", "STOPPED", 1)
    queue.done([got])
    assert queue.receive(wait_seconds=0) == []
    assert Deployment("dev", provider="local").task_events() is None


def test_what_is_not_an_ecs_task_change_of_ours_names_no_task() -> None:
    good = {"source": "aws.ecs", "detail-type": "ECS Task State Change",
            "detail": {"startedBy": "t-20261204-101500-abc123", "lastStatus": "STOPPED"}}
    for body in ("", "[]", "null", json.dumps({**good, "source": "evil"}),
                 json.dumps({**good, "detail-type": "ECS Container Instance State Change"}),
                 json.dumps({**good, "detail": "STOPPED"}),
                 json.dumps({**good, "detail": {"startedBy": "t-1\n", "lastStatus": 1}}),
                 json.dumps({**good, "detail": {"startedBy": "ecs-svc/123"}})):
        assert parse(body, "r").task_id is None, body
    assert parse(json.dumps(good), "r").task_id == "t-20261204-101500-abc123"
