"""Prices: a snapshot shipped in the package, or live ones fetched from AWS.

Every price carries its source. A price the book does not have is an error naming
what is missing, never a guess; the one assumption the library makes, the spot
discount when no live spot price is known, is labelled as such wherever it is used.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import PriceNotFoundError

HOURS_PER_MONTH = 730

#: Median spot saving against on-demand over the 405 type/region pairs of the shipped
#: instance table (AWS Spot Instance Advisor data, snapshot of 2025-06-28; range 33-79 %).
DEFAULT_SPOT_DISCOUNT = 0.60
SPOT_DISCOUNT_SOURCE = (
    "assumed: spot = on-demand x (1 - 0.60), the median saving of AWS Spot Instance Advisor "
    "data (snapshot 2025-06-28, alexei-led/spotinfo) over the shipped instance types; "
    "pass live prices for real spot prices"
)


@attrs.frozen(kw_only=True)
class Price:
    """One unit price in USD, with where it comes from.

    >>> from rclaude_infra import PriceBook
    >>> price = PriceBook.snapshot("us-east-1").instance_hour("t3.medium", spot=False)
    >>> price.usd, price.unit, price.assumed
    (0.0416, 'instance-hour', False)
    """

    usd: float
    unit: str
    source: str
    #: True when the price is an assumption (e.g. a spot discount), not a quote.
    assumed: bool = False


def _data(name: str) -> str:
    with open(os.path.join(os.path.dirname(__file__), "data", name)) as f:
        return f.read()


def _rows(name: str) -> list[dict[str, str]]:
    text = _data(name)
    return list(csv.DictReader(io.StringIO(
        "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    )))


@functools.cache
def _snapshot_tables() -> tuple[
    dict[str, dict[str, float]], dict[str, dict[str, Price]], dict[str, Any]
]:
    sources = json.loads(_data("price_sources.json"))
    ec2: dict[str, dict[str, float]] = {}
    for row in _rows("ec2_on_demand.csv"):
        ec2.setdefault(row["region"], {})[row["instance_type"]] = float(row["usd_per_hour"])
    other: dict[str, dict[str, Price]] = {}
    for row in _rows("other_prices.csv"):
        other.setdefault(row["region"], {})[row["item"]] = Price(
            usd=float(row["usd"]), unit=row["unit"], source=row["source"]
        )
    return ec2, other, sources


#: Bedrock's geographic and in-Region endpoints over its global profiles, for the Claude
#: 4.5 models (see ``data/model_prices.csv``).
BEDROCK_REGIONAL_PREMIUM = 1.10
#: Claude Code's ``modelUsage`` token fields, and the price each is billed at.
_TOKEN_FIELDS = {"inputTokens": "input", "outputTokens": "output",
                 "cacheCreationInputTokens": "cache_write", "cacheReadInputTokens": "cache_read"}


@attrs.frozen(kw_only=True)
class ModelPrice:
    """A Claude model's Bedrock price, USD per million tokens of each kind.

    >>> price = bedrock_price("us.anthropic.claude-haiku-4-5-20251001-v1:0")
    >>> price.family, price.premium
    ('claude-haiku-4-5', 1.1)
    >>> round(price.usd({"inputTokens": 1_000_000, "outputTokens": 100_000}), 4)
    1.65
    """

    family: str
    input: float
    output: float
    cache_write: float
    cache_read: float
    source: str
    #: The endpoint's factor over the global profile's price.
    premium: float = 1.0

    def usd(self, tokens: Mapping[str, Any]) -> float:
        """What ``tokens`` (Claude Code's ``modelUsage`` fields) cost at this price."""
        return self.premium * sum(
            float(tokens.get(field) or 0) * float(getattr(self, kind))
            for field, kind in _TOKEN_FIELDS.items()) / 1_000_000


@functools.cache
def _model_prices() -> dict[str, ModelPrice]:
    return {row["family"]: ModelPrice(
        family=row["family"], input=float(row["input"]), output=float(row["output"]),
        cache_write=float(row["cache_write"]), cache_read=float(row["cache_read"]),
        source=row["source"]) for row in _rows("model_prices.csv")}


def bedrock_price(model_id: str) -> ModelPrice | None:
    """The shipped Bedrock price of a Claude model or inference profile id; ``None`` for an
    id that is not a Bedrock Claude id, or a model the snapshot does not price."""
    if "anthropic.claude" not in model_id:
        return None
    for family, price in _model_prices().items():
        if family in model_id:
            premium = 1.0 if model_id.startswith("global.") else BEDROCK_REGIONAL_PREMIUM
            return attrs.evolve(price, premium=premium)
    return None


def snapshot_regions() -> list[str]:
    """Regions the shipped snapshot has EC2 prices for."""
    return sorted(_snapshot_tables()[0])


@attrs.frozen(kw_only=True)
class PriceBook:
    """Unit prices for one region: EC2 per instance-hour, and everything else by item.

    >>> book = PriceBook.snapshot("us-east-1")
    >>> book.instance_hour("t3.medium", spot=False).usd
    0.0416
    >>> round(book.instance_hour("t3.medium", spot=True).usd, 5), book.instance_hour(
    ...     "t3.medium", spot=True).assumed
    (0.01664, True)
    """

    region: str
    #: On-demand Linux $/hour by instance type.
    on_demand: Mapping[str, float] = attrs.field(eq=False)
    #: Observed spot $/hour by instance type (live data only).
    spot: Mapping[str, float] = attrs.field(factory=dict, eq=False)
    #: Non-EC2 unit prices by item name (see ``data/other_prices.csv``).
    other: Mapping[str, Price] = attrs.field(factory=dict, eq=False)
    on_demand_source: str
    #: Where the observed spot prices come from.
    spot_source: str = "no observed spot prices"
    #: Discount off on-demand assumed for a type with no observed spot price.
    spot_discount: float = attrs.field(default=DEFAULT_SPOT_DISCOUNT)
    #: The sentence labelling that assumption wherever it is used.
    spot_assumption: str = attrs.field(
        default=attrs.Factory(
            lambda self: SPOT_DISCOUNT_SOURCE.replace("0.60", f"{self.spot_discount:.2f}"),
            takes_self=True,
        )
    )
    #: ISO time the live prices were fetched; ``None`` for the snapshot.
    fetched_at: str | None = None

    @classmethod
    def snapshot(
        cls,
        region: str = "us-east-1",
        *,
        other_rates_from: str | None = None,
        spot_discount: float = DEFAULT_SPOT_DISCOUNT,
    ) -> PriceBook:
        """Prices shipped with the package.

        The snapshot has EC2 and the other services' prices for twelve regions
        (:func:`snapshot_regions`). ``other_rates_from="us-east-1"`` uses that region's
        rates for the other services; every line priced so says so in its source.
        """
        ec2, other, sources = _snapshot_tables()
        if region not in ec2:
            raise PriceNotFoundError(
                f"the price snapshot has no prices for region {region!r} (it has "
                f"{', '.join(sorted(ec2))}); use live instance prices with a snapshot "
                "region's rates for the other services: CLI `--live --other-rates-from "
                "us-east-1`, Python live_prices(boto3.Session(), region, types, "
                "other_rates_from='us-east-1')"
            )
        if not 0 <= spot_discount < 1:
            from .errors import ConfigError

            raise ConfigError("spot_discount", spot_discount, "a fraction from 0 to below 1")
        other_region = other_rates_from or region
        rates = dict(other.get(other_region, {}))
        if other_region != region:
            rates = {
                item: attrs.evolve(
                    price, source=f"{other_region} rate used for {region}: {price.source}",
                    assumed=True,
                )
                for item, price in rates.items()
            }
        origin = sources["ec2_on_demand"][region]
        source = f"snapshot ({origin['date'] or 'date not stated'}): {origin['source']}"
        return cls(
            region=region, on_demand=dict(ec2[region]), other=rates,
            on_demand_source=source, spot_discount=spot_discount,
        )

    def instance_hour(self, instance_type: str, *, spot: bool) -> Price:
        """The $/hour of one instance of ``instance_type``, on spot or on demand."""
        if instance_type not in self.on_demand:
            raise PriceNotFoundError(
                f"no on-demand price for {instance_type} in {self.region} "
                f"({self.on_demand_source.split(':', 1)[0]}); use live prices for it"
            )
        on_demand = self.on_demand[instance_type]
        if not spot:
            return Price(usd=on_demand, unit="instance-hour", source=self.on_demand_source)
        if instance_type in self.spot:
            return Price(usd=self.spot[instance_type], unit="instance-hour",
                         source=self.spot_source)
        return Price(
            usd=on_demand * (1 - self.spot_discount), unit="instance-hour",
            source=self.spot_assumption, assumed=True,
        )

    def item(self, name: str) -> Price:
        """A non-EC2 unit price, e.g. ``nat_gateway_hour``."""
        if name not in self.other:
            raise PriceNotFoundError(
                f"no price for {name!r} in {self.region}: pass "
                "prices=PriceBook.snapshot(region, other_rates_from='us-east-1') (CLI "
                "--other-rates-from us-east-1) to use that region's rates, labelled as "
                "assumed"
            )
        return self.other[name]
