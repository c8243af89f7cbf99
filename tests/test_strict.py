"""security_profile="strict": what a compliance review asks for on top of the baseline,
each piece in the plan, held by its rule, and its cost in the estimate."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rclaude_infra import ConfigError, DeploymentConfig, Usage, estimate_cost

STRICT = {"security_profile": "strict", "nat": "single"}


def test_strict_needs_private_subnets() -> None:
    with pytest.raises(ConfigError) as info:
        DeploymentConfig(security_profile="strict")
    assert info.value.field == "nat" and "security_profile='strict'" in info.value.allowed
    existing = DeploymentConfig(security_profile="strict", vpc_id="vpc-0123abcd",
                                subnet_ids=("subnet-0a1b2c3d", "subnet-4e5f6a7b"))
    assert existing.nat == "none"  # an existing VPC: its subnets are the user's choice
    with pytest.raises(ConfigError, match="security_profile"):
        DeploymentConfig(security_profile="paranoid")


def test_strict_plan_logs_versions_and_watches(plan_for: Any) -> None:
    p = plan_for(**STRICT)
    buckets = {b.name: b for b in p.by_type("aws:s3:Bucket")}
    assert set(buckets) == {"rclaude-dev-results", "rclaude-dev-access-logs"}
    (logging,) = p.by_type("aws:s3:BucketLogging")
    assert logging.inputs["targetPrefix"] == "results/"
    assert logging.inputs["targetBucket"] == "rclaude-dev-access-logs-bucket-id"
    assert logging.inputs["bucket"] == "rclaude-dev-results-bucket-id"
    versioning = {v.name: v.inputs for v in p.by_type("aws:s3:BucketVersioning")}
    assert {v["versioningConfiguration"]["status"] for v in versioning.values()} == {"Enabled"}
    lifecycle = next(r for r in p.by_type("aws:s3:BucketLifecycleConfiguration")
                     if r.name == "rclaude-dev-results-lifecycle").inputs
    assert lifecycle["rules"][0]["noncurrentVersionExpiration"] == {"noncurrentDays": 30}
    # S3's log delivery may write the log bucket, for this account only.
    policy = next(r for r in p.by_type("aws:s3:BucketPolicy")
                  if r.name == "rclaude-dev-access-logs-tls-only").inputs["policy"]
    writes = {s["Sid"]: s for s in json.loads(policy)["Statement"]}["ServiceWrites"]
    assert writes["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert writes["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    # Every flow of the VPC to a log group of the stack, through a role scoped to it.
    (flow,) = p.by_type("aws:ec2:FlowLog")
    assert flow.inputs["trafficType"] == "ALL"
    assert flow.inputs["logDestination"].endswith(":log-group:/rclaude/dev/flow-logs")
    (role,) = [r for r in p.by_type("aws:iam:Role") if r.name == "rclaude-dev-flow-logs"]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    (cluster,) = p.by_type("aws:ecs:Cluster")
    assert cluster.inputs["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    # Instances in private subnets, behind the NAT gateway.
    group = p.one("aws:autoscaling:Group").inputs
    assert group["vpcZoneIdentifiers"] == [
        "rclaude-dev-private-0-subnet-id", "rclaude-dev-private-1-subnet-id"]
    # One customer-managed key, rotating, for the results, every log group and the secret;
    # the access-log bucket keeps SSE-S3 (the only encryption S3 delivers logs to).
    (key,) = p.by_type("aws:kms:Key")
    assert key.inputs["enableKeyRotation"] is True
    arn = "arn:aws:kms:us-east-1:123456789012:key/rclaude-dev-key-"
    assert all(g.inputs["kmsKeyId"].startswith(arn) for g in p.by_type("aws:cloudwatch:LogGroup"))
    assert p.one("aws:secretsmanager:Secret").inputs["kmsKeyId"].startswith(arn)
    encryption = {e.name: e.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
                  for e in p.by_type("aws:s3:BucketServerSideEncryptionConfiguration")}
    assert encryption["rclaude-dev-results-encryption"]["sseAlgorithm"] == "aws:kms"
    assert encryption["rclaude-dev-access-logs-encryption"] == {"sseAlgorithm": "AES256"}
    statements = json.loads(key.inputs["policy"])["Statement"]
    logs = next(s for s in statements if s["Sid"] == "LogsEncryptThisDeployment")
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"].endswith(
        ":log-group:/rclaude/dev*")
    # The roles may use the key for what they do with it, nothing else.
    policies = {r.name: json.loads(r.inputs["policy"]) for r in p.by_type("aws:iam:RolePolicy")}
    uses = {name: next((s["Action"] for s in doc["Statement"] if s.get("Sid") == "UseStackKey"),
                       None) for name, doc in policies.items()}
    assert uses["rclaude-dev-task"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert uses["rclaude-dev-execution"] == ["kms:Decrypt"]  # the secret
    baseline = plan_for(nat="single")
    assert not baseline.by_type("aws:kms:Key")
    assert not baseline.by_type("aws:ec2:FlowLog")
    assert not baseline.by_type("aws:s3:BucketVersioning")
    names = {(r.type, r.name) for r in baseline}
    assert names <= {(r.type, r.name) for r in p}  # strict only adds: no URN moves


def test_strict_costs_what_it_adds_and_says_what_it_assumes(plan_for: Any) -> None:
    usage = Usage(tasks_per_day=10, model_usd_per_task=0.5)
    baseline = estimate_cost(plan_for(nat="single"), usage)
    strict = estimate_cost(plan_for(**STRICT), usage)
    rows = {(r, c): after - before for r, c, before, after in baseline.diff(strict).rows
            if after != before}
    assert rows[("rclaude-dev-cluster", "Container Insights metrics")] == pytest.approx(3.0)
    assert ("rclaude-dev-flow-logs", "Data ingested") in rows
    assert ("rclaude-dev-results", "Noncurrent versions (30 more days)") in rows
    assert ("rclaude-dev-access-logs", "Access logs (30 days kept)") in rows
    assert rows[("rclaude-dev-key", "Customer-managed key")] == pytest.approx(1.0)
    assert ("rclaude-dev-key", "Requests (at most)") in rows
    # 304 tasks: 6 objects each, written and expired; one log object each.
    assert rows[("rclaude-dev-results-events", "Events to EventBridge")] == pytest.approx(
        304.1667 * 12 / 1e6)
    assert rows[("rclaude-dev-access-logs-events", "Events to EventBridge")] == pytest.approx(
        304.1667 * 2 / 1e6)
    assert strict.idle_monthly - baseline.idle_monthly == pytest.approx(4.0)
    assumed = {line.component for line in strict.lines if line.assumed}
    assert {"Container Insights metrics", "Data ingested", "Events to EventBridge"} <= assumed
    assert any("1 MB of flow records per task" in a for a in strict.assumptions)


def test_each_bucket_is_priced_with_its_own_expiry(plan_for: Any) -> None:
    """Results kept 30 days, logs a year: each bucket's lines read its own lifecycle (a
    plan with two buckets once priced the results with the log bucket's year)."""
    p = plan_for(security_profile="strict", nat="single", log_retention_days=365,
                 results_expire_days=30)
    lines = {(line.resource, line.component)
             for line in estimate_cost(p, Usage(tasks_per_day=10)).lines}
    assert ("rclaude-dev-results", "Standard storage (30 days kept)") in lines
    assert ("rclaude-dev-results", "Noncurrent versions (30 more days)") in lines
    assert ("rclaude-dev-access-logs", "Access logs (365 days kept)") in lines
