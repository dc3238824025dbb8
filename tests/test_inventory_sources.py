"""Where an inventory comes from: discovery order, files and directories, the default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from inventory_helpers import write

from execnet_cli.inventory import (
    DEFAULT_INVENTORY,
    HostSet,
    Inventory,
    InventoryError,
    find_inventories,
    load_inventory,
)


@pytest.fixture
def clean(tmp_path: Path) -> dict[str, str]:
    """An environment without inventory settings, with an empty config dir."""
    (tmp_path / "cwd").mkdir()
    (tmp_path / "config").mkdir()
    return {"XDG_CONFIG_HOME": str(tmp_path / "config")}


def test_discovery_order(tmp_path: Path, clean: dict[str, str]) -> None:
    cwd = tmp_path / "cwd"
    user = tmp_path / "config" / "xnet" / "inventory.yaml"
    assert find_inventories((), clean, cwd) == ([], "embedded default")
    user.parent.mkdir()
    user.write_text("hosts: {u: }\n")
    assert find_inventories((), clean, cwd) == ([user], "user config")
    (cwd / "xnet.yaml").write_text("hosts: {p: }\n")
    assert find_inventories((), clean, cwd) == ([cwd / "xnet.yaml"], "./xnet.yaml")
    env = {**clean, "XNET_INVENTORY": os.pathsep.join(["a.yaml", "", "b.yaml"])}
    assert find_inventories((), env, cwd) == ([Path("a.yaml"), Path("b.yaml")], "XNET_INVENTORY")
    assert find_inventories(["f.yaml"], env, cwd) == ([Path("f.yaml")], "--inventory")


def test_discovery_defaults_to_dot_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    user = tmp_path / ".config" / "xnet" / "inventory.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("hosts: {u: }\n")
    assert find_inventories((), {}, tmp_path) == ([user], "user config")


def test_load_inventory_uses_what_it_finds(tmp_path: Path, clean: dict[str, str]) -> None:
    cwd = tmp_path / "cwd"
    assert load_inventory((), clean, cwd).select("all") == HostSet("localhost")
    (cwd / "xnet.yaml").write_text("hosts: {p1: }\n")
    assert load_inventory((), clean, cwd).select("all") == HostSet("p1")
    extra = write(tmp_path, "hosts: {e1: }\n", "e.yaml")
    env = {**clean, "XNET_INVENTORY": str(extra)}
    assert load_inventory((), env, cwd).select("all") == HostSet("e1")
    with pytest.raises(InventoryError, match="no such inventory file"):
        load_inventory((), {**clean, "XNET_INVENTORY": str(tmp_path / "gone.yaml")}, cwd)


def test_embedded_default() -> None:
    inv = Inventory.default()
    (host,) = inv.hosts()
    assert (host.name, host.transport, host.groups) == ("localhost", "popen", ("local",))
    assert host.spec() == "popen//id=localhost"
    assert "transport: popen" in DEFAULT_INVENTORY
    assert inv.sources == ("<default inventory>",)


def test_several_files_merge_in_order(tmp_path: Path) -> None:
    first = write(tmp_path, "vars: {user: a}\ngroups:\n  web: {hosts: web1}\n", "1.yaml")
    second = write(tmp_path, "vars: {user: b}\ngroups:\n  web: {hosts: web2}\n", "2.yaml")
    inv = Inventory.from_files([first, second])
    assert inv.select("web") == HostSet("web[1-2]") and inv.host("web1").user == "b"
    assert inv.sources == (str(first), str(second))
    assert Inventory.from_files([tmp_path]).select("web") == HostSet("web[1-2]")  # a directory


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such inventory file"):
        Inventory.from_files([tmp_path / "nope.yaml"])
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InventoryError, match="not UTF-8"):
        Inventory.from_files([tmp_path / "bin.yaml"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InventoryError, match="no \\*.yaml"):
        Inventory.from_files([tmp_path / "empty"])
