"""Bit positions of a Bloom filter kept in Redis as one bitmap (SETBIT).

Sized for ``capacity`` URLs at a false-positive rate of 0.1%: 14.4 bits
(1.8 bytes) per URL and 10 bits set per URL. Past ``capacity`` the rate
grows: 0.5% at 1.5x, 1.5% at 2x. A false positive drops a URL never
fetched, so the exact set (the default) is the choice when every page
counts; the filter is for crawls too big for it.
"""

from __future__ import annotations

import math

__all__ = ["FALSE_POSITIVE_RATE", "BloomPositions"]

FALSE_POSITIVE_RATE = 0.001


class BloomPositions:
    """The ``k`` positions of a fingerprint in an ``m``-bit filter (double
    hashing over the fingerprint's two 64-bit halves)."""

    __slots__ = ("bits", "k")

    def __init__(self, capacity: int) -> None:
        self.bits = math.ceil(-capacity * math.log(FALSE_POSITIVE_RATE) / math.log(2) ** 2)
        self.k = max(1, round(self.bits / capacity * math.log(2)))

    def positions(self, fp: bytes) -> str:
        """The positions, comma-separated (as the SYNC script reads them)."""
        h1 = int.from_bytes(fp[:8], "little")
        h2 = int.from_bytes(fp[8:16], "little") | 1
        m = self.bits
        return ",".join(str((h1 + i * h2) % m) for i in range(self.k))
