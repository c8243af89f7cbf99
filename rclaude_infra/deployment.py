"""The :class:`Deployment` facade: the object users hold."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._plan import Plan
from .config import DeploymentConfig, Usage, validate_name
from .errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from ._aws.sweep import SweepReport
    from .cost import CostEstimate
    from .policy import PolicyReport
    from .prices import PriceBook

DEFAULT_NAME = "dev"


def plan(
    config: DeploymentConfig | None = None,
    *,
    name: str = DEFAULT_NAME,
    api_key: str | None = None,
) -> Plan:
    """Every resource ``up`` would create for ``config``, computed offline.

    Runs the stack's Pulumi program under the Pulumi runtime's mocks: no
    credentials, no network, no Pulumi CLI. Safe to call from a running event loop
    (a Jupyter cell) and any number of times in one process. ``api_key`` shows where
    the key would go; its value appears in the plan only as ``"[secret]"``.

    >>> from rclaude_infra import DeploymentConfig, plan
    >>> p = plan(DeploymentConfig(nat="single"), name="dev")
    >>> len(p.by_type("aws:ec2:NatGateway"))
    1
    """
    config = DeploymentConfig() if config is None else config
    if not isinstance(config, DeploymentConfig):
        raise ConfigError("config", config, "a DeploymentConfig")
    validate_name(name)
    try:
        from ._pulumi.mock_plan import mock_plan
    except ImportError as exc:  # pragma: no cover - both are runtime dependencies
        raise MissingDependencyError(exc.name or "pulumi", "The offline plan") from exc
    return mock_plan(name, config, api_key=api_key)


class Deployment:
    """One deployment of the ECS-on-EC2 stack: plan it, and (in later releases) run it.

    >>> from rclaude_infra import Deployment, DeploymentConfig
    >>> d = Deployment("dev", DeploymentConfig(region="eu-west-1"))
    >>> d.plan().config.region
    'eu-west-1'

    ``name`` becomes part of every resource name and the tag
    ``rclaude:deployment``; it is checked at once (:func:`validate_name`).
    """

    def __init__(self, name: str, config: DeploymentConfig | None = None) -> None:
        self._name = validate_name(name)
        config = DeploymentConfig() if config is None else config
        if not isinstance(config, DeploymentConfig):
            raise ConfigError("config", config, "a DeploymentConfig")
        self._config = config

    @property
    def name(self) -> str:
        return self._name

    @property
    def config(self) -> DeploymentConfig:
        return self._config

    def plan(self) -> Plan:
        """Every resource ``up`` would create, computed offline (see :func:`plan`)."""
        return plan(self._config, name=self._name)

    def check_policies(self) -> PolicyReport:
        """Every security rule on the planned stack, offline, with declared waivers applied.

        >>> from rclaude_infra import Deployment
        >>> Deployment("dev").check_policies().ok
        True
        """
        return self.plan().check_policies()

    def sweep(
        self, *, known: Iterable[str], dry_run: bool = True, session: Any = None
    ) -> SweepReport:
        """Find resources tagged for this deployment that ``known`` (the ARNs or ids the
        stack still manages) does not name; delete them when ``dry_run`` is false.

        Only resources tagged ``rclaude:deployment=<name>`` are ever listed or deleted.
        After a destroy, ``known=()``: whatever still carries the tag leaked.
        """
        from ._aws.sweep import sweep

        return sweep(session, self._config.region, self._name, known=known, dry_run=dry_run)

    def prices(self, *, live: bool = False, session: Any = None) -> PriceBook:
        """The price book for this deployment's region: the shipped snapshot, or live
        on-demand and spot prices for its instance types (``live=True``, needs AWS
        credentials; cached for a day)."""
        if not live:
            from .prices import PriceBook

            return PriceBook.snapshot(self._config.region)
        from ._aws.pricing import live_prices

        return live_prices(session, self._config.region, self._config.instance_types)

    def estimate_cost(
        self, usage: Usage | None = None, prices: PriceBook | None = None
    ) -> CostEstimate:
        """What the planned stack costs idle, per task and a month for ``usage``
        (default: the config's), from the offline plan (see :func:`estimate_cost`).

        >>> from rclaude_infra import Deployment, Usage
        >>> estimate = Deployment("dev").estimate_cost(Usage(tasks_per_day=0))
        >>> round(estimate.idle_monthly, 2)
        0.5
        """
        from .cost import estimate_cost

        return estimate_cost(self.plan(), usage, prices or self.prices())

    def check_budget(self, prices: PriceBook | None = None) -> CostEstimate:
        """Raise :class:`~rclaude_infra.errors.BudgetExceededError` when the estimate for
        the config's ``usage`` is over its ``max_monthly_usd``; return the estimate."""
        estimate = self.estimate_cost(prices=prices)
        estimate.check_budget(self._config.max_monthly_usd)
        return estimate

    def __repr__(self) -> str:
        return f"Deployment({self._name!r}, region={self._config.region!r})"
