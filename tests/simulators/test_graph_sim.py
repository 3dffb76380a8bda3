"""The Graph simulator keeps Graph's rules: each test fails on a simulator that is too lenient."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from simulators.graph import FaultPlan, GraphSimulator, SimUser

DANA = SimUser(id="7f1f5a1e-2b7c-4d1e-9a53-0c1d2e3f4a5b",
               user_principal_name="dana.levi@contoso.com", mail="dana.levi@contoso.com",
               display_name="Dana Levi")
NOBOX = SimUser(id="0b6a3c2d-1e4f-4a5b-8c7d-9e0f1a2b3c4d", user_principal_name="ext@contoso.com",
                mail="ext@contoso.com", display_name="No Mailbox", mailbox_enabled=False)
ARCHIVE_ID = "String {541bbd6f-e9a4-4003-a777-0a9eeced438d} Name ArchiveKey"
MB = 1024 * 1024


@pytest.fixture
def sim() -> Iterator[GraphSimulator]:
    with GraphSimulator(users=[DANA, NOBOX], token="sim-token") as simulator:
        yield simulator


def client(sim: GraphSimulator) -> httpx.Client:
    return httpx.Client(base_url=sim.base_url, headers={"Authorization": "Bearer sim-token"},
                        timeout=30)


def mail(path: str, user: str = DANA.user_principal_name) -> str:
    return f"/users/{user}{path}"


def archived(key: str, **extra: object) -> dict[str, object]:
    """A message body as the connector writes it: read, not a draft, with its own times."""
    body: dict[str, object] = {
        "subject": f"Telegram chat {key}",
        "body": {"contentType": "text", "content": f"hello {key}"},
        "from": {"emailAddress": {"name": "Dana Levi 972541234567",
                                  "address": "dana.levi@contoso.com"}},
        "toRecipients": [{"emailAddress": {"address": "avi@contoso.com"}}],
        "internetMessageHeaders": [{"name": "X-TELEMESSAGE-Network", "value": "Telegram"}],
        "singleValueExtendedProperties": [
            {"id": "Integer 0x0E07", "value": "1"},
            {"id": "SystemTime 0x0E06", "value": "2024-05-01T10:00:05Z"},
            {"id": "SystemTime 0x0039", "value": "2024-05-01T10:00:00Z"},
            {"id": ARCHIVE_ID, "value": key},
        ],
    }
    body.update(extra)
    return body


def make_folder(http: httpx.Client, name: str = "Telegram Archiver") -> str:
    response = http.post(mail("/mailFolders/msgfolderroot/childFolders"),
                         json={"displayName": name, "isHidden": False})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def test_requests_need_the_bearer_token(sim: GraphSimulator) -> None:
    bare = httpx.get(f"{sim.base_url}/users/{DANA.user_principal_name}")
    wrong = httpx.get(f"{sim.base_url}/users/{DANA.user_principal_name}",
                      headers={"Authorization": "Bearer other"})
    assert (bare.status_code, error_code(bare)) == (401, "InvalidAuthenticationToken")
    assert (wrong.status_code, error_code(wrong)) == (401, "InvalidAuthenticationToken")
    assert bare.headers["request-id"] and "innerError" in bare.json()["error"]
    assert [r.authorization for r in sim.request_log] == [None, "Bearer other"]


def test_user_lookup_by_upn_and_unknown_user(sim: GraphSimulator) -> None:
    with client(sim) as http:
        found = http.get("/users/DANA.LEVI@contoso.com", params={"$select": "id,mail"})
        missing = http.get("/users/nobody@contoso.com")
        bad_select = http.get("/users/dana.levi@contoso.com", params={"$select": "shoeSize"})
    assert found.status_code == 200
    assert {k: v for k, v in found.json().items() if not k.startswith("@")} == {
        "id": DANA.id, "mail": DANA.mail}
    assert (missing.status_code, error_code(missing)) == (404, "Request_ResourceNotFound")
    assert "Resource 'nobody@contoso.com' does not exist" in missing.json()["error"]["message"]
    assert bad_select.status_code == 400


def test_mail_endpoints_check_the_mailbox(sim: GraphSimulator) -> None:
    with client(sim) as http:
        lookup = http.get(f"/users/{NOBOX.user_principal_name}")
        disabled = http.get(mail("/mailFolders", NOBOX.user_principal_name))
        unknown = http.get(mail("/mailFolders", "ghost@contoso.com"))
    assert lookup.status_code == 200
    assert (disabled.status_code, error_code(disabled)) == (404, "MailboxNotEnabledForRESTAPI")
    assert (unknown.status_code, error_code(unknown)) == (404, "ErrorInvalidUser")


def test_folder_filter_quoting_and_hidden_folders(sim: GraphSimulator) -> None:
    with client(sim) as http:
        created = http.post(mail("/mailFolders"), json={"displayName": "Dana's Archive",
                                                       "isHidden": True})
        query = {"$filter": "displayName eq 'Dana''s Archive'"}
        path = mail("/mailFolders/msgfolderroot/childFolders")
        hidden_skipped = http.get(path, params=query).json()["value"]
        listed = http.get(path, params={**query, "includeHiddenFolders": "true",
                                        "$select": "id,displayName"}).json()["value"]
        by_id = http.get(mail(f"/mailFolders/{created.json()['id']}"))
        inbox = http.get(mail("/mailFolders/Inbox")).json()
        bad = http.get(path, params={"$filter": "startswith(displayName,'D')"})
    assert created.status_code == 201 and created.json()["isHidden"] is True
    assert hidden_skipped == []
    assert [f["displayName"] for f in listed] == ["Dana's Archive"]
    assert set(listed[0]) == {"id", "displayName"}
    assert by_id.status_code == 200 and by_id.json()["displayName"] == "Dana's Archive"
    assert inbox["displayName"] == "Inbox"
    assert (bad.status_code, error_code(bad)) == (400, "ErrorInvalidUrlQueryFilter")


def test_folder_name_conflict_is_case_insensitive(sim: GraphSimulator) -> None:
    with client(sim) as http:
        make_folder(http, "Telegram Archiver")
        again = http.post(mail("/mailFolders/msgfolderroot/childFolders"),
                          json={"displayName": "TELEGRAM archiver"})
    assert (again.status_code, error_code(again)) == (409, "ErrorFolderExists")
    assert again.json()["error"]["message"] == "A folder with the specified name already exists."


def test_concurrent_folder_creates_make_one_folder() -> None:
    with GraphSimulator(users=[DANA], latency=0.2) as sim:
        barrier = threading.Barrier(2)

        def create() -> httpx.Response:
            with client(sim) as http:
                barrier.wait()
                return http.post(mail("/mailFolders/msgfolderroot/childFolders"),
                                 json={"displayName": "Race"})

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _: create(), range(2)))
        names = [f["displayName"] for f in sim.folders(DANA.id)]
    assert sorted(r.status_code for r in results) == [201, 409]
    assert [error_code(r) for r in results if r.status_code == 409] == ["ErrorFolderExists"]
    assert names.count("Race") == 1


def test_message_flags_make_a_received_item(sim: GraphSimulator) -> None:
    with client(sim) as http:
        folder = make_folder(http)
        response = http.post(mail(f"/mailFolders/{folder}/messages"), json=archived("k1"))
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["isDraft"], created["isRead"]) == (False, True)
    assert created["receivedDateTime"] == "2024-05-01T10:00:05Z"
    assert created["sentDateTime"] == "2024-05-01T10:00:00Z"
    assert created["parentFolderId"] == folder
    stored = sim.messages(DANA.user_principal_name)
    assert [m["id"] for m in stored] == [created["id"]]
    assert {"id": ARCHIVE_ID, "value": "k1"} in stored[0]["singleValueExtendedProperties"]
    assert stored[0]["internetMessageHeaders"] == [{"name": "X-TELEMESSAGE-Network",
                                                    "value": "Telegram"}]


def test_message_without_flags_is_a_draft_and_ignores_read_only_times(
        sim: GraphSimulator) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    with client(sim) as http:
        folder = make_folder(http)
        response = http.post(mail(f"/mailFolders/{folder}/messages"), json={
            "subject": "draft", "receivedDateTime": "2020-01-01T00:00:00Z", "isDraft": False})
    created = response.json()
    assert response.status_code == 201 and created["isDraft"] is True
    received = datetime.fromisoformat(created["receivedDateTime"])
    assert received >= before and created["sentDateTime"] == created["receivedDateTime"]


@pytest.mark.parametrize(("body", "needle"), [
    ({"subject": "x", "foo": 1}, "The property 'foo' does not exist on type "
                                 "'microsoft.graph.message'"),
    ({"toRecipients": [{"emailAddress": {"address": "a@b.c", "bogus": 1}}]},
     "'bogus' does not exist on type 'microsoft.graph.emailAddress'"),
    ({"attachments": [{"name": "a.txt", "contentBytes": "aGk="}]},
     "'contentBytes' does not exist on type 'microsoft.graph.attachment'"),
    ({"body": {"contentType": "markdown", "content": "x"}}, "markdown"),
    ({"importance": "urgent"}, "urgent"),
    ({"subject": 5}, "Edm.String"),
])
def test_bodies_graph_cannot_read_are_refused(sim: GraphSimulator, body: dict[str, object],
                                              needle: str) -> None:
    with client(sim) as http:
        response = http.post(mail("/mailFolders/inbox/messages"), json=body)
    assert (response.status_code, error_code(response)) == (400, "RequestBodyRead")
    assert needle in response.json()["error"]["message"]
    assert sim.messages(DANA.id) == []


def test_header_names_need_the_x_prefix(sim: GraphSimulator) -> None:
    body = archived("k1", internetMessageHeaders=[{"name": "Thread-Index", "value": "abc"}])
    with client(sim) as http:
        response = http.post(mail("/mailFolders/inbox/messages"), json=body)
    assert (response.status_code, error_code(response)) == (400, "InvalidInternetMessageHeader")
    assert "'Thread-Index' should start with 'x-' or 'X-'" in response.json()["error"]["message"]


def test_malformed_extended_property_id_is_refused(sim: GraphSimulator) -> None:
    body = archived("k1", singleValueExtendedProperties=[{"id": "String ArchiveKey",
                                                          "value": "k1"}])
    with client(sim) as http:
        response = http.post(mail("/mailFolders/inbox/messages"), json=body)
    assert (response.status_code, error_code(response)) == (400, "ErrorInvalidProperty")


def test_request_and_inline_attachment_size_limits(sim: GraphSimulator) -> None:
    inline = {"@odata.type": "#microsoft.graph.fileAttachment", "name": "big.bin",
              "contentBytes": base64.b64encode(b"\0" * (3 * MB + 1)).decode()}
    fits = {**inline, "contentBytes": base64.b64encode(b"\0" * (2 * MB)).decode()}
    with client(sim) as http:
        too_big_body = http.post(mail("/mailFolders/inbox/messages"),
                                 json=archived("k1", body={"contentType": "text",
                                                           "content": "x" * (4 * MB)}))
        too_big_file = http.post(mail("/mailFolders/inbox/messages"),
                                 json=archived("k2", attachments=[inline]))
        ok = http.post(mail("/mailFolders/inbox/messages"), json=archived("k3",
                                                                          attachments=[fits]))
    assert too_big_body.status_code == 413
    assert too_big_body.json()["error"]["message"] == "The maximum request length supported is 4MB."
    assert too_big_file.status_code == 413
    assert ok.status_code == 201 and ok.json()["hasAttachments"] is True
    assert [m["subject"] for m in sim.messages(DANA.id)] == ["Telegram chat k3"]


def test_archive_key_filter_finds_exactly_the_message_and_pages(sim: GraphSimulator) -> None:
    keys = [f"key-{i}" for i in range(11)] + ["it's-12"]
    with client(sim) as http:
        folder = make_folder(http)
        ids = {key: http.post(mail(f"/mailFolders/{folder}/messages"),
                              json=archived(key)).json()["id"] for key in keys}
        other_case = ARCHIVE_ID.replace("String", "string").replace("541bbd6f", "541BBD6F")
        query = {"$filter": f"singleValueExtendedProperties/Any(x: x/id eq '{other_case}' "
                            "and x/value eq 'it''s-12')",
                 "$select": "id,subject",
                 "$expand": f"singleValueExtendedProperties($filter=id eq '{ARCHIVE_ID}')"}
        in_folder = http.get(mail(f"/mailFolders/{folder}/messages"), params=query).json()
        anywhere = http.get(mail("/messages"), params=query).json()
        nothing = http.get(mail("/messages"), params={
            "$filter": f"singleValueExtendedProperties/any(ep: ep/id eq '{ARCHIVE_ID}' "
                       "and ep/value eq 'KEY-1')"}).json()
        unsupported = http.get(mail("/messages"), params={
            "$filter": f"singleValueExtendedProperties/any(ep: ep/id eq '{ARCHIVE_ID}')"})
        first = http.get(mail(f"/mailFolders/{folder}/messages")).json()
        second = http.get(first["@odata.nextLink"]).json()
    assert [m["id"] for m in in_folder["value"]] == [ids["it's-12"]]
    assert in_folder["value"][0]["singleValueExtendedProperties"] == [
        {"id": ARCHIVE_ID, "value": "it's-12"}]
    assert [m["id"] for m in anywhere["value"]] == [ids["it's-12"]]
    assert nothing["value"] == []
    assert (unsupported.status_code, error_code(unsupported)) == (400,
                                                                  "ErrorInvalidUrlQueryFilter")
    assert len(first["value"]) == 10 and "@odata.nextLink" not in second
    assert {m["id"] for m in first["value"] + second["value"]} == set(ids.values())


def test_upload_session_round_trip(sim: GraphSimulator) -> None:
    data = bytes(range(256)) * (14 * 1024 + 123)  # ~3.6 MB
    chunk = 6 * 320 * 1024
    with client(sim) as http:
        message_id = http.post(mail("/mailFolders/inbox/messages"),
                               json=archived("k1")).json()["id"]
        small = http.post(mail(f"/messages/{message_id}/attachments/createUploadSession"),
                          json={"AttachmentItem": {"attachmentType": "file", "name": "s.bin",
                                                   "size": 2 * MB}})
        session = http.post(mail(f"/messages/{message_id}/attachments/createUploadSession"),
                            json={"AttachmentItem": {"attachmentType": "file", "name": "v.mp4",
                                                     "size": len(data),
                                                     "contentType": "video/mp4"}})
        upload_url = session.json()["uploadUrl"]
        answers = []
        with httpx.Client(timeout=30) as bare:
            skipped = bare.put(upload_url, content=data[chunk:chunk + 1000], headers={
                "Content-Range": f"bytes {chunk}-{chunk + 999}/{len(data)}"})
            for start in range(0, len(data), chunk):
                part = data[start:start + chunk]
                answers.append(bare.put(upload_url, content=part, headers={
                    "Content-Range": f"bytes {start}-{start + len(part) - 1}/{len(data)}",
                    "Content-Type": "application/octet-stream"}))
        attachment_id = answers[-1].headers["Location"].rsplit("Attachments('", 1)[1][:-2]
        fetched = http.get(mail(f"/messages/{message_id}/attachments/{attachment_id}")).json()
    assert (small.status_code, error_code(small)) == (
        400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize")
    assert session.status_code == 201
    assert session.json()["nextExpectedRanges"] == ["0-"]
    assert not upload_url.startswith(sim.base_url.rsplit("/", 1)[0])
    assert "/AttachmentSessions('" in upload_url and "authtoken=" in upload_url
    assert skipped.status_code == 416 and skipped.json()["nextExpectedRanges"] == ["0"]
    for index, answer in enumerate(answers[:-1], start=1):
        assert answer.status_code == 200
        body = answer.json()
        assert set(body) == {"@odata.context", "ExpirationDateTime", "nextExpectedRanges"}
        assert body["nextExpectedRanges"] == [str(index * chunk)]
    assert answers[-1].status_code == 201 and answers[-1].content == b""
    assert hashlib.sha256(base64.b64decode(fetched["contentBytes"])).digest() == \
        hashlib.sha256(data).digest()
    assert (fetched["name"], fetched["contentType"], fetched["size"]) == ("v.mp4", "video/mp4",
                                                                         len(data))
    stored = sim.messages(DANA.id)[0]
    assert stored["hasAttachments"] is True and len(stored["attachments"]) == 1


def test_upload_url_refuses_the_graph_token(sim: GraphSimulator) -> None:
    with client(sim) as http:
        message_id = http.post(mail("/mailFolders/inbox/messages"),
                               json=archived("k1")).json()["id"]
        upload_url = http.post(
            mail(f"/messages/{message_id}/attachments/createUploadSession"),
            json={"attachmentItem": {"attachmentType": "file", "name": "a.bin",
                                     "size": 5 * MB}}).json()["uploadUrl"]
    headers = {"Content-Range": f"bytes 0-9/{5 * MB}"}
    with httpx.Client(timeout=30) as bare:
        with_token = bare.put(upload_url, content=b"0123456789",
                              headers={**headers, "Authorization": "Bearer sim-token"})
        too_big = bare.put(upload_url, content=b"\0" * (4 * MB),
                           headers={"Content-Range": f"bytes 0-{4 * MB - 1}/{5 * MB}"})
        forged = bare.put(upload_url.replace("authtoken=", "authtoken=x"), content=b"0123456789",
                          headers=headers)
        cancelled = bare.delete(upload_url)
        after_cancel = bare.put(upload_url, content=b"0123456789", headers=headers)
    assert with_token.status_code == 401
    assert too_big.status_code == 413
    assert forged.status_code == 404
    assert cancelled.status_code == 204 and after_cancel.status_code == 404
    upload_host = sim.upload_base_url.removeprefix("http://")
    tokened = [r for r in sim.request_log if r.authorization is not None
               and r.host_port == upload_host]
    assert [(r.method, r.status) for r in tokened] == [("PUT", 401)]


def test_sent_items_refuse_most_updates_and_delete_moves_to_deleted_items(
        sim: GraphSimulator) -> None:
    with client(sim) as http:
        message_id = http.post(mail("/mailFolders/inbox/messages"),
                               json=archived("k1")).json()["id"]
        subject = http.patch(mail(f"/messages/{message_id}"), json={"subject": "changed"})
        flags = http.patch(mail(f"/messages/{message_id}"), json={
            "singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "9"}]})
        unread = http.patch(mail(f"/messages/{message_id}"), json={"isRead": False})
        deleted = http.delete(mail(f"/messages/{message_id}"))
        still_found = http.get(mail("/messages"), params={
            "$filter": f"singleValueExtendedProperties/any(ep: ep/id eq '{ARCHIVE_ID}' "
                       "and ep/value eq 'k1')", "$select": "parentFolderId"}).json()["value"]
        deleted_items = http.get(mail("/mailFolders/deleteditems")).json()["id"]
        sorted_wrongly = http.get(mail("/messages"), params={
            "$filter": "isRead eq false", "$orderby": "receivedDateTime desc"})
    assert (subject.status_code, error_code(subject)) == (
        400, "ErrorInvalidPropertyUpdateSentMessage")
    assert (flags.status_code, error_code(flags)) == (400, "ErrorInvalidPropertyUpdateSentMessage")
    assert unread.status_code == 200 and unread.json()["isRead"] is False
    assert deleted.status_code == 204
    assert [m["parentFolderId"] for m in still_found] == [deleted_items]
    assert (sorted_wrongly.status_code, error_code(sorted_wrongly)) == (400, "InefficientFilter")


def test_mailbox_request_and_upload_windows() -> None:
    from simulators.graph.throttle import MailboxThrottle

    now = [0.0]
    limits = MailboxThrottle(clock=lambda: now[0])
    for _ in range(10_000):
        limits.enter("m", 0, 1)
        limits.leave("m")
    with pytest.raises(Exception, match="MailboxLimit") as over:
        limits.enter("m", 0, 1)
    assert getattr(over.value, "status", None) == 429
    now[0] = 600.5
    limits.enter("m", 0, 1)
    limits.leave("m")
    limits.enter("u", 150 * MB, 1)
    limits.leave("u")
    with pytest.raises(Exception, match="Upload"):
        limits.enter("u", 1, 1)


def test_fifth_concurrent_request_to_a_mailbox_is_throttled() -> None:
    with GraphSimulator(users=[DANA], latency=0.5) as sim:
        barrier = threading.Barrier(5)

        def call(_: int) -> httpx.Response:
            with client(sim) as http:
                barrier.wait()
                return http.get(mail("/mailFolders/inbox/messages"))

        with ThreadPoolExecutor(5) as pool:
            results = list(pool.map(call, range(5)))
        throttled = [r for r in results if r.status_code == 429]
        assert sorted(r.status_code for r in results) == [200, 200, 200, 200, 429]
        assert throttled[0].headers["Retry-After"] == "1"
        assert throttled[0].json()["error"] | {"innerError": None} == {
            "code": "ApplicationThrottled",
            "message": "Application is over its MailboxConcurrency limit.", "innerError": None}
        assert sim.max_concurrency(DANA.user_principal_name) == 4
        assert sim.stats()["throttled"] == 1


def test_faults_apply_to_writes_only_and_504_still_writes(sim: GraphSimulator) -> None:
    with client(sim) as http:
        sim.set_faults(FaultPlan(throttle_ratio=1.0, retry_after_seconds=7))
        throttled = http.post(mail("/mailFolders/inbox/messages"), json=archived("k1"))
        read = http.get(mail("/mailFolders/inbox/messages"))
        sim.set_faults(FaultPlan(gateway_timeout_after_write_ratio=1.0))
        timed_out = http.post(mail("/mailFolders/inbox/messages"), json=archived("k2"))
        user = http.get(f"/users/{DANA.user_principal_name}")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    assert read.status_code == 200
    assert timed_out.status_code == 504
    assert user.status_code == 200
    assert [m["subject"] for m in sim.messages(DANA.id)] == ["Telegram chat k2"]
    assert sim.stats()["faults"] == {"429": 1, "504": 1}


def test_batch_runs_inner_requests_against_mailbox_limits() -> None:
    with GraphSimulator(users=[DANA], latency=0.3) as sim, client(sim) as http:
        requests = [{"id": str(i), "method": "GET", "url": mail("/mailFolders/inbox")}
                    for i in range(6)]
        requests.append({"id": "w", "method": "POST", "url": mail("/mailFolders/inbox/messages"),
                         "headers": {"Content-Type": "application/json"},
                         "body": archived("k1"), "dependsOn": ["0"]})
        response = http.post("/$batch", json={"requests": requests})
        too_many = http.post("/$batch", json={"requests": [
            {"id": str(i), "method": "GET", "url": "/users/x"} for i in range(21)]})
    statuses = {r["id"]: r["status"] for r in response.json()["responses"]}
    assert response.status_code == 200
    assert sorted(statuses[str(i)] for i in range(6)) == [200] * 4 + [429] * 2
    assert statuses["w"] in (201, 424)
    assert too_many.status_code == 400


async def test_msgraph_sdk_creates_and_finds_a_message(sim: GraphSimulator) -> None:
    from kiota_abstractions.authentication import (
        AccessTokenProvider,
        AllowedHostsValidator,
        BaseBearerTokenAuthenticationProvider,
    )
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.file_attachment import FileAttachment
    from msgraph.generated.models.internet_message_header import InternetMessageHeader
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.mail_folder import MailFolder
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.recipient import Recipient
    from msgraph.generated.models.single_value_legacy_extended_property import (
        SingleValueLegacyExtendedProperty,
    )
    from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import (
        MessagesRequestBuilder,
    )

    class StaticToken(AccessTokenProvider):
        def __init__(self) -> None:
            self.hosts = AllowedHostsValidator(["127.0.0.1"])

        async def get_authorization_token(self, uri: str,
                                          additional_authentication_context: object = None
                                          ) -> str:
            return "sim-token" if self.hosts.is_url_host_valid(uri) else ""

        def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
            return self.hosts

    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticToken()))
    adapter.base_url = sim.base_url
    graph = GraphServiceClient(request_adapter=adapter)
    user = graph.users.by_user_id(DANA.user_principal_name)
    folder = await user.mail_folders.by_mail_folder_id("msgfolderroot").child_folders.post(
        MailFolder(display_name="Telegram Archiver", is_hidden=False))
    assert folder is not None and folder.id
    props = [SingleValueLegacyExtendedProperty(id=p["id"], value=p["value"])
             for p in archived("sdk-key")["singleValueExtendedProperties"]]  # type: ignore[union-attr]
    created = await user.mail_folders.by_mail_folder_id(folder.id).messages.post(Message(
        subject="via sdk", body=ItemBody(content_type=BodyType.Html, content="<p>hi</p>"),
        to_recipients=[Recipient(email_address=EmailAddress(address="avi@contoso.com"))],
        internet_message_headers=[InternetMessageHeader(name="X-TELEMESSAGE-SID", value="1")],
        single_value_extended_properties=props,
        attachments=[FileAttachment(odata_type="#microsoft.graph.fileAttachment", name="a.txt",
                                    content_type="text/plain", content_bytes=b"hello")]))
    assert created is not None and created.is_draft is False and created.has_attachments
    query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
        filter=f"singleValueExtendedProperties/Any(ep: ep/id eq '{ARCHIVE_ID}' and "
               "ep/value eq 'sdk-key')",
        select=["id", "subject"], top=2,
        expand=[f"singleValueExtendedProperties($filter=id eq '{ARCHIVE_ID}')"])
    page = await user.mail_folders.by_mail_folder_id(folder.id).messages.get(
        request_configuration=RequestConfiguration(query_parameters=query))
    assert page is not None and [m.id for m in page.value or []] == [created.id]
    found = (page.value or [])[0].single_value_extended_properties or []
    assert [(p.id, p.value) for p in found] == [(ARCHIVE_ID, "sdk-key")]


def test_cli_serves_the_given_users(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"id": DANA.id, "user_principal_name": DANA.user_principal_name,
                                  "mail": DANA.mail, "display_name": DANA.display_name,
                                  "mailbox_enabled": True}]))
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.graph", "--port", "0", "--users", str(users),
         "--token", "cli-token"], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        response = httpx.get(f"{base_url}/users/{DANA.user_principal_name}",
                             headers={"Authorization": "Bearer cli-token"}, timeout=10)
        assert response.status_code == 200 and response.json()["id"] == DANA.id
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_message_size_follows_exchange_onlines_limits() -> None:
    """35 MB per message unless an admin raised the mailbox's limit; 150 MB per upload."""
    raised = SimUser(id="5d1c7e0a-3b2f-4c6d-8e9f-0a1b2c3d4e5f",
                     user_principal_name="raised@contoso.com", mail="raised@contoso.com",
                     max_message_bytes=150 * MB)
    assert DANA.max_message_bytes == 35 * MB

    def session(http: httpx.Client, user: str, size: int) -> httpx.Response:
        message_id = http.post(mail("/mailFolders/inbox/messages", user),
                               json=archived(f"k-{user}-{size}")).json()["id"]
        return http.post(mail(f"/messages/{message_id}/attachments/createUploadSession", user),
                         json={"AttachmentItem": {"attachmentType": "file", "name": "v.mp4",
                                                  "size": size}})

    with GraphSimulator(users=[DANA, raised], token="sim-token") as sim, client(sim) as http:
        default = session(http, DANA.user_principal_name, 40 * MB)
        within = session(http, raised.user_principal_name, 40 * MB)
        beyond = session(http, raised.user_principal_name, 150 * MB + 1)
    assert (default.status_code, error_code(default)) == (400, "ErrorMessageSizeExceeded")
    assert within.status_code == 201
    assert (beyond.status_code, error_code(beyond)) == (400, "ErrorMessageSizeExceeded")
