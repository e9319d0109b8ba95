"""Answers for Scrapy's commands that crawlmesh does not have.

Typed from habit, ``scrapy startproject`` spelled ``crawlmesh startproject``
deserves a pointer to what does the job here, in one line (argparse's own
answer is the whole usage text and a list of every command).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["SCRAPY_COMMANDS", "scrapy_command_hint"]

SCRAPY_COMMANDS: Mapping[str, str] = {
    "startproject": "crawlmesh has no startproject: a project is a directory with spiders/ "
    "(try `crawlmesh genspider NAME DOMAIN`)",
    "version": "crawlmesh has no version command (try `crawlmesh --version`)",
    "bench": "crawlmesh has no bench command: the benchmarks are the scripts in bench/ of "
    "a checkout (see bench/README.md; e.g. `python3 bench/run.py`)",
    "view": "crawlmesh has no view command (try `crawlmesh shell URL`, then `view(response)`)",
    "check": "crawlmesh has no check command (spider contracts); try "
    "`crawlmesh parse URL --spider NAME` to see what a callback yields",
    "edit": "crawlmesh has no edit command: a spider is the file spiders/NAME.py",
    "settings": "crawlmesh has no settings command: settings are typed, with defaults in "
    "code (see the README, and -s KEY=VALUE)",
}
"""Scrapy command -> the one-line answer."""


def scrapy_command_hint(argv: Sequence[str]) -> str | None:
    """The answer when ``argv``'s command is one of Scrapy's that crawlmesh
    lacks (its first argument that is not an option)."""
    for arg in argv:
        if not arg.startswith("-"):
            return SCRAPY_COMMANDS.get(arg)
    return None
