"""The function metadata the Python worker sends the Functions host, built as the worker builds it.

In Azure, the Python language worker (azure-functions-python-worker, `loader.index_function_app`
and `process_indexed_function`) imports function_app.py, takes its one top-level FunctionApp,
and sends the host one `RpcFunctionMetadata` per function whose `raw_bindings` are JSON strings
(the binding as the host reads it). A function with a parameter of an SDK type (BlobClient)
gets its raw bindings from the base extension, which adds
`properties.SupportsDeferredBinding`; the host then passes a reference (model binding data)
instead of the blob's bytes. The local host takes its bindings from this metadata, so it reads
the same JSON Azure does. The worker itself is not on PyPI for Python 3.11 (it ships with the
host), so this module makes the same library calls it makes; tests/devhost/test_indexing.py
compares the two when the worker is importable.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple

import azure.functions as func
import azurefunctions.extensions.base as extensions_base

SETTING_EXPRESSION = re.compile(r"%([A-Za-z0-9_]+)%")


class IndexingError(ValueError):
    """The worker would refuse to index the app (the host then runs no function)."""


class _ParamType(NamedTuple):
    """The worker's ParamTypeInfo: what the base extension reads from `input_types`."""
    binding_name: str
    pytype: Any
    deferred_bindings_enabled: bool = False


@dataclass(frozen=True)
class FunctionMetadata:
    name: str
    script_file: str
    raw_bindings: tuple[str, ...]  # JSON strings, exactly as sent to the host
    function: Callable[..., Any]

    @property
    def bindings(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.raw_bindings]

    @property
    def trigger(self) -> dict[str, Any]:
        [trigger] = [b for b in self.bindings if b["type"].endswith("Trigger")]
        return trigger

    @property
    def deferred(self) -> bool:
        """The host hands this trigger's parameter over as an SDK client, not as bytes."""
        return bool(self.trigger.get("properties", {}).get("SupportsDeferredBinding"))

    def setting_names(self) -> set[str]:
        """The app settings named as %SETTING% in any binding value."""
        return {name for raw in self.raw_bindings for name in SETTING_EXPRESSION.findall(raw)}


def index_module(module: ModuleType) -> list[FunctionMetadata]:
    """loader.index_function_app: exactly one FunctionRegister at the module's top level."""
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(apps) != 1:
        raise IndexingError(f"{module.__name__}: the worker needs exactly one top-level function "
                            f"app instance, found {len(apps)}")
    return index_app(apps[0])


def index_app(app: func.FunctionRegister) -> list[FunctionMetadata]:
    """loader.process_indexed_function for each function of the app."""
    return [_metadata(function) for function in _functions_of(app)]


def _metadata(function: func.Function) -> FunctionMetadata:
    user = function.get_user_function()
    name = function.get_function_name() or user.__name__
    params = inspect.signature(user).parameters
    bound = {b.name for b in function.get_bindings()} - {"$return"}
    if set(params) != bound:
        raise IndexingError(f"{name}: parameters {sorted(params)} do not match the bindings "
                            f"{sorted(bound)}")
    hints = typing.get_type_hints(user)
    registry = extensions_base.get_binding_registry()
    input_types = {p: _ParamType(p, hints.get(p)) for p in params}
    if any(registry.check_supported_type(t.pytype) for t in input_types.values()):
        raw, _ = registry.get_raw_bindings(function, input_types)
    else:
        raw = function.get_raw_bindings()
    return FunctionMetadata(name, function.function_script_file or "", tuple(raw), user)


# Keyed by id(); the app is kept alongside so that its id cannot be reused by another app.
_INDEXED: dict[int, tuple[func.FunctionRegister, list[func.Function]]] = {}


def _functions_of(app: func.FunctionRegister) -> list[func.Function]:
    """The app's functions, indexed once: FunctionApp.get_functions() refuses a second call
    (it sees every name again as a duplicate), and a process may start several hosts."""
    if id(app) not in _INDEXED:
        _INDEXED[id(app)] = (app, list(app.get_functions()))
    return _INDEXED[id(app)][1]
