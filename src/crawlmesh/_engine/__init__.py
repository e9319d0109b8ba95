"""The engine: the stages of a crawl, wired in one nursery.

:class:`Engine` only wires. Each stage loop is its own object in its own
module (``_dispatch``, ``_fetch``, ``_parse``, ``_export_stage``), built
with the collaborators it needs and the :class:`~._ledger.Ledger` they
share (what is pending, why the crawl stops, how each request ended); the
stages hand each other the records of ``_records`` down bounded channels.
Around them: scheduling through the frontier's admission (``_schedule``),
robots.txt (``_robots``), the domains no node could serve (``_holds``) and
the one warning for a crawl that fetched nothing (``_empty``).

Items and error records leave through the feeds (``crawlmesh._feeds``,
below this package); ``_export`` only adapts a lone feed to a feed set.
"""

from ._engine import Engine

__all__ = ["Engine"]
