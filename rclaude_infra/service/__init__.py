"""The hosted service: accounts, API tokens and a task API over HTTP, in front of a
:class:`~rclaude_infra.Deployment` it holds (``pip install rclaude-infra[service]``).

``rclaude-infra serve`` starts it on an embedded default (SQLite under ``RCLAUDE_HOME``,
tasks on the local provider); ``RCLAUDE_DATABASE_URL`` points it at PostgreSQL and
``--deployment`` / ``--config`` at an ECS deployment. Nothing here is imported by
``import rclaude_infra``.
"""

from __future__ import annotations

from .app import create_app
from .billing_settings import StripeSettings
from .plans import Limits, Plan, PlanBook
from .settings import ServiceSettings

__all__ = ["Limits", "Plan", "PlanBook", "ServiceSettings", "StripeSettings", "create_app"]
