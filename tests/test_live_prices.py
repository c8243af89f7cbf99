"""Live prices: the Price List Query API and EC2 spot price history.

No emulator serves the Pricing API (../shared/reference/emulator-gaps.md), so
GetProducts is answered by botocore's Stubber with documents in the shape AWS returns
(the `aws pricing get-products` example of the AWS CLI reference: a JSON string per
product, with `product.attributes` and `terms.OnDemand.*.priceDimensions.*`). Spot
history runs through the Stubber with the DescribeSpotPriceHistory response shape and
also through moto's server (real HTTP; moto answers placeholder prices).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from rclaude_infra import PriceNotFoundError, PricingUnavailableError, live_prices
from rclaude_infra._aws.pricing import on_demand_prices, spot_prices

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def product(instance_type: str, usd: str, *, usage_type: str | None = None) -> str:
    """One Price List product document, as GetProducts returns it (a JSON string)."""
    sku = "JRTCKXETXFSKU01"
    return json.dumps({
        "product": {
            "productFamily": "Compute Instance",
            "attributes": {
                "instanceType": instance_type, "regionCode": "us-east-1",
                "location": "US East (N. Virginia)", "locationType": "AWS Region",
                "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
                "capacitystatus": "Used", "licenseModel": "No License required",
                "usagetype": usage_type or f"BoxUsage:{instance_type}",
                "operation": "RunInstances", "servicecode": "AmazonEC2",
                "vcpu": "2", "memory": "4 GiB",
            },
            "sku": sku,
        },
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                "description": f"${usd} per On Demand Linux {instance_type} Instance Hour",
                "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                "pricePerUnit": {"USD": usd},
            }},
            "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z",
            "offerTermCode": "JRTCKXETXF", "termAttributes": {},
        }}},
        "version": "20261101000000",
        "publicationDate": "2026-11-01T00:00:00Z",
    })


def pricing_client() -> Any:
    return boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x")


def ec2_client() -> Any:
    return boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x")


def expect_products(stub: Stubber, instance_type: str, documents: list[str]) -> None:
    filters = [
        {"Type": "TERM_MATCH", "Field": field, "Value": value}
        for field, value in (
            ("instanceType", instance_type), ("regionCode", "us-east-1"),
            ("operatingSystem", "Linux"), ("tenancy", "Shared"),
            ("preInstalledSw", "NA"), ("capacitystatus", "Used"),
        )
    ]
    stub.add_response(
        "get_products",
        {"FormatVersion": "aws_v1", "PriceList": documents},
        {"ServiceCode": "AmazonEC2", "Filters": filters, "FormatVersion": "aws_v1"},
    )


def spot_point(instance_type: str, zone: str, price: str, hours_ago: int) -> dict[str, Any]:
    return {
        "AvailabilityZone": zone, "InstanceType": instance_type,
        "ProductDescription": "Linux/UNIX", "SpotPrice": price,
        "Timestamp": NOW - dt.timedelta(hours=hours_ago),
    }


def test_on_demand_prices_from_price_list_documents() -> None:
    client = pricing_client()
    with Stubber(client) as stub:
        expect_products(stub, "t3.medium", [product("t3.medium", "0.0416000000")])
        # A second document for the same type (e.g. an unused-reservation usage type)
        # must not win over the BoxUsage price.
        expect_products(stub, "m5.large", [
            product("m5.large", "0.0500000000", usage_type="UnusedBox:m5.large"),
            product("m5.large", "0.0960000000"),
        ])
        prices = on_demand_prices(client, "us-east-1", ["t3.medium", "m5.large"])
        stub.assert_no_pending_responses()
    assert prices == {"t3.medium": 0.0416, "m5.large": 0.096}


def test_a_type_the_price_list_does_not_know_is_an_error() -> None:
    client = pricing_client()
    with Stubber(client) as stub:
        expect_products(stub, "t3.medium", [])
        with pytest.raises(PriceNotFoundError, match=r"no Linux on-demand price for t3\.medium"):
            on_demand_prices(client, "us-east-1", ["t3.medium"])


def test_access_denied_is_translated() -> None:
    client = pricing_client()
    with Stubber(client) as stub:
        stub.add_client_error("get_products", "AccessDeniedException", "not allowed", 400)
        with pytest.raises(PricingUnavailableError, match=r"pricing:GetProducts") as info:
            on_demand_prices(client, "us-east-1", ["t3.medium"])
    from botocore.exceptions import ClientError

    assert isinstance(info.value.__cause__, ClientError)


def test_spot_prices_are_the_median_over_the_stacks_zones() -> None:
    client = ec2_client()
    with Stubber(client) as stub:
        stub.add_response(
            "describe_spot_price_history",
            {"SpotPriceHistory": [
                spot_point("t3.medium", "us-east-1a", "0.0125", 1),
                spot_point("t3.medium", "us-east-1b", "0.0131", 2),
                spot_point("t3.medium", "us-east-1a", "0.0140", 5),
                spot_point("t3.medium", "us-east-1f", "0.0500", 3),  # not a stack AZ
                spot_point("t3a.medium", "us-east-1b", "0.0113", 1),
            ], "NextToken": ""},
            {"InstanceTypes": ["t3.medium", "t3a.medium"], "ProductDescriptions": ["Linux/UNIX"],
             "StartTime": NOW - dt.timedelta(hours=24)},
        )
        prices = spot_prices(client, ["t3.medium", "t3a.medium"],
                             availability_zones=["us-east-1a", "us-east-1b"], now=NOW)
    assert prices == {"t3.medium": 0.0131, "t3a.medium": 0.0113}


def test_spot_history_through_moto_server(aws: Any) -> None:
    prices = spot_prices(aws.client("ec2"), ["t3.medium", "m5.large"])
    # moto answers placeholder prices; what matters is the real request and parsing.
    assert set(prices) <= {"t3.medium", "m5.large"}
    assert prices and all(value > 0 for value in prices.values())


def test_live_price_book_is_cached_with_its_fetch_time(tmp_path: Path) -> None:
    pricing, ec2 = pricing_client(), ec2_client()
    with Stubber(pricing) as price_stub, Stubber(ec2) as spot_stub:
        expect_products(price_stub, "t3.medium", [product("t3.medium", "0.0420000000")])
        spot_stub.add_response(
            "describe_spot_price_history",
            {"SpotPriceHistory": [spot_point("t3.medium", "us-east-1a", "0.0150", 1)]},
            {"InstanceTypes": ["t3.medium"], "ProductDescriptions": ["Linux/UNIX"],
             "StartTime": ANY},
        )
        book = live_prices(None, "us-east-1", ["t3.medium"], cache_dir=tmp_path,
                           pricing_client=pricing, ec2_client=ec2)
    assert book.instance_hour("t3.medium", spot=False).usd == 0.042
    spot = book.instance_hour("t3.medium", spot=True)
    assert spot.usd == 0.015 and not spot.assumed
    assert "DescribeSpotPriceHistory" in spot.source
    assert book.fetched_at is not None
    # Non-EC2 prices still come from the snapshot.
    assert book.item("nat_gateway_hour").usd == 0.045

    cached = json.loads((tmp_path / "prices-us-east-1.json").read_text())
    assert cached["on_demand"] == {"t3.medium": 0.042}
    # A second call within a day answers from the cache: these clients have no responses.
    with Stubber(pricing_client()) as empty:
        again = live_prices(None, "us-east-1", ["t3.medium"], cache_dir=tmp_path,
                            pricing_client=empty.client, ec2_client=ec2_client())
    assert again.fetched_at == book.fetched_at
    # Stale: fetched again.
    with pytest.raises(PricingUnavailableError), Stubber(pricing_client()) as failing:
        failing.add_client_error("get_products", "ThrottlingException", "slow down", 400)
        live_prices(None, "us-east-1", ["t3.medium"], cache_dir=tmp_path,
                    max_age=dt.timedelta(0), pricing_client=failing.client,
                    ec2_client=ec2_client())


def test_a_type_without_spot_history_keeps_the_labelled_assumption(tmp_path: Path) -> None:
    pricing, ec2 = pricing_client(), ec2_client()
    with Stubber(pricing) as price_stub, Stubber(ec2) as spot_stub:
        expect_products(price_stub, "t3.medium", [product("t3.medium", "0.0416000000")])
        spot_stub.add_response("describe_spot_price_history", {"SpotPriceHistory": []},
                               {"InstanceTypes": ["t3.medium"],
                                "ProductDescriptions": ["Linux/UNIX"], "StartTime": ANY})
        book = live_prices(None, "us-east-1", ["t3.medium"], cache_dir=tmp_path,
                           pricing_client=pricing, ec2_client=ec2)
    spot = book.instance_hour("t3.medium", spot=True)
    assert spot.assumed and spot.source.startswith("assumed:")
