"""Directory and mailbox state: users, folders, messages, attachments, upload sessions.

Pure data and rules, no HTTP. Everything here runs on the simulator's event loop.
"""

from __future__ import annotations

import base64
import random
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from .errors import GraphError, item_not_found, malformed_id
from .extprops import PropertyKey

# Well-known folder names (as used in URLs) and the display names Exchange gives them.
WELL_KNOWN_FOLDERS = {
    "inbox": "Inbox",
    "drafts": "Drafts",
    "sentitems": "Sent Items",
    "deleteditems": "Deleted Items",
    "junkemail": "Junk Email",
    "outbox": "Outbox",
    "archive": "Archive",
    "conversationhistory": "Conversation History",
}
ROOT = "msgfolderroot"
_ID_PREFIXES = ("AAMk", "AQMk")
_ID_RE = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


@dataclass
class SimUser:
    """A directory user; `mailbox_enabled=False` models a user without a usable mailbox."""

    id: str
    user_principal_name: str
    mail: str | None = None
    display_name: str = ""
    mailbox_enabled: bool = True
    # Exchange Online's default message size limit, attachments included; an admin can raise
    # it to 150 MB (attachment-createuploadsession). Over it: ErrorMessageSizeExceeded.
    max_message_bytes: int = 35 * 1024 * 1024


class IdFactory:
    """Opaque, URL-safe base64 ids shaped like Exchange's (`AAMkA...=`), from a seeded RNG."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def item(self, length: int = 70) -> str:
        return base64.urlsafe_b64encode(b"\x00\x03\x24\x00" + self._rng.randbytes(length)
                                        ).decode()

    def token(self) -> str:
        return base64.urlsafe_b64encode(self._rng.randbytes(48)).decode().rstrip("=")

    def guid(self) -> str:
        raw = self._rng.randbytes(16).hex()
        return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def check_item_id(ref: str) -> NoReturn:
    """404 for a well-formed id that names nothing, 400 ErrorInvalidIdMalformed otherwise."""
    if ref.startswith(_ID_PREFIXES) and _ID_RE.match(ref) and len(ref) % 4 == 0:
        raise item_not_found()
    raise malformed_id()


@dataclass
class Folder:
    id: str
    display_name: str
    parent_id: str
    is_hidden: bool = False
    well_known: str | None = None


@dataclass
class Attachment:
    id: str
    odata_type: str
    name: str | None
    content_type: str | None
    is_inline: bool
    last_modified: datetime
    content: bytes = b""
    content_id: str | None = None
    content_location: str | None = None
    item: dict[str, Any] | None = None

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass
class ExtendedProperty:
    id: str
    value: str | None


@dataclass
class Message:
    """A stored message. `data` holds the Graph JSON properties that do not change shape."""

    id: str
    folder_id: str
    seq: int
    created: datetime
    received: datetime
    sent: datetime
    is_draft: bool
    is_read: bool
    data: dict[str, Any]
    headers: list[dict[str, Any]] | None = None
    extended: dict[PropertyKey, ExtendedProperty] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    modified: datetime | None = None
    change: int = 1


@dataclass
class UploadSession:
    id: str
    token: str
    user_id: str
    message_id: str
    name: str
    content_type: str | None
    size: int
    is_inline: bool
    content_id: str | None
    expires: datetime
    data: bytearray = field(default_factory=bytearray)


class Mailbox:
    """One user's mailbox: a folder tree under msgfolderroot, messages, upload sessions."""

    def __init__(self, user: SimUser, ids: IdFactory) -> None:
        self.user = user
        self._ids = ids
        self.store_root_id = ids.item(43)
        self.folders: dict[str, Folder] = {}
        self.well_known: dict[str, str] = {}
        root = self._add(Folder(ids.item(43), "Top of Information Store", self.store_root_id,
                                well_known=ROOT))
        for name, display in WELL_KNOWN_FOLDERS.items():
            self._add(Folder(ids.item(43), display, root.id, well_known=name))
        self.messages: dict[str, Message] = {}
        self.sessions: dict[str, UploadSession] = {}
        # (property, value) -> ids of messages holding it: the store's index for lookups.
        self._by_extended: dict[tuple[PropertyKey, str | None], set[str]] = {}

    def _add(self, folder: Folder) -> Folder:
        self.folders[folder.id] = folder
        if folder.well_known:
            self.well_known[folder.well_known] = folder.id
        return folder

    def folder(self, ref: str) -> Folder:
        """A folder by id or well-known name (case-insensitive)."""
        found = self.folders.get(ref) or self.folders.get(self.well_known.get(ref.lower(), ""))
        if found is None:
            check_item_id(ref)
        return found

    def children(self, folder_id: str) -> list[Folder]:
        return [f for f in self.folders.values() if f.parent_id == folder_id]

    def create_folder(self, parent: Folder, display_name: str, hidden: bool) -> Folder:
        """A new child folder; 409 ErrorFolderExists if a sibling has the name (any case)."""
        wanted = display_name.casefold()
        if any(f.display_name.casefold() == wanted for f in self.children(parent.id)):
            raise GraphError(409, "ErrorFolderExists",
                             "A folder with the specified name already exists.")
        return self._add(Folder(self._ids.item(43), display_name, parent.id, is_hidden=hidden))

    def within(self, folder_id: str, ancestor_id: str) -> bool:
        """Whether the folder is the ancestor or lies below it."""
        current: Folder | None = self.folders.get(folder_id)
        while current is not None:
            if current.id == ancestor_id:
                return True
            current = self.folders.get(current.parent_id)
        return False

    def remove_folder(self, folder: Folder) -> None:
        """Removes the folder, its subfolders and their messages."""
        doomed = [f.id for f in self.folders.values() if self.within(f.id, folder.id)]
        for message_id in [m.id for m in self.messages.values() if m.folder_id in doomed]:
            self.forget(message_id)
        for folder_id in doomed:
            del self.folders[folder_id]

    def store(self, message: Message) -> None:
        """Add a message (or put it back after `forget`, to update it)."""
        self.messages[message.id] = message
        for key, prop in message.extended.items():
            self._by_extended.setdefault((key, prop.value), set()).add(message.id)

    def forget(self, message_id: str) -> None:
        message = self.messages.pop(message_id, None)
        if message is None:
            return
        for key, prop in message.extended.items():
            self._by_extended.get((key, prop.value), set()).discard(message_id)

    def with_extended(self, key: PropertyKey, value: str) -> list[Message]:
        """Messages holding a stored extended property with that value, in creation order."""
        found = self._by_extended.get((key, value), set())
        return sorted((self.messages[i] for i in found), key=lambda m: m.seq)

    def message(self, ref: str) -> Message:
        found = self.messages.get(ref)
        if found is None:
            check_item_id(ref)
        return found

    def in_folder(self, folder_id: str) -> list[Message]:
        return [m for m in self.messages.values() if m.folder_id == folder_id]


class Directory:
    """The tenant's users and their mailboxes."""

    def __init__(self, ids: IdFactory, tenant_id: str) -> None:
        self._ids = ids
        self.tenant_id = tenant_id
        self.users: dict[str, SimUser] = {}
        self.mailboxes: dict[str, Mailbox] = {}

    def add(self, user: SimUser) -> None:
        self.users[user.id] = user
        if user.id not in self.mailboxes:
            self.mailboxes[user.id] = Mailbox(user, self._ids)

    def find(self, ref: str) -> SimUser | None:
        """A user by id, userPrincipalName or mail (case-insensitive)."""
        wanted = ref.casefold()
        for user in self.users.values():
            names = (user.id, user.user_principal_name, user.mail or "")
            if any(n.casefold() == wanted for n in names if n):
                return user
        return None
