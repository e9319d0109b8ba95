"""The Redis backend: one crawl shared by many workers."""

from ._backend import RedisBackend, redact

__all__ = ["RedisBackend", "redact"]
