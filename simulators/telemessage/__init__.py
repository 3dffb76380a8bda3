"""TeleMessage simulator: a synthetic organization, its Telegram activity as TeleMessage EMLs,
the daily export ZIPs with their manifest, and the export API serving them over HTTP."""

from simulators.telemessage.app import Faults, create_app
from simulators.telemessage.day import MAX_ITEM_BYTES, generate_day
from simulators.telemessage.eml_builder import Attachment, Call, SimItem, build_eml
from simulators.telemessage.export import (
    ExportFile,
    build_exports,
    build_large_export,
    created_at_for,
    export_name,
)
from simulators.telemessage.org import Group, Org, Person, generate_org
from simulators.telemessage.simulator import TeleMessageSimulator

__all__ = [
    "MAX_ITEM_BYTES",
    "Attachment",
    "Call",
    "ExportFile",
    "Faults",
    "Group",
    "Org",
    "Person",
    "SimItem",
    "TeleMessageSimulator",
    "build_eml",
    "build_exports",
    "build_large_export",
    "create_app",
    "created_at_for",
    "export_name",
    "generate_day",
    "generate_org",
]
