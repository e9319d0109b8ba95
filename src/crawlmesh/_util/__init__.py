"""Utilities under every layer, one concern a module, each its own face.

* ``_url``: WHATWG URL resolution, canonical form, request fingerprints.
* ``_content_type``: a body's MIME type, sniffed when the header says nothing.
* ``_log``: structlog to stderr (stdout carries only items), request keys.
* ``_redact``: keeping credentials out of logs, messages and files.
* ``_console``: stderr with a status block kept below the log lines.
* ``_tally``: the request path's plain counters, read by the metrics.
* ``_files``: TOML and token files the user hands in.
* ``_callbacks``: what a spider callback produced, as one stream of results.
* ``_version``: the package version.

Nothing is re-exported here, on purpose: every layer imports the one helper
it needs (``from .._util._tally import RateWaits``), and a package face
importing them all would make that load ada-url, idna and structlog too,
and would tie ``_util`` to ``_exceptions`` (which ``_url`` and ``_files``
import) as one cycle-prone package.
"""

__all__: list[str] = []
