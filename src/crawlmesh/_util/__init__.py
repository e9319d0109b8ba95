"""Utilities under every layer: URLs (WHATWG, canonical form, fingerprints),
content types, logging set-up, secret redaction, files, the console."""
