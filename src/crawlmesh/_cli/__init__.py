"""The command line (``crawlmesh ...``), running a crawl from Python, the
spider loader, the small Trio HTTP server and the demo shop.

* :func:`main`: ``crawlmesh``'s entry point; it parses arguments and calls
  the library.
* :func:`crawl` / :func:`run_engine`: a crawl run from Python, with the
  settings layered (:func:`resolve_settings`), its output files opened
  (:func:`open_sinks`) and its exit status (:data:`FINISH_EXIT_CODES`).
* :func:`open_site_server`: the small Trio HTTP server behind the demo shop
  (:func:`open_demo_nodes`) and the test sites.
"""

from ._demosite import DemoSite, open_demo_nodes
from ._main import main
from ._run import FINISH_EXIT_CODES, Sinks, crawl, open_sinks, resolve_settings, run_engine
from ._site_server import SiteRequest, SiteResponse, open_site_server

__all__ = [
    "FINISH_EXIT_CODES",
    "DemoSite",
    "Sinks",
    "SiteRequest",
    "SiteResponse",
    "crawl",
    "main",
    "open_demo_nodes",
    "open_sinks",
    "open_site_server",
    "resolve_settings",
    "run_engine",
]
