"""Geo routing: which region a request should egress from.

A request's region is, in order: ``Request(region=...)``; the region its
host's country-code TLD maps to; the crawl's default region. Nodes of that
region are preferred; when none is eligible the balancer walks the fallback
order and counts the fallback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["DEFAULT_GEO_MAP", "GeoRouter"]

# Country-code TLDs to broad egress regions. Users override or extend it with
# the `balancer.geo` setting; keys may be written with or without the dot.
_REGION_TLDS = {
    "eu-west": "de fr eu uk gb nl be es it pt ie at ch se no dk fi pl cz lu gr hu ro",
    "asia-pacific": "jp kr cn tw hk sg au nz in id th vn my ph",
    "us-east": "us ca",
    "sa-east": "br ar cl co pe mx",
}
DEFAULT_GEO_MAP: dict[str, str] = {
    tld: region for region, tlds in _REGION_TLDS.items() for tld in tlds.split()
}


class GeoRouter:
    """Resolves regions and the order in which to try them.

    Args:
        geo_map: TLD (``"de"`` or ``".de"``) to region.
        default_region: the region of requests nothing else places ("" = any).
        fallback_order: regions to try, in order, when the preferred one has
            no eligible node; regions not listed come after, in mesh order.
    """

    def __init__(
        self,
        geo_map: Mapping[str, str] = DEFAULT_GEO_MAP,
        *,
        default_region: str = "",
        fallback_order: Sequence[str] = (),
    ) -> None:
        self._map = {k.lower().lstrip("."): v for k, v in geo_map.items()}
        self.default_region = default_region
        self._fallback = tuple(fallback_order)
        self._cache: dict[str, str] = {}

    def region_for(self, host: str, requested: str | None = None) -> str:
        """The region a request to ``host`` should use."""
        if requested:
            return requested
        region = self._cache.get(host)
        if region is None:
            tld = host.rstrip(".").rpartition(".")[2].lower()
            region = self._map.get(tld, self.default_region)
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[host] = region
        return region

    def order(self, region: str, known: Sequence[str]) -> list[str]:
        """Regions to try for ``region``: itself, then the fallback order,
        then every other region the mesh has."""
        out = [region]
        for r in (*self._fallback, *known):
            if r not in out:
                out.append(r)
        return out
