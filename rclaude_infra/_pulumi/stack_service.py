"""The hosted service on the stack itself (``mode="service"``): its API on Fargate behind
an Application Load Balancer with TLS, its workers as a second ECS service, RDS
PostgreSQL in subnets with no route out, and its settings as one secret.

Who may reach what: the internet reaches the load balancer on 443 (and 80, which only
redirects to 443; with ``http_only`` it serves); the load balancer reaches the API's
tasks on their port; those tasks reach the database on 5432 and the internet on 443
(sign-in providers, Stripe, AWS's APIs); the database reaches nothing. The runner's group
is untouched: the tasks the service runs still take no inbound traffic at all.

A part of :class:`~rclaude_infra._pulumi.program.RclaudeStack`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws

from ..policy import LOAD_BALANCER_ROLE, ROLE_TAG
from ..service_config import HEALTH_PATH, SERVICE_PORT, SETTINGS_SECRET_PART, ServiceConfig
from .documents import execution_policy, trust_policy
from .service_documents import SERVICE_CONTAINER, service_containers, service_task_policy
from .stack_base import StackBase
from .stack_network import VPC_CIDR

#: The database's engine, its major version and its parameter group family.
DB_ENGINE, DB_VERSION, DB_FAMILY = "postgres", "16", "postgres16"
DB_NAME = DB_USER = "rclaude"
DB_PORT = 5432
#: The database's subnets: two zones (a subnet group needs two), in address space the
#: other subnets leave free (public from 10.0.0.0, private from 10.0.128.0, /20 each).
DB_CIDRS = ("10.0.96.0/20", "10.0.112.0/20")
#: TLS 1.3 and 1.2 only (Elastic Load Balancing's recommended policy).
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
#: Seconds the load balancer keeps an idle connection: a followed log or task streams.
IDLE_TIMEOUT_SECONDS = 300


class ServicePart(StackBase):
    service_url: pulumi.Output[str] | None
    database: aws.rds.Instance | None
    service_image_uri: pulumi.Input[str] | None

    def _service(self, vpc_id: pulumi.Input[str], outputs: dict[str, pulumi.Input[Any]],
                 settings: pulumi.Input[str] | None) -> None:
        self.service_url = self.database = None
        service = self._config.service
        if service is None:
            return
        assert self.task_events_queue is not None and self.service_image_uri is not None
        lb_group, app_group, db_group = self._service_groups(vpc_id, service)
        self.database = self._database(vpc_id, db_group, service)
        secret = self._settings_secret(settings)
        balancer, target = self._load_balancer(vpc_id, lb_group, service)
        self.service_url = (pulumi.Output.from_input(service.public_url)
                            if service.public_url is not None else
                            balancer.dns_name.apply(lambda dns: f"http://{dns}"))
        db_secret_arn = self.database.master_user_secrets.apply(
            lambda secrets: secrets[0].secret_arn if secrets else "")
        execution = self._service_role(
            "service-execution", "ECS starts the service: image, log, settings",
            "ecs-tasks.amazonaws.com",
            pulumi.Output.all(self.log_group.arn, secret.arn, self._service_repository_arn(),
                              self._key_arn()).apply(lambda a: execution_policy(
                                  a[0], a[1], a[2], a[3], secret_sid="ReadServiceSettings")))
        task_role = self._service_role(
            "service-task", "the service runs tasks, reads its events and database login",
            "ecs-tasks.amazonaws.com",
            pulumi.Output.all(pulumi.Output.all(**outputs), self.task_events_queue.arn,
                              db_secret_arn, self._key_arn()).apply(
                lambda a: service_task_policy(a[0], a[1], a[2], a[3])))
        containers = pulumi.Output.all(
            self.service_image_uri, self.log_group.name, secret.arn,
            pulumi.Output.all(**outputs), self.database.address, db_secret_arn,
            self.service_url)
        for part, worker, count in (("api", False, service.api_count),
                                    ("worker", True, service.worker_count)):
            definition = aws.ecs.TaskDefinition(
                f"{self._prefix}-service-{part}",
                family=f"{self._prefix}-service-{part}",
                requires_compatibilities=["FARGATE"],
                network_mode="awsvpc",
                cpu=str(service.cpu),
                memory=str(service.memory),
                execution_role_arn=execution.arn,
                task_role_arn=task_role.arn,
                runtime_platform={"operating_system_family": "LINUX", "cpu_architecture":
                                  "ARM64" if self._config.arch == "arm64" else "X86_64"},
                # The one writable place: the root file system is read-only.
                volumes=[{"name": "tmp"}],
                container_definitions=containers.apply(self._containers_of(worker)),
                tags=self.tags,
                opts=self._child,
            )
            aws.ecs.Service(
                f"{self._prefix}-service-{part}",
                name=f"{self._prefix}-service-{part}",
                cluster=self.cluster.arn,
                task_definition=definition.arn,
                desired_count=count,
                launch_type="FARGATE",
                network_configuration={
                    "subnets": self.task_subnet_ids if self._config.nat != "none"
                    else self.public_subnet_ids,
                    "security_groups": [app_group.id],
                    # Without NAT the tasks reach the internet through their own address.
                    "assign_public_ip": self._config.nat == "none",
                },
                load_balancers=[] if worker else [{
                    "target_group_arn": target.arn, "container_name": SERVICE_CONTAINER,
                    "container_port": SERVICE_PORT}],
                health_check_grace_period_seconds=None if worker else 120,
                deployment_circuit_breaker={"enable": True, "rollback": True},
                propagate_tags="SERVICE",
                enable_ecs_managed_tags=True,
                tags=self.tags,
                opts=self._child,
            )

    def _containers_of(self, worker: bool) -> Callable[[list[Any]], str]:
        """The container definition from (image, log group, settings secret, outputs,
        database address, its login's secret, public URL)."""
        def containers(a: list[Any]) -> str:
            return service_containers(
                name=self._name, region=self._config.region, image=a[0], log_group=a[1],
                settings_secret_arn=a[2], outputs=a[3], db_host=a[4], db_port=DB_PORT,
                db_name=DB_NAME, db_secret_arn=a[5], public_url=a[6], worker=worker)
        return containers

    def _service_repository_arn(self) -> pulumi.Input[str] | None:
        build = self.image_build
        return build.repository_arn if build is not None else self.repository.arn

    def _group(self, part: str, role: str, description: str, vpc_id: pulumi.Input[str],
               ingress: list[Any], egress: list[Any]) -> aws.ec2.SecurityGroup:
        return aws.ec2.SecurityGroup(
            f"{self._prefix}-{part}",
            description=f"rclaude-infra {self._name}: {description}",
            vpc_id=vpc_id, ingress=ingress, egress=egress,
            revoke_rules_on_delete=True,
            tags={**self.tags, "Name": f"{self._prefix}-{part}", ROLE_TAG: role},
            opts=self._child,
        )

    def _service_groups(self, vpc_id: pulumi.Input[str], service: ServiceConfig
                        ) -> tuple[aws.ec2.SecurityGroup, ...]:
        ports = (443, 80) if service.tls else (80,)
        balancer = self._group(
            "service-lb", LOAD_BALANCER_ROLE, "the service's load balancer", vpc_id,
            ingress=[{"description": f"HTTP{'S' if port == 443 else ''} from the internet"
                      + (" (redirected to HTTPS)" if port == 80 and service.tls else ""),
                      "protocol": "tcp", "from_port": port, "to_port": port,
                      "cidr_blocks": ["0.0.0.0/0"]} for port in ports],
            egress=[{"description": "to the service's tasks", "protocol": "tcp",
                     "from_port": SERVICE_PORT, "to_port": SERVICE_PORT,
                     "cidr_blocks": [VPC_CIDR]}])
        app = self._group(
            "service", "service", "the service's API and worker tasks", vpc_id,
            ingress=[{"description": "from the load balancer", "protocol": "tcp",
                      "from_port": SERVICE_PORT, "to_port": SERVICE_PORT,
                      "security_groups": [balancer.id]}],
            egress=[{"description": "HTTPS out: sign-in providers, Stripe, AWS APIs",
                     "protocol": "tcp", "from_port": 443, "to_port": 443,
                     "cidr_blocks": ["0.0.0.0/0"]},
                    {"description": "to the database", "protocol": "tcp",
                     "from_port": DB_PORT, "to_port": DB_PORT, "cidr_blocks": [VPC_CIDR]}])
        database = self._group(
            "service-db", "service-database", "the service's database, from its tasks only",
            vpc_id,
            ingress=[{"description": "from the service's tasks", "protocol": "tcp",
                      "from_port": DB_PORT, "to_port": DB_PORT,
                      "security_groups": [app.id]}],
            egress=[])
        return balancer, app, database

    def _database(self, vpc_id: pulumi.Input[str], group: aws.ec2.SecurityGroup,
                  service: ServiceConfig) -> aws.rds.Instance:
        # Subnets with a route table of the VPC's own addresses only: no way out, none in.
        isolated = aws.ec2.RouteTable(
            f"{self._prefix}-isolated", vpc_id=vpc_id, routes=[],
            tags={**self.tags, "Name": f"{self._prefix}-isolated"}, opts=self._child)
        subnets = [self._subnet(f"db-{i}", vpc_id, cidr, self._zones[i], isolated.id,
                                public_ips=False).id
                   for i, cidr in enumerate(DB_CIDRS)]
        subnet_group = aws.rds.SubnetGroup(
            f"{self._prefix}-db", subnet_ids=subnets,
            description=f"rclaude-infra {self._name}: the service's database, isolated",
            tags=self.tags, opts=self._child)
        parameters = aws.rds.ParameterGroup(
            f"{self._prefix}-db", family=DB_FAMILY,
            description=f"rclaude-infra {self._name}: TLS only, connections logged",
            parameters=[{"name": "rds.force_ssl", "value": "1"},
                        {"name": "log_connections", "value": "1"},
                        {"name": "log_disconnections", "value": "1"}],
            tags=self.tags, opts=self._child)
        monitoring: dict[str, Any] = {}
        if self._config.security_profile == "strict":
            role = aws.iam.Role(
                f"{self._prefix}-db-monitoring",
                description=f"rclaude-infra {self._name}: RDS enhanced monitoring",
                assume_role_policy=self._account_id.apply(
                    lambda account: trust_policy("monitoring.rds.amazonaws.com", account)),
                tags=self.tags, opts=self._child)
            aws.iam.RolePolicyAttachment(
                f"{self._prefix}-db-monitoring", role=role.name,
                policy_arn=self._partition.apply(
                    lambda p: f"arn:{p}:iam::aws:policy/service-role/"
                    "AmazonRDSEnhancedMonitoringRole"),
                opts=self._child)
            monitoring = {"monitoring_interval": 60, "monitoring_role_arn": role.arn}
        return aws.rds.Instance(
            f"{self._prefix}-db",
            identifier=f"{self._prefix}-db",
            engine=DB_ENGINE, engine_version=DB_VERSION,
            instance_class=service.db_instance_class,
            allocated_storage=service.db_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=self._key_arn(),
            db_name=DB_NAME,
            username=DB_USER,
            # RDS makes the password, keeps it in Secrets Manager and rotates it.
            manage_master_user_password=True,
            master_user_secret_kms_key_id=self._key_arn(),
            db_subnet_group_name=subnet_group.name,
            parameter_group_name=parameters.name,
            vpc_security_group_ids=[group.id],
            publicly_accessible=False,
            multi_az=service.db_multi_az,
            backup_retention_period=service.db_backup_days,
            # destroy() removes the instance; its automated backups stay for their
            # retention (a restore point), and no final snapshot name can collide.
            delete_automated_backups=False,
            skip_final_snapshot=True,
            deletion_protection=False,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            iam_database_authentication_enabled=True,
            enabled_cloudwatch_logs_exports=["postgresql"],
            performance_insights_enabled=True,
            performance_insights_kms_key_id=self._key_arn(),
            tags=self.tags,
            opts=self._child,
            **monitoring,
        )

    def _settings_secret(self, settings: pulumi.Input[str] | None
                         ) -> aws.secretsmanager.Secret:
        """The service's settings (sign-in providers, Stripe, the secrets' key) as one JSON
        secret, from the deployer's environment (``rclaude:service_settings``)."""
        return self._secret(SETTINGS_SECRET_PART, "the hosted service's settings", settings)

    def _load_balancer(self, vpc_id: pulumi.Input[str], group: aws.ec2.SecurityGroup,
                       service: ServiceConfig) -> tuple[aws.lb.LoadBalancer,
                                                        aws.lb.TargetGroup]:
        balancer = aws.lb.LoadBalancer(
            f"{self._prefix}-service",
            load_balancer_type="application",
            internal=False,
            security_groups=[group.id],
            subnets=self.public_subnet_ids,
            drop_invalid_header_fields=True,
            idle_timeout=IDLE_TIMEOUT_SECONDS,
            enable_deletion_protection=False,
            tags=self.tags,
            opts=self._child,
        )
        target = aws.lb.TargetGroup(
            f"{self._prefix}-service",
            port=SERVICE_PORT, protocol="HTTP", target_type="ip", vpc_id=vpc_id,
            deregistration_delay=30,
            health_check={"path": HEALTH_PATH, "matcher": "200", "interval": 15,
                          "timeout": 5, "healthy_threshold": 2, "unhealthy_threshold": 3},
            tags=self.tags,
            opts=self._child,
        )
        forward: list[Any] = [{"type": "forward", "target_group_arn": target.arn}]
        if not service.tls:
            aws.lb.Listener(f"{self._prefix}-service-http", load_balancer_arn=balancer.arn,
                            port=80, protocol="HTTP", default_actions=forward,
                            tags=self.tags, opts=self._child)
            return balancer, target
        aws.lb.Listener(
            f"{self._prefix}-service-https", load_balancer_arn=balancer.arn, port=443,
            protocol="HTTPS", ssl_policy=TLS_POLICY,
            certificate_arn=self._certificate(balancer, service),
            default_actions=forward, tags=self.tags, opts=self._child)
        aws.lb.Listener(
            f"{self._prefix}-service-http", load_balancer_arn=balancer.arn, port=80,
            protocol="HTTP", default_actions=[aws.lb.ListenerDefaultActionArgs(
                type="redirect", redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                    protocol="HTTPS", port="443", status_code="HTTP_301"))],
            tags=self.tags, opts=self._child)
        return balancer, target

    def _certificate(self, balancer: aws.lb.LoadBalancer, service: ServiceConfig
                     ) -> pulumi.Input[str]:
        """The listener's certificate: the one given, or one made for ``domain`` and
        proven in its Route 53 zone, with ``domain`` pointed at the load balancer."""
        if service.certificate_arn is not None:
            return service.certificate_arn
        assert service.domain is not None and service.zone_id is not None
        certificate = aws.acm.Certificate(
            f"{self._prefix}-service", domain_name=service.domain, validation_method="DNS",
            tags=self.tags, opts=self._child)
        option = certificate.domain_validation_options.apply(lambda options: options[0])
        proof = aws.route53.Record(
            f"{self._prefix}-service-validation", zone_id=service.zone_id,
            name=option.apply(lambda o: o.resource_record_name or ""),
            type=option.apply(lambda o: o.resource_record_type or ""),
            records=[option.apply(lambda o: o.resource_record_value or "")],
            ttl=60, allow_overwrite=True, opts=self._child)
        validated = aws.acm.CertificateValidation(
            f"{self._prefix}-service", certificate_arn=certificate.arn,
            validation_record_fqdns=[proof.fqdn], opts=self._child)
        aws.route53.Record(
            f"{self._prefix}-service", zone_id=service.zone_id, name=service.domain,
            type="A", aliases=[{"name": balancer.dns_name, "zone_id": balancer.zone_id,
                                "evaluate_target_health": True}],
            opts=self._child)
        return validated.certificate_arn

