"""The contract between the code and infra/: what the app reads is what the Bicep provides.

`check(repo)` returns a list of problems (empty when code and infrastructure agree):

* every setting shared/settings.py reads (names passed to `_required`, `_int`, `_bool`,
  `_choice`, `env.get`) plus APPLICATIONINSIGHTS_CONNECTION_STRING is set by the function app's
  `appsettings` in the Bicep, unless it is in `NOT_SET_IN_AZURE` (with the reason);
* settings that must not be set on Flex Consumption, or must not be set at all in Azure, are
  absent; secrets are only Key Vault references;
* container, queue and table names agree between the settings.py defaults, the Bicep app
  settings, the resources the Bicep creates and host.json (maxDequeueCount, poison queues);
* the function app's identity holds a data role on every storage service the code touches
  (blob, queue, table), and the app runs as that identity;
* every %SETTING% in function_app.py's trigger decorators is an app setting, and the Event Grid
  subscription (infra/app/blob-events-subscription.bicep) filters on the exports container and
  calls the Event Grid blob trigger's webhook;
* no principal but the app's identity can write the deployment package container: no other role
  assignment with a blob-writing (or key-listing, role-granting) role at a scope that covers it
  (the container, its account or blob service, or a resource group), and no SFTP local user on
  it. Writing the package is running code as the identity that holds Graph Mail.ReadWrite.

pycep-parser parses the Bicep in test_infra_parse.py, but its JSON does not tell the literal
'name' from the identifier `name` and nests operators without precedence, so this module reads
the Bicep itself: a small tokenizer and expression parser for the subset infra/ uses, and an
evaluator that follows parameters through module calls. What it cannot evaluate stays symbolic
(`Unknown`), and the checks treat an unknown where a name is expected as a problem.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devhost.host import ncrontab_next
from devhost.indexing import index_module

# ---- The contract's constants ----------------------------------------------------------------

APP_SETTINGS_ALWAYS = ("APPLICATIONINSIGHTS_CONNECTION_STRING",)

# Read by the code but deliberately not set in Azure (each must stay unset there).
NOT_SET_IN_AZURE = {
    "AzureWebJobsStorage": "connection-string form of the storage connection (Azurite, local "
                           "runs); Azure uses the identity-based AzureWebJobsStorage__* settings "
                           "and the account has shared keys disabled",
    "GRAPH_STATIC_TOKEN": "fixed bearer token accepted only with a loopback GRAPH_BASE_URL (the "
                          "Graph simulator); Settings.validated() rejects it anywhere else",
}

# Flex Consumption keeps these in functionAppConfig (or does not support them); setting them as
# app settings fails the deployment or is ignored.
FLEX_RESERVED = (
    "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_WORKER_RUNTIME_VERSION", "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY", "FUNCTIONS_WORKER_PROCESS_COUNT",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED", "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTOVERVNET", "WEBSITE_NODE_DEFAULT_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION", "WEBSITE_VNET_ROUTE_ALL",
)

SECRET_SETTINGS = ("TELEMESSAGE_PASSWORD", "GRAPH_CLIENT_SECRET")


def name_settings(read: set[str]) -> dict[str, str]:
    """Settings naming a storage resource -> its kind: *_CONTAINER, *_QUEUE, *_TABLE, and
    MAPPING_BLOB ("<container>/<blob>"). A new one in settings.py is checked automatically."""
    kinds = {"_CONTAINER": "container", "_QUEUE": "queue", "_TABLE": "table"}
    out = {name: kind for name in read for suffix, kind in kinds.items()
           if name.endswith(suffix)}
    if "MAPPING_BLOB" in read:
        out["MAPPING_BLOB"] = "container"
    return out


# The Functions host's poison queue for blob triggers (the `split` function).
BLOB_TRIGGER_POISON_QUEUE = "webjobs-blobtrigger-poison"

# Built-in data roles that let an identity use each storage service as the code and the host
# do (read and write; readers are not enough). Blob: the account is also the host's own storage
# (AzureWebJobsStorage), for which Functions documents Storage Blob Data Owner.
STORAGE_ROLES = {
    "blob": {
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    },
    "queue": {
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    },
    "table": {
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    },
}

STORAGE_ACCOUNT = "Microsoft.Storage/storageAccounts"
IDENTITY = "Microsoft.ManagedIdentity/userAssignedIdentities"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"
SITE_CONFIG = "Microsoft.Web/sites/config"
CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers"
LOCAL_USER = "Microsoft.Storage/storageAccounts/localUsers"

# Roles that can write blobs in a container at or below their scope, directly (data roles) or by
# listing keys, re-enabling shared keys or granting roles (control plane).
BLOB_WRITER_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
}
# Scopes above a container that cover every container in the account.
COVERS_EVERY_CONTAINER = (STORAGE_ACCOUNT, "Microsoft.Storage/storageAccounts/blobServices")

# ---- The code's side ---------------------------------------------------------------------------

_SETTING_READERS = {"_required": 1, "_int": 1, "_bool": 1, "_choice": 1}


def settings_read_by_code(settings_py: Path) -> set[str]:
    """Names of the environment settings shared/settings.py reads, found in its source."""
    tree = ast.parse(settings_py.read_text(encoding="utf-8"))
    constants = {
        target.id: node.value.value
        for node in tree.body if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets if isinstance(target, ast.Name)
    }

    def literal(arg: ast.expr) -> str:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
        if isinstance(arg, ast.Name) and arg.id in constants:
            return constants[arg.id]
        if isinstance(arg, ast.JoinedStr):
            parts = []
            for value in arg.values:
                if isinstance(value, ast.FormattedValue):
                    parts.append(literal(value.value))
                else:
                    parts.append(literal(value))
            return "".join(parts)
        raise ValueError(f"shared/settings.py line {arg.lineno}: cannot tell which setting "
                         f"{ast.unparse(arg)!r} names; extend contract.settings_read_by_code")

    # The readers themselves call env.get(name) with their parameter: not a setting name.
    inside_readers = {id(n) for f in tree.body if isinstance(f, ast.FunctionDef)
                      and f.name in _SETTING_READERS for n in ast.walk(f)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in inside_readers:
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in _SETTING_READERS:
            names.add(literal(node.args[_SETTING_READERS[func.id]]))
        elif (isinstance(func, ast.Attribute) and func.attr == "get"
              and isinstance(func.value, ast.Name) and func.value.id == "env"):
            names.add(literal(node.args[0]))
    return names


def settings_defaults(names: set[str]) -> dict[str, Any]:
    """The defaults Settings.from_env applies to these settings (the code, not its source);
    the Settings field of a setting is its lower-cased name."""
    from shared.settings import Settings

    settings = Settings.from_env({"AzureWebJobsStorage__accountName": "contract",
                                  "TELEMESSAGE_BASE_URL": "https://telemessage.invalid",
                                  "TELEMESSAGE_USERNAME": "contract",
                                  "TELEMESSAGE_PASSWORD": "contract"})
    return {name: getattr(settings, name.lower()) for name in names}


@dataclass
class FunctionBindings:
    settings: set[str]  # %SETTING% names in any binding (the host resolves them)
    blob_triggers: list[tuple[str, str, bool]]  # (function, path, Event Grid source)
    schedules: dict[str, str]  # timer function -> its schedule expression


def function_bindings(function_app_py: Path) -> FunctionBindings:
    """From the function metadata the Python worker sends the host for function_app.py (built
    by devhost/indexing.py, which the local host runs on too)."""
    spec = importlib.util.spec_from_file_location(
        f"_contract_function_app_{abs(hash(str(function_app_py)))}", function_app_py)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    metadata = index_module(module)
    return FunctionBindings(
        {name for m in metadata for name in m.setting_names()},
        [(m.name, m.trigger.get("path", ""), m.trigger.get("source") == "EventGrid")
         for m in metadata if m.trigger["type"] == "blobTrigger"],
        {m.name: m.trigger["schedule"] for m in metadata if m.trigger["type"] == "timerTrigger"})


# ---- A reader for the Bicep subset infra/ uses ---------------------------------------------------


class BicepError(ValueError):
    pass


@dataclass(frozen=True)
class Tok:
    kind: str  # ident, num, str, op, nl, eof
    value: Any
    line: int


_OPS = ("==", "!=", "=~", "!~", ">=", "<=", "&&", "||", "??", "::", ".?", "=>",
        "{", "}", "[", "]", "(", ")", ",", ":", "?", ".", "=", "!", "<", ">", "+", "-", "*",
        "/", "%", "@")


def _string(src: str, i: int, line: int) -> tuple[int, list[str | list[Tok]]]:
    """A '...' string at src[i]; returns the index after it and its parts (text, or the tokens
    of an ${...} interpolation)."""
    if src.startswith("'''", i):
        end = src.index("'''", i + 3)
        return end + 3, [src[i + 3:end]]
    i += 1
    parts: list[str | list[Tok]] = []
    text: list[str] = []
    escapes = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", "$": "$"}
    while True:
        if i >= len(src) or src[i] == "\n":
            raise BicepError(f"line {line}: unterminated string")
        c = src[i]
        if c == "\\":
            text.append(escapes.get(src[i + 1], src[i + 1]))
            i += 2
        elif c == "'":
            parts.append("".join(text))
            return i + 1, parts
        elif src.startswith("${", i):
            parts.append("".join(text))
            text = []
            depth, j = 1, i + 2
            while depth:
                if j >= len(src):
                    raise BicepError(f"line {line}: unterminated ${{...}} in a string")
                if src[j] == "'":
                    j, _ = _string(src, j, line)
                    continue
                depth += {"{": 1, "}": -1}.get(src[j], 0)
                j += 1
            parts.append(_tokenize(src[i + 2:j - 1], line))
            i = j
        else:
            text.append(c)
            i += 1


def _tokenize(src: str, line: int = 1) -> list[Tok]:
    toks: list[Tok] = []
    i = 0
    while i < len(src):
        c = src[i]
        if c == "\n":
            toks.append(Tok("nl", None, line))
            line += 1
            i += 1
        elif c in " \t\r":
            i += 1
        elif src.startswith("//", i):
            i = src.find("\n", i) if "\n" in src[i:] else len(src)
        elif src.startswith("/*", i):
            end = src.index("*/", i + 2)
            line += src.count("\n", i, end)
            i = end + 2
        elif c == "'":
            start = i
            i, parts = _string(src, i, line)
            toks.append(Tok("str", parts, line))
            line += src.count("\n", start, i)
        elif c.isdigit():
            m = re.match(r"\d+", src[i:])
            assert m
            toks.append(Tok("num", int(m.group()), line))
            i += len(m.group())
        elif c.isalpha() or c == "_":
            m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", src[i:])
            assert m
            toks.append(Tok("ident", m.group(), line))
            i += len(m.group())
        else:
            op = next((o for o in _OPS if src.startswith(o, i)), None)
            if op is None:
                raise BicepError(f"line {line}: unexpected character {c!r}")
            toks.append(Tok("op", op, line))
            i += len(op)
    toks.append(Tok("eof", None, line))
    return toks


# Expression tree nodes (tuples keep it small): ("lit", v) ("str", parts) ("id", name)
# ("obj", {key: node}) ("arr", [node]) ("get", node, name) ("idx", node, node)
# ("call", name, [node]) ("mcall", node, name, [node]) ("op", op, a, b) ("not", a) ("neg", a)
# ("if", cond, a, b) ("loop", text)


@dataclass
class Resource:
    symbol: str
    type: str
    body: Any  # node of the object
    existing: bool
    condition: Any = None
    children: list[Resource] = field(default_factory=list)
    line: int = 0


@dataclass
class Module:
    symbol: str
    path: str
    body: Any
    condition: Any = None


@dataclass
class BicepFile:
    path: Path
    params: dict[str, tuple[str, Any]] = field(default_factory=dict)  # name -> (type, default)
    secure_params: set[str] = field(default_factory=set)
    variables: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)  # including nested, by symbol
    modules: dict[str, Module] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


class _Parser:
    def __init__(self, toks: list[Tok], path: Path) -> None:
        self.toks, self.i, self.path = toks, 0, path
        self._nested: list[Resource] = []  # child resources met inside the current body
        self._parent_types: list[str] = []  # types of the resources being parsed

    # -- helpers
    def peek(self, k: int = 0) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def at(self, kind: str, value: Any = None, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == kind and (value is None or tok.value == value)

    def expect(self, kind: str, value: Any = None) -> Tok:
        if not self.at(kind, value):
            tok = self.peek()
            raise BicepError(f"{self.path}:{tok.line}: expected {value or kind}, got "
                             f"{tok.value!r}")
        return self.next()

    def skip_nl(self) -> None:
        while self.at("nl"):
            self.i += 1

    # -- file
    def file(self) -> BicepFile:
        out = BicepFile(self.path)
        decorators: list[str] = []
        while True:
            self.skip_nl()
            tok = self.peek()
            if tok.kind == "eof":
                return out
            if tok.kind == "op" and tok.value == "@":
                self.next()
                name = self.expect("ident").value
                if name == "sys":
                    self.expect("op", ".")
                    name = self.expect("ident").value
                decorators.append(name)
                if self.at("op", "("):
                    self.next()
                    self.args(")")
                continue
            word = self.expect("ident").value
            if word == "param":
                name = self.expect("ident").value
                ptype = self.expect("ident").value
                default = None
                if self.at("op", "="):
                    self.next()
                    default = self.expr()
                out.params[name] = (ptype, default)
                if "secure" in decorators:
                    out.secure_params.add(name)
            elif word == "var":
                name = self.expect("ident").value
                self.expect("op", "=")
                out.variables[name] = self.expr()
            elif word == "output":
                name = self.expect("ident").value
                self.expect("ident")
                self.expect("op", "=")
                out.outputs[name] = self.expr()
            elif word == "resource":
                for res in self.resource(parent_type=None):
                    out.resources[res.symbol] = res
            elif word == "module":
                symbol = self.expect("ident").value
                path = _plain(self.expect("str").value)
                self.expect("op", "=")
                condition, body = self.deployed_body()
                out.modules[symbol] = Module(symbol, path, body, condition)
            elif word in ("targetScope", "metadata"):
                if word == "metadata":
                    self.expect("ident")
                self.expect("op", "=")
                self.expr()
            else:
                raise BicepError(f"{self.path}:{tok.line}: unsupported statement {word!r}")
            decorators = []

    def resource(self, parent_type: str | None) -> list[Resource]:
        """After the `resource` keyword; returns the resource and its nested children."""
        line = self.peek().line
        symbol = self.expect("ident").value
        rtype = _plain(self.expect("str").value).split("@", 1)[0]
        if parent_type is not None:
            rtype = f"{parent_type}/{rtype}"
        existing = False
        if self.at("ident", "existing"):
            self.next()
            existing = True
        self.expect("op", "=")
        start = len(self._nested)
        self._parent_types.append(rtype)
        try:
            condition, body = self.deployed_body()
        finally:
            self._parent_types.pop()
        children = self._nested[start:]
        del self._nested[start:]
        res = Resource(symbol, rtype, body, existing, condition, children, line)
        return [res, *children]

    def deployed_body(self) -> tuple[Any, Any]:
        condition = None
        if self.at("ident", "if"):
            self.next()
            self.expect("op", "(")
            self.skip_nl()
            condition = self.expr()
            self.skip_nl()
            self.expect("op", ")")
        if self.at("op", "["):
            return condition, self.loop()
        return condition, self.obj()

    # -- expressions
    def expr(self) -> Any:
        cond = self.binary(0)
        if self.at("op", "?"):
            self.next()
            self.skip_nl()
            a = self.expr()
            self.skip_nl()
            self.expect("op", ":")
            self.skip_nl()
            b = self.expr()
            return ("if", cond, a, b)
        return cond

    _LEVELS = (("??",), ("||",), ("&&",), ("==", "!=", "=~", "!~"), ("<", ">", "<=", ">="),
               ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int) -> Any:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek().kind == "op" and self.peek().value in self._LEVELS[level]:
            op = self.next().value
            self.skip_nl()
            left = ("op", op, left, self.binary(level + 1))
        return left

    def unary(self) -> Any:
        if self.at("op", "!"):
            self.next()
            return ("not", self.unary())
        if self.at("op", "-"):
            self.next()
            return ("neg", self.unary())
        return self.postfix(self.primary())

    def postfix(self, node: Any) -> Any:
        while True:
            if self.at("op", ".") or self.at("op", ".?"):
                self.next()
                name = self.expect("ident").value
                if self.at("op", "("):
                    self.next()
                    node = ("mcall", node, name, self.args(")"))
                else:
                    node = ("get", node, name)
            elif self.at("op", "::"):
                self.next()
                node = ("get", node, "::" + self.expect("ident").value)
            elif self.at("op", "["):
                self.next()
                if self.at("op", "?"):
                    self.next()
                index = self.expr()
                self.expect("op", "]")
                node = ("idx", node, index)
            elif self.at("op", "!") and self.peek(1).kind in ("nl", "eof", "op"):
                self.next()  # non-null assertion
            else:
                return node

    def primary(self) -> Any:
        tok = self.next()
        if tok.kind == "num":
            return ("lit", tok.value)
        if tok.kind == "str":
            return ("str", tok.value)
        if tok.kind == "ident":
            if tok.value in ("true", "false"):
                return ("lit", tok.value == "true")
            if tok.value == "null":
                return ("lit", None)
            if self.at("op", "("):
                self.next()
                return ("call", tok.value, self.args(")"))
            return ("id", tok.value)
        if tok.kind == "op" and tok.value == "(":
            self.skip_nl()
            node = self.expr()
            self.skip_nl()
            self.expect("op", ")")
            return node
        if tok.kind == "op" and tok.value == "{":
            self.i -= 1
            return self.obj()
        if tok.kind == "op" and tok.value == "[":
            self.i -= 1
            if self.at("ident", "for", 1) or (self.at("nl", k=1) and self.at("ident", "for", 2)):
                return self.loop()
            return self.arr()
        raise BicepError(f"{self.path}:{tok.line}: unexpected {tok.value!r}")

    def args(self, close: str) -> list[Any]:
        items = []
        self.skip_nl()
        while not self.at("op", close):
            items.append(self.expr())
            self.skip_nl()
            if self.at("op", ","):
                self.next()
                self.skip_nl()
        self.expect("op", close)
        return items

    def arr(self) -> Any:
        self.expect("op", "[")
        items = []
        while True:
            self.skip_nl()
            if self.at("op", "]"):
                self.next()
                return ("arr", items)
            items.append(self.expr())
            if self.at("op", ","):
                self.next()

    def loop(self) -> Any:
        start = self.expect("op", "[")
        depth = 1
        while depth:
            tok = self.next()
            if tok.kind == "eof":
                raise BicepError(f"{self.path}:{start.line}: unterminated loop")
            if tok.kind == "op" and tok.value in "[({":
                depth += 1
            elif tok.kind == "op" and tok.value in "])}":
                depth -= 1
        return ("loop", start.line)

    def obj(self) -> Any:
        self.expect("op", "{")
        items: dict[str, Any] = {}
        while True:
            self.skip_nl()
            if self.at("op", "}"):
                self.next()
                return ("obj", items)
            if self.at("ident", "resource") and self.at("ident", k=1):
                self.next()
                parent = self._parent_types[-1] if self._parent_types else "?"
                self._nested.extend(self.resource(parent_type=parent))
                continue
            key_tok = self.next()
            if key_tok.kind == "ident":
                key = key_tok.value
            elif key_tok.kind == "str":
                key = "".join(p if isinstance(p, str) else
                              "${" + " ".join(str(t.value) for t in p if t.kind != "eof") + "}"
                              for p in key_tok.value)
            else:
                raise BicepError(f"{self.path}:{key_tok.line}: bad object key "
                                 f"{key_tok.value!r}")
            self.expect("op", ":")
            items[key] = self.expr()
            if self.at("op", ","):
                self.next()


def _plain(parts: list[str | list[Tok]]) -> str:
    if len(parts) != 1 or not isinstance(parts[0], str):
        raise BicepError("expected a string without interpolation")
    return parts[0]


def parse_bicep(path: Path) -> BicepFile:
    return _Parser(_tokenize(path.read_text(encoding="utf-8")), path).file()


# ---- Evaluation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unknown:
    """A value known only at deployment (e.g. `identity.outputs.principalId`)."""
    text: str


@dataclass(frozen=True)
class Choice:
    """A conditional whose condition is unknown: one of these values."""
    options: tuple[Any, ...]


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class SymbolRef:
    """A resource or module symbol in a scope."""
    scope: Scope
    symbol: str

    def __str__(self) -> str:
        return self.symbol


@dataclass(eq=False)
class Scope:
    """One Bicep file as deployed by one module call (or as the entry point)."""
    file: BicepFile
    args: dict[str, tuple[Any, Scope]] = field(default_factory=dict)
    name: str = "main"

    def __hash__(self) -> int:
        return id(self)


def _text(value: Any) -> str:
    if isinstance(value, Unknown):
        return value.text
    if isinstance(value, SymbolRef):
        return value.symbol
    return repr(value)


def evaluate(node: Any, scope: Scope, _depth: int = 0) -> Any:  # noqa: C901 - a dispatcher
    if _depth > 60:
        raise BicepError(f"{scope.file.path}: evaluation too deep (a cycle?)")
    ev = lambda n: evaluate(n, scope, _depth + 1)  # noqa: E731
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "str":
        out, known = [], True
        for part in node[1]:
            if isinstance(part, str):
                out.append(part)
                continue
            value = ev(_Parser(part, scope.file.path).expr())
            if isinstance(value, bool):
                out.append("true" if value else "false")
            elif isinstance(value, str | int):
                out.append(str(value))
            else:
                out.append("${" + _text(value) + "}")
                known = False
        # A string with deployment-time parts keeps them as ${...} in a quoted Unknown.
        return "".join(out) if known else Unknown("'" + "".join(out) + "'")
    if kind == "id":
        name = node[1]
        if name in scope.args:
            arg, parent = scope.args[name]
            return evaluate(arg, parent, _depth + 1)
        if name in scope.file.params:
            default = scope.file.params[name][1]
            return Unknown(name) if default is None else ev(default)
        if name in scope.file.variables:
            return ev(scope.file.variables[name])
        if name in scope.file.resources or name in scope.file.modules:
            return SymbolRef(scope, name)
        return Unknown(name)
    if kind == "obj":
        return {k: ev(v) for k, v in node[1].items()}
    if kind == "arr":
        return [ev(v) for v in node[1]]
    if kind == "get":
        base = ev(node[1])
        if isinstance(base, dict):
            return base.get(node[2], Unknown(f"{node[2]}"))
        return Unknown(f"{_text(base)}.{node[2]}")
    if kind == "idx":
        base, index = ev(node[1]), ev(node[2])
        if isinstance(base, dict | list) and isinstance(index, str | int):
            try:
                return base[index]
            except (KeyError, IndexError):
                pass
        return Unknown(f"{_text(base)}[{_text(index)}]")
    if kind == "call":
        return _call(node[1], [ev(a) for a in node[2]], scope)
    if kind == "mcall":
        return Unknown(f"{_text(ev(node[1]))}.{node[2]}()")
    if kind == "not":
        value = ev(node[1])
        return (not value) if isinstance(value, bool) else Unknown(f"!{_text(value)}")
    if kind == "neg":
        value = ev(node[1])
        return -value if isinstance(value, int) else Unknown(f"-{_text(value)}")
    if kind == "if":
        cond = ev(node[1])
        if isinstance(cond, bool):
            return ev(node[2] if cond else node[3])
        return Choice((ev(node[2]), ev(node[3])))
    if kind == "op":
        return _binary(node[1], ev(node[2]), ev(node[3]))
    if kind == "loop":
        return Unknown(f"<loop at line {node[1]}>")
    raise BicepError(f"cannot evaluate {node!r}")


def _known(value: Any) -> bool:
    return not isinstance(value, Unknown | Choice | Call | SymbolRef)


def _binary(op: str, a: Any, b: Any) -> Any:
    if op == "??":
        return b if a is None else a
    if not (_known(a) and _known(b)):
        if op == "&&" and (a is False or b is False):
            return False
        if op == "||" and (a is True or b is True):
            return True
        return Unknown(f"{_text(a)} {op} {_text(b)}")
    ops = {"==": lambda: a == b, "!=": lambda: a != b, "&&": lambda: a and b,
           "||": lambda: a or b, "=~": lambda: str(a).lower() == str(b).lower(),
           "!~": lambda: str(a).lower() != str(b).lower(), "<": lambda: a < b,
           ">": lambda: a > b, "<=": lambda: a <= b, ">=": lambda: a >= b,
           "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
           "/": lambda: a // b, "%": lambda: a % b}
    return ops[op]()


def _call(name: str, args: list[Any], scope: Scope) -> Any:
    known = all(_known(a) for a in args)
    if name == "string" and known:
        value = args[0]
        return ("true" if value else "false") if isinstance(value, bool) else (
            json.dumps(value) if isinstance(value, dict | list) else str(value))
    if name == "int" and known:
        return int(args[0])
    if name == "empty" and known:
        return not args[0]
    if name in ("toLower", "toUpper") and known:
        return args[0].lower() if name == "toLower" else args[0].upper()
    if name == "loadJsonContent" and known:
        data = json.loads((scope.file.path.parent / args[0]).read_text(encoding="utf-8"))
        if len(args) > 1:
            for key in args[1].removeprefix("$").strip(".").split("."):
                data = data[key]
        return data
    return Call(name, tuple(args))


# ---- The deployment as a tree of scopes ---------------------------------------------------------


@dataclass
class Deployment:
    root: Path
    scopes: list[Scope]
    files: dict[Path, BicepFile]

    def resources(self, rtype: str | None = None) -> Iterator[tuple[Resource, Scope]]:
        for scope in self.scopes:
            for res in scope.file.resources.values():
                if rtype is None or res.type == rtype:
                    yield res, scope


def load_deployment(infra: Path, entry: str = "main.bicep") -> Deployment:
    """main.bicep and every module it calls (transitively), each with its module arguments.
    Bicep files not reached from main.bicep are parsed but not part of the deployment."""
    files: dict[Path, BicepFile] = {}

    def parsed(path: Path) -> BicepFile:
        path = path.resolve()
        if path not in files:
            files[path] = parse_bicep(path)
        return files[path]

    root = Scope(parsed(infra / entry), name=entry)
    scopes = [root]
    pending = [root]
    while pending:
        scope = pending.pop()
        for module in scope.file.modules.values():
            if module.path.startswith("br/") or module.path.startswith("ts/"):
                continue  # registry modules: nothing to read locally
            body = module.body
            params = body[1].get("params", ("obj", {})) if body[0] == "obj" else ("obj", {})
            child = Scope(parsed(scope.file.path.parent / module.path),
                          {k: (v, scope) for k, v in params[1].items()},
                          name=f"{scope.name}/{module.symbol}")
            scopes.append(child)
            pending.append(child)
    for path in infra.rglob("*.bicep"):
        parsed(path)
    return Deployment(infra, scopes, files)


def _body(item: Resource | tuple[Any, ...]) -> dict[str, Any]:
    """The entries of a resource's (or an object node's) object literal."""
    node = item.body if isinstance(item, Resource) else item
    return node[1] if node[0] == "obj" else {}


def _resource_name(res: Resource, scope: Scope) -> Any:
    return evaluate(_body(res)["name"], scope) if "name" in _body(res) else Unknown("?")


def app_settings(dep: Deployment) -> tuple[dict[str, Any], Scope, Resource]:
    """The `appsettings` config of the function app: {setting: evaluated value}."""
    found = [(res, scope) for res, scope in dep.resources(SITE_CONFIG)
             if _resource_name(res, scope) == "appsettings"]
    if len(found) != 1:
        raise BicepError(f"expected one Microsoft.Web/sites/config 'appsettings' in the "
                         f"deployment, found {len(found)}")
    res, scope = found[0]
    props = _body(res).get("properties")
    if props is None or props[0] != "obj":
        raise BicepError("the appsettings properties must be an object literal "
                         "(so the contract can read its keys)")
    return {k: evaluate(v, scope) for k, v in props[1].items()}, scope, res


def created_names(dep: Deployment) -> dict[str, set[Any]]:
    """Names of the containers, queues and tables the deployment creates (not `existing`)."""
    kinds = {
        "Microsoft.Storage/storageAccounts/blobServices/containers": "container",
        "Microsoft.Storage/storageAccounts/queueServices/queues": "queue",
        "Microsoft.Storage/storageAccounts/tableServices/tables": "table",
    }
    out: dict[str, set[Any]] = {"container": set(), "queue": set(), "table": set()}
    for res, scope in dep.resources():
        if res.type in kinds and not res.existing:
            out[kinds[res.type]].add(_resource_name(res, scope))
    return out


# ---- The checks ---------------------------------------------------------------------------------


def _strings(value: Any) -> list[Any]:
    return [v for option in value.options for v in _strings(option)] \
        if isinstance(value, Choice) else [value]


def _function_identity(dep: Deployment) -> tuple[str, Scope] | None:
    """(module symbol, scope) of the module that creates the user-assigned identity."""
    for scope in dep.scopes:
        if any(r.type == IDENTITY and not r.existing for r in scope.file.resources.values()):
            module = scope.name.rsplit("/", 1)[-1]
            return module, scope
    return None


def _role_guid(value: Any) -> str | None:
    if isinstance(value, Call) and value.args and isinstance(value.args[-1], str):
        return value.args[-1].lower()
    if isinstance(value, str):
        return value.rsplit("/", 1)[-1].lower()
    return None


def _scope_type(value: Any) -> str | None:
    if isinstance(value, SymbolRef):
        res = value.scope.file.resources.get(value.symbol)
        return res.type if res else None
    return None


def _check_blob_subscription(infra: Path, defaults: dict[str, Any],
                             blob_triggers: list[tuple[str, str, bool]]) -> list[str]:
    problems: list[str] = []
    path = infra / "app" / "blob-events-subscription.bicep"
    if not path.exists():
        return [f"{path.relative_to(infra.parent)} (the Event Grid subscription) is missing"]
    exports = defaults["EXPORTS_CONTAINER"]
    wanted = [t for t in blob_triggers if t[1] == "%EXPORTS_CONTAINER%/{name}"]
    if len(wanted) != 1 or not wanted[0][2]:
        return [f"function_app.py should have one blob trigger on %EXPORTS_CONTAINER%/{{name}} "
                f"with source=EVENT_GRID (Flex Consumption), found {blob_triggers}"]
    function_name = wanted[0][0]
    scope = Scope(parse_bicep(path), name=path.name)
    subs = [r for r in scope.file.resources.values()
            if r.type == "Microsoft.EventGrid/systemTopics/eventSubscriptions"]
    if len(subs) != 1:
        return [f"{path.name}: expected one event subscription, found {len(subs)}"]
    props = evaluate(_body(subs[0])["properties"], scope)
    flt = props.get("filter", {})
    if flt.get("subjectBeginsWith") != f"/blobServices/default/containers/{exports}/":
        problems.append(f"{path.name}: subjectBeginsWith is {flt.get('subjectBeginsWith')!r}, "
                        f"the exports container is {exports!r}")
    if "Microsoft.Storage.BlobCreated" not in flt.get("includedEventTypes", []):
        problems.append(f"{path.name}: the subscription must include Microsoft.Storage.BlobCreated")
    url = _text(props.get("destination", {}).get("properties", {}).get("endpointUrl"))
    expected = f"/runtime/webhooks/blobs?functionName=Host.Functions.{function_name}&code="
    if expected not in url:
        problems.append(f"{path.name}: the webhook must be {expected}<blobs_extension key> "
                        f"(function {function_name!r}), got {url}")
    return problems


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else _text(value)


def _template(value: Any) -> str | None:
    """The text of a string value, deployment-time parts shown as ${...}; None if not a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, Unknown) and len(value.text) > 1 and value.text[0] == value.text[-1] \
            == "'":
        return value.text[1:-1]
    return None


def _check_settings(settings: dict[str, Any], read: set[str], percent: set[str]) -> list[str]:
    """(a) every setting the code reads is set, or deliberately left out; nothing forbidden."""
    problems = [f"app setting {name} is read by shared/settings.py but not set in the Bicep "
                f"appsettings" for name in sorted(read - settings.keys() - NOT_SET_IN_AZURE.keys())]
    problems += [f"app setting {name} is used as %{name}% in function_app.py but not set in the "
                 f"Bicep appsettings" for name in sorted(percent - settings.keys())]
    problems += [f"NOT_SET_IN_AZURE lists {name}, which shared/settings.py no longer reads"
                 for name in sorted(NOT_SET_IN_AZURE.keys() - read)]
    problems += [f"app setting {name} must not be set in Azure: {NOT_SET_IN_AZURE[name]}"
                 for name in sorted(NOT_SET_IN_AZURE.keys() & settings.keys())]
    problems += [f"app setting {name} is not allowed on Flex Consumption (it belongs in "
                 f"functionAppConfig or is unsupported)"
                 for name in sorted(set(FLEX_RESERVED) & settings.keys())]
    for name in SECRET_SETTINGS:
        for value in _strings(settings.get(name, "")):
            text = _template(value)
            if text != "" and not (text or "").startswith("@Microsoft.KeyVault(SecretUri="):
                problems.append(f"app setting {name} must be a Key Vault reference, not "
                                f"{_show(value)}")
    for name in ("AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential",
                 "AzureWebJobsStorage__clientId"):
        if name not in settings:
            problems.append(f"app setting {name} missing: the host and the code use "
                            f"identity-based storage")
    if settings.get("AzureWebJobsStorage__credential", "managedidentity") != "managedidentity":
        problems.append("AzureWebJobsStorage__credential must be 'managedidentity'")
    if "static_token" in _strings(settings.get("GRAPH_CREDENTIAL_KIND")):
        problems.append("GRAPH_CREDENTIAL_KIND static_token must never be deployed")
    return problems


def _check_names(dep: Deployment, settings: dict[str, Any], names: dict[str, str],
                 defaults: dict[str, Any], host: dict[str, Any]) -> list[str]:
    """(b) settings.py defaults == Bicep app settings == created resources == host.json."""
    problems = []
    created = created_names(dep)
    for name, kind in sorted(names.items()):
        default = defaults[name]
        if name in settings and settings[name] != default:
            problems.append(f"app setting {name} is {_show(settings[name])} in the Bicep but "
                            f"{default!r} in shared/settings.py")
        resource = default.split("/", 1)[0] if name == "MAPPING_BLOB" else default
        if resource not in created[kind]:
            problems.append(f"the Bicep creates no {kind} named {resource!r} ({name}); it "
                            f"creates {sorted(map(_show, created[kind]))}")
    poison = [f"{defaults[n]}-poison" for n, kind in sorted(names.items()) if kind == "queue"]
    for queue in (*poison, BLOB_TRIGGER_POISON_QUEUE):
        if queue not in created["queue"]:
            problems.append(f"the Bicep creates no queue named {queue!r} (poison queue)")
    queues = host.get("extensions", {}).get("queues", {})
    host_max = queues.get("maxDequeueCount")
    if host_max != defaults["MAX_DEQUEUE_COUNT"]:
        problems.append(f"host.json maxDequeueCount is {host_max}, shared/settings.py "
                        f"MAX_DEQUEUE_COUNT defaults to {defaults['MAX_DEQUEUE_COUNT']}")
    if settings.get("MAX_DEQUEUE_COUNT") != str(host_max):
        problems.append(f"app setting MAX_DEQUEUE_COUNT is "
                        f"{_show(settings.get('MAX_DEQUEUE_COUNT'))} in the Bicep, host.json "
                        f"maxDequeueCount is {host_max}")
    if queues.get("messageEncoding", "base64") != "base64":
        problems.append("host.json queues.messageEncoding must be base64 (shared/clients.py "
                        "encodes queue messages with TextBase64EncodePolicy)")
    return problems


def _check_identity(dep: Deployment, settings: dict[str, Any]) -> list[str]:
    """(c) the function app runs as the user-assigned identity, which holds a data role on
    every storage service the code and the host use."""
    found = _function_identity(dep)
    if found is None:
        return ["the deployment creates no user-assigned identity for the function app"]
    module = found[0]
    principal = f"{module}.outputs.principalId"
    problems = []
    covered: dict[str, list[str]] = {service: [] for service in STORAGE_ROLES}
    for res, scope in dep.resources(ROLE_ASSIGNMENT):
        body = _body(res)
        props = evaluate(body["properties"], scope) if "properties" in body else {}
        if not isinstance(props, dict) or _text(props.get("principalId")) != principal:
            continue
        if res.condition is not None and evaluate(res.condition, scope) is not True:
            continue  # might not be deployed
        target = evaluate(body["scope"], scope) if "scope" in body else None
        if _scope_type(target) != STORAGE_ACCOUNT:
            continue
        guid = _role_guid(props.get("roleDefinitionId"))
        for service, roles in STORAGE_ROLES.items():
            if guid in roles:
                covered[service].append(roles[guid])
    problems += [f"the function identity ({principal}) has no role assignment on the storage "
                 f"account for {service} (one of {sorted(STORAGE_ROLES[service].values())})"
                 for service, roles in covered.items() if not roles]
    sites = [(res, scope) for res, scope in dep.resources("Microsoft.Web/sites")
             if not res.existing]
    if not sites:
        problems.append("the deployment creates no function app (Microsoft.Web/sites)")
    for res, scope in sites:
        identity = _body(_body(res).get("identity", ("obj", {})))
        assigned = _body(identity.get("userAssignedIdentities", ("obj", {})))
        ids = []
        for key in assigned:
            match = re.fullmatch(r"\$\{(\w+)\}", key)
            ids.append(_text(evaluate(("id", match.group(1)), scope)) if match else key)
        if ids != [f"{module}.outputs.id"]:
            problems.append(f"the function app must run as the user-assigned identity that "
                            f"holds the storage roles ({module}.outputs.id), it has {ids}")
    client = settings.get("AzureWebJobsStorage__clientId")
    if _text(client) != f"{module}.outputs.clientId":
        problems.append(f"AzureWebJobsStorage__clientId must be the client id of the same "
                        f"identity ({module}.outputs.clientId), got {_show(client)}")
    return problems


def _package_containers(dep: Deployment) -> list[str]:
    """Names (as _text) of the created containers the function app deploys its package from."""
    sources = []
    for res, scope in dep.resources("Microsoft.Web/sites"):
        props = evaluate(_body(res).get("properties", ("obj", {})), scope)
        storage = props.get("functionAppConfig", {}).get("deployment", {}).get("storage", {}) \
            if isinstance(props, dict) else {}
        sources.append(_text(storage.get("value")) if isinstance(storage, dict) else "")
    names = [_resource_name(res, scope) for res, scope in dep.resources(CONTAINER)
             if not res.existing]
    return [_text(n) for n in names if any(_text(n) in source for source in sources)]


def _assignment_target(res: Resource, scope: Scope) -> tuple[str | None, Any]:
    """(resource type, name) of a role assignment's scope; (None, None) for the deployment's own
    scope (a resource group), which covers everything in it."""
    body = _body(res)
    if "scope" not in body:
        return None, None
    target = evaluate(body["scope"], scope)
    if isinstance(target, Unknown) and "::" in target.text:  # parent::child::grandchild
        symbol = target.text.rsplit("::", 1)[-1].strip(". ")
        target = SymbolRef(scope, symbol) if symbol in scope.file.resources else target
    if not isinstance(target, SymbolRef):
        return "?", target
    found = target.scope.file.resources.get(target.symbol)
    if found is None:
        return "?", target
    return found.type, _resource_name(found, target.scope)


def _check_package_writers(dep: Deployment) -> list[str]:
    """No principal but the app identity can write the deployment package container."""
    identity = _function_identity(dep)
    app = f"{identity[0]}.outputs.principalId" if identity else "?"
    packages = _package_containers(dep)
    if len(packages) != 1:
        return [f"cannot tell the deployment package container (functionAppConfig.deployment."
                f"storage of the site among the created containers): {packages}"]
    package = packages[0]
    problems = []
    for res, scope in dep.resources(ROLE_ASSIGNMENT):
        props = evaluate(_body(res).get("properties", ("obj", {})), scope)
        if not isinstance(props, dict) or _text(props.get("principalId")) == app:
            continue
        guid = _role_guid(props.get("roleDefinitionId"))
        if guid is not None and guid not in BLOB_WRITER_ROLES:
            continue
        kind, name = _assignment_target(res, scope)
        if kind == CONTAINER and _text(name) != package:
            continue
        if kind not in (None, "?", CONTAINER, *COVERS_EVERY_CONTAINER):
            continue
        role = BLOB_WRITER_ROLES.get(guid or "", "an unknown role")
        where = "the deployment's resource group" if kind is None else f"{kind} {_show(name)}"
        node = _body(res)["properties"][1].get("principalId", ("lit", "?"))
        principal = node[1] if node[0] == "id" else _text(props.get("principalId"))
        problems.append(f"{scope.name}: {res.symbol} gives {principal} "
                        f"{role} on {where}, which covers the deployment package container: "
                        f"only the app identity ({app}) may write it")
    for res, scope in dep.resources(LOCAL_USER):
        props = evaluate(_body(res).get("properties", ("obj", {})), scope)
        for grant in props.get("permissionScopes", []) if isinstance(props, dict) else []:
            if isinstance(grant, dict) and _text(grant.get("resourceName")) == package:
                problems.append(f"{scope.name}: SFTP local user {res.symbol} has "
                                f"{grant.get('permissions')!r} on the deployment package "
                                f"container")
    return problems


def _check_schedules(settings: dict[str, Any], schedules: dict[str, str]) -> list[str]:
    """Each timer's schedule, with the Bicep's app settings in its %SETTING%s, parses."""
    problems = []
    for function, expression in schedules.items():
        value = re.sub(r"%(\w+)%", lambda m: str(settings.get(m.group(1), m.group(0))),
                       expression)
        try:
            ncrontab_next(value, datetime(2026, 1, 1, tzinfo=UTC))
        except ValueError as exc:
            problems.append(f"the {function} timer's schedule {expression} is {value!r} in the "
                            f"Bicep: {exc}")
    return problems


def _check_graph_credential(dep: Deployment, settings: dict[str, Any]) -> list[str]:
    """By default the app reaches Graph as its own managed identity: no app registration, no
    secret (docs/DEPLOY.md, "Reaching Graph")."""
    identity = _function_identity(dep)
    client = f"{identity[0]}.outputs.clientId" if identity else "?"
    problems = []
    if settings.get("GRAPH_CREDENTIAL_KIND") != "managed_identity":
        problems.append(f"GRAPH_CREDENTIAL_KIND must default to 'managed_identity', got "
                        f"{_show(settings.get('GRAPH_CREDENTIAL_KIND'))}")
    if _text(settings.get("GRAPH_CLIENT_ID")) != client:
        problems.append(f"GRAPH_CLIENT_ID must default to the app identity's client id "
                        f"({client}), got {_show(settings.get('GRAPH_CLIENT_ID'))}")
    if settings.get("GRAPH_CLIENT_SECRET") != "":
        problems.append(f"GRAPH_CLIENT_SECRET must be empty by default, got "
                        f"{_show(settings.get('GRAPH_CLIENT_SECRET'))}")
    return problems


def check(repo: Path, infra: Path | None = None) -> list[str]:
    """Problems in the contract between the code in `repo` and the Bicep in `infra`."""
    infra = infra or repo / "infra"
    dep = load_deployment(infra)
    settings = app_settings(dep)[0]
    read = settings_read_by_code(repo / "shared" / "settings.py") | set(APP_SETTINGS_ALWAYS)
    names = name_settings(read)
    defaults = settings_defaults(set(names) | {"MAX_DEQUEUE_COUNT"})
    bindings = function_bindings(repo / "function_app.py")
    host = json.loads((repo / "host.json").read_text(encoding="utf-8"))
    return (_check_settings(settings, read, bindings.settings)
            + _check_schedules(settings, bindings.schedules)
            + _check_names(dep, settings, names, defaults, host)
            + _check_blob_subscription(infra, defaults, bindings.blob_triggers)
            + _check_identity(dep, settings)
            + _check_package_writers(dep)
            + _check_graph_credential(dep, settings))


def sample_problems(repo: Path) -> list[str]:
    """local.settings.sample.json lists every setting the code reads (settings.py promises it),
    except the identity-based storage variants, which are for Azure."""
    sample = json.loads((repo / "local.settings.sample.json").read_text(encoding="utf-8"))
    listed = set(sample.get("Values", {}))
    read = settings_read_by_code(repo / "shared" / "settings.py") | set(APP_SETTINGS_ALWAYS)
    return [f"local.settings.sample.json does not list {name}"
            for name in sorted(read - listed) if not name.startswith("AzureWebJobsStorage__")]
