"""Active checks against real (lite) nodes, and node-file reloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from balancer.test_mesh_crawl import open_nodes
from crawlmesh import SettingsError
from crawlmesh._balancer import build_balancer, reload_nodes, run_mesh_upkeep
from crawlmesh._settings import load_settings


async def test_a_draining_node_is_taken_out_and_back_after_passes(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with open_nodes(("a", "", 1, 0), ("b", "", 1, 0), ("c", "", 1, 0)) as (specs, lite):
        settings = load_settings(
            [("t", {"balancer.health.interval": 1.0, "balancer.health.slow_start": 0})]
        )
        balancer = build_balancer(settings, specs)
        c = next(n for n in balancer.nodes if n.name == "c")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_mesh_upkeep, balancer, settings)
            lite["c"].health_status = "draining"
            await trio.sleep(2.5)  # checks at 0, 1, 2: two fails mark it down
            assert balancer.health.state(c) == "down"
            assert "c" not in {n.name for n in balancer.health.eligible()}
            lite["c"].health_status = "healthy"
            await trio.sleep(1.0)  # one pass is not enough
            assert balancer.health.state(c) == "down"
            await trio.sleep(1.0)  # the second pass is
            assert balancer.health.state(c) == "up"
            assert "c" in {n.name for n in balancer.health.eligible()}
            nursery.cancel_scope.cancel()
        await balancer.aclose()


async def test_an_unreachable_node_goes_down(loopback_clock: trio.testing.MockClock) -> None:
    async with open_nodes(("a", "", 1, 0), ("b", "", 1, 0)) as (specs, lite):
        settings = load_settings([("t", {"balancer.health.interval": 1.0})])
        balancer = build_balancer(settings, specs)
        lite["b"].up = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_mesh_upkeep, balancer, settings)
            await trio.sleep(3)
            states = {n.name: balancer.health.state(n) for n in balancer.nodes}
            assert states == {"a": "up", "b": "down"}
            nursery.cancel_scope.cancel()
        await balancer.aclose()


async def test_reload_keeps_the_old_mesh_when_the_file_is_bad(tmp_path: Path) -> None:
    f = tmp_path / "nodes.toml"
    f.write_text("[[nodes]]\nname = 'one'\n")
    settings = load_settings([("t", {"balancer.nodes_file": str(f)})])
    balancer = build_balancer(settings)
    assert [n.name for n in balancer.nodes] == ["one"]
    f.write_text("[[nodes]]\nname = 'one'\n\n[[nodes]]\nname = 'two'\nweight = 2\n")
    assert reload_nodes(balancer, settings)
    assert [n.name for n in balancer.nodes] == ["one", "two"]
    f.write_text("[[nodes]]\nname = 'one'\nkind = 'teleport'\n")
    assert not reload_nodes(balancer, settings)
    assert [n.name for n in balancer.nodes] == ["one", "two"]
    assert not reload_nodes(balancer, settings.__class__())  # no node file: nothing to do
    f.unlink()
    with pytest.raises(SettingsError):
        build_balancer(settings)
    await balancer.aclose()


async def test_file_changes_are_picked_up(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    f = tmp_path / "nodes.toml"
    f.write_text("[[nodes]]\nname = 'one'\n")
    settings = load_settings(
        [("t", {"balancer.nodes_file": str(f), "balancer.reload_interval": 1.0})]
    )
    balancer = build_balancer(settings)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_mesh_upkeep, balancer, settings)
        await trio.sleep(1.5)
        f.write_text("[[nodes]]\nname = 'one'\n\n[[nodes]]\nname = 'two'\n")
        await trio.sleep(2)
        assert [n.name for n in balancer.nodes] == ["one", "two"]
        nursery.cancel_scope.cancel()
    await balancer.aclose()


async def test_nodes_of_a_settings_file_follow_the_node_files_rule(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    from crawlmesh import Spider
    from crawlmesh._cli import resolve_settings

    f = tmp_path / "settings.toml"
    f.write_text(
        "concurrency = 4\n\n[balancer]\nreload_interval = 1.0\n\n[[nodes]]\nname = 'one'\n"
    )
    settings = resolve_settings(Spider, settings_file=f)
    assert settings.balancer.nodes_settings_file == str(f)
    balancer = build_balancer(settings)
    assert [n.name for n in balancer.nodes] == ["one"]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_mesh_upkeep, balancer, settings)
        await trio.sleep(1.5)
        # Changed on disk: picked up, as a node file's change is.
        f.write_text(f.read_text() + "\n[[nodes]]\nname = 'two'\n")
        await trio.sleep(2)
        assert [n.name for n in balancer.nodes] == ["one", "two"]
        nursery.cancel_scope.cancel()
    # A bad change keeps the mesh; one without nodes too.
    f.write_text(f.read_text() + "\n[[nodes]]\nname = 'three'\nkind = 'teleport'\n")
    assert not reload_nodes(balancer, settings)
    f.write_text("concurrency = 4\n")
    assert not reload_nodes(balancer, settings)
    assert [n.name for n in balancer.nodes] == ["one", "two"]
    await balancer.aclose()

    # Nodes declared above the file (custom_settings, -s) are the mesh: the
    # file's are not re-read over them.
    f.write_text("[[nodes]]\nname = 'one'\n")

    class Own(Spider):
        custom_settings = {"nodes": [{"name": "mine"}]}

    assert resolve_settings(Own, settings_file=f).balancer.nodes_settings_file == ""
    assert (
        resolve_settings(
            Spider, settings_file=tmp_path / "settings.toml", overrides={"nodes": [{"name": "cli"}]}
        ).balancer.nodes_settings_file
        == ""
    )
