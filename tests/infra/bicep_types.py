"""The Bicep type check: every resource in infra/ against Azure's own resource types.

The Bicep compiler type-checks resource bodies against the `types.json` files of
Azure/bicep-types-az; the copies this check uses are under tests/infra/bicep-types/ (see its
README). Neither the compiler nor ARM can run here, so this module does the part of their work
that catches deployment bugs:

* every resource is resolved, `existing` ones, `parent:` and nested child resources included, to
  its `Type@apiVersion`; one that no types file describes is an error naming the file to add;
* each body is checked against its type: unknown properties, read-only properties that are set,
  required properties that are missing, values outside a closed enum, integers out of range,
  nested objects and arrays, discriminated objects (`kind`, `odata.type`, a config's `name`);
* every name an expression uses is declared (a parameter, variable, resource, module, loop or
  lambda variable);
* every property path read from a resource, through resource functions too
  (`site::host.listKeys().systemKeys.blobs_extension`), exists in the type and is readable;
* module calls are followed: a module's parameters take the caller's values where those are
  literal (or parameters/variables that are), so a literal passed into a module is checked
  where the module uses it; a file no module calls is checked with its parameters' defaults (or
  each `@allowed` value); values passed to a module are checked against its parameters;
* an expression whose value is unknown still has a Bicep type (a parameter's declared type and
  @minValue/@maxValue range, a function's result, a module output's declared type, the type of
  a property read from a resource), checked against the property it is assigned to.

What it cannot decide (an expression whose value is only known at deployment, a loop, a
discriminator or object key that is an expression) it skips and counts in `Report.skipped`.
The syntax tree is pycep-parser's (its Lark grammar, the parser checkov's bicep framework uses);
pycep's JSON form is not used, because it does not tell the literal 'name' from the identifier
`name`.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lark import Token, Tree
from pycep import BicepParser

TYPES_DIR = Path(__file__).resolve().parent / "bicep-types"
SOURCE_REPO = "Azure/bicep-types-az"

REQUIRED, READ_ONLY, WRITE_ONLY = 1, 2, 4

# Keys of a resource declaration that are Bicep's own, not part of the resource body.
BICEP_RESOURCE_KEYS = {"parent", "scope", "dependsOn"}

_parser = BicepParser()

# ---- Values -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unknown:
    """A value only known at deployment (why: the kind of thing that was skipped), with its
    Bicep type where that is known (a parameter's declared type and @minValue/@maxValue, a
    function's result, a module output's declared type)."""
    why: str
    kind: str | None = None  # string, int, bool, object, array
    low: int | None = None
    high: int | None = None


@dataclass(frozen=True)
class OneOf:
    """One of several values (a conditional's branches, a parameter's @allowed list)."""
    options: tuple[Any, ...]


class UnknownKey:
    """An object key that is an expression (e.g. '${identityId}')."""


# ---- Syntax: pycep's Lark tree to a small expression tree ---------------------------------------
#
# Expressions are tuples:
#   ("lit", value)                      string, int, bool or None
#   ("interp", [str | expr, ...])       string with ${...}
#   ("ref", name)                       identifier
#   ("obj", [(key_expr, expr)], [Resource])  object (and nested child resources)
#   ("arr", [expr])
#   ("chain", root_expr, [segment], line)    a.b, a::b, a.listKeys(), a[i]
#       segment: ("prop", name) | ("child", name) | ("call", name) | ("index", expr)
#   ("func", name, [expr])              function call
#   ("op", name, [expr])                operator (comparison, logic, arithmetic)
#   ("cond", test, then, else)
#   ("loop", body, [iterable, filter]) and ("if", test, body)

_ACCESSORS = {"property_accessor", "nested_resource_accessor", "function_accessor",
              "index_accessor"}


def _unquote(text: str) -> str:
    escapes = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", "$": "$"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(0)), text)


def _split_interpolation(body: str) -> list[str | tuple[str]]:
    """Literal text and ("${...} source",) parts of a quoted string's inside."""
    parts: list[str | tuple[str]] = []
    text, i = "", 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            text += body[i:i + 2]
            i += 2
        elif body.startswith("${", i):
            depth, j, quoted = 1, i + 2, False
            while j < len(body) and depth:
                c = body[j]
                if c == "'" and body[j - 1] != "\\":
                    quoted = not quoted
                elif not quoted and c == "{":
                    depth += 1
                elif not quoted and c == "}":
                    depth -= 1
                j += 1
            if text:
                parts.append(_unquote(text))
                text = ""
            parts.append((body[i + 2:j - 1],))
            i = j
        else:
            text += body[i]
            i += 1
    if text or not parts:
        parts.append(_unquote(text))
    return parts


class Syntax:
    """Converts one file's Lark tree; `line` is the line of the enclosing element."""

    def __init__(self) -> None:
        self.line = 0
        self.locals: set[str] = set()  # loop and lambda variables

    def expr(self, node: Any) -> Any:
        if node is None:
            return ("lit", None)
        if isinstance(node, Token):
            return self.token(node)
        if getattr(node.meta, "line", None) and node.meta.line > 0:
            self.line = node.meta.line
        kind = node.data
        kids = node.children
        if kind == "operator":
            return self.expr(kids[0])
        if kind == "function":
            return self.function(kids[0])
        if kind in ("string", "int", "true", "false", "null", "multi_line_string"):
            if kind == "int":
                return ("lit", int(kids[0]))
            if kind in ("true", "false", "null"):
                return ("lit", {"true": True, "false": False, "null": None}[kind])
            if kind == "multi_line_string":
                return ("lit", str(kids[0])[3:-3].lstrip("\n"))
            return self.token(kids[0])
        if kind == "object":
            pairs, children = [], []
            for kid in kids:
                if isinstance(kid, Tree) and kid.data == "pair":
                    key = self.token(kid.children[0].children[0], key=True)
                    pairs.append((key, self.expr(kid.children[1])))
                elif isinstance(kid, Tree) and kid.data == "child_resource":
                    children.append(kid)
            return ("obj", pairs, children)
        if kind == "array":
            return ("arr", [self.expr(k) for k in kids if k is not None])
        if kind in _ACCESSORS:
            return self.accessor(node)
        if kind == "conditional":
            return ("cond", *(self.expr(k) for k in kids))
        if kind == "loop":
            header = kids[0].children
            self.locals |= {str(k) for k in header if isinstance(k, Token)}
            others = [self.expr(k) for k in [*header, kids[1]] if isinstance(k, Tree)]
            return ("loop", self.expr(kids[-1]), others)
        if kind == "deploy_condition":
            return ("if", self.expr(kids[0]), self.expr(kids[1]))
        if kind in ("decorator",) or kind.startswith("deco_"):
            return ("lit", None)
        return ("op", kind, [self.expr(k) for k in kids if isinstance(k, Tree)])

    def function(self, node: Tree[Any]) -> Any:
        """A function call; a property after it (`tenant().tenantId`) makes it a chain."""
        kids = node.children
        last = max((i for i, k in enumerate(kids) if isinstance(k, Tree)), default=-1)
        self.locals |= {str(k) for k in kids[:last] if isinstance(k, Token)}  # x => ...
        call = ("func", node.data, [self.expr(k) for k in kids if isinstance(k, Tree)])
        trailing = [("prop", str(k)) for k in kids[last + 1:] if isinstance(k, Token)]
        return ("chain", call, trailing, self.line) if trailing else call

    def token(self, token: Token, key: bool = False) -> Any:
        text = str(token)
        if token.type == "STRING" or (key and token.type not in ("QUOTED_INTERPOLATION",
                                                                  "QUOTED_STRING")):
            return ("lit", text) if key else ("ref", text)
        parts = _split_interpolation(text[1:-1])
        if len(parts) == 1 and isinstance(parts[0], str):
            return ("lit", parts[0])
        return ("interp", [p if isinstance(p, str) else self.inner(p[0]) for p in parts])

    def inner(self, source: str) -> Any:
        """An expression inside ${...}, parsed by the same grammar as a variable's value."""
        line = self.line
        tree = _parser.lark_parser.parse(f"var x = {source}\n")
        try:
            result = self.expr(tree.children[0].children[-1])
        finally:
            self.line = line
        return _reline(result, line)  # positions inside are the snippet's: use the string's

    def accessor(self, node: Tree[Any]) -> Any:
        kids = node.children
        base = self.expr(kids[0])
        if node.data == "function_accessor":
            return _extend(base, [("call", str(kids[1]))], self.line)
        if node.data == "index_accessor":
            return _extend(base, [("index", self.expr(kids[1]))], self.line)
        kind = "child" if node.data == "nested_resource_accessor" else "prop"
        return _attach(base, self.expr(kids[1]), kind, self.line)


def _reline(expr: Any, line: int) -> Any:
    if isinstance(expr, tuple) and expr and expr[0] == "chain":
        return ("chain", _reline(expr[1], line), expr[2], line)
    if isinstance(expr, tuple):
        return tuple(_reline(e, line) for e in expr)
    if isinstance(expr, list):
        return [_reline(e, line) for e in expr]
    return expr


def _extend(base: Any, segments: list[Any], line: int) -> Any:
    if base[0] == "chain":
        return ("chain", base[1], base[2] + segments, base[3])
    return ("chain", base, segments, line)


def _attach(base: Any, right: Any, kind: str, line: int) -> Any:
    """`base.right` / `base::right`. pycep's grammar nests accessors to the right and lets an
    operator swallow them (`a.b == c` arrives as a.(b == c)); accessors bind tightest, so the
    accessor goes onto the operator's first operand."""
    if right[0] == "ref":
        return _extend(base, [(kind, right[1])], line)
    if right[0] == "chain" and right[1][0] == "ref":
        return _extend(base, [(kind, right[1][1]), *right[2]], line)
    if right[0] == "op" and right[2]:
        return ("op", right[1], [_attach(base, right[2][0], kind, line), *right[2][1:]])
    if right[0] == "cond":
        return ("cond", _attach(base, right[1], kind, line), right[2], right[3])
    return ("op", "unparsed_accessor", [base, right])


def walk(expr: Any) -> Any:
    """Every sub-expression (objects' child resources are not entered)."""
    yield expr
    if isinstance(expr, tuple):
        for part in expr[1:]:
            if isinstance(part, tuple):
                yield from walk(part)
            elif isinstance(part, list):
                for item in part:
                    if isinstance(item, tuple) and item and isinstance(item[0], tuple):
                        for sub in item:  # an object's (key, value) pair
                            yield from walk(sub)
                    elif isinstance(item, tuple):
                        yield from walk(item)


# ---- A parsed file ------------------------------------------------------------------------------


@dataclass
class Resource:
    symbol: str
    type: str
    api: str
    existing: bool
    body: Any  # ("obj", ...) expression
    line: int
    file: Path
    raw: Any  # the declared value, with its loop or condition
    loop: bool = False
    conditional: bool = False
    parent_symbol: str | None = None  # nested: the enclosing resource
    children: dict[str, Resource] = field(default_factory=dict)

    @property
    def type_api(self) -> str:
        return f"{self.type}@{self.api}"


@dataclass
class Module:
    symbol: str
    path: Path
    body: Any
    line: int
    loop: bool
    raw: Any


@dataclass
class Param:
    type: str
    default: Any  # expression or None
    allowed: list[Any] | None
    low: int | None = None  # @minValue
    high: int | None = None  # @maxValue


@dataclass
class BicepFile:
    path: Path
    target_scope: str
    params: dict[str, Param]
    vars: dict[str, Any]
    outputs: dict[str, Any]
    output_types: dict[str, str]
    resources: dict[str, Resource]  # top-level symbols
    modules: dict[str, Module]
    locals: set[str] = field(default_factory=set)  # loop and lambda variables

    def names(self) -> set[str]:
        """Every name an expression in this file may use."""
        return (set(self.params) | set(self.vars) | set(self.modules) | self.locals
                | {r.symbol for r in self.all_resources()})

    def all_resources(self) -> list[Resource]:
        out: list[Resource] = []
        pending = list(self.resources.values())
        while pending:
            resource = pending.pop(0)
            out.append(resource)
            pending.extend(resource.children.values())
        return out

    def expressions(self) -> list[Any]:
        """Everything in the file that can read a resource's properties."""
        exprs = [p.default for p in self.params.values() if p.default is not None]
        exprs += list(self.vars.values()) + list(self.outputs.values())
        exprs += [r.raw for r in self.all_resources()]
        exprs += [m.raw for m in self.modules.values()]
        return exprs


def _unwrap(value: Any) -> tuple[Any, bool, bool]:
    """A resource/module value without its loop or condition: (body, loop, conditional)."""
    if value[0] == "loop":
        body, _, conditional = _unwrap(value[1])
        return body, True, conditional
    if value[0] == "if":
        return value[2], False, True
    return value, False, False


def parse(path: Path) -> BicepFile:
    tree = _parser.lark_parser.parse(path.read_text(encoding="utf-8"))
    syntax = Syntax()
    parsed = BicepFile(path, "resourceGroup", {}, {}, {}, {}, {}, {})

    def resource(name: str, type_text: Any, existing: bool, value: Tree[Any], line: int,
                 parent: Resource | None) -> Resource:
        type_api = syntax.token(type_text)
        if type_api[0] != "lit":
            raise ValueError(f"{path}:{line}: resource {name} has a computed type")
        type_name, _, api = type_api[1].partition("@")
        if parent is not None:
            if "/" not in type_name:
                type_name = f"{parent.type}/{type_name}"
            api = api or parent.api
        raw = syntax.expr(value)
        body, loop, conditional = _unwrap(raw)
        made = Resource(name, type_name, api, existing, body, line, path, raw, loop,
                        conditional, parent.symbol if parent else None)
        if body[0] == "obj":
            for child in body[2]:
                kid = resource(str(child.children[0]), child.children[1],
                               child.children[2] is not None, child.children[3],
                               child.meta.line, made)
                made.children[kid.symbol] = kid
        return made

    for element in tree.children:
        if not isinstance(element, Tree):
            continue
        kids = element.children
        line = element.meta.line
        syntax.line = line
        if element.data == "scope":
            parsed.target_scope = syntax.token(kids[0])[1]
        elif element.data == "param":
            default = syntax.expr(kids[3]) if len(kids) > 3 and kids[3] is not None else None
            param = Param(str(kids[2].children[0]), default, None)
            for deco in kids[0].children if kids[0] is not None else ():
                if deco.data == "deco_allowed":
                    param.allowed = syntax.expr(deco.children[0])[1]
                elif deco.data == "deco_min_val":
                    param.low = int(deco.children[0])
                elif deco.data == "deco_max_val":
                    param.high = int(deco.children[0])
            parsed.params[str(kids[1])] = param
        elif element.data == "var":
            parsed.vars[str(kids[1])] = syntax.expr(kids[2])
        elif element.data == "output":
            parsed.outputs[str(kids[1])] = syntax.expr(kids[3])
            parsed.output_types[str(kids[1])] = str(kids[2].children[0])
        elif element.data == "resource":
            made = resource(str(kids[1]), kids[2].children[0], kids[3] is not None, kids[4],
                            line, None)
            parsed.resources[made.symbol] = made
        elif element.data == "module":
            target = syntax.token(kids[2].children[0])[1]
            raw = syntax.expr(kids[3])
            body, loop, _ = _unwrap(raw)
            parsed.modules[str(kids[1])] = Module(str(kids[1]), (path.parent / target).resolve(),
                                                  body, line, loop, raw)
    parsed.locals = syntax.locals
    return parsed


# ---- Azure's types ------------------------------------------------------------------------------


@dataclass(frozen=True)
class T:
    """One entry of a types.json file."""
    data: list[dict[str, Any]]
    index: int
    file: Path

    @property
    def entry(self) -> dict[str, Any]:
        return self.data[self.index]

    @property
    def kind(self) -> str:
        return str(self.entry["$type"])

    def follow(self, ref: dict[str, str]) -> T:
        return T(self.data, int(ref["$ref"].rsplit("/", 1)[1]), self.file)

    def describe(self) -> str:
        e = self.entry
        if self.kind == "StringLiteralType":
            return repr(e["value"])
        if self.kind == "UnionType":
            return " | ".join(self.follow(r).describe() for r in e["elements"])
        if self.kind == "ArrayType":
            return f"{self.follow(e['itemType']).describe()}[]"
        return str(e.get("name") or self.kind.removesuffix("Type").lower())


class Types:
    """Every types.json under a folder, indexed by `Type@apiVersion` (case-insensitive)."""

    def __init__(self, root: Path = TYPES_DIR) -> None:
        self.root = root
        self.resources: dict[str, T] = {}
        self.functions: dict[tuple[str, str], T] = {}  # ("type@api", name) -> output type
        self.files: dict[tuple[str, str], Path] = {}  # (namespace, api) -> file
        for path in sorted(root.rglob("types.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            relative = path.relative_to(root)
            self.files[(relative.parts[-3].lower(), relative.parts[-2])] = relative
            for index, entry in enumerate(data):
                if entry["$type"] == "ResourceType":
                    self.resources[entry["name"].lower()] = T(data, index, relative)
                elif entry["$type"] == "ResourceFunctionType":
                    key = f"{entry['resourceType']}@{entry['apiVersion']}".lower()
                    self.functions[(key, entry["name"].lower())] = \
                        T(data, index, relative).follow(entry["output"])

    def body(self, type_api: str) -> T | None:
        found = self.resources.get(type_api.lower())
        return found.follow(found.entry["body"]) if found else None

    def has_functions(self, type_api: str) -> bool:
        return any(key == type_api.lower() for key, _ in self.functions)

    def missing(self, type_name: str, api: str) -> str:
        """Why `type_name@api` has no type here, naming the file to add."""
        namespace = type_name.split("/", 1)[0].lower()
        known = self.files.get((namespace, api))
        if known:
            return (f"{type_name}@{api} is not in {known.as_posix()} (a misspelt type, or a "
                    f"type Azure does not have at this API version)")
        providers = sorted({p.parts[0] for (ns, _), p in self.files.items() if ns == namespace})
        hint = f" ({', '.join(providers)} hold other versions)" if providers else ""
        return (f"no types file for {type_name}@{api}: copy generated/<provider>/{namespace}/"
                f"{api}/types.json from {SOURCE_REPO} to tests/infra/bicep-types/<provider>/"
                f"{namespace}/{api}/types.json{hint}")


# ---- The check ----------------------------------------------------------------------------------


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    resources: int = 0
    checked: int = 0  # values compared with their type
    paths: int = 0  # property paths read from resources

    def summary(self) -> str:
        skipped = ", ".join(f"{why} {n}" for why, n in sorted(self.skipped.items()))
        return (f"bicep type check: {self.resources} resources, {self.checked} values and "
                f"{self.paths} resource property paths checked, {len(self.errors)} errors; "
                f"skipped (cannot decide) {sum(self.skipped.values())}: {skipped or 'none'}")


class Scope:
    """Names visible in one file for one call of it: parameters (bound by the caller or their
    defaults), variables, resources."""

    def __init__(self, file: BicepFile, bound: dict[str, Any], caller: str,
                 checker: Checker | None = None) -> None:
        self.file = file
        self.checker = checker  # for module outputs' and resource properties' types
        self.bound = bound
        self.caller = caller
        self._values: dict[str, Any] = {}
        self._evaluating: set[str] = set()
        self.symbols: dict[str, Resource] = {r.symbol: r for r in file.resources.values()}
        for r in file.all_resources():
            self.symbols.setdefault(r.symbol, r)

    def lookup(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        if name in self._evaluating:
            return Unknown("expression")
        self._evaluating.add(name)
        try:
            value = self._lookup(name)
        finally:
            self._evaluating.discard(name)
        self._values[name] = value
        return value

    def _lookup(self, name: str) -> Any:
        param = self.file.params.get(name)
        if param is not None:
            # Unbound, a parameter is any of its @allowed values, else its default.
            allowed = [self.eval(a) for a in param.allowed] if param.allowed else None
            declared = Unknown("parameter", _KINDS.get(param.type), param.low, param.high)
            if name in self.bound:
                value = self.bound[name]
            elif allowed:
                value = declared
            elif param.default is not None:
                value = self.eval(param.default)
                if param.low is not None or param.high is not None:
                    value = _one_of([value, declared])  # any value in the declared range
            else:
                value = declared
            if allowed and _unknown(value):
                return OneOf(tuple(allowed))
            return value
        if name in self.file.vars:
            return self.eval(self.file.vars[name])
        return Unknown("expression")

    def eval(self, expr: Any) -> Any:
        kind = expr[0]
        if kind == "lit":
            return expr[1]
        if kind == "interp":
            parts = [p if isinstance(p, str) else self.eval(p) for p in expr[1]]
            if all(isinstance(p, (str, int)) and not isinstance(p, bool) for p in parts):
                return "".join(str(p) for p in parts)
            return Unknown("expression", "string")
        if kind == "ref":
            return self.lookup(expr[1])
        if kind == "obj":
            out: dict[Any, Any] = {}
            for key, value in expr[1]:
                k = self.eval(key)
                out[k if isinstance(k, str) else UnknownKey()] = self.eval(value)
            return out
        if kind == "arr":
            return [self.eval(e) for e in expr[1]]
        if kind == "cond":
            return _one_of([self.eval(expr[2]), self.eval(expr[3])])
        if kind == "chain" and expr[1][0] == "ref" and expr[1][1] in self.file.modules:
            return self.module_output(expr)
        if kind == "chain" and expr[1][0] == "ref" and expr[1][1] in self.symbols:
            kind_read = self.checker.path_kind(expr, self) if self.checker and expr[2] else None
            return Unknown("expression", kind_read)
        if kind == "chain" and expr[1][0] == "ref":
            value = self.lookup(expr[1][1])
            for segment in expr[2]:
                if segment[0] == "prop" and isinstance(value, dict) and segment[1] in value:
                    value = value[segment[1]]
                elif segment[0] == "index" and isinstance(value, list):
                    index = self.eval(segment[1])
                    if not isinstance(index, int) or not 0 <= index < len(value):
                        return Unknown("expression")
                    value = value[index]
                else:
                    return Unknown("expression")
            return value
        if kind == "loop":
            return Unknown("loop")
        if kind == "func":
            return Unknown("expression", _FUNCTION_KINDS.get(expr[1]))
        return Unknown("expression")

    def module_output(self, chain: Any) -> Any:
        module = self.file.modules[chain[1][1]]
        segments = chain[2]
        if self.checker is None or len(segments) != 2 or segments[0] != ("prop", "outputs") \
                or segments[1][0] != "prop" or not module.path.exists():
            return Unknown("expression")
        declared = self.checker.file(module.path).output_types.get(segments[1][1])
        return Unknown("expression", _KINDS.get(declared or ""))


_KINDS = {"string": "string", "int": "int", "bool": "bool", "object": "object", "array": "array"}

_FUNCTION_KINDS = {
    **{f: "string" for f in (
        "string_func", "guid", "unique_string", "to_lower", "to_upper", "format", "replace",
        "substring", "trim", "uri", "uri_component", "uri_component_to_string", "base64_func",
        "base64_to_string", "data_uri", "data_uri_to_string", "pad_left", "new_guid", "utc_now",
        "resource_id", "subscription_resource_id", "tenant_resource_id",
        "extension_resource_id", "management_group_resource_id", "join",
        "load_text_content", "load_file_as_base64", "date_time_add", "date_time_from_epoch")},
    **{f: "int" for f in ("int_func", "length", "index_of", "last_index_of",
                          "date_time_to_epoch")},
    **{f: "bool" for f in ("bool_func", "empty", "contains", "starts_with", "ends_with")},
    **{f: "array" for f in ("array_func", "split", "flatten", "pick_zones")},
}


def _unknown(value: Any) -> bool:
    return isinstance(value, Unknown)


def _one_of(values: list[Any]) -> Any:
    flat: list[Any] = []
    for value in values:
        flat.extend(value.options if isinstance(value, OneOf) else [value])
    return OneOf(tuple(flat))


class Checker:
    def __init__(self, types: Types, infra: Path) -> None:
        self.types = types
        self.infra = infra
        self.report = Report()
        self._files: dict[Path, BicepFile] = {}

    def file(self, path: Path) -> BicepFile:
        path = path.resolve()
        if path not in self._files:
            self._files[path] = parse(path)
        return self._files[path]

    def where(self, path: Path, line: int) -> str:
        try:
            shown = path.relative_to(self.infra.parent).as_posix()
        except ValueError:
            shown = path.as_posix()
        return f"{shown}:{line}"

    def run(self, entries: list[Path]) -> Report:
        called = {m.path for p in entries for m in self.file(p).modules.values()}
        for path in entries:
            if path.resolve() not in called:
                self.check_file(self.file(path), {}, path.name, depth=0)
        return self.report

    # -- one file, one call --

    def check_file(self, file: BicepFile, bound: dict[str, Any], caller: str,
                   depth: int) -> None:
        if depth > 10:
            raise RecursionError(f"module nesting too deep at {file.path}")
        scope = Scope(file, bound, caller, self)
        for resource in file.all_resources():
            self.check_resource(resource, scope)
        names = file.names()
        for expr in file.expressions():
            for node in walk(expr):
                if node[0] == "chain":
                    self.check_path(node, scope)
                elif node[0] == "ref" and node[1] not in names:
                    problem = (f"{self.where(file.path, _line_of(file.path, node[1]))}: "
                               f"{node[1]!r} is not a parameter, variable, resource or module "
                               f"of this file")
                    if problem not in self.report.errors:
                        self.report.errors.append(problem)
        for module in file.modules.values():
            self.check_module(module, scope, depth)

    def check_module(self, module: Module, scope: Scope, depth: int) -> None:
        where = self.where(scope.file.path, module.line)
        if not module.path.exists():
            self.report.errors.append(f"{where}: module {module.symbol}: {module.path} missing")
            return
        target = self.file(module.path)
        if module.loop:
            self.report.skipped["loop"] += 1
            bound: dict[str, Any] = {}
        else:
            body = scope.eval(module.body) if module.body[0] == "obj" else {}
            params = body.get("params", {}) if isinstance(body, dict) else {}
            bound = params if isinstance(params, dict) else {}
            for name in bound:
                if isinstance(name, str) and name not in target.params:
                    self.report.errors.append(
                        f"{where}: module {module.symbol}: {target.path.name} has no parameter "
                        f"{name!r}")
            for name, value in bound.items():
                if isinstance(name, str) and name in target.params:
                    for problem in _param_problems(value, target.params[name], scope):
                        self.report.errors.append(
                            f"{where}: module {module.symbol}: parameter {name!r}: {problem}")
            for name, param in target.params.items():
                if param.default is None and name not in bound and not any(
                        isinstance(k, UnknownKey) for k in bound):
                    self.report.errors.append(
                        f"{where}: module {module.symbol}: required parameter {name!r} of "
                        f"{target.path.name} is not passed")
        self.check_file(target, {k: v for k, v in bound.items() if isinstance(k, str)},
                        f"{scope.caller} > {module.symbol}", depth + 1)

    # -- resource bodies --

    def check_resource(self, resource: Resource, scope: Scope) -> None:
        self.report.resources += 1
        where = f"{self.where(resource.file, resource.line)}: {resource.symbol} " \
                f"({resource.type_api}, via {scope.caller})"
        if resource.loop:
            self.report.skipped["loop"] += 1
        if resource.conditional:
            self.report.skipped["condition"] += 1  # the body is checked; whether it deploys is not
        if resource.body[0] != "obj":
            self.report.skipped["expression"] += 1
            return
        body = scope.eval(resource.body)
        self.check_parent(resource, body, scope, where)
        self.check_scope(resource, body, scope, where)
        self.check_name_is_constant(resource, scope, where)
        body = {k: v for k, v in body.items() if k not in BICEP_RESOURCE_KEYS}
        body_type = self.types.body(resource.type_api)
        if body_type is None:
            if not (resource.existing and self.types.has_functions(resource.type_api)):
                self.report.errors.append(
                    f"{where}: {self.types.missing(resource.type, resource.api)}")
            elif set(body) - {"name"}:
                self.report.errors.append(f"{where}: an existing resource takes only a name")
            return
        if resource.existing:
            extra = sorted(str(k) for k in body if k != "name")
            if extra:
                self.report.errors.append(
                    f"{where}: an existing resource takes only name/scope/parent, not {extra}")
            if "name" not in body:
                self.report.errors.append(f"{where}: required property 'name' is missing")
            return
        for problem in self.check_value(body, body_type, ""):
            self.report.errors.append(f"{where}: {problem}")

    def check_parent(self, resource: Resource, body: dict[Any, Any], scope: Scope,
                     where: str) -> None:
        parent_expr = next((v for k, v in resource.body[1] if k == ("lit", "parent")), None)
        if parent_expr is None:
            return
        parent = scope.symbols.get(parent_expr[1]) if parent_expr[0] == "ref" else None
        if parent is None:
            self.report.errors.append(f"{where}: parent is not a resource of this file")
        elif resource.type.lower().rsplit("/", 1)[0] != parent.type.lower():
            self.report.errors.append(
                f"{where}: parent {parent.symbol} is a {parent.type}, but a {resource.type} "
                f"needs a {resource.type.rsplit('/', 1)[0]}")

    def check_scope(self, resource: Resource, body: dict[Any, Any], scope: Scope,
                    where: str) -> None:
        """The resource type can be deployed (or, existing, read) where it is declared."""
        declared = self.types.resources.get(resource.type_api.lower())
        if declared is None:
            return
        if "scope" in body and resource.parent_symbol is None:
            if resource.existing:
                self.report.skipped["scope"] += 1  # e.g. resourceGroup(other): not followed
                return
            at, bit = "an extension resource (scope:)", 16
        else:
            at = f"{scope.file.target_scope} scope"
            bit = _SCOPE_BITS.get(scope.file.target_scope, 0)
        allowed = declared.entry["readableScopes" if resource.existing else "writableScopes"]
        if not allowed & bit:
            verb = "read" if resource.existing else "deployed"
            self.report.errors.append(f"{where}: cannot be {verb} as {at}")

    def check_name_is_constant(self, resource: Resource, scope: Scope, where: str) -> None:
        """`name` must be known when the deployment starts (Bicep's BCP120): no runtime property
        of another resource and no list*() call."""
        name = next((v for k, v in resource.body[1] if k == ("lit", "name")), None)
        for node in walk(name) if name is not None else ():
            if node[0] != "chain" or node[1][0] != "ref":
                continue
            symbol, segments = node[1][1], node[2]
            if symbol in scope.file.modules or (
                    symbol in scope.symbols and segments and (
                        segments[0][0] == "call" or segments[0][0] == "prop"
                        and segments[0][1] not in ("id", "name", "type", "apiVersion"))):
                self.report.errors.append(
                    f"{where}: name uses {_chain_text(node)}, which is only known once the "
                    f"deployment runs")

    def check_value(self, value: Any, t: T, path: str) -> list[str]:
        """Problems of `value` against type `t` (skips are counted on the report)."""
        if isinstance(value, Unknown):
            return self.check_unknown(value, t, path)
        if isinstance(value, OneOf):
            return [p for option in value.options for p in self.check_value(option, t, path)]
        kind, e = t.kind, t.entry
        at = path or "body"
        self.report.checked += 1
        if kind == "AnyType":
            return []
        if value is None:
            return []  # null: the property is left out
        if kind == "UnionType":
            members = [t.follow(r) for r in e["elements"]]
            saved = self.report.checked, Counter(self.report.skipped)
            for member in members:
                if not self.check_value(value, member, path):
                    return []
            self.report.checked, self.report.skipped = saved
            if all(m.kind == "StringLiteralType" for m in members) and isinstance(value, str):
                return [f"{at}: {value!r} is not one of {t.describe()}"]
            return [f"{at}: {_show(value)} is not a {t.describe()}"]
        if kind == "StringLiteralType":
            return [] if value == e["value"] else [f"{at}: {_show(value)} is not {e['value']!r}"]
        if kind == "StringType":
            if not isinstance(value, str):
                return [f"{at}: {_show(value)} is not a string"]
            problems = []
            if "minLength" in e and len(value) < e["minLength"]:
                problems.append(f"{at}: {value!r} is shorter than {e['minLength']}")
            if "maxLength" in e and len(value) > e["maxLength"]:
                problems.append(f"{at}: {value!r} is longer than {e['maxLength']}")
            if "pattern" in e and not re.search(e["pattern"], value):
                problems.append(f"{at}: {value!r} does not match {e['pattern']}")
            return problems
        if kind == "IntegerType":
            if not isinstance(value, int) or isinstance(value, bool):
                return [f"{at}: {_show(value)} is not an int"]
            if "minValue" in e and value < e["minValue"]:
                return [f"{at}: {value} is below the minimum {e['minValue']}"]
            if "maxValue" in e and value > e["maxValue"]:
                return [f"{at}: {value} is above the maximum {e['maxValue']}"]
            return []
        if kind == "BooleanType":
            return [] if isinstance(value, bool) else [f"{at}: {_show(value)} is not a bool"]
        if kind == "ArrayType":
            if not isinstance(value, list):
                return [f"{at}: {_show(value)} is not an array"]
            problems = []
            if "maxLength" in e and len(value) > e["maxLength"]:
                problems.append(f"{at}: more than {e['maxLength']} items")
            item = t.follow(e["itemType"])
            for i, v in enumerate(value):
                problems += self.check_value(v, item, f"{path}[{i}]")
            return problems
        if kind in ("ObjectType", "DiscriminatedObjectType"):
            if not isinstance(value, dict):
                return [f"{at}: {_show(value)} is not an object ({t.describe()})"]
            if kind == "ObjectType":
                return self.check_object(value, t, e.get("properties", {}),
                                         e.get("additionalProperties"), path)
            return self.check_discriminated(value, t, path)
        return [f"{at}: cannot check against a {kind}"]

    def check_unknown(self, value: Unknown, t: T, path: str) -> list[str]:
        """An expression's declared type (and range) against the property's type; its value
        stays undecided (counted as skipped) unless the type says no more than its kind."""
        accepted = _accepted_kinds(t)
        if value.kind is None or accepted is None:
            self.report.skipped[value.why] += 1
            return []
        at = path or "body"
        self.report.checked += 1
        if value.kind not in accepted:
            article = "an" if value.kind[0] in "aeiou" else "a"
            return [f"{at}: {article} {value.kind} expression where {t.describe()} is expected"]
        e = t.entry
        if t.kind == "IntegerType" and value.kind == "int":
            low, high = e.get("minValue"), e.get("maxValue")
            if (low is not None and (value.low is None or value.low < low)) or \
                    (high is not None and (value.high is None or value.high > high)):
                declared = f"[{_bound(value.low)}, {_bound(value.high)}]"
                return [f"{at}: a parameter allowing {declared} where Azure accepts "
                        f"[{_bound(low)}, {_bound(high)}]: add @minValue/@maxValue"]
            return []
        if t.kind in ("StringType", "BooleanType", "AnyType") and not {
                "pattern", "minLength", "maxLength"} & set(e):
            return []
        self.report.skipped[value.why] += 1
        return []

    def check_discriminated(self, value: dict[Any, Any], t: T, path: str) -> list[str]:
        e = t.entry
        key = e["discriminator"]
        at = f"{path}.{key}" if path else key
        chosen = value.get(key)
        if isinstance(chosen, (Unknown, OneOf)) or (
                chosen is None and any(isinstance(k, UnknownKey) for k in value)):
            if isinstance(chosen, OneOf) and all(isinstance(o, str) for o in chosen.options):
                return [p for o in chosen.options
                        for p in self.check_discriminated({**value, key: o}, t, path)]
            self.report.skipped["discriminator"] += 1
            return []
        if chosen is None:
            return [f"{at}: required discriminator is missing (one of {sorted(e['elements'])})"]
        if chosen not in e["elements"]:
            return [f"{at}: {_show(chosen)} is not one of {sorted(e['elements'])}"]
        element = t.follow(e["elements"][chosen])
        properties = {**e.get("baseProperties", {}), **element.entry.get("properties", {})}
        properties.setdefault(key, {"type": None, "flags": REQUIRED})
        return self.check_object(value, element, properties,
                                 element.entry.get("additionalProperties"), path,
                                 discriminator=key)

    def check_object(self, value: dict[Any, Any], t: T, properties: dict[str, Any],
                     additional: dict[str, str] | None, path: str,
                     discriminator: str | None = None) -> list[str]:
        problems: list[str] = []
        for key, v in value.items():
            at = f"{path}.{key}" if path and isinstance(key, str) else str(key)
            if isinstance(key, UnknownKey):
                if additional is not None:
                    problems += self.check_value(v, t.follow(additional), f"{path}[*]")
                else:
                    self.report.skipped["object key"] += 1
                continue
            prop = properties.get(key)
            if prop is None:
                if additional is not None:
                    problems += self.check_value(v, t.follow(additional), at)
                    continue
                near = [p for p in properties if p.lower() == key.lower()]
                settable = sorted(n for n, q in properties.items() if not q["flags"] & READ_ONLY)
                hint = (f"; it is spelt {near[0]!r}" if near else
                        f"; allowed: {', '.join(settable)}")
                problems.append(f"{at}: unknown property of {t.describe()}{hint}")
                continue
            if prop["flags"] & READ_ONLY:
                problems.append(f"{at}: read-only property is set (Azure sets it)")
                continue
            if key == discriminator or prop["type"] is None:
                continue
            problems += self.check_value(v, t.follow(prop["type"]), at)
        if not any(isinstance(k, UnknownKey) for k in value):
            for name, prop in properties.items():
                if prop["flags"] & REQUIRED and not prop["flags"] & READ_ONLY and name not in value:
                    at = f"{path}.{name}" if path else name
                    problems.append(f"{at}: required property is missing")
        return problems

    # -- property paths read from resources --

    def check_path(self, chain: Any, scope: Scope) -> None:
        _, root, segments, line = chain
        if root[0] == "ref" and root[1] in scope.file.modules and root[1] not in scope.symbols:
            self.check_module_output(chain, scope)
            return
        if root[0] != "ref" or root[1] not in scope.symbols or not segments:
            return
        self.report.paths += 1
        _, problem = self.resolve_path(chain, scope)
        if problem:
            self.report.errors.append(
                f"{self.where(scope.file.path, line)}: {_chain_text(chain)}: {problem}")

    def path_kind(self, chain: Any, scope: Scope) -> str | None:
        """The Bicep kind of what a chain rooted at a resource reads (None: not known)."""
        t, problem = self.resolve_path(chain, scope)
        return None if problem or t is None else _kind_of(t)

    def resolve_path(self, chain: Any, scope: Scope) -> tuple[T | None, str | None]:
        """The type a chain rooted at a resource reads, or what is wrong with the chain.
        (None, None): not decidable (an untyped resource, AnyType)."""
        current: Resource | None = scope.symbols[chain[1][1]]
        t: T | None = None
        for segment in chain[2]:
            if current is not None:
                if segment[0] == "child":
                    child = current.children.get(segment[1])
                    if child is None:
                        return None, f"{current.symbol} has no nested resource {segment[1]}"
                    current = child
                    continue
                if segment[0] == "call":
                    output = self.types.functions.get((current.type_api.lower(),
                                                       segment[1].lower()))
                    if output is None:
                        if self.types.body(current.type_api) is None and \
                                not self.types.has_functions(current.type_api):
                            return None, None  # the resource itself is reported as missing
                        return None, f"{current.type_api} has no function {segment[1]}()"
                    current, t = None, output
                    continue
                t = self.types.body(current.type_api)
                if t is None:
                    return None, None  # reported with the resource
                t = self.narrow(t, current, scope)
                current = None
            assert t is not None
            if segment[0] == "call":
                return None, f"{segment[1]}() is called on a value"
            if t.kind == "AnyType":
                return None, None
            if segment[0] == "index":
                if t.kind == "ArrayType":
                    t = t.follow(t.entry["itemType"])
                elif t.kind == "ObjectType" and t.entry.get("additionalProperties"):
                    t = t.follow(t.entry["additionalProperties"])
                else:
                    return None, f"a {t.describe()} cannot be indexed"
                continue
            name = segment[1]
            properties = _readable_properties(t)
            if properties is None:
                return None, f"a {t.describe()} has no property {name!r}"
            prop = properties.get(name)
            if prop is None:
                if t.kind == "ObjectType" and t.entry.get("additionalProperties"):
                    t = t.follow(t.entry["additionalProperties"])
                    continue
                near = [p for p in properties if p.lower() == name.lower()]
                hint = f"; it is spelt {near[0]!r}" if near else \
                    f"; it has {', '.join(sorted(properties)) or 'no properties'}"
                return None, f"{t.describe()} has no property {name!r}{hint}"
            if prop["flags"] & WRITE_ONLY:
                return None, f"{name!r} is write-only (cannot be read)"
            t = t.follow(prop["type"])
        return t, None

    def check_module_output(self, chain: Any, scope: Scope) -> None:
        _, root, segments, line = chain
        module = scope.file.modules[root[1]]
        if not segments or segments[0] != ("prop", "outputs") or len(segments) < 2 \
                or not module.path.exists():
            return  # module.name and the like, or reported as a missing module
        self.report.paths += 1
        outputs = self.file(module.path).outputs
        if segments[1][0] == "prop" and segments[1][1] not in outputs:
            self.report.errors.append(
                f"{self.where(scope.file.path, line)}: {_chain_text(chain)}: "
                f"{module.path.name} has no output {segments[1][1]!r}")

    def narrow(self, t: T, resource: Resource, scope: Scope) -> T:
        """A discriminated resource body whose discriminator is a literal: that element."""
        if t.kind != "DiscriminatedObjectType":
            return t
        key = t.entry["discriminator"]
        value = next((scope.eval(v) for k, v in resource.body[1] if k == ("lit", key)), None)
        if isinstance(value, str) and value in t.entry["elements"]:
            return t.follow(t.entry["elements"][value])
        return t


_SCOPE_BITS = {"tenant": 1, "managementGroup": 2, "subscription": 4, "resourceGroup": 8}

_PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "int": (int,), "bool": (bool,), "object": (dict,), "array": (list,)}


def _param_problems(value: Any, param: Param, scope: Scope) -> list[str]:
    """A value passed to a module parameter against its declared type and @allowed list."""
    if isinstance(value, OneOf):
        return [p for option in value.options for p in _param_problems(option, param, scope)]
    if value is None:
        return []
    expected = _PARAM_TYPES.get(param.type)
    if isinstance(value, Unknown):
        if value.kind and expected and value.kind != param.type:
            article = "an" if param.type[0] in "aeiou" else "a"
            return [f"a {value.kind} expression is passed to {article} {param.type} parameter"]
        if value.kind == "int" and (
                (param.low is not None and (value.low is None or value.low < param.low))
                or (param.high is not None and (value.high is None or value.high > param.high))):
            return [f"a value in [{_bound(value.low)}, {_bound(value.high)}] is passed where "
                    f"the module accepts [{_bound(param.low)}, {_bound(param.high)}]"]
        return []
    if expected and (not isinstance(value, expected)
                     or (param.type == "int" and isinstance(value, bool))):
        return [f"{_show(value)} is not a {param.type}"]
    if isinstance(value, int) and (param.low is not None and value < param.low
                                   or param.high is not None and value > param.high):
        return [f"{value} is outside the module's [{_bound(param.low)}, {_bound(param.high)}]"]
    if param.allowed is not None:
        allowed = [scope.eval(a) for a in param.allowed]
        if value not in allowed:
            return [f"{_show(value)} is not one of the @allowed values {allowed}"]
    return []


def _accepted_kinds(t: T) -> set[str] | None:
    """The Bicep kinds a type accepts (None: any)."""
    kind = t.kind
    if kind == "UnionType":
        kinds: set[str] = set()
        for ref in t.entry["elements"]:
            member = _accepted_kinds(t.follow(ref))
            if member is None:
                return None
            kinds |= member
        return kinds
    return {"StringType": {"string"}, "StringLiteralType": {"string"}, "IntegerType": {"int"},
            "BooleanType": {"bool"}, "ObjectType": {"object"},
            "DiscriminatedObjectType": {"object"}, "ArrayType": {"array"}}.get(kind)


def _kind_of(t: T) -> str | None:
    kinds = _accepted_kinds(t)
    return next(iter(kinds)) if kinds and len(kinds) == 1 else None


def _bound(value: int | None) -> str:
    return "unbounded" if value is None else str(value)


def _readable_properties(t: T) -> dict[str, Any] | None:
    e = t.entry
    if t.kind == "ObjectType":
        return dict(e.get("properties", {}))
    if t.kind == "DiscriminatedObjectType":
        merged = dict(e.get("baseProperties", {}))
        for ref in e["elements"].values():
            merged.update(t.follow(ref).entry.get("properties", {}))
        return merged
    return None


def _line_of(path: Path, name: str) -> int:
    """The first line using `name` outside a comment (names carry no position)."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if re.search(rf"\b{re.escape(name)}\b", line.split("//", 1)[0]):
            return number
    return 0


def _chain_text(chain: Any) -> str:
    _, root, segments, _ = chain
    text = root[1] if root[0] == "ref" else "(...)"
    for segment in segments:
        text += {"prop": f".{segment[1]}", "child": f"::{segment[1]}",
                 "call": f".{segment[1]}()", "index": "[...]"}[segment[0]]
    return text


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def check(infra: Path, types: Types | None = None) -> Report:
    """Type-check every Bicep file under `infra` (modules through their callers)."""
    checker = Checker(types or Types(), infra)
    return checker.run(sorted(infra.rglob("*.bicep")))


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "infra"
    result = check(root)
    print("\n".join(result.errors))
    print(result.summary())
    sys.exit(1 if result.errors else 0)
