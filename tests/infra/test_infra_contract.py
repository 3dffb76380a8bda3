"""The code and infra/ agree (tests/infra/contract.py), and the check notices when they don't."""

from __future__ import annotations

import shutil
from pathlib import Path

import contract
import pytest

REPO = Path(__file__).resolve().parents[2]


def test_code_and_infrastructure_agree() -> None:
    assert contract.check(REPO) == []


def test_the_sample_settings_list_every_setting() -> None:
    assert contract.sample_problems(REPO) == []


def test_the_settings_the_code_reads_are_discovered() -> None:
    read = contract.settings_read_by_code(REPO / "shared" / "settings.py")
    assert {"TELEMESSAGE_PASSWORD", "GRAPH_BASE_URL", "ITEMS_QUEUE", "MAX_DEQUEUE_COUNT",
            "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__clientId"} <= read
    assert "name" not in read  # the readers' own env.get(name)
    assert {"OVERSIZE_POLICY", "DAMAGED_POLICY", "MAILBOX_MAX_MESSAGE_BYTES",
            "PRESERVED_CONTAINER"} <= read


def test_the_item_policies_are_set_with_the_codes_defaults() -> None:
    settings = contract.app_settings(contract.load_deployment(REPO / "infra"))[0]
    defaults = contract.settings_defaults({"OVERSIZE_POLICY", "DAMAGED_POLICY",
                                           "MAILBOX_MAX_MESSAGE_BYTES"})
    assert {name: settings[name] for name in defaults} == {
        name: str(value) for name, value in defaults.items()}
    assert settings["PRESERVED_CONTAINER"] == "preserved"


def test_the_preserved_container_has_a_time_based_retention_policy() -> None:
    """Withheld attachments are the only copy outside the export: WORM, unconditionally."""
    dep = contract.load_deployment(REPO / "infra")
    periods = {}
    for policy, scope in dep.resources(
            "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies"):
        body = contract._body(policy)
        parent = scope.file.resources[contract.evaluate(body["parent"], scope).symbol]
        props = contract._body(body["properties"])
        periods[contract._resource_name(parent, scope)] = (
            contract.evaluate(props["immutabilityPeriodSinceCreationInDays"], scope),
            policy.condition)
    days, condition = periods["preserved"]
    assert condition is None and days == 2555


def test_discovery_follows_constants_and_fstrings(tmp_path: Path) -> None:
    source = tmp_path / "settings.py"
    source.write_text(
        'PREFIX = "Store"\n'
        "def from_env(env):\n"
        '    return (_required(env, "A"), _int(env, "B", 1), _bool(env, "C", True),\n'
        '            _choice(env, "D", "x", ("x",)), env.get("E"), env.get(f"{PREFIX}__f"),\n'
        "            env.get(PREFIX))\n"
        "def _int(env, name, default):\n"
        "    return env.get(name)\n")
    assert contract.settings_read_by_code(source) == {"A", "B", "C", "D", "E", "Store__f",
                                                      "Store"}
    source.write_text("def f(env, key):\n    return env.get(key)\n")
    with pytest.raises(ValueError, match="cannot tell which setting"):
        contract.settings_read_by_code(source)


def test_the_reader_evaluates_through_module_parameters() -> None:
    dep = contract.load_deployment(REPO / "infra")
    settings = contract.app_settings(dep)[0]
    assert settings["ITEMS_QUEUE"] == "items"  # main.bicep names -> module param -> setting
    assert settings["MAX_DEQUEUE_COUNT"] == "5"  # loadJsonContent('../host.json', ...)
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == contract.Unknown(
        "identity.outputs.clientId")
    assert "items-poison" in contract.created_names(dep)["queue"]


# ---- Mutations: each breaks the contract in a copy of infra/ and must be reported -------------


@pytest.fixture
def infra_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "infra", tmp_path / "infra")
    shutil.copy(REPO / "host.json", tmp_path / "host.json")  # loadJsonContent('../host.json')
    return tmp_path / "infra"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not unique in {path.name}"
    path.write_text(text.replace(old, new))


def test_a_removed_app_setting_is_reported(infra_copy: Path) -> None:
    assert contract.check(REPO, infra_copy) == []
    _edit(infra_copy / "app" / "function.bicep", "    ITEMS_QUEUE: itemsQueueName\n", "")
    problems = contract.check(REPO, infra_copy)
    assert problems == [
        "app setting ITEMS_QUEUE is read by shared/settings.py but not set in the Bicep "
        "appsettings",
        "app setting ITEMS_QUEUE is used as %ITEMS_QUEUE% in function_app.py but not set in the "
        "Bicep appsettings"]


MUTATIONS = [
    pytest.param("main.bicep", "  itemsQueue: 'items'\n", "  itemsQueue: 'jobs'\n",
                 "app setting ITEMS_QUEUE is 'jobs' in the Bicep but 'items'",
                 id="queue renamed everywhere in the Bicep"),
    pytest.param("app/storage.bicep", "  name: itemsQueueName\n", "  name: 'jobs'\n",
                 "creates no queue named 'items'", id="queue resource renamed"),
    pytest.param("app/function.bicep", "    REPLAY_QUEUE: replayQueueName\n", "",
                 "REPLAY_QUEUE is used as %REPLAY_QUEUE% in function_app.py but not set",
                 id="replay queue setting missing"),
    pytest.param("app/storage.bicep", "  name: replayPoisonQueueName\n", "  name: 'x'\n",
                 "no queue named 'replay-poison'", id="replay poison queue missing"),
    pytest.param("app/storage.bicep", "  name: blobTriggerPoisonQueueName\n", "  name: 'x'\n",
                 "no queue named 'webjobs-blobtrigger-poison'", id="host poison queue missing"),
    pytest.param("main.bicep", "  configContainer: 'config'\n", "  configContainer: 'cfg'\n",
                 "creates no container named 'config' (MAPPING_BLOB)",
                 id="mapping container missing"),
    pytest.param("app/storage.bicep", "  name: ledgerTableName\n", "  name: 'ledger2'\n",
                 "creates no table named 'ledger'", id="table renamed"),
    pytest.param("app/function.bicep", "    MAX_DEQUEUE_COUNT: string(maxDequeueCount)\n",
                 "    MAX_DEQUEUE_COUNT: '6'\n", "app setting MAX_DEQUEUE_COUNT is '6'",
                 id="maxDequeueCount differs from host.json"),
    pytest.param("app/function.bicep", "    AZURE_CLIENT_ID: identityClientId\n",
                 "    AZURE_CLIENT_ID: identityClientId\n    GRAPH_STATIC_TOKEN: 'x'\n",
                 "GRAPH_STATIC_TOKEN must not be set in Azure", id="static token deployed"),
    pytest.param("app/function.bicep", "    AZURE_CLIENT_ID: identityClientId\n",
                 "    AZURE_CLIENT_ID: identityClientId\n    FUNCTIONS_WORKER_RUNTIME: 'python'\n",
                 "FUNCTIONS_WORKER_RUNTIME is not allowed on Flex", id="Flex-reserved setting"),
    pytest.param("app/function.bicep", "    TELEMESSAGE_PASSWORD: telemessagePasswordReference\n",
                 "    TELEMESSAGE_PASSWORD: telemessageUsername\n",
                 "TELEMESSAGE_PASSWORD must be a Key Vault reference", id="secret not in KV"),
    pytest.param("app/rbac.bicep", "var storageTableDataContributor = "
                 "'0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'",
                 "var storageTableDataContributor = '76199698-9eea-4c19-bc75-cec21354c6b6'",
                 "has no role assignment on the storage account for table",
                 id="table role downgraded to reader"),
    pytest.param("main.bicep", "    appPrincipalId: identity.outputs.principalId\n",
                 "    appPrincipalId: principalId\n",
                 "has no role assignment on the storage account for blob",
                 id="roles given to someone else"),
    pytest.param("app/function.bicep", "    AzureWebJobsStorage__clientId: identityClientId\n",
                 "    AzureWebJobsStorage__clientId: 'x'\n",
                 "AzureWebJobsStorage__clientId must be the client id", id="wrong client id"),
    pytest.param("app/blob-events-subscription.bicep",
                 "param exportsContainerName string = 'exports'",
                 "param exportsContainerName string = 'export'", "subjectBeginsWith",
                 id="event filter on the wrong container"),
    pytest.param("app/blob-events-subscription.bicep", "param functionName string = 'split'",
                 "param functionName string = 'splitter'", "Host.Functions.split&code=",
                 id="webhook to the wrong function"),
    pytest.param("app/function.bicep", "    FETCH_SCHEDULE: fetchSchedule\n", "",
                 "FETCH_SCHEDULE is read by shared/settings.py but not set",
                 id="timer schedule dropped"),
    # Issue 16.5: nobody but the app identity can write the deployment package.
    pytest.param("app/rbac.bicep", "  scope: configContainer\n", "  scope: storage\n",
                 "operatorConfigWriter gives operatorPrincipalId Storage Blob Data Contributor "
                 "on Microsoft.Storage/storageAccounts",
                 id="operator blob role on the whole account"),
    pytest.param("app/rbac.bicep", "  scope: configContainer\n", "  scope: blobService\n",
                 "covers the deployment package container",
                 id="operator blob role on the blob service"),
    pytest.param("app/rbac.bicep", "  scope: configContainer\n", "",
                 "operatorConfigWriter gives operatorPrincipalId Storage Blob Data Contributor "
                 "on the deployment's resource group",
                 id="operator blob role on the resource group"),
    pytest.param("app/eventgrid.bicep", "  scope: storage::blobService::deadLetterContainer\n",
                 "  scope: storage\n", "deadLetterWriter gives systemTopic.identity.principalId",
                 id="event grid dead-letter role on the whole account"),
    pytest.param("app/storage.bicep", "        resourceName: exportsContainerName\n",
                 "        resourceName: deploymentContainerName\n",
                 "SFTP local user sftpUser has 'cwl' on the deployment package container",
                 id="sftp user on the package container"),
    pytest.param("main.bicep", "param reportSchedule string = '0 */10 * * * *'",
                 "param reportSchedule string = '*/10 * * * *'",
                 "the reconcile timer's schedule %REPORT_SCHEDULE% is '*/10 * * * *' in the "
                 "Bicep: NCRONTAB needs 6 fields", id="5-field report schedule"),
    pytest.param("main.bicep", "param fetchSchedule string = '0 30 1 * * *'",
                 "param fetchSchedule string = '0 30 25 * * *'",
                 "the fetch timer's schedule %FETCH_SCHEDULE% is '0 30 25 * * *' in the Bicep: "
                 "NCRONTAB '0 30 25 * * *' does not parse", id="fetch schedule hour 25"),
    # Graph is reached as the app's managed identity unless the operator chooses otherwise.
    pytest.param("main.bicep", "param graphCredentialKind string = 'managed_identity'",
                 "param graphCredentialKind string = 'client_secret'",
                 "GRAPH_CREDENTIAL_KIND must default to 'managed_identity'",
                 id="graph credential defaults to a secret"),
    pytest.param("app/function.bicep", "    GRAPH_CLIENT_ID: effectiveGraphClientId\n",
                 "    GRAPH_CLIENT_ID: graphClientId\n",
                 "GRAPH_CLIENT_ID must default to the app identity's client id",
                 id="graph client id not the app identity"),
]


@pytest.mark.parametrize(("file", "old", "new", "expected"), MUTATIONS)
def test_a_broken_contract_is_reported(infra_copy: Path, file: str, old: str, new: str,
                                       expected: str) -> None:
    _edit(infra_copy / file, old, new)
    problems = contract.check(REPO, infra_copy)
    assert any(expected in p for p in problems), problems


def test_a_new_setting_in_the_code_is_reported(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    settings = (REPO / "shared" / "settings.py").read_text()
    (tmp_path / "shared" / "settings.py").write_text(
        settings + '\n\ndef _new(env):\n    return env.get("ARCHIVE_NEW_KNOB", "")\n')
    for name in ("function_app.py", "host.json"):
        shutil.copy(REPO / name, tmp_path / name)
    problems = contract.check(tmp_path, REPO / "infra")
    assert problems == ["app setting ARCHIVE_NEW_KNOB is read by shared/settings.py but not set "
                        "in the Bicep appsettings"]
