"""``records.Record``: the frozen values that were dataclasses (events, ``Job``,
``HostResult``, ``SSHSettings``) keep a dataclass's equality, hash, repr, pickling and
refusal to assign, and ``replace`` does what ``dataclasses.replace`` did."""

from __future__ import annotations

import copy
import pickle

import pytest

from execnet_cli.fleet.events import OK
from execnet_cli.fleet.jobs import Job, shell_job
from execnet_cli.fleet.results import HostResult


def test_job_is_a_frozen_value_with_replace() -> None:
    job = shell_job("echo hi", None)
    assert job == shell_job("echo hi", None) and hash(job) == hash(shell_job("echo hi", None))
    later = job.replace(early=False)
    assert later.early is False and job.early is True and later != job
    assert later == Job(job.kind, job.source, job.timeout, None, False, "echo hi", None, False)
    assert pickle.loads(pickle.dumps(job)) == job == copy.deepcopy(job)
    assert repr(job).startswith("Job(kind='sh', source=")
    with pytest.raises(AttributeError):
        job.kind = "run"  # type: ignore[misc]
    with pytest.raises(TypeError):
        job.replace(colour="red")


def test_host_result_is_a_frozen_value() -> None:
    one = HostResult("a", OK, 0, duration=0.5)
    assert one == HostResult("a", OK, 0, duration=0.5) != HostResult("b", OK, 0)
    assert {one: 1}[HostResult("a", OK, 0, duration=0.5)] == 1
    assert repr(HostResult("a", OK)).startswith("HostResult(name='a', status='ok', exit_code=None")
    assert one.replace(status="failed").status == "failed" and one.ok
    assert one != ("a", OK, 0)  # only its own class compares equal


def test_command_option_values_are_records_with_the_dataclass_defaults() -> None:
    from execnet_cli.cli.exitcodes import NO_TOLERANCE, Tolerance
    from execnet_cli.cli.rolling import RollingOptions

    assert Tolerance() == NO_TOLERANCE == Tolerance(0, False) != Tolerance(0, percent=True)
    assert str(Tolerance.parse("5%")) == "5%" and Tolerance.parse("5") == Tolerance(5)
    rolling = RollingOptions()
    assert (rolling.order, rolling.batch, rolling.diff, rolling.rolling) == (
        *("inventory", None, False, False),
    )
    assert rolling.replace(order="group").rolling


def test_host_stays_a_frozen_dataclass_with_its_methods_written_out() -> None:
    """``Host``'s hand-written ``__init__``, ``__eq__``, ``__hash__``, ``__repr__`` and
    refusal to assign do what ``@dataclass(frozen=True)`` generated; the dataclass
    functions work on it."""
    import dataclasses

    from execnet_cli.inventory import Host

    one = Host("b", ("g",), "popen", env={"X": "1"}, vars={"v": 1})
    assert one.address == "b" and one == Host(
        "b", ("g",), "popen", "b", env={"X": "1"}, vars={"v": 1}
    )
    assert one != one.__class__("b", ("g",), "popen", env={"X": "1"})  # vars compare
    assert hash(one) == hash(Host("b", ("g",), "popen"))  # env and vars are not hashed
    assert repr(Host("a")) == (
        "Host(name='a', groups=(), transport='ssh', address='a', port=None, user=None, "
        "identity_file=None, python=None, via=None, relay=None, proxy_jump=None, sudo=False, "
        "env={}, chdir=None, connect_timeout=None, retries=None, ssh_options=())"
    )
    assert dataclasses.is_dataclass(one) and dataclasses.fields(one)[-1].name == "vars"
    assert dataclasses.replace(one, chdir="/x") == Host(
        "b", ("g",), "popen", env={"X": "1"}, chdir="/x", vars={"v": 1}
    )
    assert pickle.loads(pickle.dumps(one)) == one == copy.deepcopy(one)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.port = 22  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del one.port  # type: ignore[misc]


def test_host_init_takes_every_field_in_order_with_its_default() -> None:
    """``Host.__init__`` is written by hand: a field added to the class and not to it (or
    with another default) would be missed by ``replace`` and the constructor."""
    import dataclasses
    import inspect

    from execnet_cli.inventory import Host

    params = list(inspect.signature(Host.__init__).parameters.values())[1:]
    fields = dataclasses.fields(Host)
    assert [p.name for p in params] == [f.name for f in fields]
    for param, spec in zip(params, fields):
        if spec.default is not dataclasses.MISSING:
            assert param.default == spec.default, spec.name
        elif spec.default_factory is not dataclasses.MISSING:
            assert param.default is None, spec.name  # None stands for a fresh factory value
        else:
            assert param.default is inspect.Parameter.empty, spec.name
