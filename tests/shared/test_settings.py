import pytest

from shared.settings import Settings, SettingsError

BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "TELEMESSAGE_BASE_URL": "https://tm.example/", "TELEMESSAGE_USERNAME": "u",
        "TELEMESSAGE_PASSWORD": "p"}


def test_defaults_match_the_design() -> None:
    settings = Settings.from_env(BASE)
    assert settings.archive_folder_name == "Telegram Archiver"
    assert settings.max_item_bytes == 10 * 1024 * 1024
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.telemessage_base_url == "https://tm.example"
    assert settings.auto_mapping is True
    assert (settings.oversize_policy, settings.damaged_policy) == ("skip", "quarantine")
    assert settings.mailbox_max_message_bytes == 35 * 1024 * 1024  # Exchange Online's default
    assert settings.preserved_container == "preserved"


def test_item_policies_are_read() -> None:
    settings = Settings.from_env({**BASE, "OVERSIZE_POLICY": "import",
                                  "DAMAGED_POLICY": "best_effort",
                                  "MAILBOX_MAX_MESSAGE_BYTES": str(150 * 1024 * 1024)})
    assert (settings.oversize_policy, settings.damaged_policy) == ("import", "best_effort")
    assert settings.mailbox_max_message_bytes == 150 * 1024 * 1024


def test_identity_based_storage_is_accepted() -> None:
    env = {**BASE, "AzureWebJobsStorage": "", "AzureWebJobsStorage__accountName": "acct",
           "AzureWebJobsStorage__credential": "managedidentity",
           "AzureWebJobsStorage__clientId": "cid"}
    storage = Settings.from_env(env).storage
    assert (storage.account_name, storage.credential, storage.client_id) == (
        "acct", "managedidentity", "cid")


def test_telemessage_credentials_are_required_only_to_fetch() -> None:
    settings = Settings.from_env({**BASE, "TELEMESSAGE_PASSWORD": ""})  # admin commands work
    with pytest.raises(SettingsError, match="TELEMESSAGE_PASSWORD"):
        settings.require_telemessage()


@pytest.mark.parametrize(("extra", "message"), [
    ({"MAX_ITEM_BYTES": "ten"}, "MAX_ITEM_BYTES"),
    ({"AUTO_MAPPING": "maybe"}, "AUTO_MAPPING"),
    ({"GRAPH_CREDENTIAL_KIND": "password"}, "GRAPH_CREDENTIAL_KIND"),
    ({"GRAPH_CREDENTIAL_KIND": "static_token", "GRAPH_STATIC_TOKEN": "t"}, "loopback"),
    ({"GRAPH_MAX_CONCURRENCY_PER_MAILBOX": "8"}, "1..4"),
    ({"OVERSIZE_POLICY": "truncate"}, "OVERSIZE_POLICY"),
    ({"DAMAGED_POLICY": "import"}, "DAMAGED_POLICY"),
    ({"MAILBOX_MAX_MESSAGE_BYTES": str(151 * 1024 * 1024)}, "150 MB"),
    ({"MAILBOX_MAX_MESSAGE_BYTES": "1000"}, "at least MAX_ITEM_BYTES"),
])
def test_bad_settings_name_the_setting(extra: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**BASE, **extra})


def test_password_is_not_in_repr() -> None:
    settings = Settings.from_env({**BASE, "TELEMESSAGE_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in repr(settings)


def test_graph_defaults_to_the_managed_identity_and_needs_no_secret() -> None:
    settings = Settings.from_env(BASE)
    assert settings.graph_credential_kind == "managed_identity"
    assert settings.require_graph() is settings  # no tenant, client id or secret needed


@pytest.mark.parametrize(("extra", "missing"), [
    ({"GRAPH_CREDENTIAL_KIND": "client_secret", "GRAPH_CLIENT_ID": "c",
      "GRAPH_CLIENT_SECRET": "s"}, "GRAPH_TENANT_ID"),
    ({"GRAPH_CREDENTIAL_KIND": "client_secret", "GRAPH_TENANT_ID": "t",
      "GRAPH_CLIENT_ID": "c"}, "GRAPH_CLIENT_SECRET"),
    ({"GRAPH_CREDENTIAL_KIND": "certificate", "GRAPH_TENANT_ID": "t"}, "GRAPH_CLIENT_ID"),
    ({"GRAPH_CREDENTIAL_KIND": "certificate", "GRAPH_TENANT_ID": "t",
      "GRAPH_CLIENT_ID": "c"}, "GRAPH_CERTIFICATE_PATH"),
])
def test_an_app_registration_needs_its_tenant_client_and_credential(
        extra: dict[str, str], missing: str) -> None:
    settings = Settings.from_env({**BASE, **extra})  # admin commands do not need Graph
    with pytest.raises(SettingsError, match=missing):
        settings.require_graph()
