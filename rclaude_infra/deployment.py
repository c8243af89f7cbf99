"""The :class:`Deployment` facade: the object users hold."""

from __future__ import annotations

from ._plan import Plan
from .config import DeploymentConfig, validate_name
from .errors import ConfigError, MissingDependencyError

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

    def __repr__(self) -> str:
        return f"Deployment({self._name!r}, region={self._config.region!r})"
