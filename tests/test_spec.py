from __future__ import annotations

import re

import pytest

from execnet_cli import SpecError, XSpec
from execnet_cli.transports.opening import SpecFields
from execnet_cli.transports.ssh.settings import command_line


def test_keys_and_values():
    spec = XSpec("popen//python=/usr/bin/python3//chdir=/tmp/x//env:A=1//env:B=x=y//id=w1")
    assert spec.popen is True
    assert spec.python == "/usr/bin/python3"
    assert spec.chdir == "/tmp/x"
    assert spec.env == {"A": "1", "B": "x=y"}
    assert spec.id == "w1"
    assert spec.ssh is None and spec.via is None
    assert spec.transport == "popen"
    assert str(spec) == "popen//python=/usr/bin/python3//chdir=/tmp/x//env:A=1//env:B=x=y//id=w1"


def test_ssh_value_may_hold_spaces_and_options():
    spec = XSpec("ssh=-p 2222 -l root 127.0.0.2//python=python3")
    assert spec.ssh == "-p 2222 -l root 127.0.0.2"
    assert spec.transport == "ssh"


def test_unknown_key_is_named_with_suggestion():
    with pytest.raises(SpecError, match=r"unknown key 'chdri'.*did you mean 'chdir'"):
        XSpec("popen//chdri=/tmp")


def test_unknown_key_is_a_value_error_too():
    with pytest.raises(ValueError):
        XSpec("popen//bogus")


def test_duplicate_key():
    with pytest.raises(SpecError, match="duplicate key 'python'"):
        XSpec("popen//python=a//python=b")


def test_empty_spec():
    with pytest.raises(SpecError):
        XSpec("")


def test_equality_hash_and_mutation():
    a, b = XSpec("popen//id=x"), XSpec("popen//id=x")
    assert a == b and hash(a) == hash(b) and a != XSpec("popen")
    a.chdir = "/somewhere"  # pytest-xdist sets attributes
    assert a.chdir == "/somewhere"
    assert a._samefilesystem() is False and XSpec("popen")._samefilesystem() is True


def test_typo_attribute_is_loud():
    with pytest.raises(AttributeError):
        XSpec("popen").pyhton  # noqa: B018


def test_fields_are_typed_once():
    spec = XSpec(
        "ssh=-p 2222 -l root 127.0.0.2//python=python3//connect_timeout=1.5//nice=5"
        "//sudo=true//env:A=1//dont_write_bytecode//execmodel=main_thread_only"
    )
    fields = spec.fields
    assert (fields.kind, fields.python, fields.connect_timeout, fields.nice) == (
        "ssh",
        "python3",
        1.5,
        5,
    )
    assert fields.sudo == "root" and fields.env == {"A": "1"}
    assert fields.dont_write_bytecode is True and fields.spawn is False
    assert fields.execmodel == "main_thread_only"
    assert fields.ssh is not None and fields.ssh.host == "127.0.0.2"
    assert ("port", "2222") in fields.ssh.options
    assert (spec.connect_timeout, spec.nice, spec.sudo) == ("1.5", "5", "true")  # execnet's view


@pytest.mark.parametrize(
    "text, address",
    [("socket=10.0.0.1:8888", ("10.0.0.1", 8888)), ("socket", ("127.0.0.1", 0))],
)
def test_socket_address(text, address):
    assert XSpec(text).fields.socket == address


@pytest.mark.parametrize("value, user", [("true", "root"), ("postgres", "postgres"), ("no", None)])
def test_sudo_user(value, user):
    assert XSpec(f"popen//sudo={value}").fields.sudo == user


@pytest.mark.parametrize(
    "text, message",
    [
        ("popen//nice=high", "nice='high' is not an integer"),
        ("popen//nice=" + "9" * 21, "nice=" + "9" * 21 + " is not between -40 and 40"),
        ("popen//connect_timeout=soon", "connect_timeout='soon' is not a number"),
        ("popen//connect_timeout=0", "connect_timeout must be positive"),
        ("popen//sudo=bad user", "sudo='bad user' is not a user name"),
        ("popen//python", "python= needs a value"),
        ("popen//execmodel=fibers", "execmodel='fibers' is not one of"),
        ("popen//spawn=maybe", "spawn='maybe' is not true or false"),
        ("socket=nowhere", "socket= 'nowhere' is not host:port"),
        ("ssh", "ssh= needs a host"),
        ("ssh=-X host", "the ssh flag -X is not supported"),
    ],
)
def test_a_bad_value_is_refused_at_construction_naming_the_key(text, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        XSpec(text)


def test_setting_a_key_updates_the_fields_checked():
    spec = XSpec("ssh=host//id=w")
    spec.chdir = "pyexecnetcache"  # as pytest-xdist does for remote specs
    spec.id = "gw3"  # as a group does
    assert (spec.fields.chdir, spec.fields.id) == ("pyexecnetcache", "gw3")
    spec.chdir = None
    assert spec.fields.chdir is None
    with pytest.raises(SpecError, match="nice"):
        spec.nice = "x"


def test_from_fields_parses_nothing():
    fields = SpecFields(
        text="ssh=display only//id=h",
        kind="ssh",
        id="h",
        connect_timeout=1.5,
        ssh=command_line("10.0.0.1", user="a b", identity_file="/my keys/id", connect_timeout=1.5),
    )
    spec = XSpec.from_fields(fields)
    assert str(spec) == "ssh=display only//id=h" and spec.fields == fields
    assert spec.transport == "ssh" and spec.id == "h" and spec.connect_timeout == "1.5"
    assert XSpec(f"ssh={spec.ssh}").fields.ssh == fields.ssh, "its ssh= value parses back"
