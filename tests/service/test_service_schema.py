"""schemathesis over the started service's ``/openapi.json``: generated input to every
route (but those that start tasks: generated commands are not run on this machine) is
answered with a documented status, never a 500. On SQLite (the API is the same on
PostgreSQL; the other tests run on both). schemathesis's pytest plugin does not load
under pytest 9, so its strategies drive hypothesis directly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, status_code_conformance

from conftest import admin, new_app, started

#: Routes that start tasks (a generated body would run a generated command here), and
#: the revocation of tokens (it would revoke the one the requests carry).
NOT_FUZZED = [("POST", re.compile(r"^/v1/tasks$")), ("POST", re.compile(r"/follow-up$")),
              ("DELETE", re.compile(r"^/v1/tokens/"))]


def test_every_route_answers_generated_input_with_a_documented_status(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RCLAUDE_DATABASE_URL", f"sqlite:///{tmp_path / 'service.db'}")
    with started(new_app(100_000)) as url:
        admin("users", "add", "fuzz@example.com")
        token = admin("tokens", "create", "fuzz@example.com").strip()
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        tried = []
        for found in schema.get_all_operations():
            operation = found.ok()
            if any(operation.method.upper() == method and pattern.search(operation.path)
                   for method, pattern in NOT_FUZZED):
                continue
            tried.append(f"{operation.method.upper()} {operation.path}")

            @given(case=operation.as_strategy())
            @settings(max_examples=25, deadline=None,
                      suppress_health_check=list(HealthCheck))
            def fuzz(case: Any) -> None:
                case.call_and_validate(
                    base_url=url, headers={"Authorization": f"Bearer {token}"},
                    checks=[not_a_server_error, status_code_conformance])

            fuzz()
    assert "GET /v1/tasks/{task_id}" in tried and len(tried) >= 12
