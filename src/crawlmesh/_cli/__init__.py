"""The command line (``crawlmesh ...``), running a crawl from Python, the
spider loader, the small Trio HTTP server and the demo shop."""

from ._main import main as main
