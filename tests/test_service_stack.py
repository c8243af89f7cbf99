"""``mode="service"``: what the program registers for the hosted service (the load balancer
and its TLS, the API and worker services on Fargate, RDS PostgreSQL in isolated subnets,
the settings secret), who may reach what, what its roles may do, what the estimate says it
costs beside the self-hosted stack, and the errors a bad service config gets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from plan_helpers import PlanFor, policy_document

from rclaude_infra import DeploymentConfig, ServiceConfig, estimate_cost
from rclaude_infra.errors import ConfigError
from rclaude_infra.permissions import submitter_policy

ZONE = {"domain": "agents.example.com", "zone_id": "Z0123456789ABC"}
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"


def _only(plan: Any, typ: str, suffix: str = "") -> Any:
    [found] = [r for r in plan.by_type(typ) if r.name.endswith(suffix)]
    return found


def _service(plan_for: PlanFor, **fields: Any) -> Any:
    service = fields.pop("service", ZONE)
    return plan_for(mode="service", service=service, nat="single", **fields)


def _containers(plan: Any, part: str) -> dict[str, Any]:
    definition = _only(plan, "aws:ecs:TaskDefinition", f"-service-{part}")
    [container] = json.loads(definition.inputs["containerDefinitions"])
    return {"definition": definition.inputs, **container}


def _group(plan: Any, suffix: str) -> Any:
    return _only(plan, "aws:ec2:SecurityGroup", suffix)


def test_the_self_hosted_stack_has_none_of_it(plan_for: PlanFor) -> None:
    plan = plan_for()
    for kind in ("aws:lb:LoadBalancer", "aws:rds:Instance", "aws:ecs:Service"):
        assert not plan.by_type(kind)
    assert "service_url" not in plan.outputs


def test_the_load_balancer_answers_https_with_a_certificate_proven_in_the_zone(
        plan_for: PlanFor) -> None:
    plan = _service(plan_for)
    balancer = _only(plan, "aws:lb:LoadBalancer")
    assert balancer.inputs["internal"] is False
    assert balancer.inputs["dropInvalidHeaderFields"] is True
    public = {s.name for s in plan.by_type("aws:ec2:Subnet") if "-public-" in s.name}
    assert {s.removesuffix("-subnet-id") for s in balancer.inputs["subnets"]} == public
    https = _only(plan, "aws:lb:Listener", "-https")
    assert (https.inputs["port"], https.inputs["protocol"]) == (443, "HTTPS")
    assert "TLS13" in https.inputs["sslPolicy"]
    [forward] = https.inputs["defaultActions"]
    assert forward["type"] == "forward"
    [redirect] = _only(plan, "aws:lb:Listener", "-http").inputs["defaultActions"]
    assert redirect["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}
    certificate = _only(plan, "aws:acm:Certificate")
    assert certificate.inputs["domainName"] == "agents.example.com"
    assert certificate.inputs["validationMethod"] == "DNS"
    proof = _only(plan, "aws:route53:Record", "-validation")
    assert proof.inputs["zoneId"] == "Z0123456789ABC" and proof.inputs["type"] == "CNAME"
    validation = _only(plan, "aws:acm:CertificateValidation")
    assert validation.inputs["validationRecordFqdns"] == [proof.inputs["name"]]
    # The listener waits for the proven certificate, not the one just requested.
    assert https.inputs["certificateArn"] == validation.inputs["certificateArn"]
    [alias] = _only(plan, "aws:route53:Record", "-service").inputs["aliases"]
    assert alias["name"].endswith(".elb.amazonaws.com")
    target = _only(plan, "aws:lb:TargetGroup")
    assert target.inputs["targetType"] == "ip"
    assert target.inputs["healthCheck"]["path"] == "/readyz"
    assert plan.outputs["service_url"] == "https://agents.example.com"


def test_a_given_certificate_or_plain_http_on_request(plan_for: PlanFor) -> None:
    given = _service(plan_for, service={"domain": "agents.example.com",
                                        "certificate_arn": CERTIFICATE})
    assert _only(given, "aws:lb:Listener", "-https").inputs["certificateArn"] == CERTIFICATE
    assert not given.by_type("aws:acm:Certificate") and not given.by_type("aws:route53:Record")
    plain = _service(plan_for, service={"http_only": True})
    [listener] = plain.by_type("aws:lb:Listener")
    assert (listener.inputs["port"], listener.inputs["protocol"]) == (80, "HTTP")
    assert plain.outputs["service_url"].startswith("http://")
    report = plain.check_policies()
    assert report.ok
    # Plain HTTP is a finding, waived only because it was asked for: the warning.
    waived = {f.rule_id: f.waiver for f in report.waived}
    assert "in the clear" in waived["lb-listener-https"]
    assert "lb-listener-https" not in {f.rule_id for f in _service(plan_for).check_policies(
    ).waived}
    ports = [r["fromPort"] for r in _group(plain, "-service-lb").inputs["ingress"]]
    assert ports == [80]


def test_only_the_load_balancer_is_reachable_and_the_database_from_the_tasks_only(
        plan_for: PlanFor) -> None:
    plan = _service(plan_for)
    balancer, tasks, database = (_group(plan, s) for s in ("-service-lb", "-service",
                                                           "-service-db"))
    assert [(r["fromPort"], r["cidrBlocks"]) for r in balancer.inputs["ingress"]] == [
        (443, ["0.0.0.0/0"]), (80, ["0.0.0.0/0"])]
    [from_balancer] = tasks.inputs["ingress"]
    assert from_balancer["fromPort"] == 8000 and from_balancer["securityGroups"] == [
        balancer.name + "-securitygroup-id"]
    [from_tasks] = database.inputs["ingress"]
    assert from_tasks["fromPort"] == 5432 and from_tasks["securityGroups"] == [
        tasks.name + "-securitygroup-id"]
    assert database.inputs["egress"] == []
    # The runner's group is unchanged: the tasks the service runs take no inbound traffic.
    assert _group(plan, "-runner").inputs["ingress"] == []


def test_a_service_group_open_to_addresses_breaks_a_rule() -> None:
    from rclaude_infra.policy import evaluate

    opened = {"description": "d", "tags": {"rclaude:role": "service-database"},
              "ingress": [{"description": "x", "protocol": "tcp", "fromPort": 5432,
                           "toPort": 5432, "cidrBlocks": ["10.0.0.0/16"]}]}
    findings = evaluate([("aws:ec2/securityGroup:SecurityGroup", "db", opened)], None)
    assert "sg-service-ingress-from-groups" in {f.rule_id for f in findings}
    assert "sg-no-inbound-rules" not in {f.rule_id for f in findings}
    runner = {**opened, "tags": {}}
    assert "sg-no-inbound-rules" in {f.rule_id for f in evaluate(
        [("aws:ec2/securityGroup:SecurityGroup", "runner", runner)], None)}
    balancer = {**opened, "tags": {"rclaude:role": "service-load-balancer"},
                "ingress": [{"description": "x", "protocol": "tcp", "fromPort": 22,
                             "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}]}
    assert "sg-no-ingress-from-anywhere" in {f.rule_id for f in evaluate(
        [("aws:ec2/securityGroup:SecurityGroup", "lb", balancer)], None)}


def test_the_database_is_encrypted_isolated_backed_up_and_its_password_is_rds_own(
        plan_for: PlanFor) -> None:
    plan = _service(plan_for, service={**ZONE, "db_backup_days": 14})
    database = _only(plan, "aws:rds:Instance").inputs
    assert database["engine"] == "postgres" and database["storageEncrypted"] is True
    assert database["publiclyAccessible"] is False
    assert database["manageMasterUserPassword"] is True and "password" not in database
    assert database["backupRetentionPeriod"] == 14
    # destroy() removes it; its automated backups stay for their retention.
    assert database["deletionProtection"] is False and database["skipFinalSnapshot"] is True
    assert database["deleteAutomatedBackups"] is False
    group = _only(plan, "aws:rds:SubnetGroup")
    db_subnets = {s.name for s in plan.by_type("aws:ec2:Subnet") if "-db-" in s.name}
    assert len(db_subnets) == 2
    assert {s.removesuffix("-subnet-id") for s in group.inputs["subnetIds"]} == db_subnets
    # Their route table has no route out: neither the internet gateway nor NAT.
    isolated = _only(plan, "aws:ec2:RouteTable", "-isolated")
    assert isolated.inputs.get("routes", []) == []
    associations = [a for a in plan.by_type("aws:ec2:RouteTableAssociation")
                    if "-db-" in a.name]
    assert {a.inputs["routeTableId"] for a in associations} == {
        isolated.name + "-routetable-id"}
    parameters = {p["name"]: p["value"] for p in _only(
        plan, "aws:rds:ParameterGroup").inputs["parameters"]}
    assert parameters["rds.force_ssl"] == "1"


def test_the_api_and_workers_run_on_fargate_read_only_with_their_secrets_injected(
        plan_for: PlanFor) -> None:
    plan = _service(plan_for, service={**ZONE, "api_count": 3, "worker_count": 2})
    api, worker = _containers(plan, "api"), _containers(plan, "worker")
    for container, words in ((api, ["serve", "--no-dispatch", "--provider", "ecs-ec2"]),
                             (worker, ["worker", "--provider", "ecs-ec2"])):
        assert container["definition"]["requiresCompatibilities"] == ["FARGATE"]
        assert container["definition"]["networkMode"] == "awsvpc"
        assert container["readonlyRootFilesystem"] is True and container["user"] == "1000:1000"
        assert container["mountPoints"] == [{"sourceVolume": "tmp", "containerPath": "/tmp"}]
        assert all(word in container["command"] for word in words)
        assert [s["name"] for s in container["secrets"]] == ["RCLAUDE_SERVICE_SETTINGS"]
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert json.loads(env["RCLAUDE_STACK_OUTPUTS"])["cluster_arn"] == plan.outputs[
            "cluster_arn"]
        assert env["RCLAUDE_DB_HOST"] == plan.outputs["service_database"]
        assert env["RCLAUDE_DB_LOGIN_ARN"].startswith("arn:aws:secretsmanager:")
        assert env["RCLAUDE_PUBLIC_URL"] == "https://agents.example.com"
    assert api["portMappings"] == [{"containerPort": 8000, "protocol": "tcp"}]
    assert "/readyz" in " ".join(api["healthCheck"]["command"])
    services = {s.name.rsplit("-", 1)[-1]: s.inputs for s in plan.by_type("aws:ecs:Service")}
    assert (services["api"]["desiredCount"], services["worker"]["desiredCount"]) == (3, 2)
    assert services["api"]["launchType"] == "FARGATE"
    [attached] = services["api"]["loadBalancers"]
    assert attached["containerPort"] == 8000
    assert services["worker"].get("loadBalancers", []) == []
    for service in services.values():
        assert service["networkConfiguration"]["assignPublicIp"] is False  # nat="single"
        assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}


def test_the_service_may_do_what_a_submitter_does_and_read_its_events_and_login(
        plan_for: PlanFor) -> None:
    plan = _service(plan_for)
    statements = policy_document(_only(plan, "aws:iam:RolePolicy", "-service-task"))[
        "Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    expected = submitter_policy(plan.outputs)["Statement"]
    assert statements[:len(expected)] == expected
    queue = _only(plan, "aws:sqs:Queue", "-task-events")
    assert by_sid["ConsumeTaskEvents"]["Resource"].endswith(queue.inputs["name"])
    api = {e["name"]: e["value"] for e in _containers(plan, "api")["environment"]}
    assert by_sid["ReadDatabaseLogin"]["Resource"] == api["RCLAUDE_DB_LOGIN_ARN"]
    assert len(statements) == len(expected) + 2  # nothing else
    execution = policy_document(_only(plan, "aws:iam:RolePolicy", "-service-execution"))
    [read] = [s for s in execution["Statement"] if s["Sid"] == "ReadServiceSettings"]
    assert _only(plan, "aws:secretsmanager:Secret", "-service-settings").name in read[
        "Resource"]
    # Events, not polling: service mode always sends the cluster's task changes.
    assert plan.outputs["task_events_queue_url"]


def test_strict_monitors_the_database_and_encrypts_with_the_stack_key(
        plan_for: PlanFor) -> None:
    plan = _service(plan_for, security_profile="strict", log_retention_days=365)
    database = _only(plan, "aws:rds:Instance").inputs
    key = _only(plan, "aws:kms:Key")
    for field in ("kmsKeyId", "masterUserSecretKmsKeyId", "performanceInsightsKmsKeyId"):
        assert key.name in database[field], field
    assert database["monitoringInterval"] == 60
    assert "monitoring" in database["monitoringRoleArn"]
    assert plan.check_policies().ok


def test_the_estimate_shows_the_service_beside_the_self_hosted_stack(
        plan_for: PlanFor) -> None:
    service = estimate_cost(_service(plan_for))
    alone = estimate_cost(plan_for(nat="single", task_events=True))
    assert service.service_idle_monthly > 0
    # What is not the service's is exactly the same stack self-hosted.
    assert service.idle_monthly - service.service_idle_monthly == pytest.approx(
        alone.idle_monthly)
    lines = {line.component: line for line in service.lines if line.service}
    assert lines["Application load balancer"].monthly_cost == pytest.approx(16.425)
    assert lines["Public IPv4 addresses (one per zone, 2)"].quantity == 2 * 730
    three = estimate_cost(_service(plan_for, az_count=3))
    assert "Public IPv4 addresses (one per zone, 3)" in {line.component for line in three.lines}
    assert lines["Fargate vCPU (2 tasks x 0.5)"].monthly_cost == pytest.approx(29.55, abs=0.01)
    database = lines["Database instance (PostgreSQL, db.t4g.small, Single-AZ)"]
    assert database.assumed and "MySQL" in database.price_source
    assert "the service $" in service.summary
    assert service.to_dict()["summary"]["serviceIdleMonthlyCost"] == pytest.approx(
        service.service_idle_monthly)


def test_an_unpriced_database_class_names_the_field() -> None:
    from rclaude_infra import plan
    from rclaude_infra.errors import PriceNotFoundError

    priced = plan(DeploymentConfig(mode="service", service={
        "http_only": True, "db_instance_class": "db.t3.large"}))
    assert not [line for line in estimate_cost(priced).lines
                if line.component.startswith("Database") and line.assumed]
    unknown = plan(DeploymentConfig(mode="service", service={
        "http_only": True, "db_instance_class": "db.r7g.large"}))
    with pytest.raises(PriceNotFoundError, match=r"service\.db_instance_class"):
        estimate_cost(unknown)


@pytest.mark.parametrize(("fields", "field"), [
    ({"mode": "service"}, "service"),
    ({"mode": "service", "service": {}}, "service.domain"),
    ({"mode": "service", "service": {"domain": "a.example.com"}}, "service.zone_id"),
    ({"mode": "service", "service": {**ZONE, "certificate_arn": CERTIFICATE}},
     "service.certificate_arn"),
    ({"mode": "service", "service": {"http_only": True, "certificate_arn": CERTIFICATE}},
     "service.http_only"),
    ({"mode": "service", "service": {"domain": "Agents..example"}}, "service.domain"),
    ({"mode": "service", "service": {"http_only": True, "zone_id": "zone"}},
     "service.zone_id"),
    ({"mode": "service", "service": {"http_only": True, "db_instance_class": None}},
     "service.db_instance_class"),
    ({"mode": "service", "service": {"http_only": True, "cpu": 300}}, "service.cpu"),
    ({"mode": "service", "service": {"http_only": True, "memory": 900}}, "service.memory"),
    ({"mode": "service", "service": {"http_only": True, "db_backup_days": 0}},
     "service.db_backup_days"),
    ({"mode": "service", "service": {"http_only": True, "colour": "red"}}, "service.colour"),
    ({"mode": "service", "service": {"http_only": True}, "az_count": 1}, "az_count"),
    ({"mode": "service", "service": {"http_only": True}, "vpc_id": "vpc-0123abcd",
      "subnet_ids": ["subnet-0a1b2c3d"]}, "vpc_id"),
    ({"mode": "service", "service": {"http_only": True}, "image": "nginx"}, "image"),
    ({"service": {"http_only": True}}, "service"),
    ({"mode": "hosted"}, "mode"),
])
def test_a_bad_service_config_names_its_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        DeploymentConfig(**fields)
    assert raised.value.field == field


def test_the_service_config_round_trips_through_the_stack_config() -> None:
    config = DeploymentConfig(mode="service", nat="single", service=ServiceConfig(
        domain="agents.example.com", certificate_arn=CERTIFICATE, db_multi_az=True))
    values = {k.split(":", 1)[1]: v for k, v in config.to_stack_config().items()}
    assert DeploymentConfig.from_stack_config(values) == config
