"""execnet's serialization format as the alias speaks it (``_remote/compat_format.py``).

What the real execnet 2.1.2 dumps, we load, and the other way round, value for value
(hypothesis draws the values); our bytes are execnet's bytes. Garbage, truncated data and
forged sizes end in a DataFormatError (EOFError where an opcode should start, as in
execnet), never another exception, and never a large allocation.
"""

from __future__ import annotations

import io
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execnet_cli._remote import compat_format as fmt
from execnet_cli._remote.errors import DataFormatError, DumpError, LoadError

real = pytest.importorskip("execnet.gateway_base")

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**31), max_value=10**60)  # execnet fails below -2**31
    | st.floats(allow_nan=False)
    | st.complex_numbers(allow_nan=False)
    | st.text()
    | st.binary()
)
hashables = st.recursive(
    scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=6
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(hashables, inner, max_size=5)
        | st.sets(hashables, max_size=5)
        | st.frozensets(hashables, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_real_execnet_and_ours_read_each_others_bytes(value):
    ours = fmt.dumps(value)
    assert ours == real.dumps(value)
    assert real.loads(ours) == value
    assert fmt.loads(real.dumps(value)) == value
    assert fmt.load(io.BytesIO(ours)) == value


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_is_a_format_error(data):
    for blob in (data, b"\x02" + data):
        try:
            fmt.loads(blob)
        except (DataFormatError, EOFError):
            pass


@settings(max_examples=200, deadline=None)
@given(values)
def test_every_truncation_is_an_error_and_a_stream_reads_one_value(value):
    data = fmt.dumps(value)
    for cut in range(1, len(data)):
        with pytest.raises((LoadError, EOFError)):
            fmt.loads(data[:cut])
    stream = io.BytesIO(data + fmt.dumps("next"))
    assert fmt.load(stream) == value and fmt.load(stream) == "next"
    with pytest.raises(LoadError, match="version"):  # execnet's answer at the end
        fmt.load(stream)


def test_nan_and_negative_zero():
    assert math.isnan(fmt.loads(real.dumps(float("nan"))))
    assert math.copysign(1, fmt.loads(fmt.dumps(-0.0))) == -1


def test_python2_strings_and_the_string_flags():
    py2 = b"\x02M\x00\x00\x00\x01aQ"  # what execnet on Python 2 wrote for 'a'
    assert fmt.loads(py2) == b"a"
    assert fmt.loads(py2, py2str_as_py3str=True) == "a"
    assert fmt.loads(fmt.dumps("a"), py3str_as_py2str=True) == b"a"
    assert fmt.loads_internal(fmt.dumps_internal("a")) == "a"


def test_what_cannot_be_dumped():
    class Int(int):
        pass

    loop: list = []
    loop.append(loop)
    for value in (object(), Int(1), "\ud800", loop, [1, {2: object()}]):
        with pytest.raises(DumpError):
            fmt.dumps(value)


def test_forged_sizes_are_refused_before_allocating():
    for op in (b"K", b"A", b"N", b"H"):  # list, bytes, str, long int
        with pytest.raises(LoadError):
            fmt.loads(b"\x02" + op + b"\x7f\xff\xff\xffQ")
        with pytest.raises(LoadError):  # from a file, whose length is unknown
            fmt.load(io.BytesIO(b"\x02" + op + b"\x7f\xff\xff\xffQ"))
    with pytest.raises(LoadError):
        fmt.loads(b"\x02@\x7f\xff\xff\xffQ")  # a tuple of more items than exist
    with pytest.raises(LoadError):
        fmt.loads(b"\x02F\x00\x00\x00\x01F\x00\x00\x00\x02PQ")  # setitem on an int


def test_wrong_version_and_missing_stop():
    with pytest.raises(LoadError, match="version"):
        fmt.loads(b"\x01LQ")
    with pytest.raises(EOFError):
        fmt.loads(b"\x02L")
    with pytest.raises(LoadError):
        fmt.loads(b"\x02LLQ")  # two values, one STOP


def test_channels_need_a_gateway():
    class Channel:  # execnet serializes any class of this name as a channel
        def __init__(self, id: int) -> None:
            self.id = id

    data = fmt.dumps_internal(Channel(7), Channel)
    assert data == real.dumps_internal(Channel(7))
    with pytest.raises(LoadError, match="gateway"):
        fmt.loads_internal(data)
    assert fmt.loads_internal(data, lambda cid: ("channel", cid)) == ("channel", 7)
