"""``execnet.gateway_base`` of the alias: channels, errors, serializer, execution models.

The engine's names are those of a worker's ``execnet.gateway_base``
(``_remote/compat.gateway_base_exports``; a test holds the two to the same objects); the
serializer functions speak execnet's format (``_remote/compat_format.py``). The rest is
execnet's API over our engine (``execnet_cli/compat/``). Only absolute imports: execnet's
own tests import this file as a top-level module too.
"""

from __future__ import annotations

from execnet_cli._remote.channel import NO_ENDMARKER_WANTED, Channel
from execnet_cli._remote.compat_format import (
    COMPLEX_FORMAT,
    COMPLEX_FORMAT_SIZE,
    DUMPFORMAT_VERSION,
    FLOAT_FORMAT,
    FLOAT_FORMAT_SIZE,
    FOUR_BYTE_INT_MAX,
    bchr,
    dump,
    dumps,
    dumps_internal,
    load,
    loads,
    loads_internal,
    opcode,
)
from execnet_cli._remote.engine import BaseGateway
from execnet_cli._remote.errors import (
    DataFormatError,
    DumpError,
    LoadError,
    RemoteError,
    TimeoutError,
)
from execnet_cli._remote.execmodel import ExecModel, get_execmodel
from execnet_cli._remote.worker import MAIN_THREAD_BUSY as MAIN_THREAD_ONLY_DEADLOCK_TEXT
from execnet_cli._remote.worker import WorkerGateway
from execnet_cli.compat.channels import (
    ChannelFactory,
    ChannelFile,
    ChannelFileRead,
    ChannelFileWrite,
    Unserializer,
)
from execnet_cli.compat.tracing import DEBUG, notrace, pid, trace
from execnet_cli.compat.wire import (
    IO,
    Event,
    GatewayReceivedTerminate,
    Message,
    Popen2IO,
    ReadIO,
    WriteIO,
    geterrortext,
    init_popen_io,
    sysex,
)
from execnet_cli.compat.workerpool import Reply, WorkerPool

__all__ = [
    "COMPLEX_FORMAT",
    "COMPLEX_FORMAT_SIZE",
    "DEBUG",
    "DUMPFORMAT_VERSION",
    "FLOAT_FORMAT",
    "FLOAT_FORMAT_SIZE",
    "FOUR_BYTE_INT_MAX",
    "IO",
    "MAIN_THREAD_ONLY_DEADLOCK_TEXT",
    "NO_ENDMARKER_WANTED",
    "BaseGateway",
    "Channel",
    "ChannelFactory",
    "ChannelFile",
    "ChannelFileRead",
    "ChannelFileWrite",
    "DataFormatError",
    "DumpError",
    "Event",
    "ExecModel",
    "GatewayReceivedTerminate",
    "LoadError",
    "Message",
    "Popen2IO",
    "ReadIO",
    "RemoteError",
    "Reply",
    "TimeoutError",
    "Unserializer",
    "WorkerGateway",
    "WorkerPool",
    "WriteIO",
    "bchr",
    "dump",
    "dumps",
    "dumps_internal",
    "get_execmodel",
    "geterrortext",
    "init_popen_io",
    "load",
    "loads",
    "loads_internal",
    "notrace",
    "opcode",
    "pid",
    "sysex",
    "trace",
]
