"""The one error tree of rclaude-infra.

Every error the library raises on purpose is a :class:`RclaudeError`. Errors from
foreign libraries (botocore, pulumi) are translated into this tree at the edge that
calls them, chained with ``raise ... from``, and each message says what to do next.
"""

from __future__ import annotations

from typing import Any


class RclaudeError(Exception):
    """Base of every error rclaude-infra raises on purpose.

    Catch it to handle anything the library refuses or fails at, with a message that says
    what to do next::

        try:
            Deployment("dev").up()
        except RclaudeError as exc:
            print(f"not deployed: {exc}")
    """


class ConfigError(RclaudeError, ValueError):
    """An invalid configuration value, task spec or flag.

    Raised at construction, before any cloud call. ``field`` names the offending
    field, ``value`` is what was given and ``allowed`` says what would be accepted::

        >>> from rclaude_infra import DeploymentConfig
        >>> DeploymentConfig(nat="double")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rclaude_infra.errors.ConfigError: nat: got 'double'; allowed: one of 'none', ...
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: got {value!r}; allowed: {allowed}")


class PlanError(RclaudeError):
    """The Pulumi program failed while being planned offline.

    ::

        try:
            plan(config)
        except PlanError as exc:
            print(exc.__cause__)   # the program's own exception


    This is a bug in the program or an input the config validation let through;
    the message carries the original error.
    """


class MissingDependencyError(RclaudeError, ImportError):
    """An optional dependency needed for this call is not installed.

    >>> str(MissingDependencyError("pulumi", "The offline plan"))  # doctest: +ELLIPSIS
    "The offline plan needs the 'pulumi' package; install it with ..."
    """

    def __init__(self, package: str, purpose: str) -> None:
        self.package = package
        super().__init__(
            f"{purpose} needs the '{package}' package; install it with "
            f"`pip install rclaude-infra` (it is a runtime dependency) or `pip install {package}`"
        )


class PriceNotFoundError(RclaudeError, LookupError):
    """A price the estimate needs is in neither the snapshot nor the live data.

    >>> from rclaude_infra import PriceBook
    >>> PriceBook.snapshot("af-south-1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rclaude_infra.errors.PriceNotFoundError: the price snapshot has no prices for region ...


    The message names the region and item and how to get a price for it; the library
    never guesses a missing price.
    """


class PricingUnavailableError(RclaudeError):
    """Live prices could not be fetched (no credentials, no access, throttled).

    ::

        try:
            prices = live_prices(session, "us-east-1", ["t3.medium"])
        except PricingUnavailableError:
            prices = PriceBook.snapshot("us-east-1")   # the shipped snapshot instead
    """


class BudgetExceededError(RclaudeError):
    """The cost estimate for the declared usage is over ``max_monthly_usd``.

    >>> from rclaude_infra import Deployment, DeploymentConfig
    >>> Deployment("dev", DeploymentConfig(nat="single", max_monthly_usd=5)).check_budget()
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rclaude_infra.errors.BudgetExceededError: estimated $439.95/month ... over ... $5.00 ...


    ``estimate`` is the :class:`~rclaude_infra.cost.CostEstimate` that was over (or, when
    ``run_task`` refuses, the month's :class:`~rclaude_infra.Spend` so far), ``limit`` the
    budget; the message says by how much and what drives it.
    """

    def __init__(self, message: str, *, estimate: object, limit: float) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.limit = limit


class PolicyViolationError(RclaudeError):
    """The plan breaks a mandatory security rule; ``findings`` name each rule and resource.

    ::

        try:
            Deployment("dev", config).up()   # refused before any cloud call
        except PolicyViolationError as exc:
            for finding in exc.findings:
                print(finding.rule_id, finding.resource)
    """

    def __init__(self, message: str, *, findings: object) -> None:
        super().__init__(message)
        self.findings = findings


class SweepError(RclaudeError):
    """The leak sweep could not list the deployment's resources (credentials, permissions).

    ::

        try:
            report = Deployment("dev").sweep(known=(), dry_run=True)
        except SweepError as exc:
            print(exc)   # says which permission or credential is missing
    """


class EngineError(RclaudeError):
    """A Pulumi operation failed; the message carries the end of the engine's output.

    The base of the engine's errors below::

        try:
            d.up()
        except StackLockedError:
            d.cancel()          # a crashed update left its lock; then up() again
        except DeploymentFailedError as exc:
            print(exc.resource, exc.provider_message)
        except EngineError as exc:
            print(exc)
    """


class PulumiNotFoundError(EngineError):
    """The Pulumi CLI is missing or too old for the Automation API.

    ``Deployment(name, install_pulumi=True)`` installs the CLI matching the SDK into
    ``~/.rclaude/pulumi`` instead of raising it::

        Deployment("dev", install_pulumi=True).up()
    """


class StackLockedError(EngineError):
    """Another update holds the stack's lock; ``Deployment.cancel()`` releases a stale one.

    ::

        try:
            d.up()
        except StackLockedError:
            d.cancel()
            d.up()
    """


class StackNotFoundError(EngineError):
    """The stack does not exist in the backend.

    ::

        try:
            d = Deployment.attach("dev")
        except StackNotFoundError:
            d = Deployment("dev")   # a new one; up() creates it
    """


class CredentialsError(EngineError):
    """AWS credentials are missing, invalid or expired.

    ``Deployment("dev").check()`` reports the same before any operation::

        report = Deployment("dev").check()
        report["AWS credentials"].fix   # e.g. "configure credentials: `aws configure`, ..."
    """


class ServiceLinkedRoleError(EngineError):
    """The account has no ECS service-linked role (``AWSServiceRoleForECS``) and these
    credentials may not create it; a cluster with capacity providers cannot be created
    without it. Raised by ``up()`` before the engine runs; ``command`` is the one command
    that creates it (for someone allowed ``iam:CreateServiceLinkedRole``)::

        try:
            Deployment("dev").up()
        except ServiceLinkedRoleError as exc:
            print("ask an administrator to run:", exc.command)
    """

    def __init__(self, message: str, *, command: str) -> None:
        self.command = command
        super().__init__(message)


class MissingCredentialError(RclaudeError):
    """The deployment's sign-in mode needs a Claude credential that was not given.

    Raised before any cloud call: by ``up()`` when neither the argument, the environment
    nor the stack holds it (a stack without it would fail every task at start), and by a
    local prompt task when the environment lacks it. ``env`` names the variable::

        >>> from rclaude_infra import Deployment, TaskSpec
        >>> import os; os.environ.pop("ANTHROPIC_API_KEY", None) and None
        >>> Deployment("dev", provider="local").run_task(TaskSpec(prompt="hi"))
        Traceback (most recent call last):
        ...
        rclaude_infra.errors.MissingCredentialError: auth='api-key' needs ANTHROPIC_API_KEY ...
    """

    def __init__(self, message: str, *, env: str) -> None:
        self.env = env
        super().__init__(message)


class RegionNotEnabledError(EngineError):
    """The AWS region is not enabled for the account (opt-in regions).

    ::

        try:
            Deployment("dev", DeploymentConfig(region="af-south-1")).up()
        except RegionNotEnabledError as exc:
            print(exc)   # enable it under Account > AWS Regions, or choose another
    """


class DeploymentFailedError(EngineError):
    """A resource failed to deploy; ``resource`` and ``provider_message`` say which and why.

    ::

        try:
            d.up()
        except DeploymentFailedError as exc:
            print(exc.resource)          # e.g. "rclaude-dev-asg"
            print(exc.provider_message)  # AWS's own words
    """

    def __init__(self, message: str, *, resource: str | None, provider_message: str) -> None:
        super().__init__(message)
        self.resource = resource
        self.provider_message = provider_message


class DeploymentClosedError(RclaudeError):
    """The deployment takes no new tasks: ``destroy()`` closed it (and is running, or
    failed part way). ``up()`` opens it again::

        try:
            d.run_task(spec)
        except DeploymentClosedError as exc:
            print(exc.reason)   # "the deployment 'dev' is being destroyed"
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ExecError(RclaudeError):
    """An interactive session into a task could not start: the task is not running, or
    ECS Exec refused (the agent in the container is not up yet, or not allowed).

    >>> from rclaude_infra import Deployment, TaskSpec
    >>> task = Deployment("dev", provider="local").run_task(TaskSpec(command="true"))
    >>> task.wait(timeout=60).status.value
    'SUCCEEDED'
    >>> task.exec("bash")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rclaude_infra.errors.ExecError: exec needs a RUNNING task; task t-... is SUCCEEDED
    """


class SessionManagerPluginNotFoundError(ExecError):
    """``Task.exec()`` on ECS needs AWS's ``session-manager-plugin`` on PATH.

    The message carries the install link; it is raised before any call to ECS::

        try:
            task.exec()
        except SessionManagerPluginNotFoundError as exc:
            print(exc)   # ... install it: https://docs.aws.amazon.com/systems-manager/...
    """


class ImageBuildError(RclaudeError):
    """The runner image could not be built in the account (``build_image="remote"``).

    ``build_id`` names the CodeBuild build (``None`` when none started), ``phase`` where it
    failed, and ``log_tail`` the last lines of its log::

        try:
            d.up()
        except ImageBuildError as exc:
            print(exc.phase)              # e.g. "BUILD"
            print("\\n".join(exc.log_tail))  # what docker said
    """

    def __init__(self, message: str, *, build_id: str | None = None, phase: str | None = None,
                 log_tail: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.build_id = build_id
        self.phase = phase
        self.log_tail = log_tail


class ImageNotReadyError(RclaudeError):
    """A task was submitted before the runner image it needs exists in the stack's
    repository (``build_image="remote"``: ``up`` builds it; :meth:`Deployment.ensure_image`
    builds or waits for it). Raised before anything is submitted to ECS::

        try:
            d.run_task(TaskSpec(prompt="Fix the failing tests"))
        except ImageNotReadyError:
            d.ensure_image()     # build it (or wait for the build under way), then retry
    """
