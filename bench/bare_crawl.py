"""The benchmark spider run with a custom transport: one DirectTransport
handed to the engine, which makes it the one direct node of a mesh.

Used by ``bench/run.py --only crawlmesh-nobalancer`` to compare a custom
transport with the mesh the settings declare (same settings as the CLI run);
before every engine had a mesh, this run skipped the balancer stage.

    python bench/bare_crawl.py START_URL OUT CONCURRENCY
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.crawlmesh_spider import BenchSpider
from crawlmesh import DirectTransport, Engine, JsonLinesWriter
from crawlmesh._settings import load_settings
from crawlmesh._util._log import configure_logging


def main() -> None:
    start_url, out, concurrency = sys.argv[1], sys.argv[2], sys.argv[3]
    settings = load_settings(
        [
            (
                "bench",
                {
                    "concurrency": concurrency,
                    "concurrency_per_domain": concurrency,
                    "robots.obey": False,
                    "progress_interval": 0,
                },
            )
        ]
    )
    configure_logging("warning")
    items = JsonLinesWriter(out)
    engine = Engine(
        BenchSpider(start_url=start_url),
        settings,
        items=items,
        transport=DirectTransport(cookies=settings.cookies),
    )
    stats = trio.run(engine.run)
    items.close()
    print(stats.render(), file=sys.stderr)


if __name__ == "__main__":
    main()
