"""What a stack costs, read from its plan: idle, per task, and a month of declared usage.

Pure: :func:`estimate_cost` reads a :class:`~rclaude_infra.Plan` (what ``up`` would
create, not the config) and a :class:`~rclaude_infra.prices.PriceBook`; it never calls
AWS. Lines follow Infracost's shape: resource, component, monthly quantity, unit, unit
price, hourly and monthly cost (730 hours a month), and whether the line is baseline
(paid while idle) or driven by usage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._plan import Plan, PlannedResource, short_type
from ._render import Rendered, money, titled
from .config import PURPOSE_TAG, Usage
from .errors import BudgetExceededError, ConfigError, PriceNotFoundError
from .instance_types import InstanceType, instance_types
from .prices import HOURS_PER_MONTH, Price, PriceBook, bedrock_price
from .service_config import SETTINGS_SECRET_PART

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table

#: S3 writes per task (spec, result.json, transcript, diff, artifacts index, log tail).
S3_PUTS_PER_TASK = 6
#: S3 reads per task (the runner reads its spec; the client reads result and files).
S3_GETS_PER_TASK = 4
#: Secrets Manager reads per task (the ECS agent fetches the key once per task).
SECRET_READS_PER_TASK = 1
#: Log one image build writes (docker's output of apt, npm and pip, and the push).
BUILD_LOG_MB = 1
#: VPC flow logs a task causes (security_profile="strict").
FLOW_LOG_MB_PER_TASK = 1.0
FLOW_LOG_ASSUMPTION = (
    "assumed: 1 MB of flow records per task (its clone, model API calls and package "
    "installs: some thousands of flows of about 200 bytes, aggregated over 10 minutes)")
#: Container Insights metrics of a cluster, billed as custom metrics (AWS's CloudWatch
#: pricing: "Metrics collected by Container Insights are charged as custom metrics").
CONTAINER_INSIGHTS_METRICS = 10
CONTAINER_INSIGHTS_ASSUMPTION = (
    "assumed: about 10 cluster-level metrics (CPU, memory, network, storage, counts of "
    "instances and tasks); service and task metrics add more while tasks run")
#: S3 events EventBridge ingests per million (security_profile="strict" sends each
#: bucket's events there). S3's are "AWS opt-in data events", which AWS's EventBridge
#: pricing page bills unlike the free management events; its rate is not in the snapshot.
S3_EVENTS_PRICE = Price(
    usd=1.00, unit="1M events", assumed=True,
    source="assumed: EventBridge's $1.00 per million custom events, for S3's opt-in data "
    "events (aws.amazon.com/eventbridge/pricing: S3 data events are billed, management "
    "events free); each object written makes one event and its expiry another")
#: The model's cost of a task when ``Usage.model_usd_per_task`` does not say.
ASSUMED_MODEL_USD_PER_TASK = 1.30
ASSUMED_MODEL_SOURCE = (
    "assumed: Claude Code's documented average of about $13 per developer per active day "
    "(code.claude.com/docs/en/costs) over 10 tasks a day; set Usage(model_usd_per_task=...) "
    "from your tasks' task.cost().model_usd")
_SUBSCRIPTION_SOURCE = (
    "auth='oauth-token': tasks use a Claude subscription (claude setup-token); their tokens "
    "count against its usage limits and are not billed per token")
_MIB_PER_GB = 1024


@attrs.frozen(kw_only=True)
class CostLine:
    """One priced component of one planned resource, per month.

    >>> from rclaude_infra import estimate_cost, plan
    >>> line = estimate_cost(plan()).lines[0]
    >>> line.resource, line.component
    ('rclaude-dev-asg', 'Instance usage (Linux, spot, t3a.medium), task instances')"""

    resource: str
    resource_type: str
    component: str
    #: Quantity a month, in ``unit``.
    quantity: float
    unit: str
    unit_price: float
    monthly_cost: float
    #: True when paid while the stack is idle (no task running).
    baseline: bool
    price_source: str
    #: True when the unit price is an assumption (see ``price_source``).
    assumed: bool = False
    #: True for the hosted service's part of a ``mode="service"`` stack.
    service: bool = False

    @property
    def hourly_cost(self) -> float:
        return self.monthly_cost / HOURS_PER_MONTH

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.component,
            "unit": self.unit,
            "monthlyQuantity": self.quantity,
            "price": self.unit_price,
            "hourlyCost": self.hourly_cost,
            "monthlyCost": self.monthly_cost,
            "usageBased": not self.baseline,
            "priceSource": self.price_source,
            "assumed": self.assumed,
            "service": self.service,
        }


def _line(
    resource: PlannedResource, component: str, quantity: float, price: Price, *,
    baseline: bool, unit: str | None = None, per: float = 1.0, service: bool = False,
) -> CostLine:
    """A line for ``quantity`` units at ``price.usd`` per ``per`` units."""
    return CostLine(
        resource=resource.name,
        resource_type=short_type(resource.type),
        component=component,
        quantity=quantity,
        unit=unit or price.unit,
        unit_price=price.usd / per,
        monthly_cost=quantity * price.usd / per,
        baseline=baseline,
        price_source=price.source,
        assumed=price.assumed,
        service=service,
    )


@attrs.frozen(kw_only=True)
class CostDiff(Rendered):
    """Monthly cost of two estimates side by side, line by line (see :meth:`CostEstimate.diff`).

    >>> from rclaude_infra import Usage, estimate_cost, plan
    >>> p = plan()
    >>> diff = estimate_cost(p, Usage(tasks_per_day=10)).diff(
    ...     estimate_cost(p, Usage(tasks_per_day=20)))
    >>> round(diff.monthly_delta, 2), diff.idle_delta   # 304 more tasks, mostly the model
    (402.42, 0.0)"""

    rows: tuple[tuple[str, str, float, float], ...]
    idle_before: float
    idle_after: float
    monthly_before: float
    monthly_after: float

    @property
    def monthly_delta(self) -> float:
        return self.monthly_after - self.monthly_before

    @property
    def idle_delta(self) -> float:
        return self.idle_after - self.idle_before

    def __rich__(self) -> Table:
        """The lines that changed, then the monthly and idle totals, before and after."""
        table = titled("Monthly cost, before and after")
        table.add_column("resource / component")
        for column in ("before", "after", "delta"):
            table.add_column(column, justify="right")

        def row(label: str, before: float, after: float, style: str | None = None) -> None:
            table.add_row(label, f"{before:.2f}", f"{after:.2f}", f"{after - before:+.2f}",
                          style=style)

        for resource, component, before, after in self.rows:
            if round(before, 4) != round(after, 4):
                row(f"{resource} / {component}", before, after)
        table.add_section()
        row("monthly total", self.monthly_before, self.monthly_after, style="bold")
        row("idle monthly", self.idle_before, self.idle_after, style="bold")
        return table


@attrs.frozen(kw_only=True)
class CostEstimate(Rendered):
    """The cost of one plan under one usage.

    >>> from rclaude_infra import Usage, estimate_cost, plan
    >>> estimate = estimate_cost(plan(), Usage(tasks_per_day=10, task_minutes=15,
    ...                                        model_usd_per_task=0.5))
    >>> round(estimate.idle_monthly, 2), round(estimate.monthly, 2), estimate.model_monthly
    (0.5, 159.58, 152.08)

    ``idle_monthly`` is what the stack costs with nothing running, ``per_task`` what
    one more task adds, ``monthly`` the total for the usage.
    """

    name: str
    region: str
    usage: Usage
    lines: tuple[CostLine, ...]
    #: Sentences naming every assumption some line relies on.
    assumptions: tuple[str, ...] = ()

    @property
    def idle_monthly(self) -> float:
        return sum(line.monthly_cost for line in self.lines if line.baseline)

    @property
    def service_idle_monthly(self) -> float:
        """Of :attr:`idle_monthly`, what the hosted service adds (``mode="service"``): its
        load balancer, tasks, database and settings; the rest is what the same stack costs
        self-hosted."""
        return sum(line.monthly_cost for line in self.lines if line.baseline and line.service)

    @property
    def usage_monthly(self) -> float:
        return sum(line.monthly_cost for line in self.lines if not line.baseline)

    @property
    def monthly(self) -> float:
        return sum(line.monthly_cost for line in self.lines)

    @property
    def model_monthly(self) -> float:
        """The model's tokens, the rest being what AWS bills."""
        return round(sum(line.monthly_cost for line in self.lines
                         if line.resource_type.startswith("model:")), 2)

    @property
    def hourly(self) -> float:
        return self.monthly / HOURS_PER_MONTH

    @property
    def per_task(self) -> float | None:
        """Usage-driven cost of one task; ``None`` when the usage has no tasks."""
        tasks = self.usage.tasks_per_month
        return self.usage_monthly / tasks if tasks else None

    def top_lines(self, n: int = 3) -> list[CostLine]:
        return sorted(self.lines, key=lambda line: line.monthly_cost, reverse=True)[:n]

    def diff(self, other: CostEstimate) -> CostDiff:
        """How ``other`` differs from this estimate (what-ifs: ``attrs.evolve`` the config)."""
        def keyed(estimate: CostEstimate) -> dict[tuple[str, str], float]:
            totals: dict[tuple[str, str], float] = {}
            for line in estimate.lines:
                key = (line.resource, line.component)
                totals[key] = totals.get(key, 0.0) + line.monthly_cost
            return totals

        before, after = keyed(self), keyed(other)
        keys = list(dict.fromkeys([*before, *after]))
        return CostDiff(
            rows=tuple((r, c, before.get((r, c), 0.0), after.get((r, c), 0.0)) for r, c in keys),
            idle_before=self.idle_monthly, idle_after=other.idle_monthly,
            monthly_before=self.monthly, monthly_after=other.monthly,
        )

    def check_budget(self, limit: float | None) -> None:
        """Raise :class:`BudgetExceededError` when the monthly total is over ``limit``."""
        if limit is None or self.monthly <= limit:
            return
        drivers = ", ".join(
            f"{line.resource} {line.component} ${line.monthly_cost:.2f}"
            for line in self.top_lines()
        )
        raise BudgetExceededError(
            f"estimated ${self.monthly:.2f}/month for {self.usage.tasks_per_day:g} tasks/day "
            f"of {self.usage.task_minutes:g} min is over max_monthly_usd ${limit:.2f} by "
            f"${self.monthly - limit:.2f}; largest lines: {drivers}. Lower the usage, "
            "choose cheaper instance types or spot, or raise max_monthly_usd.",
            estimate=self, limit=limit,
        )

    def to_dict(self) -> dict[str, Any]:
        """Infracost-like breakdown: resources with their cost components, then totals."""
        resources: dict[str, dict[str, Any]] = {}
        for line in self.lines:
            entry = resources.setdefault(line.resource, {
                "name": line.resource, "resourceType": line.resource_type,
                "costComponents": [], "monthlyCost": 0.0,
            })
            entry["costComponents"].append(line.to_dict())
            entry["monthlyCost"] += line.monthly_cost
        for entry in resources.values():
            entry["hourlyCost"] = entry["monthlyCost"] / HOURS_PER_MONTH
        return {
            "currency": "USD",
            "projects": [{
                "name": self.name,
                "region": self.region,
                "usage": attrs.asdict(self.usage),
                "breakdown": {
                    "resources": list(resources.values()),
                    "totalHourlyCost": self.hourly,
                    "totalMonthlyCost": self.monthly,
                },
            }],
            "totalHourlyCost": self.hourly,
            "totalMonthlyCost": self.monthly,
            "summary": {
                "idleMonthlyCost": self.idle_monthly,
                "serviceIdleMonthlyCost": self.service_idle_monthly,
                "usageMonthlyCost": self.usage_monthly,
                "perTaskCost": self.per_task,
                "tasksPerMonth": self.usage.tasks_per_month,
                "assumptions": list(self.assumptions),
            },
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @property
    def summary(self) -> str:
        """One line: idle, per task and monthly, with the usage they assume.

        >>> from rclaude_infra import Usage, estimate_cost, plan
        >>> estimate_cost(plan(), Usage(tasks_per_day=0)).summary
        'dev (us-east-1): idle $0.50/month, per task n/a, $0.50/month for 0 tasks/day'
        """
        per_task = "n/a" if self.per_task is None else f"${self.per_task:.4f}"
        service = self.service_idle_monthly
        idle = (f"idle {money(self.idle_monthly)}/month (self-hosted "
                f"{money(self.idle_monthly - service)} + the service {money(service)})"
                if service else f"idle {money(self.idle_monthly)}/month")
        return (f"{self.name} ({self.region}): {idle}, "
                f"per task {per_task}, {money(self.monthly)}/month for "
                f"{self.usage.tasks_per_day:g} tasks/day")

    def __rich__(self) -> Group:
        """An Infracost-style table: each resource's components, their monthly quantity,
        unit price and cost, idle or usage-driven (``*`` where a price is assumed), then
        the summary and every assumption."""
        from rich.console import Group
        from rich.text import Text

        table = titled(f"Cost of deployment {self.name!r} in {self.region}")
        table.add_column("resource / component")
        table.add_column("qty/month", justify="right")
        table.add_column("unit")
        table.add_column("price", justify="right")
        table.add_column("monthly", justify="right", style="bold")
        table.add_column("kind")
        current = None
        for line in self.lines:
            if line.resource != current:
                current = line.resource
                table.add_row(Text(f"{line.resource} ({line.resource_type})", style="bold"))
            table.add_row(
                f"  {line.component}", f"{line.quantity:,.2f}", line.unit.split(" (", 1)[0],
                unit_price(line.unit_price), money(line.monthly_cost),
                ("idle" if line.baseline else "usage") + (" *" if line.assumed else ""),
            )
        usage = self.usage
        summary = Text(f"{self.summary} x {usage.task_minutes:g} min "
                       f"(concurrency {usage.concurrency})", style="bold")
        return Group(table, summary,
                     *(Text(f"* {assumption}", style="dim") for assumption in self.assumptions))


def unit_price(value: float) -> str:
    """A unit price to the tenth of a millionth of a dollar, without trailing zeros.

    >>> unit_price(0.0416), unit_price(0.0000004), unit_price(0)
    ('$0.0416', '$0.0000004', '$0')
    """
    return "$" + (f"{value:.7f}".rstrip("0").rstrip(".") if value else "0")


# -- the instance model ---------------------------------------------------------------


@attrs.frozen
class _Fleet:
    """Instance-hours a month by (instance type, spot), baseline and task-driven."""

    baseline: dict[tuple[str, bool], float]
    tasks: dict[tuple[str, bool], float]


def _fits(spec: InstanceType, task_cpu: int, task_memory: int) -> int:
    return min(spec.cpu_units // task_cpu, spec.task_memory_mib // task_memory)


def _fleet(plan: Plan, usage: Usage, prices: PriceBook) -> _Fleet:
    group = plan.one("aws:autoscaling:Group").inputs
    policy = group["mixedInstancesPolicy"]
    distribution = policy["instancesDistribution"]
    types = [o["instanceType"] for o in policy["launchTemplate"]["overrides"]]
    # The runner's task definitions (the interactive one too) all have the tasks' size.
    definition = plan.by_type("aws:ecs:TaskDefinition")[0].inputs
    task_cpu, task_memory = int(definition["cpu"]), int(definition["memory"])
    known = instance_types()
    fitting = [t for t in types if t in known and _fits(known[t], task_cpu, task_memory) > 0]
    if not fitting:
        raise ConfigError("task_cpu/task_memory", (task_cpu, task_memory),
                          f"a size one of {', '.join(types)} can hold")
    spot = distribution.get("onDemandPercentageAboveBaseCapacity", 100) < 100
    on_demand_base = int(distribution.get("onDemandBaseCapacity", 0))
    min_size, max_size = int(group["minSize"]), int(group["maxSize"])
    # On-demand launches follow the overrides' order ("prioritized"); spot launches go
    # where price-capacity-optimized finds capacity, priced here as the cheapest type.
    od_type = fitting[0]
    spot_type = min(fitting, key=lambda t: prices.instance_hour(t, spot=True).usd)

    baseline: dict[tuple[str, bool], float] = {}
    always_od = min_size if not spot else min(on_demand_base, min_size)
    for key, count in (((od_type, False), always_od), ((spot_type, True), min_size - always_od)):
        if count:
            baseline[key] = baseline.get(key, 0.0) + count * HOURS_PER_MONTH
    baseline_slots = (
        always_od * _fits(known[od_type], task_cpu, task_memory)
        + (min_size - always_od) * _fits(known[spot_type], task_cpu, task_memory)
    )

    tasks: dict[tuple[str, bool], float] = {}
    extra = max(0, usage.concurrency - baseline_slots)
    if usage.tasks_per_day > 0 and extra > 0 and max_size > min_size:
        headroom = max_size - min_size
        od_fit = _fits(known[od_type], task_cpu, task_memory)
        spot_fit = _fits(known[spot_type], task_cpu, task_memory)
        od_room = headroom if not spot else min(headroom, max(0, on_demand_base - min_size))
        n_od = min(od_room, math.ceil(extra / od_fit))
        left = max(0, extra - n_od * od_fit)
        n_spot = min(headroom - n_od, math.ceil(left / spot_fit)) if spot else 0
        capacity = n_od * od_fit + n_spot * spot_fit
        # When the group cannot hold the whole burst, tasks queue and run in waves.
        waves = math.ceil(extra / capacity)
        burst_hours = (
            usage.startup_minutes + waves * usage.task_minutes + usage.scale_in_minutes
        ) / 60
        bursts = usage.tasks_per_month / usage.concurrency
        for key, count in (((od_type, False), n_od), ((spot_type, True), n_spot)):
            if count:
                # Never more than running the whole time.
                tasks[key] = min(bursts * count * burst_hours, count * HOURS_PER_MONTH)
    return _Fleet(baseline=baseline, tasks=tasks)


# -- the estimate ---------------------------------------------------------------------


def estimate_cost(
    plan: Plan, usage: Usage | None = None, prices: PriceBook | None = None
) -> CostEstimate:
    """Price every resource in ``plan`` for ``usage`` (default: the config's): one pricing
    function per service (:data:`_SERVICES`), each reading only the plan.

    >>> from rclaude_infra import DeploymentConfig, plan
    >>> estimate = estimate_cost(plan(DeploymentConfig(spot=False, nat="single")))
    >>> round(next(l for l in estimate.lines if l.component == "NAT gateway").monthly_cost, 2)
    32.85
    """
    usage = plan.config.usage if usage is None else usage
    if not isinstance(usage, Usage):
        raise ConfigError("usage", usage, "a Usage")
    prices = PriceBook.snapshot(plan.config.region) if prices is None else prices
    if prices.region != plan.config.region:
        raise ConfigError("prices", prices.region,
                          f"a PriceBook for the plan's region {plan.config.region!r}")
    lines = [line for service in _SERVICES for line in service(plan, usage, prices)]
    assumptions = tuple(dict.fromkeys(line.price_source for line in lines if line.assumed))
    return CostEstimate(
        name=plan.name, region=plan.config.region, usage=usage, lines=tuple(lines),
        assumptions=assumptions,
    )


def _ec2_lines(plan: Plan, usage: Usage, prices: PriceBook) -> list[CostLine]:
    """Instances (always-on and for tasks, spot-aware), their root volumes and public
    IPv4 addresses."""
    lines: list[CostLine] = []
    group = plan.one("aws:autoscaling:Group")
    template = plan.one("aws:ec2:LaunchTemplate").inputs
    fleet = _fleet(plan, usage, prices)
    root = template["blockDeviceMappings"][0]["ebs"]
    public_ip = any(
        i.get("associatePublicIpAddress") == "true" for i in template.get("networkInterfaces", [])
    )
    gp3 = prices.item("ebs_gp3_storage")
    ipv4 = prices.item("public_ipv4_address_hour")
    for baseline, hours_by_type in ((True, fleet.baseline), (False, fleet.tasks)):
        if not hours_by_type:
            continue
        which = "always-on instances" if baseline else "task instances"
        for (instance_type, spot), hours in hours_by_type.items():
            kind = "spot" if spot else "on-demand"
            lines.append(_line(
                group, f"Instance usage (Linux, {kind}, {instance_type}), {which}", hours,
                prices.instance_hour(instance_type, spot=spot), baseline=baseline,
            ))
        hours = sum(hours_by_type.values())
        lines.append(_line(
            group, f"Root volumes (gp3, {root['volumeSize']} GB), {which}",
            hours * root["volumeSize"] / HOURS_PER_MONTH, gp3, baseline=baseline,
        ))
        if public_ip:
            lines.append(_line(group, f"Public IPv4 addresses, {which}", hours, ipv4,
                               baseline=baseline))
    if not fleet.tasks:
        # Keep the usage-driven instance line visible, at zero, as Infracost does.
        lines.append(CostLine(
            resource=group.name, resource_type=short_type(group.type),
            component="Instance usage, task instances (none for this usage)",
            quantity=0.0, unit="instance-hour", unit_price=0.0, monthly_cost=0.0,
            baseline=False, price_source="",
        ))
    return lines


def _network_lines(plan: Plan, usage: Usage, prices: PriceBook) -> list[CostLine]:
    """NAT gateways, their addresses and data, and data transfer out to the internet."""
    lines: list[CostLine] = []
    egress_gb = usage.tasks_per_month * usage.egress_gb_per_task
    nats = plan.by_type("aws:ec2:NatGateway")
    for nat in nats:
        lines.append(_line(nat, "NAT gateway", HOURS_PER_MONTH, prices.item("nat_gateway_hour"),
                           baseline=True))
        share = egress_gb / len(nats)
        lines.append(_line(nat, "Data processed", share,
                           prices.item("nat_gateway_data_processed"), baseline=False))
    for address in plan.by_type("aws:ec2:Eip"):
        lines.append(_line(address, "Public IPv4 address (NAT)", HOURS_PER_MONTH,
                           prices.item("public_ipv4_address_hour"), baseline=True))
    lines.append(_line(plan.one("aws:autoscaling:Group"), "Data transfer out to the internet",
                       egress_gb, prices.item("data_transfer_out_internet_first_10tb"),
                       baseline=False))
    return lines


def _logs_lines(plan: Plan, usage: Usage, prices: PriceBook) -> list[CostLine]:
    """CloudWatch Logs: what tasks (or image builds) write, and what retention keeps."""
    lines: list[CostLine] = []
    build_groups = {project.inputs.get("logsConfig", {}).get("cloudwatchLogs", {}).get(
        "groupName") for project in plan.by_type("aws:codebuild:Project")}
    flow_groups = {str(flow.inputs.get("logDestination", "")).rsplit("log-group:", 1)[-1]
                   for flow in plan.by_type("aws:ec2:FlowLog")}
    for logs in plan.by_type("aws:cloudwatch:LogGroup"):
        ingestion = prices.item("cloudwatch_logs_ingestion")
        if logs.inputs.get("name") in build_groups:
            written_mb = usage.image_builds_per_month * BUILD_LOG_MB
        elif logs.inputs.get("name") in flow_groups:
            written_mb = usage.tasks_per_month * FLOW_LOG_MB_PER_TASK
            ingestion = attrs.evolve(ingestion, assumed=True, source=(
                f"{FLOW_LOG_ASSUMPTION}; at {ingestion.source}"))
        else:
            written_mb = usage.tasks_per_month * usage.log_mb_per_task
        ingested_gb = written_mb / _MIB_PER_GB
        retention = logs.inputs.get("retentionInDays") or 3653
        lines.append(_line(logs, "Data ingested", ingested_gb, ingestion, baseline=False))
        # Steady state: what `retention` days of ingestion leave stored (before compression).
        stored = ingested_gb / (HOURS_PER_MONTH / 24) * retention
        lines.append(_line(logs, f"Storage ({retention} days retained)", stored,
                           prices.item("cloudwatch_logs_storage"), baseline=False))
    return lines


def _s3_lines(plan: Plan, usage: Usage, prices: PriceBook) -> list[CostLine]:
    """The results bucket: what its expiry keeps stored, and the task's requests."""
    lines: list[CostLine] = []
    tasks = usage.tasks_per_month
    for bucket in plan.by_type("aws:s3:Bucket"):
        expire = _expiration_days(plan, bucket)
        if (bucket.inputs.get("tags") or {}).get(PURPOSE_TAG) == "access-logs":
            # One log record (about 0.5 KB) per request to the results, kept until it expires.
            records = tasks * (S3_PUTS_PER_TASK + S3_GETS_PER_TASK)
            lines.append(_line(bucket, f"Access logs ({expire} days kept)",
                               records * 0.5 / 1024 / _MIB_PER_GB / (HOURS_PER_MONTH / 24)
                               * expire, prices.item("s3_standard_storage_first_50tb"),
                               baseline=False))
            continue
        stored = tasks * usage.result_mb_per_task / _MIB_PER_GB / (HOURS_PER_MONTH / 24) * expire
        lines.append(_line(bucket, f"Standard storage ({expire} days kept)", stored,
                           prices.item("s3_standard_storage_first_50tb"), baseline=False))
        if plan.attached(bucket, "aws:s3:BucketVersioning"):
            # Expiring a current version leaves it noncurrent for as long again.
            lines.append(_line(bucket, f"Noncurrent versions ({expire} more days)", stored,
                               prices.item("s3_standard_storage_first_50tb"), baseline=False))
        lines.append(_line(bucket, "PUT, COPY, POST, LIST requests", tasks * S3_PUTS_PER_TASK,
                           prices.item("s3_standard_put_copy_post_list"), baseline=False,
                           unit="requests", per=1000))
        lines.append(_line(bucket, "GET and other requests", tasks * S3_GETS_PER_TASK,
                           prices.item("s3_standard_get_select_other"), baseline=False,
                           unit="requests", per=1000))
    return lines


def _bucket_event_lines(plan: Plan, usage: Usage, prices: PriceBook) -> list[CostLine]:
    """Bucket events sent to EventBridge: one when an object is written, one when it
    expires. The access-log bucket is assumed to receive one log object per task."""
    lines: list[CostLine] = []
    for bucket in plan.by_type("aws:s3:Bucket"):
        logs = (bucket.inputs.get("tags") or {}).get(PURPOSE_TAG) == "access-logs"
        objects = usage.tasks_per_month * (1 if logs else S3_PUTS_PER_TASK)
        lines += [_line(notification, "Events to EventBridge", 2 * objects, S3_EVENTS_PRICE,
                        baseline=False, unit="events", per=1_000_000)
                  for notification in plan.attached(bucket, "aws:s3:BucketNotification")
                  if notification.inputs.get("eventbridge")]
    return lines


def _secrets_lines(plan: Plan, usage: Usage, prices: PriceBook) -> list[CostLine]:
    """The credential's secret and the reads of it (one per task)."""
    lines: list[CostLine] = []
    for secret in plan.by_type("aws:secretsmanager:Secret"):
        if secret.name.endswith(SETTINGS_SECRET_PART):
            continue  # the service's (_service_lines): read when a service task starts
        lines.append(_line(secret, "Secret", 1, prices.item("secrets_manager_secret"),
                           baseline=True))
        lines.append(_line(secret, "API requests", usage.tasks_per_month * SECRET_READS_PER_TASK,
                           prices.item("secrets_manager_api_calls"), baseline=False,
                           unit="requests", per=10_000))
    return lines


def _ecr_lines(plan: Plan, usage: Usage, prices: PriceBook) -> list[CostLine]:
    """The runner image kept in the stack's repository."""
    return [_line(repository, "Image storage", usage.image_gb, prices.item("ecr_storage"),
                  baseline=True)
            for repository in plan.by_type("aws:ecr:Repository")]


def _codebuild_lines(plan: Plan, usage: Usage, prices: PriceBook) -> list[CostLine]:
    """Builds of the runner image in the account: build-minutes, per change of the
    package (``Usage.image_builds_per_month``), none while nothing changes."""
    lines: list[CostLine] = []
    for project in plan.by_type("aws:codebuild:Project"):
        environment = project.inputs.get("environment", {})
        price = _item_or_home(prices, "codebuild_linux_small_minute")
        if environment.get("type") == "ARM_CONTAINER":
            price = attrs.evolve(price, assumed=True, source=(
                "the ARM rate is not in the snapshot; the Linux (x86) small rate is "
                f"assumed: {price.source}"))
        minutes = usage.image_builds_per_month * usage.image_build_minutes
        lines.append(_line(
            project, f"Image builds ({usage.image_builds_per_month:g} a month x "
            f"{usage.image_build_minutes:g} min, {environment.get('computeType', '?')})",
            minutes, price, baseline=False, unit="build-minutes"))
    return lines


def _item_or_home(prices: PriceBook, name: str) -> Price:
    """``prices.item(name)``; for an item the snapshot has for us-east-1 only (CodeBuild,
    KMS: ``scripts/prices-extra.csv``), that rate, labelled as assumed."""
    try:
        return prices.item(name)
    except PriceNotFoundError:
        home = PriceBook.snapshot("us-east-1").item(name)
        return attrs.evolve(home, assumed=True,
                            source=f"us-east-1 rate used for {prices.region}: {home.source}")


def _kms_lines(plan: Plan, usage: Usage, prices: PriceBook) -> list[CostLine]:
    """The stack's customer-managed key, and its requests: at most one per S3 request and
    secret read of a task (S3 bucket keys make most S3 requests need none)."""
    lines: list[CostLine] = []
    for key in plan.by_type("aws:kms:Key"):
        lines.append(_line(key, "Customer-managed key", 1, _item_or_home(prices, "kms_key_month"),
                           baseline=True))
        requests = usage.tasks_per_month * (S3_PUTS_PER_TASK + S3_GETS_PER_TASK
                                            + SECRET_READS_PER_TASK)
        lines.append(_line(key, "Requests (at most)", requests,
                           _item_or_home(prices, "kms_requests"), baseline=False,
                           unit="requests", per=10_000))
    return lines


def _insights_lines(plan: Plan, usage: Usage, prices: PriceBook) -> list[CostLine]:
    """Container Insights' metrics, while a cluster has it on."""
    lines: list[CostLine] = []
    for cluster in plan.by_type("aws:ecs:Cluster"):
        settings = {s.get("name"): s.get("value") for s in cluster.inputs.get("settings", [])}
        if settings.get("containerInsights") in ("enabled", "enhanced"):
            price = prices.item("cloudwatch_metric_first_10000")
            lines.append(_line(cluster, "Container Insights metrics", CONTAINER_INSIGHTS_METRICS,
                               attrs.evolve(price, assumed=True, source=(
                                   f"{CONTAINER_INSIGHTS_ASSUMPTION}; at {price.source}")),
                               baseline=True))
    return lines


def _model_lines(plan: Plan, usage: Usage, prices: PriceBook) -> list[CostLine]:
    """The model's tokens: per task, as declared or assumed (nothing per token with a
    Claude subscription)."""
    auth = plan.config.auth
    if auth == "oauth-token":
        per_task, source, assumed = 0.0, _SUBSCRIPTION_SOURCE, False
    elif usage.model_usd_per_task is not None:
        per_task, source, assumed = usage.model_usd_per_task, "Usage.model_usd_per_task", False
    else:
        per_task, source, assumed = ASSUMED_MODEL_USD_PER_TASK, ASSUMED_MODEL_SOURCE, True
    where = {"bedrock": "Amazon Bedrock", "oauth-token": "Claude subscription"}.get(
        auth, "Anthropic API")
    tasks = usage.tasks_per_month
    return [CostLine(
        resource="claude", resource_type=f"model:{auth}", component=f"Model tokens ({where})",
        quantity=tasks, unit="tasks", unit_price=per_task, monthly_cost=tasks * per_task,
        baseline=False, price_source=source, assumed=assumed)]


#: The services a stack is priced by, in the order their lines are listed.


#: LCUs an idle-to-light service's load balancer uses on average (assumed; AWS bills the
#: busiest of new connections, active connections, processed bytes and rule evaluations).
SERVICE_LCUS = 1.0
SERVICE_LCU_ASSUMPTION = (
    "assumed: the service's load balancer uses 1 LCU on average (25 new connections a "
    "second, 3,000 active, 1 GB an hour; AWS bills the busiest of those per hour)")
_ARM_FARGATE_ASSUMPTION = (
    "the ARM (Graviton) Fargate rate is not in the snapshot; the x86 rate is assumed, an "
    "over-estimate")


def _service_lines(plan: Plan, usage: Usage, prices: PriceBook) -> list[CostLine]:
    """The hosted service (``mode="service"``): its load balancer and addresses, its API and
    worker tasks on Fargate, its database and the secrets around it."""
    lines: list[CostLine] = []
    ipv4 = prices.item("public_ipv4_address_hour")
    for balancer in plan.by_type("aws:lb:LoadBalancer"):
        zones = len(balancer.inputs.get("subnets", []))  # an address in each
        lines += [
            _line(balancer, "Application load balancer", HOURS_PER_MONTH,
                  _item_or_home(prices, "alb_hour"), baseline=True, service=True),
            _line(balancer, f"Public IPv4 addresses (one per zone, {zones})",
                  zones * HOURS_PER_MONTH, ipv4, baseline=True, service=True)]
        lcu = _item_or_home(prices, "alb_lcu_hour")
        lines.append(_line(balancer, "Load balancer capacity units", SERVICE_LCUS *
                           HOURS_PER_MONTH, attrs.evolve(lcu, assumed=True, source=(
                               f"{SERVICE_LCU_ASSUMPTION}; at {lcu.source}")),
                           baseline=True, service=True))
    definitions = {d.inputs.get("family"): d for d in plan.by_type("aws:ecs:TaskDefinition")}
    for service in plan.by_type("aws:ecs:Service"):
        family = str(service.inputs.get("taskDefinition", "")).rsplit("/", 1)[-1]
        definition = definitions.get(family.rsplit(":", 1)[0])
        if definition is None or service.inputs.get("launchType") != "FARGATE":
            continue
        count = int(service.inputs.get("desiredCount", 1))
        vcpu = int(definition.inputs["cpu"]) / 1024
        gb = int(definition.inputs["memory"]) / _MIB_PER_GB
        arm = definition.inputs.get("runtimePlatform", {}).get("cpuArchitecture") == "ARM64"
        for component, amount, item in (("vCPU", vcpu, "fargate_vcpu_hour"),
                                        ("memory GB", gb, "fargate_gb_hour")):
            price = _item_or_home(prices, item)
            if arm:
                price = attrs.evolve(price, assumed=True,
                                     source=f"{_ARM_FARGATE_ASSUMPTION}: {price.source}")
            lines.append(_line(service, f"Fargate {component} ({count} tasks x {amount:g})",
                               count * amount * HOURS_PER_MONTH, price, baseline=True,
                               service=True))
        if service.inputs.get("networkConfiguration", {}).get("assignPublicIp"):
            lines.append(_line(service, f"Public IPv4 addresses ({count} tasks)",
                               count * HOURS_PER_MONTH, ipv4, baseline=True, service=True))
    for database in plan.by_type("aws:rds:Instance"):
        multi_az = bool(database.inputs.get("multiAz"))
        deployment = "Multi-AZ" if multi_az else "Single-AZ"
        instance_class = str(database.inputs.get("instanceClass"))
        lines += [
            _line(database, f"Database instance (PostgreSQL, {instance_class}, {deployment})",
                  HOURS_PER_MONTH, _database_hour(prices, instance_class, multi_az),
                  baseline=True, service=True),
            _line(database, f"Storage (gp3, {deployment})",
                  float(database.inputs.get("allocatedStorage", 20)),
                  _item_or_home(prices, "rds_gp3_storage_multi_az" if multi_az
                                else "rds_gp3_storage"), baseline=True, service=True),
            # RDS keeps the master password in a secret of its own (not in the plan).
            _line(database, "Master password secret (RDS-managed)", 1,
                  prices.item("secrets_manager_secret"), baseline=True, service=True)]
    for secret in plan.by_type("aws:secretsmanager:Secret"):
        if secret.name.endswith(SETTINGS_SECRET_PART):
            lines.append(_line(secret, "Secret (the service's settings)", 1,
                               prices.item("secrets_manager_secret"), baseline=True,
                               service=True))
    return lines


def _database_hour(prices: PriceBook, instance_class: str, multi_az: bool) -> Price:
    """RDS for PostgreSQL's rate for the class; where the snapshot has only MySQL's rate for
    the class (the two are the same list price for the burstable classes), that one,
    labelled as assumed; Multi-AZ as twice Single-AZ where only that is known."""
    suffix = "_multi_az_hour" if multi_az else "_hour"
    for engine in ("postgres", "mysql"):
        try:
            price = _item_or_home(prices, f"rds_{engine}_{instance_class}{suffix}")
        except PriceNotFoundError:
            continue
        if engine == "mysql":
            price = attrs.evolve(price, assumed=True, source=(
                f"RDS for PostgreSQL's {instance_class} rate is not in the snapshot; MySQL's "
                f"is assumed: {price.source}"))
        return price
    if multi_az:
        single = _database_hour(prices, instance_class, False)
        return attrs.evolve(single, usd=single.usd * 2, assumed=True,
                            source=f"Multi-AZ assumed as twice Single-AZ: {single.source}")
    priced = sorted({name.split("_")[2] for name in PriceBook.snapshot("us-east-1").other
                     if name.startswith("rds_") and name.endswith("_hour")})
    raise PriceNotFoundError(
        f"no price for the database class {instance_class} in the snapshot (it has "
        f"{', '.join(priced)}); choose one of those for service.db_instance_class")


_SERVICES: tuple[Callable[[Plan, Usage, PriceBook], list[CostLine]], ...] = (
    _ec2_lines, _network_lines, _logs_lines, _s3_lines, _bucket_event_lines, _secrets_lines,
    _ecr_lines,
    _codebuild_lines, _insights_lines, _kms_lines, _service_lines, _model_lines,
)


def _expiration_days(plan: Plan, bucket: PlannedResource) -> int:
    """Days the bucket's own lifecycle keeps objects."""
    for lifecycle in plan.attached(bucket, "aws:s3:BucketLifecycleConfiguration"):
        for rule in lifecycle.inputs.get("rules", []):
            days = rule.get("expiration", {}).get("days")
            if rule.get("status") == "Enabled" and days:
                return int(days)
    # No expiry: a year of results is the horizon we price.
    return 365


# -- instance prices and task costs ---------------------------------------------------


@attrs.frozen(kw_only=True)
class InstancePrice:
    """On-demand and spot prices of one instance type (the seed's cost table).

    >>> from rclaude_infra import instance_prices
    >>> row = instance_prices(["t3.medium"])[0]
    >>> row.on_demand_hourly, round(row.on_demand_monthly, 2), row.spot_assumed
    (0.0416, 30.37, True)"""

    instance_type: str
    vcpu: int
    memory_mib: int
    on_demand_hourly: float
    spot_hourly: float
    spot_assumed: bool

    @property
    def on_demand_monthly(self) -> float:
        return self.on_demand_hourly * HOURS_PER_MONTH

    @property
    def spot_monthly(self) -> float:
        return self.spot_hourly * HOURS_PER_MONTH


def instance_prices(
    types: Iterable[str] | None = None, prices: PriceBook | None = None
) -> list[InstancePrice]:
    """On-demand vs spot, per hour and for a month running 24/7, for each type.

    >>> [round(p.on_demand_monthly, 2) for p in instance_prices(["t3.medium"])]
    [30.37]
    """
    prices = PriceBook.snapshot() if prices is None else prices
    known = instance_types()
    names = list(known) if types is None else list(types)
    rows = []
    for name in names:
        if name not in known:
            raise ConfigError("instance_types", name, "a type from the shipped instance table")
        spot = prices.instance_hour(name, spot=True)
        rows.append(InstancePrice(
            instance_type=name, vcpu=known[name].vcpu, memory_mib=known[name].memory_mib,
            on_demand_hourly=prices.instance_hour(name, spot=False).usd,
            spot_hourly=spot.usd, spot_assumed=spot.assumed,
        ))
    return rows


def task_cost(
    *,
    runtime_hours: float,
    task_cpu: int,
    task_memory: int,
    instance_type: str,
    spot: bool,
    prices: PriceBook,
) -> float:
    """What a task used of its instance: runtime x its share x the instance's price.

    The share is the larger of the CPU and memory the task reserved, as a fraction of
    what the instance offers tasks (:class:`~rclaude_infra.InstanceType`).

    >>> book = PriceBook.snapshot()
    >>> round(task_cost(runtime_hours=1, task_cpu=1024, task_memory=1024,
    ...                 instance_type="t3.medium", spot=False, prices=book), 4)
    0.0208
    """
    spec = instance_types().get(instance_type)
    if spec is None:
        raise ConfigError("instance_type", instance_type, "a type from the shipped instance table")
    if runtime_hours < 0:
        raise ConfigError("runtime_hours", runtime_hours, "zero or more")
    share = min(1.0, max(task_cpu / spec.cpu_units, task_memory / spec.task_memory_mib))
    return runtime_hours * share * prices.instance_hour(instance_type, spot=spot).usd


# -- what one task cost: compute and model ---------------------------------------------


@attrs.frozen(kw_only=True)
class TaskCost:
    """What one task cost (:meth:`Task.cost`): its share of the instance over every
    attempt, and the model's tokens; formats as its total.

    >>> cost = TaskCost(compute_usd=0.0104, model_usd=0.42, model_source="Claude Code")
    >>> round(cost.total_usd, 4), f"{cost:.2f}"
    (0.4304, '0.43')
    """

    #: Runtime x the task's share of its instance x the instance's price, every attempt.
    compute_usd: float
    #: The model's cost; ``None`` for a command task or one without an agent result.
    model_usd: float | None = None
    #: Where ``model_usd`` comes from (Claude Code's estimate, or Bedrock tokens x price).
    model_source: str = "no agent result"

    @property
    def total_usd(self) -> float:
        return self.compute_usd + (self.model_usd or 0.0)

    def __format__(self, spec: str) -> str:
        return format(self.total_usd, spec)

    def to_dict(self) -> dict[str, Any]:
        return {"compute_usd": self.compute_usd, "model_usd": self.model_usd,
                "model_source": self.model_source, "total_usd": self.total_usd}


def model_cost(model_usage: Mapping[str, Mapping[str, Any]],
               reported_usd: float | None) -> tuple[float | None, str]:
    """The model's cost of a task from Claude Code's result: per model, Bedrock's shipped
    price x the tokens for a Bedrock id (:func:`~rclaude_infra.prices.bedrock_price`),
    else Claude Code's own estimate (``costUSD``, Anthropic's list prices); and a sentence
    saying so.

    >>> usage = {"us.anthropic.claude-haiku-4-5-20251001-v1:0": {
    ...     "inputTokens": 1_000_000, "outputTokens": 0, "costUSD": 1.0}}
    >>> round(model_cost(usage, 1.0)[0], 2)
    1.1
    >>> model_cost({}, 0.42)
    (0.42, "Claude Code's estimate (total_cost_usd)")
    """
    if not model_usage:
        if reported_usd is None:
            return None, "no model usage reported"
        return reported_usd, "Claude Code's estimate (total_cost_usd)"
    total, sources = 0.0, []
    for model, tokens in model_usage.items():
        price = bedrock_price(model)
        if price is not None:
            total += price.usd(tokens)
            premium = "" if price.premium == 1 else f" x {price.premium:g} (regional endpoint)"
            sources.append(f"{model}: Bedrock tokens x {price.source}{premium}")
        else:
            total += float(tokens.get("costUSD") or 0.0)
            sources.append(f"{model}: Claude Code's estimate at Anthropic's list prices")
    return total, "; ".join(sources)
