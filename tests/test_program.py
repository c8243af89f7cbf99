"""The Pulumi program, run under the Pulumi runtime's mocks: what it registers.

The real SDK and the real typed pulumi_aws classes run; only the engine is absent.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from plan_helpers import PlanFor, container, policy_document

from rclaude_infra import SECRET_MASK, Plan
from rclaude_infra._pulumi.program import DEPLOYMENT_TAG, ami_parameter
from rclaude_infra.image_source import image_source

SUBNETS = ("subnet-0a1b2c3d", "subnet-4e5f6a7b")
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "nat-single": {"nat": "single"},
    "nat-per-az": {"nat": "per-az", "az_count": 3},
    "existing-vpc": {"vpc_id": "vpc-0123abcd", "subnet_ids": SUBNETS},
    "on-demand": {"spot": False, "instance_types": ("m5.large",)},
    "arm64": {"instance_types": ("t4g.medium", "m7g.large", "c7g.large")},
    "external-image": {"image": "ghcr.io/me/runner:1.2", "build_image": False},
}


@pytest.fixture(params=list(VARIANTS), name="any_plan")
def _any_plan(request: pytest.FixtureRequest, plan_for: PlanFor) -> Plan:
    return plan_for(**VARIANTS[request.param])


def _allow_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in document["Statement"] if s["Effect"] == "Allow"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- properties that hold for every layout -------------------------------------------


def test_everything_groups_under_one_component(any_plan: Plan) -> None:
    component = any_plan.one("rclaude:infra:Stack")
    assert component.name == "dev" and not component.custom
    provider = any_plan.one("pulumi:providers:aws")
    assert provider.inputs["region"] == any_plan.config.region
    for resource in any_plan:
        if resource not in (component, provider):
            assert resource.parent == "dev", resource.name


def test_every_taggable_resource_carries_the_deployment_tag(any_plan: Plan) -> None:
    tagged = [r for r in any_plan if "tags" in r.inputs]
    assert len(tagged) >= 12
    for resource in tagged:
        tags = resource.inputs["tags"]
        if isinstance(tags, list):  # the auto scaling group's tag blocks
            tags = {t["key"]: t["value"] for t in tags}
        assert tags[DEPLOYMENT_TAG] == "dev", resource.name
    must_be_tagged = {
        "aws:ecs:Cluster", "aws:ec2:LaunchTemplate", "aws:autoscaling:Group",
        "aws:s3:Bucket", "aws:cloudwatch:LogGroup", "aws:secretsmanager:Secret",
        "aws:iam:Role", "aws:ec2:SecurityGroup", "aws:ecs:TaskDefinition",
        "aws:ecs:CapacityProvider",
    }
    for token in must_be_tagged:
        assert all(r in tagged for r in any_plan.by_type(token)), token


def test_security_group_has_no_inbound_rules_and_narrow_egress(any_plan: Plan) -> None:
    group = any_plan.one("aws:ec2:SecurityGroup")
    assert group.inputs["ingress"] == []
    assert group.inputs["description"]
    egress = group.inputs["egress"]
    assert [(r["fromPort"], r["toPort"], r["protocol"]) for r in egress] == [(443, 443, "tcp")]
    assert all(r["description"] for r in egress)


def test_launch_template_hardening(any_plan: Plan) -> None:
    template = any_plan.one("aws:ec2:LaunchTemplate").inputs
    assert template["imageId"] == f"resolve:ssm:{ami_parameter(any_plan.config.arch)}"
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1
    (root,) = template["blockDeviceMappings"]
    assert root["deviceName"] == "/dev/xvda"
    assert root["ebs"] == {
        "volumeSize": 30, "volumeType": "gp3", "encrypted": "true", "deleteOnTermination": "true",
    }
    assert template["iamInstanceProfile"]["arn"].startswith("arn:aws:iam::")
    script = base64.b64decode(template["userData"]).decode()
    cluster = any_plan.outputs["cluster_name"]
    assert f"ECS_CLUSTER={cluster}\n" in script
    assert "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true" in script
    assert {t["resourceType"] for t in template["tagSpecifications"]} >= {"instance", "volume"}


def test_auto_scaling_group_scales_from_zero_and_never_blocks_destroy(any_plan: Plan) -> None:
    cfg = any_plan.config
    group = any_plan.one("aws:autoscaling:Group").inputs
    assert group["minSize"] == 0
    assert group["maxSize"] == cfg.max_instances
    assert group["forceDelete"] is True
    assert group["protectFromScaleIn"] is True
    assert group["capacityRebalance"] is cfg.spot
    policy = group["mixedInstancesPolicy"]
    overrides = policy["launchTemplate"]["overrides"]
    assert [o["instanceType"] for o in overrides] == list(cfg.instance_types)
    spec = policy["launchTemplate"]["launchTemplateSpecification"]
    assert spec["launchTemplateId"] == "rclaude-dev-lt-launchtemplate-id"
    distribution = policy["instancesDistribution"]
    assert distribution["onDemandBaseCapacity"] == cfg.on_demand_base
    if cfg.spot:
        assert distribution["onDemandPercentageAboveBaseCapacity"] == 0
        assert distribution["spotAllocationStrategy"] == "price-capacity-optimized"
    else:
        assert distribution["onDemandPercentageAboveBaseCapacity"] == 100
        assert "spotAllocationStrategy" not in distribution
    tags = {t["key"]: t for t in group["tags"]}
    assert tags[DEPLOYMENT_TAG]["propagateAtLaunch"] is True
    assert "AmazonECSManaged" in tags


def test_capacity_provider_is_managed_and_the_cluster_default(any_plan: Plan) -> None:
    provider = any_plan.one("aws:ecs:CapacityProvider").inputs["autoScalingGroupProvider"]
    assert provider["managedTerminationProtection"] == "ENABLED"
    assert provider["managedScaling"]["status"] == "ENABLED"
    assert provider["managedScaling"]["targetCapacity"] == 100
    assert provider["autoScalingGroupArn"].startswith("arn:aws:autoscaling:us-east-1:")
    assert "/rclaude-dev-asg-" in provider["autoScalingGroupArn"]
    attachment = any_plan.one("aws:ecs:ClusterCapacityProviders").inputs
    name = any_plan.outputs["capacity_provider"]
    assert attachment["capacityProviders"] == [name]
    assert attachment["defaultCapacityProviderStrategies"][0]["capacityProvider"] == name
    assert attachment["clusterName"] == any_plan.outputs["cluster_name"]


def test_results_bucket_is_private_encrypted_tls_only_and_expires(any_plan: Plan) -> None:
    bucket = any_plan.outputs["bucket"]
    block = any_plan.one("aws:s3:BucketPublicAccessBlock").inputs
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                 "restrictPublicBuckets"):
        assert block[flag] is True, flag
    encryption = any_plan.one("aws:s3:BucketServerSideEncryptionConfiguration").inputs
    default = encryption["rules"][0]["applyServerSideEncryptionByDefault"]
    assert default["sseAlgorithm"] == "AES256"
    ownership = any_plan.one("aws:s3:BucketOwnershipControls").inputs
    assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    lifecycle = any_plan.one("aws:s3:BucketLifecycleConfiguration").inputs
    rules = {r["id"]: r for r in lifecycle["rules"]}
    assert rules["expire-task-results"]["expiration"]["days"] == 30
    assert rules["abort-incomplete-uploads"]["abortIncompleteMultipartUpload"] == {
        "daysAfterInitiation": 1
    }
    (deny,) = policy_document(any_plan.one("aws:s3:BucketPolicy"))["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    assert any_plan.one("aws:s3:Bucket").inputs["forceDestroy"] is True


def test_log_group_has_retention(any_plan: Plan) -> None:
    logs = any_plan.one("aws:cloudwatch:LogGroup").inputs
    assert logs["retentionInDays"] == 30
    assert logs["name"] == "/rclaude/dev"


def test_iam_is_scoped_to_this_stack(any_plan: Plan) -> None:
    outputs = any_plan.outputs
    roles = {r.name: r for r in any_plan.by_type("aws:iam:Role")}
    trust = {name: policy_document(r, "assumeRolePolicy") for name, r in roles.items()}
    assert trust["rclaude-dev-instance"]["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"
    }
    for name in ("rclaude-dev-execution", "rclaude-dev-task"):
        (statement,) = trust[name]["Statement"]
        assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"

    policies = {r.name: policy_document(r) for r in any_plan.by_type("aws:iam:RolePolicy")}
    for document in policies.values():
        for statement in _allow_statements(document):
            actions = _as_list(statement["Action"])
            assert all("*" not in a for a in actions), statement
            if statement["Resource"] == "*":
                # Only actions AWS does not let us scope.
                assert all(a.startswith(("ecr:GetAuthorizationToken", "ssmmessages:"))
                           for a in actions), statement

    task = {s["Sid"]: s for s in policies["rclaude-dev-task"]["Statement"]}
    bucket_arn = f"arn:aws:s3:::{outputs['bucket']}"
    # Each run its own folder; no listing of the bucket.
    assert task["OwnRunOnly"]["Resource"] == f"{bucket_arn}/tasks/*/runs/${{aws:userid}}/*"
    assert not any("s3:ListBucket" in _as_list(s["Action"]) for s in task.values())
    execution = {s["Sid"]: s for s in policies["rclaude-dev-execution"]["Statement"]}
    assert execution["ReadApiKey"]["Resource"] == outputs["secret_arn"]
    assert execution["WriteTaskLogs"]["Resource"].endswith(":log-group:/rclaude/dev:*")

    attached = {r.inputs["policyArn"] for r in any_plan.by_type("aws:iam:RolePolicyAttachment")}
    assert attached == {
        "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    }


def test_task_definition_is_locked_down(any_plan: Plan) -> None:
    definition = any_plan.one("aws:ecs:TaskDefinition").inputs
    outputs = any_plan.outputs
    assert definition["networkMode"] == "bridge"
    assert definition["requiresCompatibilities"] == ["EC2"]
    assert definition["executionRoleArn"] == outputs["execution_role_arn"]
    assert definition["taskRoleArn"] == outputs["task_role_arn"]
    assert definition["executionRoleArn"] != definition["taskRoleArn"]
    assert (definition["cpu"], definition["memory"]) == ("1024", "2048")
    expected_arch = "ARM64" if any_plan.config.arch == "arm64" else "X86_64"
    assert definition["runtimePlatform"]["cpuArchitecture"] == expected_arch

    runner = container(any_plan)
    assert runner["user"] not in ("root", "0", "0:0")
    assert runner["privileged"] is False
    assert runner["readonlyRootFilesystem"] is True
    # Writable: the work space and /tmp; nothing else (ECS Exec's paths are the ECS
    # agent's to mount, for interactive tasks only: test_exec.py). Read-only: where the
    # instance's spot watcher leaves the notice.
    assert {m["containerPath"] for m in runner["mountPoints"]
            if not m.get("readOnly")} == {"/workspace", "/tmp"}
    assert [m["containerPath"] for m in runner["mountPoints"] if m.get("readOnly")] == [
        "/run/rclaude"]
    assert runner["secrets"] == [
        {"name": "ANTHROPIC_API_KEY", "valueFrom": outputs["secret_arn"]}
    ]
    assert all("KEY" not in e["name"] and "SECRET" not in e["name"]
               for e in runner["environment"])
    log = runner["logConfiguration"]
    assert log["logDriver"] == "awslogs"
    assert log["options"]["awslogs-group"] == "/rclaude/dev"
    assert log["options"]["awslogs-region"] == any_plan.config.region
    assert runner["image"] == outputs["image"]


def test_outputs_name_everything_a_task_runner_needs(any_plan: Plan) -> None:
    assert set(any_plan.outputs) == {
        "deployment", "region", "cluster_name", "cluster_arn", "capacity_provider",
        "task_definition_family", "task_definition_arn", "container_name", "bucket",
        "task_role_id",
        "log_group", "subnet_ids", "security_group_id", "task_role_arn",
        "execution_role_arn", "secret_arn", "image",
    } | ({"interactive_task_definition_arn"} if any_plan.config.interactive_tasks else set())
    assert any_plan.outputs["region"] == any_plan.config.region


# -- layouts ------------------------------------------------------------------------


def test_default_network_is_public_subnets_in_two_azs_without_nat(default_plan: Plan) -> None:
    subnets = default_plan.by_type("aws:ec2:Subnet")
    assert [s.name for s in subnets] == ["rclaude-dev-public-0", "rclaude-dev-public-1"]
    # AZs come from the getAvailabilityZones invoke, one per subnet.
    assert [s.inputs["availabilityZone"] for s in subnets] == ["us-east-1a", "us-east-1b"]
    assert all(s.inputs["mapPublicIpOnLaunch"] is True for s in subnets)
    assert not default_plan.by_type("aws:ec2:NatGateway")
    assert not default_plan.by_type("aws:ec2:Eip")
    (routes,) = default_plan.by_type("aws:ec2:RouteTable")
    assert routes.inputs["routes"] == [
        {"cidrBlock": "0.0.0.0/0", "gatewayId": "rclaude-dev-igw-internetgateway-id"}
    ]
    assert len(default_plan.by_type("aws:ec2:RouteTableAssociation")) == 2
    (interface,) = default_plan.one("aws:ec2:LaunchTemplate").inputs["networkInterfaces"]
    assert interface["associatePublicIpAddress"] == "true"
    assert interface["securityGroups"] == ["rclaude-dev-runner-securitygroup-id"]
    assert default_plan.one("aws:autoscaling:Group").inputs["vpcZoneIdentifiers"] == [
        "rclaude-dev-public-0-subnet-id", "rclaude-dev-public-1-subnet-id"
    ]


def test_single_nat_puts_instances_in_private_subnets(plan_for: PlanFor) -> None:
    p = plan_for(nat="single")
    (nat,) = p.by_type("aws:ec2:NatGateway")
    assert nat.inputs["subnetId"] == "rclaude-dev-public-0-subnet-id"
    assert nat.inputs["allocationId"] == "rclaude-dev-nat-0-eip-id"
    assert p.one("aws:ec2:Eip").inputs["domain"] == "vpc"
    public = [s for s in p.by_type("aws:ec2:Subnet") if "public" in s.name]
    private = [s for s in p.by_type("aws:ec2:Subnet") if "private" in s.name]
    assert len(public) == len(private) == 2
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in public + private)
    private_routes = [r for r in p.by_type("aws:ec2:RouteTable") if "private" in r.name]
    assert all(r.inputs["routes"][0]["natGatewayId"] == "rclaude-dev-nat-0-natgateway-id"
               for r in private_routes)
    template = p.one("aws:ec2:LaunchTemplate").inputs
    assert "networkInterfaces" not in template
    assert template["vpcSecurityGroupIds"] == ["rclaude-dev-runner-securitygroup-id"]
    assert p.one("aws:autoscaling:Group").inputs["vpcZoneIdentifiers"] == [
        "rclaude-dev-private-0-subnet-id", "rclaude-dev-private-1-subnet-id"
    ]
    assert p.outputs["subnet_ids"] == [
        "rclaude-dev-private-0-subnet-id", "rclaude-dev-private-1-subnet-id"]


def test_nat_per_az_gives_each_private_subnet_its_own_gateway(plan_for: PlanFor) -> None:
    p = plan_for(nat="per-az", az_count=3)
    assert len(p.by_type("aws:ec2:NatGateway")) == 3
    routes = {r.name: r.inputs["routes"][0]["natGatewayId"]
              for r in p.by_type("aws:ec2:RouteTable") if "private" in r.name}
    assert routes == {f"rclaude-dev-private-{i}": f"rclaude-dev-nat-{i}-natgateway-id"
                      for i in range(3)}
    zones = [s.inputs["availabilityZone"] for s in p.by_type("aws:ec2:Subnet")
             if "private" in s.name]
    assert zones == ["us-east-1a", "us-east-1b", "us-east-1c"]


def test_existing_vpc_creates_no_network(plan_for: PlanFor) -> None:
    p = plan_for(vpc_id="vpc-0123abcd", subnet_ids=SUBNETS)
    for token in ("aws:ec2:Vpc", "aws:ec2:Subnet", "aws:ec2:InternetGateway",
                  "aws:ec2:RouteTable", "aws:ec2:NatGateway"):
        assert not p.by_type(token), token
    assert p.one("aws:ec2:SecurityGroup").inputs["vpcId"] == "vpc-0123abcd"
    assert p.one("aws:autoscaling:Group").inputs["vpcZoneIdentifiers"] == list(SUBNETS)
    assert p.outputs["subnet_ids"] == list(SUBNETS)


def test_arm64_uses_the_arm_ami_and_image(plan_for: PlanFor) -> None:
    p = plan_for(**VARIANTS["arm64"])
    assert p.one("aws:ec2:LaunchTemplate").inputs["imageId"].endswith(
        "/amazon-linux-2023/arm64/recommended/image_id"
    )
    assert p.one("awsx:ecr:Image").inputs["platform"] == "linux/arm64"


def test_built_image_gets_an_ecr_repository_and_scoped_pull(default_plan: Plan) -> None:
    # A plain repository (visible to the plan, the rules and the estimate), its lifecycle
    # policy, and the image awsx builds into it tagged by the package's content hash.
    repository = default_plan.one("aws:ecr:Repository")
    image = default_plan.one("awsx:ecr:Image").inputs
    assert image["dockerfile"].endswith("rclaude_infra/_pulumi/runner/Dockerfile")
    assert image["platform"] == "linux/amd64"
    assert image["imageTag"] == image_source().tag("x86_64")
    assert repository.inputs["forceDelete"] is True
    assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
    assert default_plan.by_type("aws:ecr:LifecyclePolicy")
    policies = {r.name: policy_document(r) for r in default_plan.by_type("aws:iam:RolePolicy")}
    pull = {s["Sid"]: s for s in policies["rclaude-dev-execution"]["Statement"]}["PullRunnerImage"]
    assert pull["Resource"].startswith(
        "arn:aws:ecr:us-east-1:123456789012:repository/rclaude-dev-runner"
    )


def test_external_image_is_used_as_given_without_ecr(plan_for: PlanFor) -> None:
    p = plan_for(image="ghcr.io/me/runner:1.2", build_image=False)
    assert not p.by_type("aws:ecr:Repository")
    assert container(p)["image"] == "ghcr.io/me/runner:1.2"
    policies = {r.name: policy_document(r) for r in p.by_type("aws:iam:RolePolicy")}
    actions = [a for s in policies["rclaude-dev-execution"]["Statement"]
               for a in _as_list(s["Action"])]
    assert not [a for a in actions if a.startswith("ecr:")]


def test_image_in_ecr_gets_pull_rights_on_that_repository_only(plan_for: PlanFor) -> None:
    image = "210987654321.dkr.ecr.eu-west-1.amazonaws.com/team/runner:7"
    p = plan_for(image=image, build_image=False)
    policies = {r.name: policy_document(r) for r in p.by_type("aws:iam:RolePolicy")}
    pull = {s["Sid"]: s for s in policies["rclaude-dev-execution"]["Statement"]}["PullRunnerImage"]
    assert pull["Resource"] == "arn:aws:ecr:eu-west-1:210987654321:repository/team/runner"


def test_config_values_reach_the_resources(plan_for: PlanFor) -> None:
    p = plan_for(
        min_instances=1, max_instances=7, on_demand_base=2, root_volume_gb=60,
        log_retention_days=90, results_expire_days=5, task_cpu=512, task_memory=1024,
        egress_ports=(443, 22), tags={"team": "ml"}, retain_results=True,
    )
    group = p.one("aws:autoscaling:Group").inputs
    assert (group["minSize"], group["maxSize"]) == (1, 7)
    distribution = group["mixedInstancesPolicy"]["instancesDistribution"]
    assert distribution["onDemandBaseCapacity"] == 2
    root = p.one("aws:ec2:LaunchTemplate").inputs["blockDeviceMappings"][0]["ebs"]
    assert root["volumeSize"] == 60
    assert p.one("aws:cloudwatch:LogGroup").inputs["retentionInDays"] == 90
    rules = p.one("aws:s3:BucketLifecycleConfiguration").inputs["rules"]
    assert rules[0]["expiration"]["days"] == 5
    definition = p.one("aws:ecs:TaskDefinition").inputs
    assert (definition["cpu"], definition["memory"]) == ("512", "1024")
    ports = [r["fromPort"] for r in p.one("aws:ec2:SecurityGroup").inputs["egress"]]
    assert ports == [443, 22]
    assert p.one("aws:ecs:Cluster").inputs["tags"]["team"] == "ml"
    # Retained results: the bucket is not emptied on destroy.
    assert p.one("aws:s3:Bucket").inputs["forceDestroy"] is False


# -- secrets ------------------------------------------------------------------------

PLANTED_KEY = "sk-ant-api03-PLANTED-Zq8x1Jk2Lm3"


def test_api_key_is_a_masked_secret_version_and_nowhere_else(plan_for: PlanFor) -> None:
    p = plan_for(api_key=PLANTED_KEY)
    version = p.one("aws:secretsmanager:SecretVersion")
    assert version.inputs["secretString"] == SECRET_MASK
    assert version.inputs["secretId"] == "rclaude-dev-anthropic-api-key-secret-id"
    assert PLANTED_KEY not in p.to_json()
    assert PLANTED_KEY not in str(p)
    assert PLANTED_KEY not in json.dumps(container(p))


def test_without_a_key_the_secret_exists_but_has_no_value(default_plan: Plan) -> None:
    secret = default_plan.one("aws:secretsmanager:Secret").inputs
    assert secret["namePrefix"] == "rclaude/dev/anthropic-api-key-"
    assert secret["recoveryWindowInDays"] == 0
    assert not default_plan.by_type("aws:secretsmanager:SecretVersion")


def test_the_image_the_stack_builds_runs_the_runner_in_container_mode(default_plan: Plan) -> None:
    from pathlib import Path

    dockerfile = Path(default_plan.one("awsx:ecr:Image").inputs["dockerfile"])
    text = dockerfile.read_text()
    assert 'CMD ["python", "-m", "rclaude_infra.runner", "--s3"]' in text
    assert "USER 1000:1000" in text  # the task definition's non-root user
    assert "@anthropic-ai/claude-code" in text and " git " in text
    # The pinned Claude Code reaches the build, and the image's default agrees with it.
    from rclaude_infra.tasks.agent import CLAUDE_CODE_VERSION

    assert default_plan.one("awsx:ecr:Image").inputs["args"] == {
        "CLAUDE_CODE_VERSION": CLAUDE_CODE_VERSION}
    assert f"ARG CLAUDE_CODE_VERSION={CLAUDE_CODE_VERSION}" in text
    assert "DISABLE_AUTOUPDATER=1" in text
    context = Path(default_plan.one("awsx:ecr:Image").inputs["context"])
    assert (context / "runner.py").is_file() and (context / ".dockerignore").is_file()
