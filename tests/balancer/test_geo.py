from __future__ import annotations

from crawlmesh._balancer import GeoRouter


def test_region_from_request_then_tld_then_default() -> None:
    geo = GeoRouter({"de": "eu-west", ".jp": "asia-pacific"}, default_region="us-east")
    assert geo.region_for("shop.example.de") == "eu-west"
    assert geo.region_for("SHOP.EXAMPLE.JP.") == "asia-pacific"
    assert geo.region_for("example.com") == "us-east"
    assert geo.region_for("example.de", requested="sa-east") == "sa-east"
    assert geo.region_for("127.0.0.1") == "us-east"


def test_fallback_order() -> None:
    geo = GeoRouter({}, fallback_order=["us-east", "asia-pacific"])
    assert geo.order("eu-west", ["asia-pacific", "eu-west", "sa-east", "us-east"]) == [
        "eu-west",
        "us-east",
        "asia-pacific",
        "sa-east",
    ]
