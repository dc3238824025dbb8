"""What the controller serves to workers' imports, and what it refuses (one test per
refusal), answered by ``ImportServer.answer`` from real files."""

from __future__ import annotations

import importlib.util
import marshal
import os
import threading
from pathlib import Path

import pytest
from imports_helpers import make_package

from execnet_cli.imports import FileCache, ImportPolicy, ImportServer, Root, module_root
from execnet_cli.imports.policy import Found, Refused
from execnet_cli.imports.related import candidates


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_package(tmp_path / "root")


@pytest.fixture
def server(root: Path) -> ImportServer:
    return ImportServer(ImportPolicy.from_directories([str(root)]), FileCache())


def refusal(answer: object) -> str:
    assert isinstance(answer, tuple) and answer[0] == "refused", answer
    return str(answer[1])


def test_modules_packages_and_submodules(server: ImportServer, root: Path) -> None:
    kind, path, source, code, related = server.answer(("find", "ctrlonly"))
    assert (kind, path) == ("package", str(root / "ctrlonly" / "__init__.py"))
    assert source == b"VERSION = '1.0'\n"
    assert code is None and related == []  # no magic number known: source only
    assert server.answer(("find", "ctrlonly.sub.deep"))[:2] == (
        "module",
        str(root / "ctrlonly" / "sub" / "deep.py"),
    )
    assert server.sent == {"ctrlonly", "ctrlonly.sub.deep"}


def test_the_modules_a_module_imports_travel_with_it(root: Path) -> None:
    cache = FileCache()
    policy = ImportPolicy.from_directories([str(root)])
    server = ImportServer(policy, cache, magic=importlib.util.MAGIC_NUMBER)
    assert server.answer(("find", "ctrlonly"))[4] == []  # its __init__ imports nothing
    kind, path, source, code, related = server.answer(("find", "ctrlonly.tasks"))
    assert isinstance(code, bytes) and marshal.loads(code).co_filename == path
    names = [entry[0] for entry in related]
    assert names == ["ctrlonly.helpers", "ctrlonly.sub", "ctrlonly.sub.deep"]
    assert all(isinstance(entry[4], bytes) for entry in related)
    assert server.answer(("find", "ctrlonly.helpers"))[4] == []  # sent already: not again
    assert cache.compiles == 5  # once each, for every worker


class CountingPolicy(ImportPolicy):
    """An ``ImportPolicy`` that counts its module look-ups (a class-wide list: frozen)."""

    looked_up: list[object] = []

    def find(self, name: object) -> Found | Refused | None:
        self.looked_up.append(name)
        return super().find(name)


def test_what_travels_with_a_module_is_worked_out_once_for_every_worker(root: Path) -> None:
    """32 workers asking for one module: its related list is looked up for the first."""
    cache = FileCache()
    policy = CountingPolicy(ImportPolicy.from_directories([str(root)]).roots)
    answers = [ImportServer(policy, cache).answer(("find", "ctrlonly.tasks")) for _ in range(32)]
    names = [[entry[0] for entry in answer[4]] for answer in answers]
    assert names == [["ctrlonly", "ctrlonly.helpers", "ctrlonly.sub", "ctrlonly.sub.deep"]] * 32
    looked_up = CountingPolicy.looked_up
    assert looked_up.count("ctrlonly.tasks") == 32  # the module asked for, each time
    assert looked_up.count("ctrlonly.helpers") == 1, looked_up  # its related ones, once
    assert looked_up.count("ctrlonly.sub.deep") == 1


def test_an_edited_module_takes_its_new_imports_along(root: Path) -> None:
    policy, cache = ImportPolicy.from_directories([str(root)]), FileCache()
    first = ImportServer(policy, cache).answer(("find", "ctrlonly.helpers"))
    assert [entry[0] for entry in first[4]] == ["ctrlonly"]  # ``from . import VERSION``
    helpers = root / "ctrlonly" / "helpers.py"
    helpers.write_text(helpers.read_text() + "from .sub import deep\n")
    later = ImportServer(policy, cache).answer(("find", "ctrlonly.helpers"))
    assert [entry[0] for entry in later[4]] == ["ctrlonly", "ctrlonly.sub", "ctrlonly.sub.deep"]


def test_a_worker_of_another_python_gets_source_only(root: Path) -> None:
    server = ImportServer(ImportPolicy.from_directories([str(root)]), FileCache(), magic=b"x")
    answer = server.answer(("find", "ctrlonly.tasks"))
    assert answer[3] is None and all(entry[4] is None for entry in answer[4])


def test_a_syntax_error_is_the_workers_to_raise(root: Path) -> None:
    (root / "ctrlonly" / "bad.py").write_text("def (:\n")
    server = ImportServer(
        ImportPolicy.from_directories([str(root)]), FileCache(), magic=importlib.util.MAGIC_NUMBER
    )
    answer = server.answer(("find", "ctrlonly.bad"))
    assert answer[0] == "module" and answer[3] is None


@pytest.mark.parametrize(
    "name, is_package, nodes, expected",
    [
        ("p.m", False, [(1, "", ("a", "b"))], ["p", "p.a", "p.b"]),
        ("p", True, [(1, "sub", ("x",))], ["p", "p.sub", "p.sub.x"]),
        ("p.s.m", False, [(2, "", ("a",))], ["p", "p.a"]),
        ("p.m", False, [(0, "p.q.r", ())], ["p", "p.q", "p.q.r"]),
        ("p.m", False, [(0, "os", ()), (0, "other.p", ()), (3, "", ("x",))], []),
        ("p.m", False, [(1, "", ("*",))], ["p"]),
    ],
)
def test_candidates(name: str, is_package: bool, nodes: list, expected: list) -> None:
    assert list(candidates(name, is_package, nodes)) == expected


def test_unknown_names_are_not_found(server: ImportServer) -> None:
    assert server.answer(("find", "nosuchmodule")) is None
    assert server.answer(("find", "ctrlonly.nosuch")) is None
    assert server.answer(("find", "ctrlonly.data.greeting")) is None  # data/ has no __init__


def test_nothing_is_served_without_roots(root: Path) -> None:
    server = ImportServer(ImportPolicy(), FileCache())
    assert server.answer(("find", "ctrlonly")) is None
    assert server.answer(("read", "ctrlonly", "data/greeting.txt")) is None


@pytest.mark.parametrize(
    "name",
    ["../etc/passwd", "/etc/passwd", ".ctrlonly", "ctrlonly..sub", "ctrlonly/sub", "", "a-b", 42],
)
def test_names_that_are_not_module_names_are_refused(server: ImportServer, name: object) -> None:
    assert "module name" in refusal(server.answer(("find", name)))


def test_overlong_names_are_refused(server: ImportServer) -> None:
    assert "characters" in refusal(server.answer(("find", "a." * 300 + "b")))


def test_malformed_requests_are_refused(server: ImportServer) -> None:
    assert "malformed" in refusal(server.answer("find ctrlonly"))
    assert "unknown import request" in refusal(server.answer(("open", "/etc/passwd")))
    assert "unknown import request" in refusal(server.answer(("find", "a", "b")))


def test_a_symlink_out_of_the_root_is_refused(
    server: ImportServer, root: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside.py").write_text("SECRET = 1\n")
    (root / "ctrlonly" / "leak.py").symlink_to(tmp_path / "outside.py")
    assert "outside the directories" in refusal(server.answer(("find", "ctrlonly.leak")))


def test_a_symlinked_package_out_of_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    elsewhere = make_package(tmp_path / "elsewhere")
    (root / "linked").symlink_to(elsewhere / "ctrlonly")
    server = ImportServer(ImportPolicy.from_directories([str(root)]), FileCache())
    assert "outside the directories" in refusal(server.answer(("find", "linked")))


def test_extension_modules_are_refused(server: ImportServer, root: Path) -> None:
    (root / "ctrlonly" / "_speedups.cpython-38-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    why = refusal(server.answer(("find", "ctrlonly._speedups")))
    assert "compiled extension module" in why and "install it on the remote" in why
    (root / "fastlib.abi3.so").write_bytes(b"\x7fELF")
    assert "compiled extension module" in refusal(server.answer(("find", "fastlib")))


def test_sourceless_modules_are_refused(server: ImportServer, root: Path) -> None:
    (root / "ctrlonly" / "compiled.pyc").write_bytes(b"\x00" * 16)
    assert "no source" in refusal(server.answer(("find", "ctrlonly.compiled")))


def test_a_package_root_serves_that_package_only(root: Path) -> None:
    (root / "other.py").write_text("X = 1\n")
    found = module_root("ctrlonly", [str(root)])
    assert found == Root(str(root), only="ctrlonly")
    server = ImportServer(ImportPolicy((found,)), FileCache())
    assert server.answer(("find", "ctrlonly.helpers")) is not None
    assert server.answer(("find", "other")) is None


def test_a_package_root_refuses_a_link_to_a_sibling(root: Path) -> None:
    (root / "sibling.py").write_text("SECRET = 1\n")
    (root / "ctrlonly" / "alias.py").symlink_to(root / "sibling.py")
    server = ImportServer(ImportPolicy((Root(str(root), only="ctrlonly"),)), FileCache())
    assert "outside the directories" in refusal(server.answer(("find", "ctrlonly.alias")))


def test_module_root_says_why_not_or_finds_a_namespace_package(tmp_path: Path) -> None:
    assert "no module named" in str(module_root("nosuch_xyz", [str(tmp_path)]))
    (tmp_path / "nspkg").mkdir()
    assert module_root("nspkg", [str(tmp_path)]) == Root(str(tmp_path), only="nspkg")


def test_package_data(server: ImportServer) -> None:
    assert server.answer(("stat", "ctrlonly", "data")) == "dir"
    assert server.answer(("stat", "ctrlonly", "data/greeting.txt")) == "file"
    assert server.answer(("stat", "ctrlonly", "data/none.txt")) is None
    assert (
        server.answer(("read", "ctrlonly", "data/greeting.txt")) == b"hello from the controller\n"
    )
    listing = server.answer(("list", "ctrlonly", ""))
    assert ".secret" not in listing and {"data", "tasks.py", "sub"} <= set(listing)


@pytest.mark.parametrize(
    "path", ["../ctrlonly/tasks.py", "data/../../x", "/etc/passwd", "./data", "data//x", ".secret"]
)
def test_package_data_paths_that_escape_or_hide_are_refused(
    server: ImportServer, path: str
) -> None:
    assert "package data path" in refusal(server.answer(("read", "ctrlonly", path)))


def test_package_data_through_a_symlink_out_is_refused(
    server: ImportServer, root: Path, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("secret\n")
    (root / "ctrlonly" / "data" / "link.txt").symlink_to(tmp_path / "secret.txt")
    why = refusal(server.answer(("read", "ctrlonly", "data/link.txt")))
    assert "outside the package" in why


def test_modules_have_no_package_data(server: ImportServer) -> None:
    assert "not a package" in refusal(server.answer(("read", "ctrlonly.tasks", "x")))


def test_files_over_the_bound_are_refused(root: Path) -> None:
    policy = ImportPolicy.from_directories([str(root)])
    server = ImportServer(policy, FileCache(max_file=8))
    assert "cannot read" in refusal(server.answer(("read", "ctrlonly", "data/greeting.txt")))


def test_roots_must_be_directories(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        ImportPolicy.from_directories([str(tmp_path / "none")])


def test_the_first_root_with_a_name_serves_all_of_it(tmp_path: Path) -> None:
    first = make_package(tmp_path / "first")
    second = make_package(tmp_path / "second")
    (second / "ctrlonly" / "extra.py").write_text("X = 1\n")
    policy = ImportPolicy.from_directories([str(first), str(second)])
    found = policy.find("ctrlonly.tasks")
    assert isinstance(found, Found) and found.path.startswith(str(first))
    assert policy.find("ctrlonly.extra") is None  # never mixed with the second's copy
    assert not isinstance(policy.find("ctrlonly.extra"), Refused)


def test_namespace_packages_are_their_portions_in_every_root(tmp_path: Path) -> None:
    """PEP 420 as for sys.path: portions in every root; a regular package or module of the
    name in a later root wins over them; a namespace package has no code and no data."""
    first, second, third = (tmp_path / n for n in ("first", "second", "third"))
    (first / "ns").mkdir(parents=True)
    (first / "ns" / "a.py").write_text("A = 1\n")
    (second / "ns" / "b").mkdir(parents=True)
    (second / "ns" / "b" / "__init__.py").write_text("")
    (third / "ns").mkdir(parents=True)
    (third / "ns" / "c.py").write_text("C = 1\n")
    policy = ImportPolicy.from_directories([str(first), str(second)])
    server = ImportServer(policy, FileCache())
    assert server.answer(("find", "ns")) == ("namespace", str(first / "ns"), b"", None, [])
    assert server.answer(("find", "ns.b"))[:2] == ("package", str(second / "ns/b/__init__.py"))
    assert server.answer(("find", "ns.c")) is None
    assert server.answer(("modules", "ns")) == [("a", False), ("b", True)]
    assert "namespace package" in refusal(server.answer(("read", "ns", "a.py")))
    (third / "ns.py").write_text("")
    regular = ImportPolicy.from_directories([str(first), str(third)]).find("ns")
    assert regular == Found("ns", "module", str(third / "ns.py"))


def test_a_packages_modules_are_listed_as_served(server: ImportServer, root: Path) -> None:
    """What pkgutil.iter_modules shows: .py modules and regular packages that would be
    served; not data directories, extension modules, hidden files or links out."""
    (root / "ctrlonly" / "_c.abi3.so").write_bytes(b"")
    (root / "ctrlonly" / "leak.py").symlink_to(root.parent / "elsewhere.py")
    (root.parent / "elsewhere.py").write_text("")
    assert server.answer(("modules", "ctrlonly")) == [
        ("broken", False),
        ("helpers", False),
        ("sub", True),
        ("tasks", False),
    ]
    assert server.answer(("modules", "ctrlonly.sub")) == [("deep", False)]
    assert "is a module" in refusal(server.answer(("modules", "ctrlonly.tasks")))
    assert server.answer(("modules", "nosuch")) is None
    assert "not a module name" in refusal(server.answer(("modules", "../x")))


def test_the_cache_reads_each_file_once_and_again_when_changed(root: Path) -> None:
    cache = FileCache()
    path = str(root / "ctrlonly" / "tasks.py")
    threads = [threading.Thread(target=cache.read, args=(path,)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (cache.reads, cache.hits) == (1, 15)
    Path(path).write_text("CHANGED = True\n")
    status = os.stat(path)
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    assert cache.read(path) == b"CHANGED = True\n" and cache.reads == 2


def test_the_cache_keeps_a_bounded_total(root: Path) -> None:
    cache = FileCache(max_total=40)
    for name in ("tasks.py", "helpers.py", "__init__.py"):
        cache.read(str(root / "ctrlonly" / name))
    assert cache._total <= 40 or len(cache._entries) == 1


def test_module_root_asks_import_hooks_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A package the directories searched do not hold, but the import system finds (here
    through sys.path; an import hook such as a setuptools editable install's alike), is
    served from where its spec says it is."""
    make_package(tmp_path / "elsewhere")
    monkeypatch.syspath_prepend(str(tmp_path / "elsewhere"))
    found = module_root("ctrlonly", [str(tmp_path)])  # not in the directories searched
    assert found == Root(str(tmp_path / "elsewhere"), only="ctrlonly")
    assert "not a pure-Python module (built-in)" in str(module_root("sys", [str(tmp_path)]))
