"""No-op pipelines and hooks for bench/bench_hooks.py (loaded by import path)."""

from __future__ import annotations

from typing import Any


class Pipeline:
    def process_item(self, item: Any, spider: object) -> Any:
        return item


class AsyncPipeline:
    async def process_item(self, item: Any, spider: object) -> Any:
        return item


class FetchHook:
    def on_request(self, request: Any, node: str) -> None:
        return None

    def on_response(self, request: Any, response: Any) -> None:
        return None


class ParseHook:
    def on_output(self, response: Any, outputs: Any) -> Any:
        return outputs
