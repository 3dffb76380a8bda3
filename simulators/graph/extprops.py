"""Single-value legacy extended properties: id syntax, value checks, identity for comparison.

An id takes one of three forms (Graph's documentation and its ErrorInvalidProperty message):
`{Type} 0x{tag}`, `{Type} {guid} Name {name}`, `{Type} {guid} Id 0x{id}`.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass

from .errors import GraphError
from .schema import parse_datetime

PR_MESSAGE_FLAGS = 0x0E07
PR_MESSAGE_DELIVERY_TIME = 0x0E06
PR_CLIENT_SUBMIT_TIME = 0x0039
MSGFLAG_READ = 0x1
MSGFLAG_UNSENT = 0x8
MSGFLAG_HASATTACH = 0x10

_SINGLE_TYPES = {
    t.lower(): t for t in (
        "ApplicationTime", "Binary", "Boolean", "CLSID", "Currency", "Double", "Error", "Float",
        "Integer", "Long", "Null", "Object", "Short", "SystemTime", "String")
}
_ARRAY_TYPES = {f"{t}array" for t in _SINGLE_TYPES}
_HEX = "[0-9a-fA-F]"
_GUID = rf"\{{?(?P<guid>{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}})\}}?"
_TAG_RE = re.compile(r"^(?P<type>\w+) +0x(?P<tag>[0-9a-fA-F]{1,4})$")
_NAME_RE = re.compile(rf"^(?P<type>\w+) +{_GUID} +(?i:name) +(?P<name>\S.*)$")
_ID_RE = re.compile(rf"^(?P<type>\w+) +{_GUID} +(?i:id) +0x(?P<id>[0-9a-fA-F]{{1,8}})$")
# Well-known tags and the only MAPI type Exchange accepts for each.
_TAG_TYPES = {PR_MESSAGE_FLAGS: "Integer", PR_MESSAGE_DELIVERY_TIME: "SystemTime",
              PR_CLIENT_SUBMIT_TIME: "SystemTime"}


@dataclass(frozen=True)
class PropertyKey:
    """What identifies an extended property: its MAPI type and tag, or set GUID and name/id.

    Type names and GUIDs compare case-insensitively; property names are case-sensitive.
    """

    mapi_type: str
    guid: str | None
    name: str | None
    number: int | None


def invalid_id() -> GraphError:
    return GraphError(
        400, "ErrorInvalidProperty",
        "PropertyId values may only be in one of the following formats: 'MapiPropertyType "
        "namespaceGuid Name propertyName', 'MapiPropertyType namespaceGuid Id propertyId' or "
        "'MapiPropertyType propertyTag'.")


def parse_id(text: str) -> PropertyKey:
    """The key of a single-value property id, or 400 ErrorInvalidProperty."""
    text = text.strip()
    for regex in (_TAG_RE, _NAME_RE, _ID_RE):
        match = regex.match(text)
        if match:
            break
    else:
        raise invalid_id()
    mapi_type = _SINGLE_TYPES.get(match["type"].lower())
    if mapi_type is None:
        raise invalid_id()
    groups = match.groupdict()
    guid = groups.get("guid")
    if regex is _TAG_RE:
        return PropertyKey(mapi_type, None, None, int(match["tag"], 16))
    if regex is _NAME_RE:
        return PropertyKey(mapi_type, str(uuid.UUID(guid)), match["name"], None)
    return PropertyKey(mapi_type, str(uuid.UUID(guid)), None, int(match["id"], 16))


def is_multi_value_type(text: str) -> bool:
    head = text.strip().split(" ", 1)[0].lower()
    return head in _ARRAY_TYPES


def check(prop_id: str, value: object) -> PropertyKey:
    """Validate one property from a request body; returns its key."""
    if is_multi_value_type(prop_id):
        raise invalid_id()
    key = parse_id(prop_id)
    if key.guid is None and key.number in _TAG_TYPES and _TAG_TYPES[key.number] != key.mapi_type:
        raise GraphError(400, "ErrorInvalidExtendedProperty",
                         "The extended property attribute combination is invalid.")
    if value is not None and not _value_ok(key.mapi_type, str(value)):
        raise GraphError(400, "ErrorInvalidExtendedPropertyValue",
                         f"The value '{value}' is not valid for an extended property of type "
                         f"'{key.mapi_type}'.")
    return key


def _value_ok(mapi_type: str, text: str) -> bool:
    try:
        if mapi_type in ("Integer", "Short", "Long"):
            int(text, 10)
        elif mapi_type in ("Double", "Float", "Currency", "ApplicationTime"):
            float(text)
        elif mapi_type == "Boolean":
            return text.lower() in ("true", "false")
        elif mapi_type == "SystemTime":
            return parse_datetime(text) is not None
        elif mapi_type == "Binary":
            base64.b64decode(text, validate=True)
        elif mapi_type == "CLSID":
            uuid.UUID(text)
    except (ValueError, binascii.Error):
        return False
    return True
