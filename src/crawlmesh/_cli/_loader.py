"""Finding the Spider class a command line names."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType

from .._exceptions import SpiderLoadError
from .._spider import Spider

__all__ = ["import_spider_module", "load_spider_class", "spiders_in"]


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
        module = _import_file(Path(module_name))
    else:
        module = import_spider_module(module_name)
    spiders = spiders_in(module)
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


def spiders_in(module: ModuleType) -> dict[str, type[Spider]]:
    """The Spider classes ``module`` defines (not those it imports), by
    class name."""
    return {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, Spider)
        and obj is not Spider
        and obj.__module__ == module.__name__
    }


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise SpiderLoadError(f"no such spider file: {path}")
    # A private module name, so the file cannot clash with an installed module.
    name = "_crawlmesh_spider_" + "".join(c if c.isalnum() else "_" for c in path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpiderLoadError(f"cannot load spider file: {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SpiderLoadError(
            f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def _prefer_cwd(top: str, cwd: str) -> None:
    """Make the top-level package ``top`` come from ``cwd`` when it is there,
    even if a regular package of that name is installed elsewhere."""
    if not (
        os.path.isdir(os.path.join(cwd, top)) or os.path.isfile(os.path.join(cwd, top + ".py"))
    ):
        return
    existing = sys.modules.get(top)
    if existing is not None:
        locations = list(getattr(existing, "__path__", [])) or [getattr(existing, "__file__", "")]
        if any(str(loc).startswith(cwd + os.sep) for loc in locations if loc):
            return
    spec = importlib.machinery.PathFinder.find_spec(top, [cwd])
    if spec is None:
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[top] = module
    if spec.loader is not None:
        spec.loader.exec_module(module)


def import_spider_module(module_name: str) -> ModuleType:
    """Import ``module_name``, from the current directory first.

    Raises:
        SpiderLoadError: no such module, or its import raised.
    """
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        _prefer_cwd(module_name.partition(".")[0], cwd)
        return importlib.import_module(module_name)
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
