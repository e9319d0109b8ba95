"""A compact set of request fingerprints: 8 bytes per slot, no Python object
per URL.

Fingerprints are 16-byte digests; the set keeps their first 8 bytes as one
unsigned 64-bit integer in an open-addressing table (linear probing) held in
an ``array('Q')``. With the table kept between 1/3 and 2/3 full, a URL costs
12 to 24 bytes (vs. about 83 for a ``set`` of ``bytes``), and 10 million URLs
fit in 128 to 256 MB.

Keeping 64 bits means two different URLs may share a key: the chance that any
new URL among ``n`` seen is wrongly taken for a duplicate is about
``n / 2**64`` (5e-13 at 10 million), so across a whole 10-million-URL crawl
the chance of one such loss is about ``n**2 / 2**65`` (3e-6).
"""

from __future__ import annotations

from array import array

__all__ = ["FingerprintSet"]


def _key(fp: bytes) -> int:
    """The fingerprint's first 8 bytes as an integer (0 marks an empty slot,
    so it is stored as 1)."""
    return int.from_bytes(fp[:8], "little") or 1


class FingerprintSet:
    """Implements :class:`~crawlmesh._frontier._queue.DupeFilter`."""

    __slots__ = ("_count", "_mask", "_table")

    def __init__(self, capacity: int = 1 << 16) -> None:
        size = 1 << max(4, (capacity * 3 // 2 - 1).bit_length())
        self._table = array("Q", bytes(8 * size))
        self._mask = size - 1
        self._count = 0

    def add(self, fp: bytes) -> bool:
        """Record ``fp`` (at least 8 bytes); True if it was new."""
        key = _key(fp)
        i = self._slot(key)
        table = self._table
        if table[i] == key:
            return False
        table[i] = key
        self._count += 1
        if self._count * 3 > 2 * (self._mask + 1):
            self._grow()
        return True

    def __contains__(self, fp: bytes) -> bool:
        key = _key(fp)
        return self._table[self._slot(key)] == key

    def _slot(self, key: int) -> int:
        """Where ``key`` is, or the empty slot where it would go."""
        table = self._table
        mask = self._mask
        i = (key ^ (key >> 29)) & mask
        while True:
            slot = table[i]
            if slot == key or slot == 0:
                return i
            i = (i + 1) & mask

    def _grow(self) -> None:
        old = self._table
        size = 2 * len(old)
        table = array("Q", bytes(8 * size))
        mask = size - 1
        for key in old:
            if key:
                i = (key ^ (key >> 29)) & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = key
        self._table = table
        self._mask = mask

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """The table's size in bytes."""
        return len(self._table) * 8
