"""examples/grafana/crawlmesh.json asks only for metrics that crawlmesh
exports: every PromQL expression in it (panel targets, nested rows, template
variables) is parsed for metric names, and each must appear in a real scrape
of ``crawlmesh crawl --metrics`` or of a ``crawlmesh node``'s /metrics."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from node.nodes import node_process
from observe.test_metrics import DIRECT_OK, crawl_serving_metrics, scrape_until

DASHBOARD = Path(__file__).parent.parent / "examples" / "grafana" / "crawlmesh.json"

# Series Prometheus makes itself for every scrape target.
SYNTHETIC = frozenset({"up"})

# -- reading the dashboard --------------------------------------------------------


def panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside rows (collapsed rows hold theirs) included."""
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)


def variable_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]
        yield query["query"] if isinstance(query, dict) else query
        if var.get("definition"):
            yield var["definition"]


def target_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", []) if "expr" in t]


def every_expr_key(node: Any) -> Iterator[str]:
    """Every value under an "expr" key, wherever it is (a cross-check)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr":
                yield value
            else:
                yield from every_expr_key(value)
    elif isinstance(node, list):
        for value in node:
            yield from every_expr_key(value)


# -- metric names in PromQL --------------------------------------------------------

_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")  # [5m], [$__rate_interval], [1h:5m]
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
# A name not inside a number (1e3, 5m) or after a dot; a "(" after it makes it a call.
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
     "unless", "offset", "inf", "nan"}
)  # fmt: skip
# Grafana's variable queries around PromQL.
_LABEL_VALUES = re.compile(r"\s*label_values\((?:(?P<expr>.*),)?\s*(?P<label>\w+)\s*\)\s*", re.S)
_QUERY_RESULT = re.compile(r"\s*query_result\((?P<expr>.*)\)\s*", re.S)
_METRICS = re.compile(r"\s*metrics\(.*\)\s*", re.S)


def metric_names(query: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana variable query:
    ``label_values(expr, label)``, ``query_result(expr)``) reads.

    Not names: functions and aggregations (anything called), keywords,
    label names (in ``{...}``, ``by (...)``, ``on (...)``, ...), strings,
    durations and numbers.
    """
    variable = _LABEL_VALUES.fullmatch(query) or _QUERY_RESULT.fullmatch(query)
    if variable is not None:
        query = variable["expr"] or ""  # label_values(label) reads no metric
    elif _METRICS.fullmatch(query):
        return set()
    text = _GRAFANA_VARIABLE.sub(" ", query)
    text = _STRING.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    return {
        m[1] for m in _IDENTIFIER.finditer(text) if m[2] is None and m[1].lower() not in _KEYWORDS
    }


def rated_names(query: str) -> set[str]:
    """Metric names taken a rate() or increase() of."""
    return set(re.findall(r"\b(?:rate|irate|increase)\(\s*([A-Za-z_:][\w:]*)", query))


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ('sum(rate(crawlmesh_pages_total{job=~"$job"}[$__rate_interval]))',
         {"crawlmesh_pages_total"}),
        (
            "histogram_quantile(0.95, sum by (node, le) "
            "(rate(x_seconds_bucket{node=~\"a|b\", le!=\"+Inf\"}[5m])))",
            {"x_seconds_bucket"},
        ),
        ("sum(rate(a_total[1m])) by (kind) / ignoring(kind) group_left sum(rate(b_total[1m]))",
         {"a_total", "b_total"}),
        ("a * on (instance) group_right (node) b offset 5m", {"a", "b"}),
        ('label_replace(up, "dst", "$1", "src", "(.*)") > bool 1e3', {"up"}),
        ("topk(10, sum without (instance) (c)) and d unless e or f", {"c", "d", "e", "f"}),
        ("max_over_time(g[1h:5m]) @ start() + Inf - NaN + 0.5", {"g"}),
        ('sum by (x) (h{a="{b}", c=~"[d]"})', {"h"}),
        ("label_values(crawlmesh_pages_total, job)", {"crawlmesh_pages_total"}),
        ('label_values(m{job=~"$job"}, instance)', {"m"}),
        ("label_values(job)", set()),
        ("query_result(sum by (n) (rate(q_total[5m])))", {"q_total"}),
        ("metrics(crawlmesh_.*)", set()),
        ("${DS_PROMETHEUS:raw} + [[old_style]] + $var + r", {"r"}),
    ],
)  # fmt: skip
def test_metric_names_in_promql(query: str, names: set[str]) -> None:
    assert metric_names(query) == names


def test_a_made_up_metric_would_be_reported() -> None:
    exported = {"crawlmesh_pages_total", "crawlmesh_mesh_requests_total"}
    expr = (
        'sum(rate(crawlmesh_pages_total{job=~"$job"}[5m])) / '
        "sum by (node) (rate(crawlmesh_made_up_total[5m]))"
    )
    assert metric_names(expr) - exported == {"crawlmesh_made_up_total"}


# -- what crawlmesh exports ----------------------------------------------------------


def exported(text: str) -> dict[str, str]:
    """Every sample name a scrape's families may have -> its family's type
    (a family with no sample yet still names them)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        for suffix in suffixes.get(family.type, ("",)):
            names[family.name + suffix] = family.type
        for sample in family.samples:
            names.setdefault(sample.name, family.type)
    return names


def get(url: str, headers: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


@pytest.fixture(scope="module")
def node_metrics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A real ``crawlmesh node``'s /metrics."""
    with node_process(tmp_path_factory.mktemp("node")) as node:
        return exported(get(f"{node.url}/metrics", node.auth))


@pytest.fixture
def crawl_metrics(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str], slow_site_url: str
) -> dict[str, str]:
    """A real crawl's /metrics (``crawlmesh crawl --metrics``), mid-crawl."""
    with crawl_serving_metrics(crawlmesh_cli, cli_project, cli_env, slow_site_url) as url:
        # Mid-crawl: once a page has been fetched, its labelled series exist.
        scrape_until(url, lambda m: m.get(DIRECT_OK, 0) > 0)
        return exported(get(url))


@pytest.fixture
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_the_dashboard_reads_only_exported_metrics(
    dashboard: dict[str, Any], crawl_metrics: dict[str, str], node_metrics: dict[str, str]
) -> None:
    targets = target_exprs(dashboard)
    # The walk finds every expression the file holds, nested rows included.
    assert sorted(targets) == sorted(every_expr_key(dashboard))
    assert any(p.get("collapsed") and p["panels"] for p in dashboard["panels"]), "nested row"
    exprs = targets + list(variable_queries(dashboard))
    available = {**crawl_metrics, **node_metrics}
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        missing = names - available.keys() - SYNTHETIC
        assert not missing, f"{expr!r} reads {sorted(missing)}, which nothing exports"
        for name in rated_names(expr):
            assert available[name] in ("counter", "histogram"), f"rate() of a {name} gauge"
        used |= names
    # Both sides are on the dashboard, and the crawl's new families too.
    assert {n for n in used if n.startswith("crawlmesh_node_")} <= node_metrics.keys()
    for name in (
        "crawlmesh_pages_total",
        "crawlmesh_mesh_request_duration_seconds_bucket",
        "crawlmesh_mesh_requests_total",
        "crawlmesh_rate_limit_waits_total",
        "crawlmesh_retry_budget_available",
        "crawlmesh_node_request_duration_seconds_bucket",
        "crawlmesh_node_queue_size",
    ):
        assert name in used, name


def test_the_dashboard_is_importable(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] == 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert {"job", "instance", "node_job", "node_instance"} <= variables.keys()
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            # Crawl panels filter on the crawl's job, node panels on the nodes'.
            assert re.search(r'job=~"\$(node_)?job"', target["expr"]), target["expr"]


# A counter named where no function over time takes it: an instant read.
_INSTANT_COUNTER = re.compile(r"(?<![\w(])(crawlmesh_\w+_total)\{")
_OVER_TIME = re.compile(r"\b(?:rate|irate|increase|max_over_time)\(\s*crawlmesh_\w+_total\{")


def test_stat_totals_do_not_fall_when_a_worker_exits(dashboard: dict[str, Any]) -> None:
    """An instant ``sum`` of counters drops a worker's count once it exits
    (its series go stale): a total reads each series' highest value over
    the dashboard's range."""
    checked = 0
    for panel in panels(dashboard):
        if panel["type"] != "stat":
            continue
        for target in panel["targets"]:
            expr = target["expr"]
            instant = [m[1] for m in _INSTANT_COUNTER.finditer(expr)]
            assert not instant, f"{panel['title']}: {expr!r} reads {instant} at an instant"
            for name in set(re.findall(r"crawlmesh_\w+_total", expr)):
                if f"max_over_time({name}" in expr:
                    assert "[$__range])" in expr, expr  # the whole range, not a step
                    checked += 1
            assert len(_OVER_TIME.findall(expr)) == len(re.findall(r"crawlmesh_\w+_total", expr))
    assert checked >= 3  # pages, items, errors


def test_no_ratio_divides_by_zero(dashboard: dict[str, Any]) -> None:
    """0/0 is NaN (a reason with no waits, a node with no requests): every
    denominator is kept only where it is above zero."""
    ratios = 0
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for denominator in expr.split(" / ")[1:]:
                assert denominator.rstrip().endswith("> 0)"), f"{panel['title']}: {expr!r}"
                ratios += 1
    assert ratios >= 4


def test_the_errors_total_is_zero_before_the_first_error(dashboard: dict[str, Any]) -> None:
    errors = next(p for p in panels(dashboard) if p["type"] == "stat" and p["title"] == "Errors")
    assert [t["expr"].endswith(" or vector(0)") for t in errors["targets"]] == [True]
