"""The Redis backend: one crawl shared by many workers."""

from ._backend import RedisBackend
from ._client import open_client, redact

__all__ = ["RedisBackend", "open_client", "redact"]
