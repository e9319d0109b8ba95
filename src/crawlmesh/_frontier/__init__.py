"""The frontier: which requests enter the crawl, and what is left to fetch.

* :class:`Admission`: the gate for every request a spider yields (depth,
  a well-formed http(s) URL in WHATWG form, allowed domains, the dupe filter).
* :class:`DupeFilter`: "seen before?" for request fingerprints; in memory a
  :class:`FingerprintSet` (8-byte slots, no Python object per URL).
* :class:`Frontier`: the queued requests, one queue per domain; in memory a
  :class:`MemoryFrontier`.

The two protocols are small so the SQLite and Redis backends (``_state``,
above this package) stand in for the in-memory parts unseen by the engine.
"""

from ._admission import Admission
from ._dedupe import FingerprintSet
from ._queue import DupeFilter, Frontier, MemoryFrontier

__all__ = ["Admission", "DupeFilter", "FingerprintSet", "Frontier", "MemoryFrontier"]
