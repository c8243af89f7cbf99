"""The Automation API edge: one stack's workspace, command and lifecycle operations.

Everything ``pulumi.automation`` does for the library goes through :class:`StackSession`:
one persistent work directory per stack, one :class:`PulumiCommand` for all calls, the
stack selected or created once, config sent only when it changed, and every foreign error
translated into the project's error tree.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pulumi import automation as auto
from pulumi.automation import errors as auto_errors
from pulumi.automation._minimum_version import _MINIMUM_VERSION

from ..config import CREDENTIAL_CONFIG, SERVICE_SETTINGS_CONFIG, DeploymentConfig
from ..errors import (
    CredentialsError,
    DeploymentFailedError,
    EngineError,
    MissingCredentialError,
    PulumiNotFoundError,
    RegionNotEnabledError,
    StackLockedError,
    StackNotFoundError,
)
from ..paths import rclaude_home
from ..progress import OnProgress
from ..service_config import SECRETS_KEY_ENV, SETTINGS_SECRET_NAMES
from .events import EventAdapter, changes_by_op

log = logging.getLogger("rclaude_infra.engine")

PROJECT = "rclaude"
#: The stack config keys that hold a Claude credential (secrets), by sign-in mode.
CREDENTIAL_KEYS = {mode: f"{PROJECT}:{key}" for mode, key in CREDENTIAL_CONFIG.items()}
#: The stack config key of the service's settings (``mode="service"``), a secret.
SERVICE_SETTINGS_KEY = f"{PROJECT}:{SERVICE_SETTINGS_CONFIG}"
#: The settings' fingerprint when none are sent: the stack keeps what it holds.
_KEPT = ("kept", True)
CONFIG_ENV = "RCLAUDE_DEPLOYMENT_CONFIG"
#: The oldest CLI the Automation API accepts; the SDK's own floor.
MIN_PULUMI_VERSION = str(_MINIMUM_VERSION)
PULUMI_INSTALL_HINT = (
    "install it with `curl -fsSL https://get.pulumi.com | sh` (or see "
    "https://www.pulumi.com/docs/install/), or pass Deployment(..., install_pulumi=True) to "
    "let the library install the CLI matching its SDK into ~/.rclaude/pulumi"
)
#: The CrossGuard pack, shipped in the package: found from any install.
POLICY_PACK_DIR = Path(__file__).resolve().parent / "crossguard"

_T = TypeVar("_T")

_CREDENTIALS_RE = re.compile(
    r"NoCredentialProviders|no valid credential sources|failed to refresh cached credentials|"
    r"ExpiredToken|InvalidClientTokenId|UnrecognizedClientException|SignatureDoesNotMatch|"
    r"security token included in the request is (?:invalid|expired)",
    re.IGNORECASE,
)
_REGION_RE = re.compile(r"OptInRequired|region .* is not enabled|is not enabled for this account",
                        re.IGNORECASE)


def default_backend() -> str:
    """A local file backend under the user's data directory: no Pulumi Cloud login."""
    return (rclaude_home() / "state").resolve().as_uri()


def passphrase_env(home: Path | None = None) -> dict[str, str]:
    """The passphrase for the default secrets provider, as environment for the CLI.

    ``PULUMI_CONFIG_PASSPHRASE`` or ``PULUMI_CONFIG_PASSPHRASE_FILE`` when the user set one;
    otherwise a passphrase generated once into ``~/.rclaude/passphrase``, readable only
    by the user (0600).
    """
    if os.environ.get("PULUMI_CONFIG_PASSPHRASE") is not None:
        return {}
    if os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
        return {}
    path = (home or rclaude_home()) / "passphrase"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return {"PULUMI_CONFIG_PASSPHRASE_FILE": str(path)}


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def translate(exc: Exception, *, stack: str, adapter: EventAdapter | None = None) -> Exception:
    """A foreign error as the project's error, each saying what to do next."""
    if isinstance(exc, auto_errors.ConcurrentUpdateError):
        return StackLockedError(
            f"stack {stack!r} is locked by another update. If no update is running (a crashed "
            "process left the lock), release it with Deployment.cancel() and try again."
        )
    if isinstance(exc, auto_errors.StackNotFoundError):
        return StackNotFoundError(
            f"stack {stack!r} does not exist in this backend; create it with Deployment.up(), "
            "or check the backend URL (Deployment.list(backend=...) lists what is there)."
        )
    if isinstance(exc, auto_errors.InvalidVersionError):
        return PulumiNotFoundError(
            f"the Pulumi CLI is too old ({exc}); at least {MIN_PULUMI_VERSION} is needed: "
            + PULUMI_INSTALL_HINT
        )
    if isinstance(exc, FileNotFoundError):
        return PulumiNotFoundError(
            f"the Pulumi CLI was not found on PATH (at least {MIN_PULUMI_VERSION} is needed): "
            + PULUMI_INSTALL_HINT
        )
    if isinstance(exc, auto_errors.CommandError):
        text = str(exc)
        if _CREDENTIALS_RE.search(text):
            return CredentialsError(
                "AWS credentials are missing, invalid or expired. Configure them (aws configure, "
                "aws sso login, or AWS_PROFILE / AWS_ACCESS_KEY_ID) and try again.\n" + _tail(text)
            )
        if _REGION_RE.search(text):
            return RegionNotEnabledError(
                "the region is not enabled for this account: enable it in the AWS console "
                "(Account > AWS Regions) or choose another region.\n" + _tail(text)
            )
        if isinstance(exc, auto_errors.InlineSourceRuntimeError):
            return EngineError("the stack's program failed:\n" + _tail(text))
        if adapter is not None and adapter.failures:
            first = adapter.failures[0]
            return DeploymentFailedError(
                f"{first.op} of {first.name} ({first.type}) failed: {first.message}",
                resource=first.name, provider_message=first.message,
            )
        return EngineError("the Pulumi command failed:\n" + _tail(text))
    return exc


class StackSession:
    """One stack of the ``rclaude`` project, in its own persistent work directory."""

    def __init__(
        self,
        name: str,
        config: DeploymentConfig,
        *,
        backend: str | None = None,
        secrets_provider: str | None = None,
        pulumi_home: str | None = None,
        install_pulumi: bool = False,
        api_key: str | None = None,
        oauth_token: str | None = None,
        command: auto.PulumiCommand | None = None,
        home: Path | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.home = home or rclaude_home()
        self.backend = backend or default_backend()
        self.secrets_provider = secrets_provider or "passphrase"
        self.pulumi_home = pulumi_home
        self.install_pulumi = install_pulumi
        self._credentials = {"api-key": api_key, "oauth-token": oauth_token}
        self._command = command
        self._workspace: auto.LocalWorkspace | None = None
        self._stack: auto.Stack | None = None
        self._config_sent: dict[str, Any] | None = None
        self._lock = threading.Lock()
        # One directory per backend and stack: two Deployments never share one.
        digest = _short_hash(self.backend)
        self.work_dir = self.home / "workspaces" / f"{PROJECT}-{name}-{digest}"

    # -- the CLI, the workspace, the stack ---------------------------------------

    def command(self) -> auto.PulumiCommand:
        if self._command is None:
            try:
                if self.install_pulumi:
                    root = str(self.home / "pulumi")
                    self._command = auto.PulumiCommand.install(root=root)
                else:
                    self._command = auto.PulumiCommand()
            except (FileNotFoundError, auto_errors.InvalidVersionError) as exc:
                raise translate(exc, stack=self.name) from exc
        return self._command

    def _env(self) -> dict[str, str]:
        env = {
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            CONFIG_ENV: json.dumps(self.config.to_dict()),
            # The policy pack runs in this interpreter, which has rclaude_infra installed.
            "PULUMI_PYTHON_CMD": sys.executable,
        }
        if self.secrets_provider == "passphrase":
            env.update(passphrase_env(self.home))
        return env

    def workspace(self) -> auto.LocalWorkspace:
        if self._workspace is None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self._workspace = auto.LocalWorkspace(
                work_dir=str(self.work_dir),
                pulumi_home=self.pulumi_home,
                program=_inline_program,
                env_vars=self._env(),
                secrets_provider=self.secrets_provider,
                project_settings=auto.ProjectSettings(
                    name=PROJECT, runtime="python",
                    backend=auto.ProjectBackend(url=self.backend),
                ),
                pulumi_command=self.command(),
            )
        return self._workspace

    def stack(self, *, create: bool = True) -> auto.Stack:
        """The stack, selected (or created) once per session."""
        if self._stack is None:
            workspace = self.workspace()
            if create:
                self._stack = self._call(lambda: auto.Stack.create_or_select(self.name, workspace))
            else:
                self._stack = self._call(lambda: auto.Stack.select(self.name, workspace))
        return self._stack

    def credential(self) -> str | None:
        """The Claude credential the config's sign-in mode needs, as given or from the
        environment (``ANTHROPIC_API_KEY``, ``CLAUDE_CODE_OAUTH_TOKEN``); ``None`` when the
        mode needs none or none was given."""
        mode, env = self.config.auth, self.config.credential_env
        if env is None:
            return None
        return self._credentials.get(mode) or os.environ.get(env) or None

    def stored_credential(self) -> bool:
        """Whether the existing stack already holds the mode's credential (an earlier ``up``
        stored it); ``False`` when there is no such stack yet."""
        key = CREDENTIAL_KEYS.get(self.config.auth)
        if key is None:
            return False
        try:
            stack = self.stack(create=False)
        except StackNotFoundError:
            return False
        return key in self._call(stack.get_all_config)

    def require_credential(self) -> None:
        """Refuse, before any resource is touched, a stack whose tasks could not sign in."""
        env = self.config.credential_env
        if env is None or self.credential() is not None or self.stored_credential():
            return
        param = "api_key" if self.config.auth == "api-key" else "oauth_token"
        raise MissingCredentialError(
            f"auth={self.config.auth!r} needs {env}: export it, or pass Deployment(..., "
            f"{param}=...); the stack holds none yet, and without it every task would fail "
            "at start" + (" (a Claude subscription token comes from `claude setup-token`)"
                          if self.config.auth == "oauth-token" else "")
            + ". auth='bedrock' needs no key.", env=env)

    def service_settings(self) -> str | None:
        """With ``mode="service"``: the service's settings from the environment (the names
        of ``SETTINGS_SECRET_NAMES`` that are set) as the settings secret's JSON; ``None``
        when ``RCLAUDE_SECRETS_KEY`` is not set (the stack keeps what it holds)."""
        if self.config.mode != "service" or not os.environ.get(SECRETS_KEY_ENV):
            return None
        return json.dumps({name: os.environ[name] for name in SETTINGS_SECRET_NAMES
                           if os.environ.get(name)}, sort_keys=True)

    def require_service_settings(self) -> None:
        """Refuse, before any resource is touched, a service stack with no secrets' key:
        its service could not start (the key seals its users' secrets)."""
        if self.config.mode != "service" or self.service_settings() is not None:
            return
        try:
            stack = self.stack(create=False)
        except StackNotFoundError:
            stack = None
        if stack is not None and SERVICE_SETTINGS_KEY in self._call(stack.get_all_config):
            return
        raise MissingCredentialError(
            f"mode='service' needs {SECRETS_KEY_ENV} (a Fernet key: python -c 'from "
            "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'): "
            "export it with the sign-in and Stripe variables the service should have; up "
            "keeps them in the stack's settings secret. The stack holds none yet.",
            env=SECRETS_KEY_ENV)

    def _desired_config(self) -> dict[str, auto.ConfigValue]:
        return {
            key: auto.ConfigValue(value=value)
            for key, value in self.config.to_stack_config().items()
        }

    def _sync_config(self) -> auto.Stack:
        stack = self.stack()
        desired = self._desired_config()
        credential = self.credential()
        fingerprint = {k: (v.value, v.secret) for k, v in desired.items()}
        fingerprint["credential"] = (_short_hash(credential or ""), True)
        settings = self.service_settings()
        fingerprint["service_settings"] = (_short_hash(settings), True) if settings else _KEPT
        if fingerprint != self._config_sent:
            self._call(lambda: stack.set_all_config(desired))
            if credential:
                self._set_secret(CREDENTIAL_KEYS[self.config.auth], credential)
            if settings:
                self._set_secret(SERVICE_SETTINGS_KEY, settings)
            self._config_sent = fingerprint
        return stack

    def _set_secret(self, key: str, value: str) -> None:
        """``pulumi config set --secret KEY`` with the value on standard input, so it is in
        no process's arguments (the Automation API passes values as arguments, which any
        user of the machine can read in the process list while the command runs)."""
        env = {**os.environ, **self._env()}
        if self.pulumi_home:
            env["PULUMI_HOME"] = self.pulumi_home
        args = [self.command().command, "config", "set", "--secret", "--non-interactive",
                "--stack", self.name, key]
        try:
            done = subprocess.run(args, input=value, cwd=self.work_dir, env=env,
                                  capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as exc:
            raise EngineError(f"pulumi config set --secret {key} could not run: {exc}") from exc
        if done.returncode != 0:
            error = auto_errors.create_command_error(
                auto.CommandResult(stdout=done.stdout, stderr=done.stderr, code=done.returncode))
            raise translate(error, stack=self.name) from error

    def _call(self, fn: Callable[[], _T], adapter: EventAdapter | None = None) -> _T:
        try:
            return fn()
        except (auto_errors.CommandError, auto_errors.InvalidVersionError,
                FileNotFoundError) as exc:
            raise translate(exc, stack=self.name, adapter=adapter) from exc

    # -- operations ------------------------------------------------------------------

    def _policy_packs(self) -> list[str]:
        if not (POLICY_PACK_DIR / "PulumiPolicy.yaml").is_file():
            # Never deploy without the rules the offline checks promised.
            raise EngineError(f"the CrossGuard policy pack is missing from {POLICY_PACK_DIR}: "
                              "reinstall rclaude-infra")
        return [str(POLICY_PACK_DIR)]

    def _operate(self, operation: str, on_progress: OnProgress | None,
                 **options: Any) -> tuple[Any, EventAdapter]:
        """Run ``stack.<operation>`` with the current config, events and logging."""
        with self._lock:
            stack = self._sync_config()
            adapter = EventAdapter(on_progress)
            method = getattr(stack, operation)
            result = self._call(lambda: method(on_event=adapter, on_output=_log_line,
                                               on_error=_log_line, color="never", **options),
                                adapter)
            return result, adapter

    def up(self, on_progress: OnProgress | None = None) -> dict[str, Any]:
        """Deploy; returns the stack outputs (plain values, secrets unwrapped). Refuses
        first when the sign-in mode's credential is neither given nor stored."""
        self.require_credential()
        self.require_service_settings()
        result, _ = self._operate("up", on_progress, policy_packs=self._policy_packs())
        return _plain_outputs(result.outputs)

    def preview(self, on_progress: OnProgress | None = None) -> dict[str, int]:
        """What an ``up`` would change: counts by operation."""
        result, _ = self._operate("preview", on_progress, policy_packs=self._policy_packs())
        return changes_by_op(result.change_summary)

    def refresh(self, on_progress: OnProgress | None = None) -> dict[str, int]:
        result, adapter = self._operate("refresh", on_progress)
        # This operation's own summary event; the history entry is the fallback.
        if adapter.summary is not None:
            return dict(adapter.summary.changes)
        return changes_by_op(result.summary.resource_changes)

    def destroy(self, *, remove: bool = False, on_progress: OnProgress | None = None) -> None:
        with self._lock:
            stack = self.stack(create=False)
            adapter = EventAdapter(on_progress)
            self._call(lambda: stack.destroy(
                on_event=adapter, on_output=_log_line, on_error=_log_line, color="never",
            ), adapter)
            if remove:
                workspace = self.workspace()
                self._call(lambda: workspace.remove_stack(self.name))
                self._stack = None
                self._config_sent = None

    def outputs(self) -> dict[str, Any]:
        with self._lock:
            stack = self.stack(create=False)
            return _plain_outputs(self._call(stack.outputs))

    def managed_ids(self) -> set[str]:
        """The ids and ARNs of every resource the stack's state holds (``pulumi stack
        export``): what a leak sweep must leave alone. StackNotFoundError without a stack."""
        with self._lock:
            stack = self.stack(create=False)
            exported = self._call(stack.export_stack)
        found: set[str] = set()
        for resource in (exported.deployment or {}).get("resources", []):
            for value in (resource.get("id"), (resource.get("outputs") or {}).get("arn")):
                if isinstance(value, str) and value:
                    found.add(value)
        return found

    def cancel(self) -> None:
        """Release the lock a crashed update left (``pulumi cancel``)."""
        with self._lock:
            stack = self.stack(create=False)
            self._call(stack.cancel)

    def stored_config(self) -> DeploymentConfig:
        """The DeploymentConfig kept in an existing stack's ``rclaude:*`` config."""
        with self._lock:
            stack = self.stack(create=False)
            values = self._call(stack.get_all_config)
        prefix = f"{PROJECT}:"
        fields = {
            key[len(prefix):]: value.value for key, value in values.items()
            if key.startswith(prefix) and key not in CREDENTIAL_KEYS.values()
            and key != SERVICE_SETTINGS_KEY
        }
        config = DeploymentConfig.from_stack_config(fields)
        self.config = config
        workspace = self.workspace()
        workspace.env_vars = {**workspace.env_vars, **self._env()}  # the policy pack's view
        # What the stack holds is what a later up would send: no set-all needed (and the
        # credential it holds stays, unless one is given).
        self._config_sent = {k: (v.value, v.secret) for k, v in values.items()
                             if k not in CREDENTIAL_KEYS.values() and k != SERVICE_SETTINGS_KEY}
        held = values.get(CREDENTIAL_KEYS.get(config.auth) or "")
        self._config_sent["credential"] = (_short_hash(held.value if held else ""), True)
        self._config_sent["service_settings"] = _KEPT
        return config

    def list_stacks(self) -> list[auto.StackSummary]:
        workspace = self.workspace()
        return self._call(workspace.list_stacks)


def _inline_program() -> None:
    from .program import program_from_stack_config

    program_from_stack_config()


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _log_line(line: str) -> None:
    # The engine's own output goes to logging, never to stdout.
    log.info("%s", line)


def _plain_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: getattr(value, "value", value) for key, value in outputs.items()}


def pulumi_cli_version(command: auto.PulumiCommand | None = None) -> str | None:
    """The CLI version, or ``None`` when no Pulumi CLI is on PATH."""
    if command is not None:
        return str(command.version) if command.version else None
    if shutil.which("pulumi") is None:
        return None
    try:
        return str(auto.PulumiCommand(skip_version_check=True).version)
    except (OSError, auto_errors.InvalidVersionError, ValueError):
        return None
