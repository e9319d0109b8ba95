"""Finding the Spider class a command line names."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from pathlib import Path

from ._exceptions import SpiderLoadError
from ._spider import Spider

__all__ = ["load_spider_class"]


def load_spider_class(target: str) -> type[Spider]:
    """Resolve ``MODULE[:Class]`` (or ``path/to/file.py[:Class]``) to a Spider class.

    The module is looked up from the current directory first, so
    ``spiders.books`` finds ``./spiders/books.py``.

    Raises:
        SpiderLoadError: unknown module, an import error inside it, no
            Spider in it, several without ``:Class``, or an unknown class.
    """
    module_name, _, class_name = target.partition(":")
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise SpiderLoadError(f"no such spider file: {module_name}")
        sys.path.insert(0, str(path.parent.resolve()))
        module_name = path.stem
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise SpiderLoadError(
                f"no module named {module_name!r} (looked in {cwd} and the Python path)"
            ) from None
        raise SpiderLoadError(f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise SpiderLoadError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    spiders = {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, Spider)
        and obj is not Spider
        and obj.__module__ == module.__name__
    }
    if class_name:
        cls = spiders.get(class_name)
        if cls is None:
            found = ", ".join(sorted(spiders)) or "none"
            raise SpiderLoadError(
                f"module {module_name!r} has no Spider class {class_name!r} (found: {found})"
            )
        return cls
    if not spiders:
        raise SpiderLoadError(f"module {module_name!r} defines no Spider subclass")
    if len(spiders) > 1:
        names = ", ".join(sorted(spiders))
        raise SpiderLoadError(
            f"module {module_name!r} defines several spiders ({names}); "
            f"choose one with {module_name}:<Class>"
        )
    return next(iter(spiders.values()))
