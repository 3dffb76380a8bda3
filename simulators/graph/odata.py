"""OData query options as Graph's mail API reads them: $filter, $select, $expand, $top, $skip,
$orderby, $count.

`$filter` supports comparisons (eq, ne, gt, ge, lt, le) of properties with literals, `and`,
`or`, `not`, parentheses, and the one lambda Outlook accepts on extended properties:
`singleValueExtendedProperties/any(ep: ep/id eq '...' and ep/value eq '...')`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from .errors import GraphError
from .extprops import PropertyKey, parse_id
from .schema import Schema, parse_datetime

_TOKEN_RE = re.compile(r"""
    \s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<punct>[(),:/])
    | (?P<literal>[0-9][0-9A-Za-z:.+\-]*)
    | (?P<ident>[A-Za-z_$@][\w.]*)
    )""", re.VERBOSE)
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
    "lt": operator.lt, "le": operator.le,
}
T = TypeVar("T")
_QUERY_OPTIONS = {"$filter", "$select", "$expand", "$top", "$skip", "$orderby", "$count"}


def invalid_filter() -> GraphError:
    return GraphError(400, "ErrorInvalidUrlQueryFilter",
                      "The query filter contains one or more invalid nodes.")


def _parse_uri_error(message: str) -> GraphError:
    return GraphError(400, "RequestBroker--ParseUri", message)


@dataclass(frozen=True)
class Compare:
    path: tuple[str, ...]
    op: str
    value: object


@dataclass(frozen=True)
class Logical:
    op: str  # "and" | "or"
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class Lambda:
    path: tuple[str, ...]
    quantifier: str
    var: str
    body: Node


@dataclass(frozen=True)
class ExtendedPropertyMatch:
    """`singleValueExtendedProperties/any(ep: ep/id eq '<id>' and ep/value eq '<value>')`."""

    key: PropertyKey
    value: str


Node = Compare | Logical | Not | Lambda | ExtendedPropertyMatch


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise invalid_filter()
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise invalid_filter()
        self.pos += 1
        return token

    def expect(self, value: str) -> None:
        if self.take()[1] != value:
            raise invalid_filter()

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "ident" and token[1].lower() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Node:
        node = self.disjunction()
        if self.peek() is not None:
            raise invalid_filter()
        return node

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.keyword("or"):
            node = Logical("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.unary()
        while self.keyword("and"):
            node = Logical("and", node, self.unary())
        return node

    def unary(self) -> Node:
        if self.keyword("not"):
            return Not(self.unary())
        token = self.peek()
        if token == ("punct", "("):
            self.take()
            node = self.disjunction()
            self.expect(")")
            return node
        return self.comparison()

    def comparison(self) -> Node:
        kind, name = self.take()
        if kind != "ident":
            raise invalid_filter()
        path = [name]
        while self.peek() == ("punct", "/"):
            self.take()
            kind, segment = self.take()
            if kind != "ident":
                raise invalid_filter()
            if segment.lower() in ("any", "all") and self.peek() == ("punct", "("):
                self.take()
                kind, var = self.take()
                if kind != "ident":
                    raise invalid_filter()
                self.expect(":")
                body = self.disjunction()
                self.expect(")")
                return Lambda(tuple(path), segment.lower(), var, body)
            path.append(segment)
        kind, op = self.take()
        if kind != "ident" or op.lower() not in _OPERATORS:
            raise invalid_filter()
        return Compare(tuple(path), op.lower(), self.literal())

    def literal(self) -> object:
        kind, text = self.take()
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "ident" and text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text.lower()]
        if kind == "literal":
            if re.fullmatch(r"-?\d+", text):
                return int(text)
            if re.fullmatch(r"-?\d+\.\d+", text):
                return float(text)
            moment = parse_datetime(text)
            if moment is not None:
                return moment
        raise invalid_filter()


def parse_filter(text: str, model: Schema, type_name: str) -> Node:
    """Parse and check a $filter against the properties of `type_name`."""
    return _bind(_Parser(text).parse(), model, type_name)


def _bind(node: Node, model: Schema, type_name: str) -> Node:
    if isinstance(node, Logical):
        return Logical(node.op, _bind(node.left, model, type_name),
                       _bind(node.right, model, type_name))
    if isinstance(node, Not):
        return Not(_bind(node.operand, model, type_name))
    if isinstance(node, Lambda):
        return _extended_property_lambda(node, model, type_name)
    if isinstance(node, Compare):
        prop = model.lookup(type_name, node.path[0])
        if prop is None:
            raise _parse_uri_error(
                f"Could not find a property named '{node.path[0]}' on type '{type_name}'.")
        if prop.navigation or prop.collection:
            raise invalid_filter()
        return Compare((prop.name, *node.path[1:]), node.op, node.value)
    return node


def _extended_property_lambda(node: Lambda, model: Schema, type_name: str) -> Node:
    prop = model.lookup(type_name, node.path[0]) if len(node.path) == 1 else None
    if prop is None or prop.name != "singleValueExtendedProperties" or node.quantifier != "any":
        raise invalid_filter()
    body = node.body
    if not (isinstance(body, Logical) and body.op == "and"
            and isinstance(body.left, Compare) and isinstance(body.right, Compare)):
        raise invalid_filter()
    parts: dict[str, str] = {}
    for compare in (body.left, body.right):
        if (len(compare.path) != 2 or compare.path[0] != node.var or compare.op != "eq"
                or not isinstance(compare.value, str)):
            raise invalid_filter()
        parts[compare.path[1].lower()] = compare.value
    if set(parts) != {"id", "value"}:
        raise invalid_filter()
    return ExtendedPropertyMatch(parse_id(parts["id"]), parts["value"])


def parse_id_filter(text: str) -> list[tuple[str, PropertyKey]]:
    """The `$filter` of `$expand=singleValueExtendedProperties(...)`: `id eq '...'`, or-ed;
    returns each id as written with its key."""
    node = _Parser(text).parse()
    keys: list[tuple[str, PropertyKey]] = []

    def walk(current: Node) -> None:
        if isinstance(current, Logical) and current.op == "or":
            walk(current.left)
            walk(current.right)
        elif (isinstance(current, Compare) and current.path == ("id",) and current.op == "eq"
              and isinstance(current.value, str)):
            keys.append((current.value, parse_id(current.value)))
        else:
            raise invalid_filter()

    walk(node)
    return keys


def _resolve(entity: Mapping[str, object], path: tuple[str, ...]) -> object:
    current: object = entity
    for segment in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(segment)
    return current


def _compare(actual: object, op: str, expected: object) -> bool:
    if isinstance(expected, datetime) and isinstance(actual, str):
        actual = parse_datetime(actual)
    if isinstance(expected, str) and isinstance(actual, str):
        actual, expected = actual.casefold(), expected.casefold()
    if op in ("eq", "ne"):
        return bool(_OPERATORS[op](actual, expected))
    if actual is None or expected is None:
        return False
    try:
        return bool(_OPERATORS[op](actual, expected))
    except TypeError:
        return False


def matches(node: Node, entity: Mapping[str, object],
            extended: Callable[[PropertyKey], str | None]) -> bool:
    """Evaluate a bound filter on an entity's JSON (string comparisons ignore case, as Exchange
    does; extended property values compare exactly)."""
    if isinstance(node, Logical):
        left = matches(node.left, entity, extended)
        if node.op == "and":
            return left and matches(node.right, entity, extended)
        return left or matches(node.right, entity, extended)
    if isinstance(node, Not):
        return not matches(node.operand, entity, extended)
    if isinstance(node, ExtendedPropertyMatch):
        return extended(node.key) == node.value
    if isinstance(node, Compare):
        return _compare(_resolve(entity, node.path), node.op, node.value)
    raise invalid_filter()


@dataclass
class QueryOptions:
    """Parsed query options for one collection or entity request."""

    select: list[str] | None = None
    expand: dict[str, list[tuple[str, PropertyKey]] | None] = field(default_factory=dict)
    filter: Node | None = None
    top: int | None = None
    skip: int = 0
    orderby: list[tuple[tuple[str, ...], bool]] = field(default_factory=list)
    count: bool = False


def _split_top_level(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == sep and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _non_negative(name: str, text: str) -> int:
    if not re.fullmatch(r"\d+", text.strip()):
        raise _parse_uri_error(
            f"Invalid value '{text}' for {name} query option found. The {name} query option "
            "requires a non-negative integer value.")
    return int(text)


def parse_query(query: Mapping[str, str], model: Schema, type_name: str,
                expandable: tuple[str, ...] = ()) -> QueryOptions:
    """Read the OData query options of a request against entity type `type_name`."""
    options = QueryOptions()
    for key in query:
        if key.startswith("$") and key.lower() not in _QUERY_OPTIONS:
            raise GraphError(400, "BadRequest", f"The query parameter '{key}' is not supported.")
    lowered = {k.lower(): v for k, v in query.items() if k.startswith("$")}

    def property_name(name: str) -> str:
        prop = model.lookup(type_name, name)
        if prop is None:
            raise _parse_uri_error(f"Could not find a property named '{name}' on type "
                                   f"'{type_name}'.")
        return prop.name

    if "$select" in lowered:
        options.select = [property_name(n) for n in _split_top_level(lowered["$select"], ",")]
    if "$expand" in lowered:
        for item in _split_top_level(lowered["$expand"], ","):
            name, _, inner = item.partition("(")
            canonical = property_name(name.strip())
            prop = model.lookup(type_name, canonical)
            if prop is None or not prop.navigation:
                raise _parse_uri_error(
                    f"Property '{canonical}' on type '{type_name}' is not a navigation property "
                    "or complex property. Only navigation properties can be expanded.")
            if canonical not in expandable:
                raise GraphError(400, "BadRequest",
                                 f"Expanding '{canonical}' is not supported by the simulator.")
            keys = None
            if inner:
                if not inner.endswith(")"):
                    raise _parse_uri_error(f"Syntax error in $expand: '{item}'.")
                inner_options = dict(
                    opt.split("=", 1) for opt in _split_top_level(inner[:-1], ";") if "=" in opt)
                inner_filter = {k.strip().lower(): v for k, v in inner_options.items()}
                if "$filter" in inner_filter:
                    if canonical != "singleValueExtendedProperties":
                        raise invalid_filter()
                    keys = parse_id_filter(inner_filter["$filter"])
            options.expand[canonical] = keys
    if "$filter" in lowered:
        options.filter = parse_filter(lowered["$filter"], model, type_name)
    if "$top" in lowered:
        options.top = _non_negative("$top", lowered["$top"])
    if "$skip" in lowered:
        options.skip = _non_negative("$skip", lowered["$skip"])
    if "$count" in lowered:
        options.count = lowered["$count"].strip().lower() == "true"
    if "$orderby" in lowered:
        for clause in _split_top_level(lowered["$orderby"], ","):
            name, _, direction = clause.partition(" ")
            path = name.strip().split("/")
            path[0] = property_name(path[0])
            if direction.strip().lower() not in ("", "asc", "desc"):
                raise _parse_uri_error(f"Syntax error in $orderby: '{clause}'.")
            options.orderby.append((tuple(path), direction.strip().lower() == "desc"))
    if options.filter is not None and options.orderby:
        _check_sort_with_filter(options.filter, options.orderby)
    return options


def _filter_properties(node: Node) -> list[str]:
    """Properties a filter uses, in order of first appearance."""
    if isinstance(node, Logical):
        found = _filter_properties(node.left)
        return found + [p for p in _filter_properties(node.right) if p not in found]
    if isinstance(node, Not):
        return _filter_properties(node.operand)
    if isinstance(node, Compare):
        return [node.path[0]]
    return ["singleValueExtendedProperties"]


def _check_sort_with_filter(node: Node, orderby: list[tuple[tuple[str, ...], bool]]) -> None:
    """Outlook sorts a filtered collection only when the $orderby properties also lead the
    $filter, in the same order."""
    sort = list(dict.fromkeys(path[0] for path, _ in orderby))
    if _filter_properties(node)[:len(sort)] != sort:
        raise GraphError(400, "InefficientFilter",
                         "The restriction or sort order is too complex for this operation.")


def order(items: list[T], orderby: list[tuple[tuple[str, ...], bool]],
          entity: Callable[[T], Mapping[str, object]]) -> list[T]:
    """Stable multi-key sort by $orderby clauses over each item's entity JSON (nulls first)."""
    for path, descending in reversed(orderby):
        def key(item: T, path: tuple[str, ...] = path) -> tuple[int, Any]:
            value = _resolve(entity(item), path)
            if value is None:
                return (0, "")
            return (1, value.casefold() if isinstance(value, str) else value)
        items = sorted(items, key=key, reverse=descending)
    return items
