"""Live prices: the AWS Price List Query API for on-demand, EC2 spot price history for spot.

boto3 and botocore are imported inside the functions, so importing this module is cheap.
Results are cached on disk with their fetch time.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import PriceNotFoundError, PricingUnavailableError
from ..paths import rclaude_home
from ..prices import PriceBook
from . import client_config

#: The Price List Query API answers in these regions only; us-east-1 serves every region.
PRICING_API_REGION = "us-east-1"
DEFAULT_MAX_AGE = dt.timedelta(hours=24)


def default_cache_dir() -> Path:
    """``$RCLAUDE_HOME/cache``, by default ``~/.rclaude/cache``."""
    return rclaude_home() / "cache"


def _translate(exc: Exception, what: str) -> PricingUnavailableError:
    return PricingUnavailableError(
        f"could not fetch {what}: {exc}. Check AWS credentials and that they allow "
        "pricing:GetProducts and ec2:DescribeSpotPriceHistory, or use PriceBook.snapshot()"
    )


def on_demand_prices(client: Any, region: str, instance_types: Iterable[str]) -> dict[str, float]:
    """Linux, shared-tenancy on-demand $/hour per type from ``pricing.get_products``."""
    from botocore.exceptions import BotoCoreError, ClientError

    found: dict[str, float] = {}
    for instance_type in instance_types:
        filters = [
            {"Type": "TERM_MATCH", "Field": field, "Value": value}
            for field, value in (
                ("instanceType", instance_type), ("regionCode", region),
                ("operatingSystem", "Linux"), ("tenancy", "Shared"),
                ("preInstalledSw", "NA"), ("capacitystatus", "Used"),
            )
        ]
        try:
            pages = client.get_paginator("get_products").paginate(
                ServiceCode="AmazonEC2", Filters=filters, FormatVersion="aws_v1"
            )
            documents = [json.loads(item) for page in pages for item in page["PriceList"]]
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"on-demand prices for {instance_type} in {region}") from exc
        price = _on_demand_from_documents(documents)
        if price is None:
            raise PriceNotFoundError(
                f"the Price List API has no Linux on-demand price for {instance_type} in {region}"
            )
        found[instance_type] = price
    return found


def _on_demand_from_documents(documents: list[dict[str, Any]]) -> float | None:
    """The hourly USD price in Price List product documents (BoxUsage rows first)."""
    candidates: list[tuple[int, float]] = []
    for document in documents:
        attributes = document.get("product", {}).get("attributes", {})
        usage_type = attributes.get("usagetype", "")
        preference = 0 if "BoxUsage" in usage_type else 1
        for term in document.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = dimension.get("pricePerUnit", {}).get("USD")
                if dimension.get("unit") == "Hrs" and usd is not None and float(usd) > 0:
                    candidates.append((preference, float(usd)))
    return min(candidates)[1] if candidates else None


def spot_prices(
    client: Any,
    instance_types: Iterable[str],
    *,
    availability_zones: Iterable[str] | None = None,
    lookback: dt.timedelta = dt.timedelta(hours=24),
    now: dt.datetime | None = None,
) -> dict[str, float]:
    """Median Linux spot $/hour per type over ``lookback``, across the given AZs."""
    from botocore.exceptions import BotoCoreError, ClientError

    types = list(instance_types)
    zones = set(availability_zones or ())
    start = (now or dt.datetime.now(dt.UTC)) - lookback
    samples: dict[str, list[float]] = {t: [] for t in types}
    try:
        pages = client.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=types, ProductDescriptions=["Linux/UNIX"], StartTime=start
        )
        for page in pages:
            for point in page["SpotPriceHistory"]:
                if zones and point.get("AvailabilityZone") not in zones:
                    continue
                if point["InstanceType"] in samples:
                    samples[point["InstanceType"]].append(float(point["SpotPrice"]))
    except (ClientError, BotoCoreError) as exc:
        raise _translate(exc, "spot price history") from exc
    return {t: statistics.median(values) for t, values in samples.items() if values}


def live_prices(
    session: Any,
    region: str,
    instance_types: Iterable[str],
    *,
    availability_zones: Iterable[str] | None = None,
    other_rates_from: str | None = None,
    cache_dir: Path | None = None,
    max_age: dt.timedelta = DEFAULT_MAX_AGE,
    pricing_client: Any = None,
    ec2_client: Any = None,
) -> PriceBook:
    """A :class:`PriceBook` with live on-demand and spot prices for ``instance_types``.

    ``session`` is a ``boto3.Session`` (a default one when ``None``).

    On-demand prices come from the Price List Query API, spot prices are the median of
    the last day's ``DescribeSpotPriceHistory`` over ``availability_zones`` (all when
    not given); other services' prices come from the snapshot. Results are cached in
    ``cache_dir`` (default ``~/.rclaude/cache``) and reused while younger than ``max_age``.
    A type with no spot history keeps the labelled discount assumption.

    With credentials (the CLI's ``cost --live``)::

        import boto3
        from rclaude_infra import estimate_cost, live_prices, plan
        prices = live_prices(boto3.Session(), "us-east-1", ["t3.medium", "t3a.medium"])
        prices.instance_hour("t3a.medium", spot=True)   # from the spot price history
        estimate_cost(plan(), prices=prices)
    """
    types = sorted(set(instance_types))
    cache = (cache_dir or default_cache_dir()) / f"prices-{region}.json"
    now = dt.datetime.now(dt.UTC)
    cached = _read_cache(cache, now - max_age)
    if cached is not None and set(types) <= set(cached["on_demand"]):
        on_demand, spot, fetched_at = cached["on_demand"], cached["spot"], cached["fetched_at"]
    else:
        config = client_config()
        if session is None:
            import boto3

            session = boto3.Session()
        pricing = pricing_client or session.client(
            "pricing", region_name=PRICING_API_REGION, config=config
        )
        ec2 = ec2_client or session.client("ec2", region_name=region, config=config)
        on_demand = on_demand_prices(pricing, region, types)
        spot = spot_prices(ec2, types, availability_zones=availability_zones, now=now)
        fetched_at = now.isoformat(timespec="seconds")
        _write_cache(cache, {"fetched_at": fetched_at, "on_demand": on_demand, "spot": spot})

    try:
        other = PriceBook.snapshot(region, other_rates_from=other_rates_from).other
    except PriceNotFoundError:
        # Not in the snapshot at all: instance prices are live, the rest will say so.
        other = {}
    return PriceBook(
        region=region,
        on_demand=on_demand,
        spot=spot,
        other=other,
        on_demand_source=f"AWS Price List Query API (GetProducts), fetched {fetched_at}",
        spot_source=f"EC2 DescribeSpotPriceHistory, median of the last day, fetched {fetched_at}",
        fetched_at=fetched_at,
    )


def _read_cache(path: Path, oldest: dt.datetime) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        if dt.datetime.fromisoformat(data["fetched_at"]) >= oldest:
            return data
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)
