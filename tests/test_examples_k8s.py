"""examples/k8s: every manifest validates against the Kubernetes schema
(kubernetes-validate, strict: unknown fields are errors), and what the
manifests say matches what crawlmesh does: the commands parse, the settings
and mesh files load, the autoscalers target objects that exist, and the
external metric is one the backlog exporter serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from crawlmesh._cli._main import _parser
from crawlmesh._settings import load_nodes_file, load_settings, read_settings_file

K8S = Path(__file__).resolve().parents[1] / "examples" / "k8s"
KUBERNETES = "1.30.0"


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


DOCS = documents()


@pytest.mark.parametrize(("where", "doc"), DOCS, ids=[w for w, _ in DOCS])
def test_manifest_validates_strictly(where: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_a_broken_manifest_is_refused() -> None:
    doc = dict(next(d for _, d in DOCS if d["kind"] == "HorizontalPodAutoscaler"))
    doc["spec"] = {**doc["spec"], "minReplica": 1}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in DOCS if d["kind"] == kind]


def containers() -> list[dict[str, Any]]:
    out = []
    for d in by_kind("Deployment") + by_kind("StatefulSet"):
        out += d["spec"]["template"]["spec"]["containers"]
    return out


def test_every_crawlmesh_command_parses() -> None:
    commands = [
        c["args"] for c in containers() if c["image"].startswith("ghcr.io/example/crawlmesh")
    ]
    assert {args[0] for args in commands} == {"crawl", "node", "backlog"}
    for args in commands:
        _parser().parse_args(args)  # SystemExit on a bad flag


def test_the_config_files_load_and_name_every_node_pod(tmp_path: Path) -> None:
    config = next(d for d in by_kind("ConfigMap") if d["metadata"]["name"] == "crawl-config")
    (tmp_path / "settings.toml").write_text(config["data"]["settings.toml"])
    settings = load_settings([("settings.toml", read_settings_file(tmp_path / "settings.toml"))])
    assert settings.backend.url == "redis://redis:6379/0"
    # The token file the pods mount from the Secret, here a file of our own.
    (tmp_path / "tokens").write_text("a-token\n")
    mesh = config["data"]["nodes.toml"].replace("/etc/crawlmesh/tokens", str(tmp_path / "tokens"))
    (tmp_path / "nodes.toml").write_text(mesh)
    specs = load_nodes_file(tmp_path / "nodes.toml")
    nodes = next(d for d in by_kind("StatefulSet") if d["metadata"]["name"] == "nodes")
    hpa = next(d for d in by_kind("HorizontalPodAutoscaler") if d["metadata"]["name"] == "nodes")
    service = nodes["spec"]["serviceName"]
    expected = [f"http://nodes-{i}.{service}:8700" for i in range(hpa["spec"]["maxReplicas"])]
    assert [s.url for s in specs] == expected


def test_autoscalers_target_what_exists_and_metrics_that_are_served() -> None:
    targets = {
        (d["kind"], d["metadata"]["name"]) for d in by_kind("Deployment") + by_kind("StatefulSet")
    }
    src = Path(__file__).resolve().parents[1] / "src/crawlmesh"
    backlog = (src / "_state/_redis/_backlog.py").read_text()
    for hpa in by_kind("HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["name"]) in targets
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "External":
                name = metric["external"]["metric"]["name"]
                assert f'"{name}"' in backlog  # a gauge the exporter defines
    workers = next(
        d for d in by_kind("HorizontalPodAutoscaler") if d["metadata"]["name"] == "crawl-workers"
    )
    crawl_label = workers["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"][
        "crawl"
    ]
    exporter = next(c for c in containers() if c["args"][0] == "backlog")
    assert f"--namespace={crawl_label}" in exporter["args"]
