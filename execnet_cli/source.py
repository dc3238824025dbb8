"""Turning what ``remote_exec`` is given (text, a function, a module) into a request.

A function travels as its source plus a call, so it must not depend on anything it
cannot take along: its first parameter is ``channel``, it has no closure, and every
global name it reads is a builtin (imports go inside the function). We check this
with ``ast`` before sending, instead of letting it fail far away with a NameError.
"""

from __future__ import annotations

import builtins
import textwrap
import types
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from . import parsing

if TYPE_CHECKING:  # ast, dis and inspect load lazily: most callers send plain text
    import ast

ExecRequest = Tuple[str, Optional[str], Optional[str], Dict[str, Any]]


def prepare_request(source: Any, kwargs: Dict[str, Any]) -> ExecRequest:
    """The (source, file name, call name, kwargs) tuple the worker runs."""
    if isinstance(source, types.ModuleType):
        import inspect

        if kwargs:
            raise ValueError("keyword arguments are only accepted with a function")
        filename = getattr(source, "__file__", None)
        return inspect.getsource(source), filename, None, {}
    if isinstance(source, types.FunctionType):
        return _function_request(source, kwargs)
    if isinstance(source, str):
        if kwargs:
            raise ValueError("keyword arguments are only accepted with a function")
        return textwrap.dedent(source), None, None, {}
    raise TypeError(
        f"remote_exec takes source text, a function or a module, not {type(source).__name__}"
    )


def _function_request(func: types.FunctionType, kwargs: Dict[str, Any]) -> ExecRequest:
    import ast
    import inspect

    name = func.__name__
    if func.__closure__:
        free = ", ".join(func.__code__.co_freevars)
        raise ValueError(f"function {name!r} is a closure (uses {free}); pass values as kwargs")
    code = func.__code__
    params = code.co_varnames[: code.co_argcount]
    if not params or params[0] != "channel":
        raise ValueError(f"function {name!r} must take 'channel' as its first parameter")
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError) as exc:
        raise ValueError(f"cannot get the source of function {name!r}: {exc}") from exc
    tree = parsing.parse(source)
    if not tree.body or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise ValueError(f"{name!r} is not defined by a plain 'def' statement")
    if tree.body[0].decorator_list:
        raise ValueError(f"function {name!r} must not be decorated")
    bad = non_builtin_globals(tree, code) - {name}
    if bad:
        raise ValueError(
            f"function {name!r} uses global names {', '.join(sorted(bad))}; only builtins "
            "are available remotely (import inside the function, pass values as kwargs)"
        )
    # Blank lines first, so the worker's tracebacks give the lines of the function's file.
    padding = "\n" * (code.co_firstlineno - 1)
    return padding + source, inspect.getsourcefile(func), name, dict(kwargs)


def non_builtin_globals(tree: ast.AST, code: types.CodeType) -> set:
    """Names the function reads as globals that are not builtins.

    The compiler knows which loads are global (``LOAD_GLOBAL`` / ``LOAD_NAME``); the
    ``ast`` Name nodes confirm they are names, not attributes.
    """
    import ast

    loaded = {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }
    return {n for n in _global_loads(code) & loaded if not hasattr(builtins, n)}


def _global_loads(code: types.CodeType) -> set:
    """Names loaded as globals in a code object and the code nested in it."""
    import dis

    names = {
        ins.argval
        for ins in dis.get_instructions(code)
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")
    }
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_loads(const)
    return names
