"""A project's spiders: the modules under ``./spiders/``, found by the
``name`` of the spiders they define (``crawlmesh list``, ``crawlmesh crawl
NAME``).

A crawlmesh project is a directory holding ``spiders/``; there is no
settings module to name it (Scrapy's ``SPIDER_MODULES``). Each module is
imported once, from the current directory first, as ``crawlmesh crawl
spiders.x`` imports it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .._exceptions import SpiderLoadError, UsageError
from .._spider import Spider
from ._loader import import_spider_module, load_spider_class, spiders_in

__all__ = [
    "SPIDERS_DIR",
    "ProjectSpiders",
    "add_list_parser",
    "cmd_list",
    "find_spiders",
    "guess_spider",
    "resolve_spider",
]

SPIDERS_DIR = "spiders"


@dataclass(frozen=True)
class Found:
    """One spider class of the project, with what ``crawl`` can be given
    to load it (``spiders.books:Books``)."""

    name: str
    target: str
    cls: type[Spider]


@dataclass
class ProjectSpiders:
    """The spiders under ``spiders/``, and the modules that failed to import
    (one line each)."""

    found: list[Found] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def names(self) -> list[str]:
        return sorted({f.name for f in self.found})

    def named(self, name: str) -> list[Found]:
        return [f for f in self.found if f.name == name]


def spider_name(cls: type[Spider]) -> str:
    """The name a spider class runs under (as ``Spider.__init__`` sets it)."""
    return cls.name or cls.__name__.lower()


def _module_names(root: Path) -> list[str]:
    """``spiders.x`` for each ``spiders/x.py`` (and ``spiders.sub.y`` below),
    sorted; private modules (``_x.py``, ``__init__.py``) are not spiders'."""
    names = []
    for path in sorted((root / SPIDERS_DIR).rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        if any(part.startswith("_") or not part.isidentifier() for part in rel.parts):
            continue
        names.append(".".join(rel.parts))
    return names


def find_spiders(root: str | os.PathLike[str] = ".") -> ProjectSpiders:
    """Import every module under ``root/spiders/`` once; a module that fails
    is recorded, not raised.

    Raises:
        UsageError: there is no ``spiders/`` directory.
    """
    base = Path(root).resolve()
    if not (base / SPIDERS_DIR).is_dir():
        raise UsageError(
            f"no {SPIDERS_DIR}/ directory in {base} (a project is a directory holding "
            f"{SPIDERS_DIR}/; try `crawlmesh genspider NAME DOMAIN`)"
        )
    project = ProjectSpiders()
    for module_name in _module_names(base):
        try:
            module = import_spider_module(module_name)
        except SpiderLoadError as exc:
            project.failures.append(" ".join(str(exc).split()))  # (one line)
            continue
        for class_name, cls in sorted(spiders_in(module).items()):
            project.found.append(Found(spider_name(cls), f"{module_name}:{class_name}", cls))
    return project


def _is_module_path(target: str) -> bool:
    """Whether ``crawl TARGET`` names a module (or file) rather than a
    spider's ``name``: a class (``:Class``), a path, or a dotted name whose
    top package can be imported."""
    if ":" in target or "/" in target or os.sep in target or target.endswith(".py"):
        return True
    if "." not in target:
        return False
    top = target.partition(".")[0]
    if Path(top).is_dir() or Path(top + ".py").is_file():
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _importable(name: str) -> bool:
    """Whether a bare ``name`` is a module of the current directory."""
    return Path(name).is_dir() or Path(name + ".py").is_file()


def resolve_spider(target: str) -> type[Spider]:
    """The spider ``crawl TARGET`` names: a module path (``spiders.books``,
    ``spiders/books.py:Books``), else a spider's ``name`` among ``spiders/``
    (as Scrapy users type it), else a module of that name.

    Raises:
        SpiderLoadError: the module cannot be loaded, no spider has that
            name (the known names are listed), or several have.
    """
    if _is_module_path(target) or not Path(SPIDERS_DIR).is_dir():
        return load_spider_class(target)
    project = find_spiders()
    matches = project.named(target)
    if len(matches) == 1:
        return matches[0].cls
    if matches:
        choices = ", ".join(f.target for f in matches)
        raise SpiderLoadError(
            f"several spiders are named {target!r}: {choices} (choose one: crawlmesh crawl "
            f"{matches[0].target})"
        )
    if "." in target or _importable(target):
        return load_spider_class(target)  # (its error says where it looked)
    known = ", ".join(project.names()) or "none"
    failed = ""
    if project.failures:
        failed = f"; {len(project.failures)} failed to import, first: {project.failures[0]}"
    raise SpiderLoadError(f"no spider named {target!r} in {SPIDERS_DIR}/ (known: {known}{failed})")


def guess_spider(url: str) -> type[Spider]:
    """The one spider under ``spiders/`` whose ``allowed_domains`` take
    ``url``'s host (for ``parse`` without ``--spider``, as Scrapy guesses).

    Raises:
        UsageError: none or several do (naming them).
    """
    host = (urlsplit(url).hostname or "").lower()
    hint = "choose one with --spider NAME_OR_PATH"
    if not Path(SPIDERS_DIR).is_dir():
        raise UsageError(f"no {SPIDERS_DIR}/ directory here to find a spider in: {hint}")
    project = find_spiders()
    takers = [
        f
        for f in project.found
        if any(host == d or host.endswith("." + d) for d in map(str.lower, f.cls.allowed_domains))
    ]
    if len(takers) == 1:
        return takers[0].cls
    if takers:
        names = ", ".join(sorted(f.name for f in takers))
        raise UsageError(f"several spiders take {host!r} ({names}): {hint}")
    known = ", ".join(project.names()) or "none"
    raise UsageError(f"no spider's allowed_domains take {host!r}: {hint} (known: {known})")


def cmd_list(args: argparse.Namespace) -> int:
    """Print the project's spider names, one a line, sorted; a module that
    fails to import is one line on stderr (exit status 1, the list still
    printed whole)."""
    project = find_spiders()
    for failure in project.failures:
        print(f"crawlmesh: warning: {failure}", file=sys.stderr)
    for name in project.names():
        sharing = project.named(name)
        if len(sharing) > 1:
            where = ", ".join(f.target for f in sharing)
            print(
                f"crawlmesh: warning: several spiders are named {name!r}: {where}", file=sys.stderr
            )
        print(name)
    return 1 if project.failures else 0


def add_list_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "list",
        help="the names of the spiders under ./spiders/, one a line",
        description="Import each module under ./spiders/ once and print the name of every "
        "spider they define, sorted. A module that fails to import is reported on stderr "
        "(exit status 1) and the list goes on.",
    )
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
