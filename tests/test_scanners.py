"""The offline plan as Terraform plan JSON, read by the scanner a security team runs.

Checkov (pinned, in a venv of its own: the ``checkov`` fixture) scans the plans of four
configs in one run. What it fails must be exactly what our own rules report as waived,
check id by check id and resource by resource: the waiver table (``policy.WAIVERS``,
mirrored in the README) is the list of what the scan finds, with a reason each.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rclaude_infra import DeploymentConfig, plan
from rclaude_infra.policy import WAIVERS
from rclaude_infra.terraform_plan import TERRAFORM_TYPES

CONFIGS = {
    "default": DeploymentConfig(),
    "remote-build": DeploymentConfig(build_image="remote", task_events=True),
    "strict": DeploymentConfig(security_profile="strict", nat="single", log_retention_days=365,
                               task_events=True),
    "strict-remote-bedrock": DeploymentConfig(
        security_profile="strict", nat="per-az", log_retention_days=365,
        build_image="remote", auth="bedrock"),
    # mode="service": the hosted service on the stack (its load balancer, tasks, database).
    "service": DeploymentConfig(mode="service", nat="single", service={
        "domain": "agents.example.com", "zone_id": "Z0123456789ABC"}),
    "service-strict": DeploymentConfig(
        mode="service", security_profile="strict", nat="single", log_retention_days=365,
        service={"domain": "agents.example.com", "db_multi_az": True, "certificate_arn":
                 "arn:aws:acm:us-east-1:123456789012:certificate/"
                 "12345678-1234-1234-1234-123456789012"}),
    "service-http": DeploymentConfig(mode="service", service={"http_only": True}),
}

#: What the strict profile cannot fix, each a declared waiver with its reason.
UNFIXABLE = {
    ("CKV_AWS_144", "rclaude-dev-results"), ("CKV_AWS_144", "rclaude-dev-access-logs"),
    ("CKV_AWS_145", "rclaude-dev-access-logs"),
    ("CKV2_AWS_57", "rclaude-dev-anthropic-api-key"),
}

Scan = dict[str, dict[str, set[tuple[str, str]]]]


@pytest.fixture(scope="module", name="scan")
def _scan(checkov: list[str], tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """``{config: {"failed"|"passed": {(check id, resource name)}}}`` from one Checkov run."""
    folder = tmp_path_factory.mktemp("terraform")
    files = []
    for name, config in CONFIGS.items():
        path = folder / f"{name}.json"
        path.write_text(plan(config).to_terraform_json())
        files += ["-f", str(path)]
    done = subprocess.run(
        [*checkov, *files, "--framework", "terraform_plan", "--output", "json",
         "--compact", "--skip-download"],
        capture_output=True, text=True, timeout=600, cwd=folder,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder), "BC_SKIP_MAPPING": "TRUE"})
    # Checkov exits 1 when a check fails; anything else is a failure of the run itself.
    assert done.returncode in (0, 1), done.stderr[-2000:]
    reports = json.loads(done.stdout)
    result: Scan = {name: {"failed": set(), "passed": set()} for name in CONFIGS}
    for report in reports if isinstance(reports, list) else [reports]:
        assert report["summary"]["parsing_errors"] == 0, report["summary"]
        for outcome in ("failed", "passed"):
            for check in report["results"][f"{outcome}_checks"]:
                config = Path(check["file_path"]).stem
                result[config][outcome].add((check["check_id"],
                                             check["resource"].split(".", 1)[1]))
    return result


def _waived_checks(config: DeploymentConfig) -> set[tuple[str, str]]:
    report = plan(config).check_policies()
    assert report.ok, str(report)
    return {(ref, finding.resource) for finding in report.waived
            for ref in finding.references if ref.startswith("CKV")}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_what_checkov_fails_is_exactly_what_the_waiver_table_declares(
        scan: Scan, name: str) -> None:
    failed = scan[name]["failed"]
    waived = _waived_checks(CONFIGS[name])
    assert failed - waived == set(), "Checkov fails checks the waiver table does not list"
    assert waived - failed == set(), "the waiver table lists checks Checkov does not fail"


def test_the_strict_profile_fails_only_what_no_option_can_fix(scan: Scan) -> None:
    assert scan["strict"]["failed"] == UNFIXABLE
    # Bedrock has no secret to rotate.
    assert scan["strict-remote-bedrock"]["failed"] == {
        *(c for c in UNFIXABLE if c[0] != "CKV2_AWS_57"),
        ("CKV_AWS_316", "rclaude-dev-image-build")}


#: What the strict service mode cannot fix on top (each a declared waiver: a stack that
#: destroy() removes, a WAF and ALB access logs not built, port 80 kept for its redirect).
SERVICE_UNFIXABLE = {
    ("CKV2_AWS_57", "rclaude-dev-service-settings"), ("CKV_AWS_150", "rclaude-dev-service"),
    ("CKV_AWS_293", "rclaude-dev-db"), ("CKV_AWS_91", "rclaude-dev-service"),
    ("CKV2_AWS_28", "rclaude-dev-service"), ("CKV_AWS_260", "rclaude-dev-service-lb"),
}


def test_the_strict_service_mode_fails_only_what_no_option_can_fix(scan: Scan) -> None:
    assert scan["service-strict"]["failed"] == UNFIXABLE | SERVICE_UNFIXABLE
    passed = scan["service-strict"]["passed"]
    assert {
        ("CKV_AWS_16", "rclaude-dev-db"),           # encrypted
        ("CKV_AWS_17", "rclaude-dev-db"),           # not public
        ("CKV_AWS_118", "rclaude-dev-db"),          # enhanced monitoring (strict)
        ("CKV_AWS_157", "rclaude-dev-db"),          # Multi-AZ (db_multi_az)
        ("CKV2_AWS_69", "rclaude-dev-db"),          # TLS forced by its parameter group
        ("CKV_AWS_2", "rclaude-dev-service-http"),  # HTTP only redirects
        ("CKV_AWS_103", "rclaude-dev-service-https"),  # TLS 1.2 or later
        ("CKV_AWS_131", "rclaude-dev-service"),     # invalid headers dropped
        ("CKV_AWS_333", "rclaude-dev-service-api"),  # no public address (NAT)
    } <= passed


def test_checkov_reads_the_properties_and_links_it_checks(scan: Scan) -> None:
    """Passes that need the conversion right: nested blocks (metadata_options,
    setting, encryption_configuration), renamed blocks and references between resources
    (a bucket and its public access block, a VPC and its flow log, the default group)."""
    passed = scan["strict"]["passed"]
    assert {
        ("CKV_AWS_79", "rclaude-dev-lt"),           # IMDSv2 required
        ("CKV_AWS_341", "rclaude-dev-lt"),          # hop limit 1
        ("CKV_AWS_65", "rclaude-dev-cluster"),      # Container Insights (setting block)
        ("CKV_AWS_136", "rclaude-dev-runner"),      # ECR with the stack key
        ("CKV_AWS_51", "rclaude-dev-runner"),       # immutable tags
        ("CKV2_AWS_6", "rclaude-dev-results"),      # bucket linked to its access block
        ("CKV2_AWS_62", "rclaude-dev-results"),     # ... and to its notification
        ("CKV2_AWS_11", "rclaude-dev-vpc"),         # VPC linked to its flow log
        ("CKV2_AWS_12", "rclaude-dev-vpc"),         # default group closed
        ("CKV_AWS_336", "rclaude-dev-runner"),      # read-only root (container JSON)
        ("CKV_AWS_158", "rclaude-dev-logs"),        # log group with the key
    } <= passed
    # Each is failed, not silently skipped, where the config chooses otherwise.
    assert {("CKV2_AWS_11", "rclaude-dev-vpc"), ("CKV_AWS_65", "rclaude-dev-cluster"),
            ("CKV2_AWS_62", "rclaude-dev-results")} <= scan["default"]["failed"]


def test_every_waiver_is_in_the_readme_table() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `"))
    for waiver in WAIVERS:
        assert f"`{waiver.rule_id}`" in table, waiver.rule_id


def _resources(tf: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["address"]: r for r in tf["planned_values"]["root_module"]["resources"]}


def test_the_terraform_plan_has_every_resource_with_its_references() -> None:
    p = plan(CONFIGS["strict-remote-bedrock"])
    tf = p.to_terraform()
    assert tf["format_version"] == "1.2"
    resources = _resources(tf)
    # Everything the stack creates, but the awsx image component, which creates nothing.
    assert len(resources) == len([r for r in p.stack_resources if r.type in TERRAFORM_TYPES])
    assert tf["rclaude_unconverted"] == []
    changes = {c["address"]: c for c in tf["resource_changes"]}
    assert set(changes) == set(resources)
    assert all(c["change"]["actions"] == ["create"] for c in changes.values())
    # A reference is unknown until apply: absent from the values, named in configuration.
    config = {r["address"]: r for r in tf["configuration"]["root_module"]["resources"]}
    flow = "aws_flow_log.rclaude-dev-flow-logs"
    assert "vpc_id" not in resources[flow]["values"]
    assert changes[flow]["change"]["after_unknown"]["vpc_id"] is True
    assert config[flow]["expressions"]["vpc_id"]["references"] == [
        "aws_vpc.rclaude-dev-vpc.id", "aws_vpc.rclaude-dev-vpc"]
    # Each reference names the resource of the type the attribute expects (resources of
    # different types share logical names: the runner's group, repository and task
    # definition; a subnet, its route table and their association).
    def target(address: str, attribute: str) -> str:
        return str(config[address]["expressions"][attribute]["references"][1])

    assert target("aws_ecr_lifecycle_policy.rclaude-dev-runner", "repository") == (
        "aws_ecr_repository.rclaude-dev-runner")
    assert target("aws_iam_role_policy_attachment.rclaude-dev-instance-"
                  "AmazonSSMManagedInstanceCore", "role") == "aws_iam_role.rclaude-dev-instance"
    assert target("aws_nat_gateway.rclaude-dev-nat-0", "subnet_id") == (
        "aws_subnet.rclaude-dev-public-0")
    assert target("aws_route_table_association.rclaude-dev-private-0", "route_table_id") == (
        "aws_route_table.rclaude-dev-private-0")
    addresses = set(resources)
    for entry in config.values():
        for ref in re.findall(r'"references": \[([^\]]*)\]', json.dumps(entry)):
            for target in json.loads(f"[{ref}]"):
                assert target.rsplit(".", 1)[0] in addresses or target in addresses, target


def test_blocks_are_lists_of_one_and_plural_names_singular() -> None:
    tf = plan(CONFIGS["strict"]).to_terraform()
    resources = _resources(tf)
    cluster = resources["aws_ecs_cluster.rclaude-dev-cluster"]["values"]
    assert cluster["setting"] == [{"name": "containerInsights", "value": "enabled"}]
    assert cluster["tags"]["rclaude:deployment"] == "dev"  # a map stays a map
    template = resources["aws_launch_template.rclaude-dev-lt"]["values"]
    assert template["metadata_options"] == [{"http_endpoint": "enabled",
                                             "http_put_response_hop_limit": 1,
                                             "http_tokens": "required"}]
    group = resources["aws_autoscaling_group.rclaude-dev-asg"]["values"]
    assert {t["key"] for t in group["tag"]} >= {"rclaude:deployment"}
    policy = group["mixed_instances_policy"][0]["launch_template"][0]
    assert [o["instance_type"] for o in policy["override"]] == ["t3.medium", "t3a.medium"]
    lifecycle = resources[
        "aws_s3_bucket_lifecycle_configuration.rclaude-dev-results-lifecycle"]["values"]
    assert lifecycle["rule"][1]["abort_incomplete_multipart_upload"] == [
        {"days_after_initiation": 1}]


def test_a_secret_value_is_masked_and_marked_sensitive() -> None:
    planted = "sk-ant-api03-" + "x" * 40
    tf = plan(DeploymentConfig(), api_key=planted).to_terraform()
    assert planted not in json.dumps(tf)
    version = _resources(tf)[
        "aws_secretsmanager_secret_version.rclaude-dev-anthropic-api-key-value"]
    assert "secret_string" not in version["values"]
    assert version["sensitive_values"]["secret_string"] is True
