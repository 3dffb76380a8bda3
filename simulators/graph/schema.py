"""Microsoft Graph v1.0 schema and validation of request bodies against it.

The schema is Graph's published v1.0 metadata, `v1.0-Prod.csdl.gz` beside this module
(github.com/microsoftgraph/msgraph-metadata, schemas/v1.0-Prod.csdl at commit f54f11b6, MIT
license). It is parsed once, on first use. Validation answers the way Graph's OData reader does:
400 `RequestBodyRead` for a property the type does not declare, a value of the wrong JSON kind,
a null where the schema forbids it, or an enum member that does not exist.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import GraphError, body_read_error

CSDL_PATH = Path(__file__).with_name("v1.0-Prod.csdl.gz")
_EDM = "{http://docs.oasis-open.org/odata/ns/edm}"

_INT_RANGES = {
    "Edm.Byte": (0, 255), "Edm.SByte": (-128, 127), "Edm.Int16": (-(2**15), 2**15 - 1),
    "Edm.Int32": (-(2**31), 2**31 - 1), "Edm.Int64": (-(2**63), 2**63 - 1),
}
_FLOATS = {"Edm.Double", "Edm.Single", "Edm.Decimal"}
_STRINGS = {"Edm.String", "Edm.Guid", "Edm.Date", "Edm.TimeOfDay", "Edm.Duration"}
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Property:
    """A structural or navigation property, or an action parameter."""

    name: str
    type: str  # qualified element type: "Edm.String", "microsoft.graph.recipient"
    collection: bool
    nullable: bool
    navigation: bool = False


@dataclass
class StructuredType:
    """An entity or complex type with its own (not inherited) properties."""

    name: str
    base: str | None
    abstract: bool
    own: dict[str, Property]


@dataclass(frozen=True)
class EnumType:
    name: str
    members: tuple[str, ...]
    flags: bool


class Schema:
    """The types, enums and bound actions of the CSDL, by qualified name."""

    def __init__(self, types: dict[str, StructuredType], enums: dict[str, EnumType],
                 actions: dict[tuple[str, str], dict[str, Property]]) -> None:
        self.types = types
        self.enums = enums
        self.actions = actions
        self._by_lower = {name.lower(): name for name in types}
        self._props: dict[str, dict[str, Property]] = {}
        self._props_lower: dict[str, dict[str, Property]] = {}

    def properties(self, type_name: str) -> dict[str, Property]:
        """All properties of a type, inherited ones included."""
        cached = self._props.get(type_name)
        if cached is None:
            st = self.types[type_name]
            cached = dict(self.properties(st.base)) if st.base else {}
            cached.update(st.own)
            self._props[type_name] = cached
            self._props_lower[type_name] = {k.lower(): p for k, p in cached.items()}
        return cached

    def lookup(self, type_name: str, name: str) -> Property | None:
        """A property by name; Graph matches property names case-insensitively."""
        props = self.properties(type_name)
        return props.get(name) or self._props_lower[type_name].get(name.lower())

    def resolve_type(self, name: str) -> str | None:
        """The qualified structured type named by an `@odata.type` value, if any."""
        name = name.removeprefix("#")
        if name.lower().startswith("graph."):
            name = "microsoft." + name
        return self._by_lower.get(name.lower())

    def is_assignable(self, actual: str, expected: str) -> bool:
        current: str | None = actual
        while current is not None:
            if current == expected:
                return True
            current = self.types[current].base
        return False

    def action_parameters(self, action: str, binding: str) -> dict[str, Property]:
        return self.actions[(action, binding)]


def _split_type(raw: str) -> tuple[str, bool]:
    if raw.startswith("Collection(") and raw.endswith(")"):
        return raw[len("Collection("):-1], True
    return raw, False


def _parse(path: Path) -> Schema:
    aliases: dict[str, str] = {}
    raw_types: list[tuple[str, str | None, bool, list[tuple[str, str, bool, bool]]]] = []
    raw_actions: list[tuple[str, str, list[tuple[str, str, bool]]]] = []
    enums: dict[str, EnumType] = {}
    namespace = ""
    with gzip.open(path) as stream:
        # The bundled schema file is trusted input, not request data.
        for event, el in ET.iterparse(stream, events=("start", "end")):  # noqa: S314
            tag = el.tag.removeprefix(_EDM)
            if event == "start":
                if tag == "Schema":
                    namespace = el.attrib["Namespace"]
                    if "Alias" in el.attrib:
                        aliases[el.attrib["Alias"]] = namespace
                continue
            name = f"{namespace}.{el.attrib.get('Name', '')}"
            if tag in ("EntityType", "ComplexType"):
                props = [(c.attrib["Name"], c.attrib["Type"], c.attrib.get("Nullable") != "false",
                          c.tag == f"{_EDM}NavigationProperty")
                         for c in el if c.tag in (f"{_EDM}Property", f"{_EDM}NavigationProperty")]
                raw_types.append((name, el.attrib.get("BaseType"),
                                  el.attrib.get("Abstract") == "true", props))
            elif tag == "EnumType":
                members = tuple(m.attrib["Name"] for m in el if m.tag == f"{_EDM}Member")
                enums[name] = EnumType(name, members, el.attrib.get("IsFlags") == "true")
            elif tag == "Action" and el.attrib.get("IsBound") == "true":
                params = [(p.attrib["Name"], p.attrib["Type"], p.attrib.get("Nullable") != "false")
                          for p in el if p.tag == f"{_EDM}Parameter"]
                raw_actions.append((name, params[0][1], params[1:]))
            else:
                continue
            el.clear()

    def qualify(raw: str) -> str:
        prefix, _, rest = raw.partition(".")
        return f"{aliases[prefix]}.{rest}" if prefix in aliases else raw

    def prop(name: str, raw: str, nullable: bool, navigation: bool = False) -> Property:
        element, collection = _split_type(raw)
        return Property(name, qualify(element), collection, nullable, navigation)

    types = {
        name: StructuredType(name, qualify(base) if base else None, abstract,
                             {p[0]: prop(*p) for p in props})
        for name, base, abstract, props in raw_types
    }
    actions = {}
    for name, binding_raw, params in raw_actions:
        element, collection = _split_type(binding_raw)
        binding = f"Collection({qualify(element)})" if collection else qualify(element)
        actions[(name.rsplit(".", 1)[1], binding)] = {p[0]: prop(*p) for p in params}
    return Schema(types, {qualify(k): v for k, v in enums.items()}, actions)


_lock = threading.Lock()
_schema: Schema | None = None


def schema() -> Schema:
    """The parsed v1.0 schema (parsed on first call, then cached for the process)."""
    global _schema
    with _lock:
        if _schema is None:
            _schema = _parse(CSDL_PATH)
        return _schema


def parse_datetime(text: str) -> datetime | None:
    """An ISO 8601 date-time as an aware UTC datetime (no offset means UTC), or None."""
    if "T" not in text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "StartObject"
    if isinstance(value, list):
        return "StartArray"
    return "PrimitiveValue"


def _unknown_property(name: str, type_name: str) -> GraphError:
    return body_read_error(
        f"The property '{name}' does not exist on type '{type_name}'. Make sure to only use "
        "property names that are defined by the type or mark the type as open type.")


class Validator:
    """Checks JSON request bodies against the schema and returns them with canonical names."""

    def __init__(self, model: Schema | None = None) -> None:
        self.model = model or schema()

    def instance(self, value: object, expected: str) -> dict[str, Any]:
        """Validate an entity or complex value of type `expected` (or of the derived type its
        `@odata.type` names). Instance annotations are dropped except `@odata.type`."""
        if not isinstance(value, dict):
            raise body_read_error(
                f"An unexpected '{_json_kind(value)}' node was found when reading from the JSON "
                "reader. A 'StartObject' node was expected.")
        actual = expected
        out: dict[str, Any] = {}
        annotation = value.get("@odata.type")
        if annotation is not None:
            resolved = self.model.resolve_type(str(annotation))
            if resolved is None:
                raise body_read_error(
                    f"A type named '{str(annotation).removeprefix('#')}' could not be resolved "
                    "by the model. When a model is available, each type name must resolve to a "
                    "valid type.")
            if not self.model.is_assignable(resolved, expected):
                raise body_read_error(
                    f"A resource with type '{resolved}' was found, but it is not assignable to "
                    f"the expected type '{expected}'. The type specified in the resource must be "
                    "equal to either the expected type or a derived type.")
            actual = resolved
            out["@odata.type"] = f"#{actual}"
        for key, item in value.items():
            if "@" in key:
                continue
            prop = self.model.lookup(actual, key)
            if prop is None:
                raise _unknown_property(key, actual)
            out[prop.name] = self.value(prop, item)
        if self.model.types[actual].abstract:
            raise body_read_error(
                f"The type '{actual}' is abstract; an instance needs an '@odata.type' annotation "
                "naming a concrete derived type.")
        return out

    def parameters(self, action: str, binding: str, body: object) -> dict[str, Any]:
        """Validate the body of a bound action call; parameter names match case-insensitively."""
        params = self.model.action_parameters(action, binding)
        if not isinstance(body, dict):
            raise body_read_error("The request payload must be a JSON object of parameters.")
        lower = {k.lower(): p for k, p in params.items()}
        out: dict[str, Any] = {}
        for key, item in body.items():
            if "@" in key:
                continue
            prop = lower.get(key.lower())
            if prop is None:
                raise body_read_error(
                    f"The parameter '{key}' in the request payload is not a valid parameter for "
                    f"the operation '{action}'.")
            out[prop.name] = self.value(prop, item)
        missing = [p.name for p in params.values() if not p.nullable and p.name not in out]
        if missing:
            raise body_read_error(
                f"One or more parameters of the operation '{action}' are missing from the "
                f"request payload. The missing parameters are: {', '.join(missing)}.")
        return out

    def value(self, prop: Property, item: object) -> object:
        if item is None:
            if prop.nullable and not prop.collection:
                return None
            raise body_read_error(
                f"A null value was found for the property named '{prop.name}', which has the "
                f"expected type '{self._type_text(prop)}[Nullable=False]'. The expected type "
                f"'{self._type_text(prop)}[Nullable=False]' does not allow null values.")
        if prop.collection:
            if not isinstance(item, list):
                raise body_read_error(
                    f"A node of type '{_json_kind(item)}' was read from the JSON reader when "
                    f"trying to read the contents of the property '{prop.name}'; however, a "
                    "'StartArray' node was expected.")
            return [self._single(prop, element) for element in item]
        return self._single(prop, item)

    @staticmethod
    def _type_text(prop: Property) -> str:
        return f"Collection({prop.type})" if prop.collection else prop.type

    def _single(self, prop: Property, item: object) -> object:
        if prop.type.startswith("Edm."):
            return self._primitive(prop, item)
        if prop.type in self.model.enums:
            return self._enum(self.model.enums[prop.type], item)
        if prop.type in self.model.types:
            if not isinstance(item, dict):
                raise body_read_error(
                    f"A '{_json_kind(item)}' node with non-null value was found when trying to "
                    f"read the value of the property '{prop.name}'; however, a 'StartObject' "
                    "node was expected.")
            return self.instance(item, prop.type)
        return item

    @staticmethod
    def _primitive(prop: Property, item: object) -> object:
        type_name = prop.type
        if isinstance(item, dict | list):
            raise body_read_error(
                f"An unexpected '{_json_kind(item)}' node was found when reading from the JSON "
                f"reader. A 'PrimitiveValue' node was expected for the property '{prop.name}'.")
        if type_name in _STRINGS or type_name in ("Edm.DateTimeOffset", "Edm.Binary"):
            if not isinstance(item, str):
                raise body_read_error(
                    f"Cannot convert a primitive value to the expected type '{type_name}'. See "
                    "the inner exception for more details.")
            if not _literal_ok(type_name, item):
                raise body_read_error(
                    f"Cannot convert the literal '{item}' to the expected type '{type_name}'.")
            return item
        if type_name == "Edm.Boolean":
            ok = isinstance(item, bool)
        elif type_name in _INT_RANGES:
            low, high = _INT_RANGES[type_name]
            ok = isinstance(item, int) and not isinstance(item, bool) and low <= item <= high
        elif type_name in _FLOATS:
            ok = isinstance(item, int | float) and not isinstance(item, bool)
        else:
            ok = True
        if not ok:
            raise body_read_error(
                f"Cannot convert the literal '{item}' to the expected type '{type_name}'.")
        return item

    @staticmethod
    def _enum(enum: EnumType, item: object) -> str:
        if not isinstance(item, str):
            raise body_read_error(
                f"Cannot convert a primitive value to the expected type '{enum.name}'.")
        by_lower = {m.lower(): m for m in enum.members}
        parts = [p.strip() for p in item.split(",")] if enum.flags else [item]
        canonical = []
        for part in parts:
            member = by_lower.get(part.lower())
            if member is None:
                raise body_read_error(f"Requested value '{item}' was not found.")
            canonical.append(member)
        return ",".join(canonical)


def _literal_ok(type_name: str, text: str) -> bool:
    if type_name == "Edm.DateTimeOffset":
        return parse_datetime(text) is not None
    if type_name == "Edm.Binary":
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return False
        return True
    if type_name == "Edm.Guid":
        try:
            uuid.UUID(text)
        except ValueError:
            return False
        return True
    if type_name == "Edm.Date":
        return bool(_DATE_RE.match(text))
    return True
