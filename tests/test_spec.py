from __future__ import annotations

import pytest

from execnet_cli import SpecError, XSpec


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
