"""DeploymentConfig: every field validated at construction, with errors naming the field."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rclaude_infra import ConfigError, DeploymentConfig, validate_name
from rclaude_infra.config import LOG_RETENTION_DAYS, MAX_NAME_LENGTH, known_regions
from rclaude_infra.instance_types import instance_types


def test_defaults_are_the_cheap_safe_layout() -> None:
    cfg = DeploymentConfig()
    assert cfg.region == "us-east-1"
    assert cfg.spot is True
    assert cfg.min_instances == 0
    assert cfg.nat == "none"
    assert cfg.build_image is True and cfg.image is None
    assert cfg.arch == "x86_64"


def test_config_is_frozen_hashable_and_evolvable() -> None:
    cfg = DeploymentConfig(tags={"team": "ml"})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.region = "eu-west-1"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.tags["team"] = "x"  # type: ignore[index]
    assert hash(cfg) == hash(DeploymentConfig(tags={"team": "ml"}))
    assert attrs.evolve(cfg, spot=False).spot is False


def test_lists_are_accepted_where_tuples_are_wanted() -> None:
    cfg = DeploymentConfig(instance_types=["c6g.large", "m6g.large"])
    assert cfg.instance_types == ("c6g.large", "m6g.large")
    assert cfg.arch == "arm64"


REFUSED: list[tuple[dict[str, Any], str, str]] = [
    ({"region": "us-east-7"}, "region", "AWS region"),
    ({"region": "US-EAST-1"}, "region", "AWS region"),
    ({"instance_types": ("t3medium",)}, "instance_types", "family.size"),
    ({"instance_types": ("T3.medium",)}, "instance_types", "family.size"),
    ({"instance_types": ("t3.mega",)}, "instance_types", "families"),
    ({"instance_types": ()}, "instance_types", "non-empty"),
    ({"instance_types": ("t3.medium", "t3.medium")}, "instance_types", "distinct"),
    ({"instance_types": ("t3.medium", "t4g.medium")}, "instance_types", "one CPU architecture"),
    ({"instance_types": "t3.medium"}, "instance_types", "list"),
    ({"min_instances": 3, "max_instances": 2}, "max_instances", "min_instances (3)"),
    ({"on_demand_base": 5, "max_instances": 4}, "on_demand_base", "max_instances (4)"),
    ({"max_instances": 0}, "max_instances", "from 1 to 1000"),
    ({"max_instances": True}, "max_instances", "integer"),
    ({"max_instances": "4"}, "max_instances", "integer"),
    ({"az_count": 7}, "az_count", "from 1 to 6"),
    ({"nat": "double"}, "nat", "'none', 'single', 'per-az'"),
    ({"log_retention_days": 2}, "log_retention_days", "365"),
    ({"log_retention_days": 0}, "log_retention_days", "3653"),
    ({"root_volume_gb": 20}, "root_volume_gb", "from 30"),
    ({"results_expire_days": 0}, "results_expire_days", "from 1"),
    ({"task_memory": 16384}, "task_cpu/task_memory", "t3.medium"),
    ({"task_cpu": 4096}, "task_cpu/task_memory", "a size one of the instance types can hold"),
    ({"vpc_id": "vpc-0123abcd"}, "subnet_ids", "together with vpc_id"),
    ({"subnet_ids": ("subnet-0123abcd",)}, "subnet_ids", "together with vpc_id"),
    ({"vpc_id": "vpc-xyz", "subnet_ids": ("subnet-0123abcd",)}, "vpc_id", "vpc-0123abcd"),
    ({"vpc_id": "vpc-0123abcd", "subnet_ids": ("sub-1",)}, "subnet_ids", "subnet-0123abcd"),
    ({"vpc_id": "vpc-0123abcd", "subnet_ids": ("subnet-0123abcd",), "nat": "single"},
     "nat", "existing vpc_id"),
    ({"image": "nginx:1", "build_image": True}, "build_image", "false when image"),
    ({"build_image": False}, "image", "an image reference"),
    ({"image": "Not An Image!"}, "image", "container image reference"),
    ({"egress_ports": ()}, "egress_ports", "non-empty"),
    ({"egress_ports": (443, 70000)}, "egress_ports", "65535"),
    ({"tags": {"aws:owner": "me"}}, "tags['aws:owner']", "reserved"),
    ({"tags": {"rclaude:deployment": "x"}}, "tags['rclaude:deployment']", "reserved"),
    ({"tags": {"team": "a" * 257}}, "tags['team']", "256"),
    ({"tags": {"team": "no;semicolons"}}, "tags['team']", "letters"),
    ({"tags": ["team"]}, "tags", "mapping"),
    ({"spot": "yes"}, "spot", "true or false"),
]


@pytest.mark.parametrize(("fields", "field", "hint"), REFUSED)
def test_invalid_values_raise_config_error_naming_the_field(
    fields: dict[str, Any], field: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as info:
        DeploymentConfig(**fields)
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith(f"{field}: got ")
    assert hint in message
    assert isinstance(info.value, ValueError)


def test_task_fit_uses_memory_ecs_can_give_tasks() -> None:
    # t3.medium has 4096 MiB but ECS cannot hand all of it to tasks.
    t3 = instance_types()["t3.medium"]
    assert t3.task_memory_mib < 4096
    DeploymentConfig(instance_types=("t3.medium",), task_memory=t3.task_memory_mib)
    with pytest.raises(ConfigError, match="task_cpu/task_memory"):
        DeploymentConfig(instance_types=("t3.medium",), task_memory=4096)
    # One type that fits is enough.
    DeploymentConfig(instance_types=("t3.medium", "m5.large"), task_memory=6000)


def test_regions_come_from_botocore_data_offline() -> None:
    regions = known_regions()
    assert {"us-east-1", "eu-west-1", "ap-northeast-1", "cn-north-1"} <= regions
    DeploymentConfig(region="ap-northeast-1")


@pytest.mark.parametrize("name", ["dev", "a", "team-ml-2", "x" * MAX_NAME_LENGTH])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Dev", "1dev", "-dev", "dev-", "de--v", "dev_1", "dev.x", "x" * (MAX_NAME_LENGTH + 1),
     None, 3],
)
def test_invalid_names(name: Any) -> None:
    with pytest.raises(ConfigError) as info:
        validate_name(name)
    assert info.value.field == "name"
    assert "S3 bucket" in str(info.value)


def test_longest_name_fits_s3_and_iam_limits(plan_for: Any) -> None:
    """The longest allowed name still gives names within AWS's limits."""
    name = "n" * MAX_NAME_LENGTH
    p = plan_for(name=name, image="nginx:1", build_image=False)
    bucket = p.outputs["bucket"]
    assert len(bucket) <= 63
    for role in p.by_type("aws:iam:Role"):
        # Pulumi autonaming appends '-' and 7 characters.
        assert len(role.name) + 8 <= 64, role.name


def test_from_mapping_refuses_unknown_keys() -> None:
    with pytest.raises(ConfigError) as info:
        DeploymentConfig.from_mapping({"regoin": "us-east-1"})
    assert info.value.field == "regoin"
    assert "region" in info.value.allowed


def test_dict_and_stack_config_round_trip() -> None:
    cfg = DeploymentConfig(
        region="eu-west-1", instance_types=("m6g.large",), spot=False, nat="per-az",
        az_count=3, tags={"team": "ml"}, egress_ports=(443, 22),
    )
    assert DeploymentConfig.from_mapping(json.loads(json.dumps(cfg.to_dict()))) == cfg
    stack = cfg.to_stack_config()
    assert stack["rclaude:region"] == "eu-west-1"
    assert stack["rclaude:spot"] == "false"
    values = {key.split(":", 1)[1]: value for key, value in stack.items()}
    assert DeploymentConfig.from_stack_config(values) == cfg


# -- property: every input builds a valid config or raises ConfigError -----------------

_anything = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 5000), st.text(max_size=12),
    st.lists(st.text(max_size=12), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                 st.text(max_size=5), max_size=2),
)
_plausible = {
    "region": st.sampled_from(["us-east-1", "eu-west-1", "mars-1", ""]),
    "instance_types": st.lists(
        st.sampled_from([*list(instance_types())[:12], "t3.mega", "bad", ""]), max_size=3
    ),
    "spot": st.booleans(),
    "on_demand_base": st.integers(-1, 6),
    "min_instances": st.integers(-1, 6),
    "max_instances": st.integers(-1, 6),
    "az_count": st.integers(0, 7),
    "nat": st.sampled_from(["none", "single", "per-az", "all"]),
    "vpc_id": st.sampled_from([None, "vpc-0123abcd", "vpc-"]),
    "subnet_ids": st.lists(st.sampled_from(["subnet-0123abcd", "subnet-4567cdef", "x"]),
                           max_size=2),
    "log_retention_days": st.sampled_from([*LOG_RETENTION_DAYS[:5], 2, 0]),
    "task_cpu": st.integers(0, 20000),
    "task_memory": st.integers(0, 70000),
    "image": st.sampled_from([None, "nginx:1", "bad image"]),
    "build_image": st.booleans(),
    "tags": st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2),
}
_field_names = [a.name for a in attrs.fields(DeploymentConfig)]


@settings(max_examples=400, deadline=None)
@given(
    plausible=st.fixed_dictionaries({}, optional=_plausible),
    wild=st.dictionaries(st.sampled_from(_field_names), _anything, max_size=3),
)
def test_every_input_builds_a_valid_config_or_raises_config_error(
    plausible: dict[str, Any], wild: dict[str, Any]
) -> None:
    fields = {**plausible, **wild}
    try:
        cfg = DeploymentConfig(**fields)
    except ConfigError as exc:
        assert exc.field.split("[")[0].split("/")[0].split(".")[0] in _field_names
        return
    # What was built is really valid: rebuilding it from its own data succeeds.
    assert DeploymentConfig.from_mapping(cfg.to_dict()) == cfg
    assert cfg.min_instances <= cfg.max_instances
    assert cfg.on_demand_base <= cfg.max_instances
    assert len({t.arch for t in cfg.instance_specs}) == 1
