"""The shape of the code: layers, cycles and size limits (issue 15).

The import graph of ``src/crawlmesh`` is read from the source (``import`` and
``from ... import`` anywhere in a module, type-only imports included). The
packages are layered, lowest first, as ``LAYERS`` says; a module may import
its own package and lower layers, never a higher one. No module over 600
lines, no class over 400, no function over 80.

Importing ``a.b.c`` first runs ``a/__init__.py`` and ``a/b/__init__.py``, and
a package face imports its modules: so an import of one module of another
package is also an edge to that package's face (and through it to all its
modules). The cycle check counts those edges too; without them a face could
close a cycle that no single ``import`` line shows.

Tests import the public API (``crawlmesh``) or a package's face, not the
modules behind it, except the unit tests of one internal module listed in
``DEEP_TEST_IMPORTS``.

What still breaks the size limits is listed in ``KNOWN_LONG``: a ratchet.
A new violation fails; so does a listed one that is gone (take it off the
list), so the list only shrinks.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

# Lowest first. Names on one line are one layer (they may import each other).
LAYERS: list[tuple[str, ...]] = [
    ("_util", "_exceptions", "_request", "_items"),
    ("_selector", "_response", "_forms", "_links"),
    ("_feeds",),
    ("_hooks",),
    ("_shaping",),
    ("_transport",),
    ("_resilience",),
    ("_settings",),
    ("_spider", "_spiders"),
    ("_frontier",),
    ("_observe",),
    ("_state",),
    ("_balancer",),
    ("_engine",),
    ("_node",),
    ("_cli",),
    ("", "__main__", "pipelines"),  # the package's face (and its public submodules)
]
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 600, 400, 80

# What is still to be fixed (issue 15).
KNOWN_LONG: set[str] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "crawlmesh").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """The crawlmesh modules ``module`` imports (the nearest existing
    module for a name imported from a package)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            targets = [f"{target}.{alias.name}" for alias in node.names] + [target]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        for target in targets:
            if not target.startswith("crawlmesh"):
                continue
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != module:
                found.add(target)
                break
    return found


def _inits_run(module: str, targets: set[str], modules: Collection[str] = MODULES) -> set[str]:
    """The package faces that importing ``targets`` from ``module`` runs:
    every package above a target except ``module``'s own packages (those are
    mid-import while ``module`` runs, and Python does not run them again)."""
    parts = module.split(".")
    own = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    found: set[str] = set()
    for target in targets:
        above = target.split(".")
        for i in range(1, len(above)):
            package = ".".join(above[:i])
            if package in modules and package not in own:
                found.add(package)
    return found


IMPORTS = {module: _imports(module, path) for module, path in MODULES.items()}
GRAPH = {module: targets | _inits_run(module, targets) for module, targets in IMPORTS.items()}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: its package is in no layer of LAYERS")


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _cycles(graph: Mapping[str, set[str]] = GRAPH) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _long() -> Iterator[tuple[str, int, int]]:
    """(name, lines, limit) of every module, class and function over its limit."""
    for module, path in MODULES.items():
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MAX_MODULE:
            yield module, lines, MAX_MODULE

        def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int, int]]:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    name = f"{prefix}.{child.name}"
                    size = (child.end_lineno or child.lineno) - child.lineno + 1
                    limit = MAX_CLASS if isinstance(child, ast.ClassDef) else MAX_FUNCTION
                    if size > limit:
                        yield name, size, limit
                    yield from walk(child, name)

        yield from walk(ast.parse(text), module)


def test_every_package_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_no_module_imports_a_higher_layer() -> None:
    upward = {
        (module, target)
        for module, targets in GRAPH.items()
        for target in targets
        if _package(module) != _package(target) and _layer(target) > _layer(module)
    }
    assert sorted(upward) == [], "imports from a lower layer to a higher one"


def test_no_import_cycles() -> None:
    assert sorted(map(sorted, _cycles())) == [], "import cycles"


def test_size_limits() -> None:
    over = {name: (size, limit) for name, size, limit in _long()}
    assert {n: v for n, v in over.items() if n not in KNOWN_LONG} == {}, "over the size limits"
    assert sorted(KNOWN_LONG - over.keys()) == [], "fixed: take these off KNOWN_LONG"


def test_the_checks_see_a_violation() -> None:
    # (The graph is real: the engine's scheduler imports the frontier's face,
    # which imports admission, and a made-up upward edge would be found.)
    assert "crawlmesh._frontier" in GRAPH["crawlmesh._engine._schedule"]
    assert "crawlmesh._frontier._admission" in GRAPH["crawlmesh._frontier"]
    assert _layer("crawlmesh._engine._schedule") > _layer("crawlmesh._frontier._admission")


def test_the_cycle_check_counts_package_faces() -> None:
    # m imports u._b only; u's face imports u._a, which imports m. No import
    # line closes a cycle, but importing m fails: u._a finds m half-run.
    imports = {
        "p": set(),
        "p.m": {"p.u._b"},
        "p.u": {"p.u._a", "p.u._b"},
        "p.u._a": {"p.m"},
        "p.u._b": set(),
    }
    assert _cycles(imports) == set()
    graph = {
        module: targets | _inits_run(module, targets, imports)
        for module, targets in imports.items()
    }
    assert _cycles(graph) == {frozenset({"p.m", "p.u", "p.u._a"})}
    # A sibling's import does not run its own package's face again.
    assert _inits_run("p.u._a", {"p.u._b"}, imports) == set()


STAGES = {
    "crawlmesh._engine._dispatch",
    "crawlmesh._engine._fetch",
    "crawlmesh._engine._parse",
    "crawlmesh._engine._export_stage",
}


def test_stages_stand_side_by_side() -> None:
    # Each stage imports the ledger and its collaborators, never the engine
    # that wires it nor another stage.
    assert MODULES.keys() >= STAGES
    for stage in sorted(STAGES):
        assert GRAPH[stage] & (STAGES | {"crawlmesh._engine._engine"}) == set(), stage


TESTS = Path(__file__).resolve().parent

# Unit tests of one internal module, importing what its package's face does
# not export: (test file under tests/, module) -> why. Only shrinks.
DEEP_TEST_IMPORTS: dict[tuple[str, str], str] = {
    ("transport/test_http11.py", "crawlmesh._transport._http11"):
        "the HTTP/1.1 framing functions, case by case",
    ("transport/test_http11_oracle.py", "crawlmesh._transport._http11"):
        "the framing against h11 as the oracle",
    ("transport/test_decoding.py", "crawlmesh._transport._decoding"):
        "the bounded decoders alone, bomb sizes included",
    ("transport/test_pool.py", "crawlmesh._transport._conn"):
        "counts the pool's readiness checks by patching _conn.read_ready",
    ("transport/test_proxy.py", "crawlmesh._cli._site_server"):
        "serves one raw connection (_serve_connection) as a misbehaving proxy",
    ("distributed/test_scripts.py", "crawlmesh._state._redis._scripts"):
        "the Lua scripts, called directly on a real Redis",
    ("distributed/test_redirect_dedupe.py", "crawlmesh._state._redis._scripts"):
        "calls the SYNC script directly",
    ("distributed/test_redirect_dedupe.py", "crawlmesh._state._redis._outbox"):
        "builds SYNC's ops with the outbox's encoder (pushes)",
    ("shaping/test_registered_domain.py", "crawlmesh._shaping._domains"):
        "clears the suffix list's private caches between cases",
    ("resilience/test_window.py", "crawlmesh._resilience._window"):
        "the sliding window under the retry budget, alone",
    ("balancer/test_circuits.py", "crawlmesh._balancer._balancer"):
        "the outcome -> breaker verdict table (_verdicts)",
    ("balancer/test_demo_health.py", "crawlmesh._balancer._health"):
        "the probe verdict function (_verdict)",
    ("observe/test_stats.py", "crawlmesh._observe._stats"):
        "the collector's bounds (TOP_DOMAINS, OTHER, NO_DOMAIN) and _distribution",
    ("cli/test_project_commands.py", "crawlmesh._cli._genspider"):
        "genspider's templates rendered alone (TEMPLATES, render, target_of)",
    ("spiders/test_sitemap_crawl.py", "crawlmesh._cli._genspider"):
        "renders genspider's sitemap template to crawl with it",
    ("spiders/test_sitemap_crawl.py", "crawlmesh._spiders._sitemap_parse"):
        "scales the sitemaps.org limits down by patching the parser's constants",
    ("spiders/test_sitemap_parse.py", "crawlmesh._spiders._sitemap_parse"):
        "the sitemap parser alone (Scrapy's cases, lastmod, bounded gunzip)",
    ("cli/test_shell.py", "crawlmesh._cli._shell"):
        "the shell's view() helper, without a shell",
    ("test_examples_k8s.py", "crawlmesh._cli._main"):
        "the manifests' arguments against the real parser (_parser)",
}  # fmt: skip


def _deep_imports(source: str) -> set[str]:
    """The crawlmesh modules behind a package face that ``source`` imports.

    Not deep: ``crawlmesh`` itself, its top-level modules (``_exceptions``,
    ``_request``...), a package (a face), and the ``_util`` modules, which
    are their own faces (``_util`` re-exports nothing, see its docstring).
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if (
                name in MODULES
                and len(parts) > 2
                and parts[1] != "_util"
                and MODULES[name].name != "__init__.py"
            ):
                found.add(name)
    return found


def test_tests_import_faces() -> None:
    found = {
        (path.relative_to(TESTS).as_posix(), module)
        for path in sorted(TESTS.rglob("*.py"))
        for module in _deep_imports(path.read_text())
    }
    deep = sorted(found - DEEP_TEST_IMPORTS.keys())
    assert deep == [], "import these from crawlmesh or the package's face"
    assert sorted(DEEP_TEST_IMPORTS.keys() - found) == [], "gone: take off DEEP_TEST_IMPORTS"


def test_the_face_check_sees_a_deep_import() -> None:
    assert _deep_imports("from crawlmesh._balancer._ring import AffinityRing") == {
        "crawlmesh._balancer._ring"
    }
    assert _deep_imports("def f():\n    from crawlmesh._transport import _conn") == {
        "crawlmesh._transport._conn"
    }
    assert _deep_imports("import crawlmesh._state._jobdir") == {"crawlmesh._state._jobdir"}
    faces = (
        "from crawlmesh import Engine\n"
        "from crawlmesh._balancer import AffinityRing\n"
        "from crawlmesh._state._redis import RedisBackend\n"
        "from crawlmesh._util._url import canonicalize\n"
        "from crawlmesh._exceptions import FetchError\n"
    )
    assert _deep_imports(faces) == set()


FACES = sorted(m for m, path in MODULES.items() if path.name == "__init__.py" and m != "crawlmesh")


def test_every_face_says_what_it_exports() -> None:
    for face in FACES:
        module = importlib.import_module(face)
        assert module.__doc__, f"{face}: no docstring"
        exported = module.__all__
        assert isinstance(exported, list), f"{face}: no __all__ list"
        for name in exported:
            getattr(module, name)  # (a lazy name loads here)


# What the faces keep lazy: a crawl in memory, without --metrics, loads none
# of it (the Redis client, the node service, the Prometheus exporter's stack,
# the SSRF guard's address tables).
LAZY = {
    "coredis",
    "hypercorn",
    "prometheus_client",
    "starlette.applications",
    "crawlmesh._node",
    "crawlmesh._observe._metrics",
    "crawlmesh._state._redis",
    "crawlmesh._transport._guard",
}


def test_importing_crawlmesh_leaves_the_optional_stacks_unloaded() -> None:
    code = "import sys, crawlmesh; print(*sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "crawlmesh._engine._engine" in loaded  # (the listing is real)
    assert sorted(LAZY & loaded) == []
