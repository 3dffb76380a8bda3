"""The contract between the code's telemetry and the KQL in infra/: every query of the alert
rules and of the workbook reads only log events, metrics and spans the code emits, and only
custom dimensions those events carry. A renamed event or dimension otherwise leaves an alert
that never fires, or a workbook chart that stays empty, without any error.

`check(repo, infra)` returns a list of problems (empty when they agree).

The code's side (`emitted`), read from the source of shared/ and function_app.py:
* log events: `event(logger, "message", [level], dim=..., **dict_literal_variable)` and
  `log.<level>("message", extra={...})`: table `traces`, the message as the name, the keyword or
  `extra` keys as customDimensions;
* metrics: `x = meter.create_counter/histogram("name")` and `x.add/record(value, {...})`: table
  `customMetrics`, the attribute keys as customDimensions;
* spans: `tracer.start_as_current_span("name", attributes={...})` and `span.set_attribute("k",
  ...)` on the span it opened: table `dependencies`.
What the reader cannot resolve (`**some_call()`) is an error, as in the settings contract.

The queries' side (`queries`): each scheduledQueryRules rule's criteria queries (evaluated
through module parameters by contract.py) and every `query` of a workbook's serializedData
(its JSON loaded with loadJsonContent). Per query: the event names it compares `message` or
`name` with (`==`, `in (...)`), and the `customDimensions.x` / `customDimensions["x"]` it reads.
Each name must be emitted, each dimension must be carried by one of the events the query names,
a query may not read customDimensions of events it does not name, and a loose match on the
message (`has`, `contains`) must be one of HOST_EVENTS (log records of the Functions host, not
of this code). The workbook shows counts only: it may not read SENSITIVE_DIMENSIONS.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import contract

# Log records the Functions host writes (not this code), which alerts may match loosely.
HOST_EVENTS = {
    "MaxDequeueCount": "the host's warning when it moves a queue message to <queue>-poison: "
                       "\"Message has reached MaxDequeueCount of N. Moving message to queue "
                       "'<queue>-poison'.\"",
    "poison": "the same warning's queue name",
}

# Dimensions that identify a person or an item, even hashed: the workbook shows counts only.
SENSITIVE_DIMENSIONS = {"mailbox", "member", "archive_key", "unmapped", "detail"}

# Table of each kind of signal in Application Insights (OpenTelemetry exporter).
TABLES = {"log": "traces", "metric": "customMetrics", "span": "dependencies"}
KNOWN_TABLES = ("traces", "customMetrics", "dependencies", "requests", "exceptions",
                "customEvents")

WORKBOOK = "Microsoft.Insights/workbooks"
ALERT_RULE = "Microsoft.Insights/scheduledQueryRules"

_LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}


class UnresolvedDimensions(ValueError):
    pass


@dataclass
class Emitted:
    """What the code emits: (table, name) -> custom dimension names, and where."""

    events: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    where: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, table: str, name: str, dims: set[str], where: str) -> None:
        self.events.setdefault((table, name), set()).update(dims)
        self.where.setdefault((table, name), where)


def _dict_keys(node: ast.expr | None, local: dict[str, ast.Dict], where: str) -> set[str]:
    if node is None:
        return set()
    if isinstance(node, ast.Name) and node.id in local:
        node = local[node.id]
    if isinstance(node, ast.Dict):
        keys: set[str] = set()
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:  # {**other}
                keys |= _dict_keys(value, local, where)
            elif isinstance(key, ast.Constant) and isinstance(key.value, str):
                keys.add(key.value)
            else:
                raise UnresolvedDimensions(f"{where}: cannot tell the dimension named by "
                                           f"{ast.unparse(key)!r}")
        return keys
    raise UnresolvedDimensions(f"{where}: cannot tell which dimensions {ast.unparse(node)!r} "
                               "holds; pass them as a dict literal or keywords")


def _literal_dicts(func: ast.AST) -> dict[str, ast.Dict]:
    """Local variables bound once to a dict literal (e.g. fetch's `summary = {...}`)."""
    out: dict[str, ast.Dict] = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value
    return out


def _string(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def emitted(repo: Path, sources: list[Path] | None = None) -> Emitted:
    files = sources if sources is not None else sorted((repo / "shared").glob("*.py")) + [
        repo / "function_app.py"]
    out = Emitted()
    instruments: dict[str, str] = {}  # variable -> metric name
    trees = [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in files]
    for path, tree in trees:
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Attribute)
                    and node.value.func.attr.startswith("create_") and node.value.args):
                name = _string(node.value.args[0])
                for target in node.targets:
                    if name and isinstance(target, ast.Name):
                        instruments[target.id] = name
                        out.add(TABLES["metric"], name, set(), f"{path.name}:{node.lineno}")
    for path, tree in trees:
        scopes = [n for n in ast.walk(tree)
                  if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)] or [tree]
        for func in scopes:
            _scan_function(func, path, instruments, out)
    return out


def _scan_function(func: ast.AST, path: Path, instruments: dict[str, str],
                   out: Emitted) -> None:
    local = _literal_dicts(func)
    spans: dict[str, str] = {}  # `as` variable -> span name
    for node in ast.walk(func):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                call = item.context_expr
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                        and call.func.attr == "start_as_current_span" and call.args):
                    name = _string(call.args[0])
                    if name is None:
                        continue
                    attributes = next((k.value for k in call.keywords
                                       if k.arg == "attributes"), None)
                    out.add(TABLES["span"], name, _dict_keys(attributes, local, where), where)
                    if isinstance(item.optional_vars, ast.Name):
                        spans[item.optional_vars.id] = name
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "event" and len(node.args) >= 2:
            name = _string(node.args[1])
            if name is None:
                raise UnresolvedDimensions(f"{where}: an event's name must be a literal")
            dims = {k.arg for k in node.keywords if k.arg}
            for k in node.keywords:
                if k.arg is None:
                    dims |= _dict_keys(k.value, local, where)
            out.add(TABLES["log"], name, dims, where)
        elif isinstance(f, ast.Attribute) and f.attr in _LOG_METHODS and node.args \
                and isinstance(f.value, ast.Name) and f.value.id in ("log", "logger",
                                                                   "logging"):
            name = _string(node.args[0])
            if name is not None:
                extra = next((k.value for k in node.keywords if k.arg == "extra"), None)
                out.add(TABLES["log"], name, _dict_keys(extra, local, where), where)
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            if f.attr in ("add", "record") and f.value.id in instruments:
                attributes = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg == "attributes"), None)
                out.add(TABLES["metric"], instruments[f.value.id],
                        _dict_keys(attributes, local, where), where)
            elif f.attr == "set_attribute" and f.value.id in spans and node.args:
                key = _string(node.args[0])
                if key:
                    out.add(TABLES["span"], spans[f.value.id], {key}, where)


# ---- The queries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    where: str  # e.g. "alerts.bicep poisonAlert", "workbook.json item 'lag'"
    text: str
    workbook: bool


def _collect_workbook_queries(value: Any, source: str, out: list[Query]) -> None:
    """Every `query` of a workbook's items (nested groups included)."""
    if isinstance(value, dict):
        content = value.get("content") if isinstance(value.get("content"), dict) else None
        if content and isinstance(content.get("query"), str):
            out.append(Query(f"{source} item {value.get('name')!r}", content["query"], True))
        for child in value.values():
            _collect_workbook_queries(child, source, out)
    elif isinstance(value, list | tuple):
        for child in value:
            _collect_workbook_queries(child, source, out)
    elif isinstance(value, contract.Call):
        _collect_workbook_queries(list(value.args), source, out)


def queries(infra: Path) -> list[Query]:
    dep = contract.load_deployment(infra)
    out: list[Query] = []
    for res, scope in dep.resources(ALERT_RULE):
        body = contract.evaluate(res.body, scope)
        for index, criterion in enumerate(body["properties"]["criteria"]["allOf"]):
            text = criterion.get("query")
            if isinstance(text, contract.Unknown):
                text = text.text
            out.append(Query(f"{scope.file.path.name} {res.symbol} criterion {index}",
                             str(text), False))
    for res, scope in dep.resources(WORKBOOK):
        body = contract.evaluate(res.body, scope)
        found: list[Query] = []
        _collect_workbook_queries(body["properties"]["serializedData"],
                                  f"{scope.file.path.name} {res.symbol}", found)
        if not found:
            out.append(Query(f"{scope.file.path.name} {res.symbol}", "", True))
        out += found
    return out


_NAME_EQ = re.compile(r"\b(message|name)\s*==\s*\"([^\"]*)\"")
_NAME_IN = re.compile(r"\b(message|name)\s+in\s*\(([^)]*)\)")
_NAME_LOOSE = re.compile(r"\bmessage\s+(has|contains|startswith|endswith|matches regex)\s+"
                         r"\"([^\"]*)\"")
_DIM = re.compile(r"customDimensions(?:\.(\w+)|\[\s*[\"'](\w+)[\"']\s*\])")


def query_problems(query: Query, code: Emitted) -> list[str]:
    if not query.text.strip():
        return [f"{query.where}: no query found (a workbook without queries, or the JSON "
                "was not loaded with loadJsonContent)"]
    problems: list[str] = []
    tables = {t for t in KNOWN_TABLES if re.search(rf"\b{t}\b", query.text)}
    names: set[tuple[str, str]] = set()
    for field_name, value in _NAME_EQ.findall(query.text):
        names.add((field_name, value))
    for field_name, values in _NAME_IN.findall(query.text):
        if field_name == "name" or field_name == "message":
            names |= {(field_name, v) for v in re.findall(r"\"([^\"]*)\"", values)}
    events: list[tuple[str, str]] = []
    for field_name, value in sorted(names):
        candidates = ([TABLES["log"]] if field_name == "message"
                      else [TABLES["metric"], TABLES["span"]])
        match = [(t, value) for t in candidates if t in tables and (t, value) in code.events]
        if not match:
            problems.append(f"{query.where}: reads {field_name} == {value!r}, which the code "
                            f"does not emit in {' or '.join(sorted(tables & set(candidates)))}")
        events += match
    loose = _NAME_LOOSE.findall(query.text)
    for _, value in loose:
        if value not in HOST_EVENTS:
            problems.append(f"{query.where}: matches message loosely on {value!r}; name the "
                            "event exactly (message == \"...\"), or list a host log record in "
                            "HOST_EVENTS")
    if "traces" in tables and not names and not loose:
        problems.append(f"{query.where}: reads traces without naming the events it means")
    used = {a or b for a, b in _DIM.findall(query.text)}
    carried = set().union(*(code.events[e] for e in events)) if events else set()
    for dim in sorted(used - carried):
        named = " or ".join(repr(v) for _, v in events)
        problems.append(f"{query.where}: reads customDimensions.{dim}, which {named} does not "
                        "carry" if events else f"{query.where}: reads customDimensions.{dim} "
                        "but names no emitted event that carries it")
    if query.workbook:
        for dim in sorted(used & SENSITIVE_DIMENSIONS):
            problems.append(f"{query.where}: the workbook shows counts only; it must not read "
                            f"customDimensions.{dim}")
    return problems


def check(repo: Path, infra: Path | None = None, code: Emitted | None = None) -> list[str]:
    code = code if code is not None else emitted(repo)
    problems: list[str] = []
    for query in queries(infra or repo / "infra"):
        problems += query_problems(query, code)
    return problems


def workbook_json(infra: Path) -> dict[str, Any]:
    """The workbook's own JSON (for the tests that look at its shape)."""
    return dict(json.loads((infra / "app" / "workbook.json").read_text(encoding="utf-8")))
