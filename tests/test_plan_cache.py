"""The CLI's plan cache: a hit is the plan the program gives, read without Pulumi."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rclaude_infra import Deployment, DeploymentConfig, Plan, PriceBook, estimate_cost, plan


def cli(args: list[str], cache: Path, *, poison: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RCLAUDE_PLAN_CACHE": str(cache), "COLUMNS": "200"}
    if poison is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(poison),
                                                          env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "rclaude_infra", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=cache.parent)


def poisoned(tmp_path: Path) -> Path:
    """A ``pulumi`` that fails when imported, first on the path."""
    folder = tmp_path / "poison"
    (folder / "pulumi").mkdir(parents=True, exist_ok=True)
    (folder / "pulumi" / "__init__.py").write_text(
        "raise ImportError('pulumi was imported: the plan did not come from the cache')\n")
    return folder


def cached(cache: Path, monkeypatch: pytest.MonkeyPatch, config: DeploymentConfig) -> Plan:
    """The plan of ``config``, computed in this process (Pulumi already loaded) into the
    cache ``cache`` that the CLI's processes will read."""
    monkeypatch.setenv("RCLAUDE_PLAN_CACHE", str(cache))
    return plan(config, cache=True)


def test_a_second_cost_reads_the_plan_without_running_the_program(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "plans"
    computed = cached(cache, monkeypatch, DeploymentConfig())
    assert len(list(cache.glob("*.json"))) == 1
    again = cli(["cost", "--json"], cache, poison=poisoned(tmp_path))
    assert again.returncode == 0, again.stderr
    shown = json.loads(again.stdout)
    assert shown["plan"] == computed.to_dict()
    assert shown["cost"] == json.loads(estimate_cost(computed, DeploymentConfig().usage,
                                                     PriceBook.snapshot()).to_json())
    # plan --json reads the same entry.
    listed = cli(["plan", "--json"], cache, poison=poisoned(tmp_path))
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == shown["plan"]


def test_up_refuses_over_budget_from_the_cached_plan(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """up's guards read the plan the CLI cached: the refusal needs no program run."""
    cache = tmp_path / "plans"
    # 5.0: the flag's value is a float, and the key is the config as written.
    cached(cache, monkeypatch, DeploymentConfig(nat="single", max_monthly_usd=5.0))
    refused = cli(["up", "--yes", "--nat", "single", "--max-monthly-usd", "5"], cache,
                  poison=poisoned(tmp_path))
    assert refused.returncode == 1
    assert "over max_monthly_usd $5.00" in refused.stderr
    assert "pulumi" not in refused.stderr.lower()


def test_a_deployment_caches_its_plan_only_when_asked(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCLAUDE_PLAN_CACHE", str(tmp_path))
    config = DeploymentConfig(nat="per-az")
    Deployment("dev", config).plan()
    assert list(tmp_path.glob("*.json")) == []
    stored = Deployment("dev", config, plan_cache=True).plan()
    [entry] = tmp_path.glob("*.json")
    # Mark the entry: a Deployment that reads the cache returns the mark.
    entry.write_text(entry.read_text().replace('"rclaude-dev-cluster"', '"marked-cluster"'))
    read = Deployment("dev", config, plan_cache=True).plan()
    assert read.one("aws:ecs:Cluster").name == "marked-cluster"
    assert stored.one("aws:ecs:Cluster").name == "rclaude-dev-cluster"


def test_another_config_runs_the_program(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "plans"
    cached(cache, monkeypatch, DeploymentConfig())
    assert cli(["plan", "--json"], cache, poison=poisoned(tmp_path)).returncode == 0
    other = cli(["plan", "--json", "--nat", "single"], cache, poison=poisoned(tmp_path))
    # The program needed pulumi, and got the poisoned one.
    assert other.returncode != 0
    assert "needs the 'pulumi' package" in other.stderr


def test_an_unreadable_entry_is_computed_again(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "plans"
    cached(cache, monkeypatch, DeploymentConfig())
    [entry] = cache.glob("*.json")
    entry.write_text("{not json")
    again = cli(["plan", "--json"], cache)
    assert again.returncode == 0, again.stderr
    assert json.loads(entry.read_text())["plan"] == json.loads(again.stdout)


def test_a_cached_plan_equals_the_computed_one(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from rclaude_infra._pulumi import plan_cache

    monkeypatch.setenv("RCLAUDE_PLAN_CACHE", str(tmp_path))
    config = DeploymentConfig(security_profile="strict", nat="single")
    computed = plan(config, cache=True)
    # What a later process reads: the stored file, not this process's object.
    cached = plan_cache.load(plan_cache.cache_key("dev", config, with_api_key=False))
    assert cached is not None
    assert cached == computed and cached is not computed
    assert [r.inputs for r in cached] == [r.inputs for r in computed]
    assert [r.state for r in cached] == [r.state for r in computed]
    assert cached.outputs == computed.outputs
    # What reads states (the Terraform plan's references, the bucket events' cost) agrees.
    assert cached.to_terraform() == computed.to_terraform()


def test_the_cache_keeps_the_plans_used_last(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from rclaude_infra._pulumi import plan_cache

    def key(nat: str) -> str:
        return plan_cache.cache_key("dev", DeploymentConfig(nat=nat), with_api_key=False)

    monkeypatch.setenv("RCLAUDE_PLAN_CACHE", str(tmp_path))
    monkeypatch.setattr(plan_cache, "KEEP", 2)
    for nat in ("none", "single"):
        plan(DeploymentConfig(nat=nat), cache=True)
    assert plan(DeploymentConfig(nat="none"), cache=True)  # a hit: "none" is used again
    plan(DeploymentConfig(nat="per-az"), cache=True)
    assert len(list(tmp_path.glob("*.json"))) == 2
    # The first written stays, being used since; the one not used since went.
    assert plan_cache.load(key("none")) is not None
    assert plan_cache.load(key("single")) is None


def test_configs_equal_as_values_share_one_entry(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``Usage(tasks_per_day=5)`` from Python and ``--tasks-per-day 5`` (a float, 5.0) are
    the same config: the CLI's process reads the plan the other computed (the poisoned
    pulumi is never imported)."""
    from rclaude_infra import Usage

    cache = tmp_path / "plans"
    cached(cache, monkeypatch, DeploymentConfig(usage=Usage(tasks_per_day=5),
                                                max_monthly_usd=500))
    hit = cli(["cost", "--json", "--tasks-per-day", "5", "--max-monthly-usd", "500"], cache,
              poison=poisoned(tmp_path))
    assert hit.returncode == 0, hit.stderr
