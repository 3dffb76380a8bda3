"""infra/ against Azure's own resource types (tests/infra/bicep_types.py), and mutations of
infra/ showing that each kind of slip fails the check."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import bicep_types
import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
TYPES = bicep_types.Types()


def test_infra_matches_azure_resource_types(capsys: pytest.CaptureFixture[str]) -> None:
    report = bicep_types.check(INFRA, TYPES)
    with capsys.disabled():
        print(f"\n{report.summary()}")
    assert report.errors == []
    declared = sum(len(re.findall(r"(?m)^\s*resource \w+ '", p.read_text()))
                   for p in INFRA.rglob("*.bicep"))
    assert report.resources >= declared  # every declaration, nested and existing ones too
    assert report.checked > 300 and report.paths > 20


def test_every_types_file_is_a_copy_with_its_source_path() -> None:
    files = sorted(bicep_types.TYPES_DIR.rglob("types.json"))
    assert files
    for path in files:
        provider, namespace, api = path.relative_to(bicep_types.TYPES_DIR).parts[:3]
        assert re.fullmatch(r"[a-z0-9_]+", provider) and namespace.startswith("microsoft.")
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", api)
    assert "Azure/bicep-types-az" in (bicep_types.TYPES_DIR / "README.md").read_text()


# ---- Mutations of infra/ ------------------------------------------------------------------------


def mutated(tmp_path: Path, pattern: str, replacement: str) -> bicep_types.Report:
    """A copy of infra/ with the first match of `pattern` (in the first file that has one)
    replaced, checked."""
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy)
    for path in sorted(copy.rglob("*.bicep")):
        text = path.read_text()
        changed, n = re.subn(pattern, replacement, text, count=1, flags=re.M | re.S)
        if n:
            path.write_text(changed)
            return bicep_types.check(copy, TYPES)
    raise AssertionError(f"no Bicep file in infra/ matches {pattern!r}: update this test")


STORAGE_PROPERTIES = (r"(resource \w+ 'Microsoft\.Storage/storageAccounts@[^']+' = \{.*?\n"
                      r"(\s+)properties: \{\n)")


@pytest.mark.parametrize(("pattern", "replacement", "expected"), [
    pytest.param(STORAGE_PROPERTIES, r"\1\2  notAProperty: true\n",
                 "properties.notAProperty: unknown property", id="unknown-property"),
    pytest.param(STORAGE_PROPERTIES, r"\1\2  allowblobPublicAccess: false\n",
                 "it is spelt 'allowBlobPublicAccess'", id="misspelt-property"),
    pytest.param(STORAGE_PROPERTIES, r"\1\2  provisioningState: 'Succeeded'\n",
                 "properties.provisioningState: read-only property is set", id="read-only-set"),
    pytest.param(r"^\s+roleDefinitionId: [^\n]*\n", "",
                 "properties.roleDefinitionId: required property is missing",
                 id="required-removed"),
    pytest.param(r"accessTier: 'Hot'", "accessTier: 'Warm'",
                 "properties.accessTier: 'Warm' is not one of 'Hot' | 'Cool'", id="wrong-enum"),
    # An open (extensible) enum takes any string, as in Azure.
    pytest.param(r"minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_3'", None,
                 id="open-enum"),
    pytest.param(r"listKeys\(\)\.systemKeys\.", "listKeys().systemKey.",
                 "HostKeys has no property 'systemKey'", id="wrong-listKeys-path"),
    pytest.param(r"\.listKeys\(\)", ".listKey()",
                 "Microsoft.Web/sites/host@2024-04-01 has no function listKey()",
                 id="wrong-resource-function"),
    pytest.param(r"(listKeys\(\)\.systemKeys\.\w+)", r"\1.value",
                 "a string has no property 'value'", id="path-past-a-string"),
    pytest.param(r"(\w+)\.properties\.vaultUri", r"\1.properties.createMode",
                 "'createMode' is write-only (cannot be read)", id="write-only-read"),
    pytest.param(r"(resource \w+ '[^']+' existing = \{\n)", r"\1  location: 'westeurope'\n",
                 "an existing resource takes only name/scope/parent", id="existing-with-body"),
    pytest.param(r"\.properties\.primaryEndpoints\.blob", ".properties.primaryEndpoint.blob",
                 "has no property 'primaryEndpoint'", id="wrong-property-path"),
    pytest.param(r"SingleResourceMultipleMetricCriteria'", "SingleResourceMultipleMetricCriterion'",
                 "criteria.odata.type: 'Microsoft.Azure.Monitor."
                 "SingleResourceMultipleMetricCriterion' is not one of",
                 id="discriminator-value"),
    pytest.param(r"name: 'appsettings'", "name: 'appsetting'",
                 "name: 'appsetting' is not one of", id="config-name-discriminator"),
    pytest.param(r"(operatorType: 'StringIn')", r"\1\n          valuez: []",
                 "advancedFilters[0].valuez: unknown property of StringInAdvancedFilter",
                 id="discriminated-element"),
    pytest.param(r"(endpointType: 'WebHook')", r"\1\n      endpointUrl: 'https://x'",
                 "destination.endpointUrl: unknown property of WebHookEventSubscriptionDestination",
                 id="discriminated-destination"),
    pytest.param(r"(numberOfEvaluationPeriods: 1)", r"\1\n            minFailing: 1",
                 "criteria.allOf[0].failingPeriods.minFailing: unknown property",
                 id="nested-array-object"),
    pytest.param(r"http20Enabled: true", "http20Enabled: 'true'",
                 "siteConfig.http20Enabled: 'true' is not a bool", id="wrong-scalar-type"),
    pytest.param(r"retentionInDays: retentionInDays", "retentionInDays: string(retentionInDays)",
                 "properties.retentionInDays: a string expression where integer is expected",
                 id="expression-type"),
    pytest.param(r"WorkspaceResourceId: (\w+)\.id", r"WorkspaceResourceId: \1.properties",
                 "WorkspaceResourceId: an object expression where string is expected",
                 id="resource-property-type"),
    pytest.param(r"@maxValue\(365\)(\nparam blobSoftDeleteDays)", r"@maxValue(400)\1",
                 "deleteRetentionPolicy.days: a parameter allowing [1, 400] where Azure accepts "
                 "[1, 365]", id="parameter-range"),
    pytest.param(r"emailAddress: alertEmail", "email: alertEmail",
                 "emailReceivers[0].email: unknown property", id="conditional-branch"),
    pytest.param(r"Microsoft\.ManagedIdentity/userAssignedIdentities@2023-01-31",
                 "Microsoft.ManagedIdentity/userAssignedIdentities@2099-01-01",
                 "no types file for Microsoft.ManagedIdentity/userAssignedIdentities@2099-01-01:"
                 " copy generated/<provider>/microsoft.managedidentity/2099-01-01/types.json"
                 " from Azure/bicep-types-az to tests/infra/bicep-types/",
                 id="no-types-file"),
    pytest.param(r"'containers' existing", "'containerz' existing",
                 "Microsoft.Storage/storageAccounts/blobServices/containerz@2023-05-01 is not in "
                 "storage/microsoft.storage/2023-05-01/types.json", id="nested-child-type"),
    pytest.param(r"site::host\.", "site::hosts.", "site has no nested resource hosts",
                 id="nested-child-reference"),
    pytest.param(r"(resource \w+ 'Microsoft\.Storage/storageAccounts/blobServices/containers@"
                 r"[^']+' = \{\n(?:\s*//[^\n]*\n)*\s+parent: )\w+",
                 r"\1queueService", "needs a Microsoft.Storage/storageAccounts/blobServices",
                 id="wrong-parent"),
    pytest.param(r"itemsQueue: 'items'", "itemsQueue: 'Items_Queue'",
                 "via main.bicep > storage): name: 'Items_Queue' does not match",
                 id="literal-module-parameter"),
    pytest.param(r"(^\s+)(identityId: identity\.outputs\.id)$", r"\1\2\1notAParameter: 1",
                 "has no parameter 'notAParameter'", id="unknown-module-parameter"),
    pytest.param(r"principalId: appPrincipalId", "principalId: appPrincipalID",
                 "'appPrincipalID' is not a parameter, variable, resource or module",
                 id="undefined-name"),
    pytest.param(r"= if \(!empty\((\w+)\)\)", r"= if (!empty(\1x))",
                 "x' is not a parameter, variable, resource or module", id="name-in-condition"),
    pytest.param(r"\$\{keyVaultUri\}", "${keyVaultUrl}",
                 "'keyVaultUrl' is not a parameter", id="name-in-interpolation"),
    pytest.param(r"(\w+)\.outputs\.name\b", r"\1.outputs.nmae", "has no output 'nmae'",
                 id="module-output"),
    pytest.param(r"name: guid\((\w+)\.id,", r"name: guid(\1.properties,",
                 "which is only known once the deployment runs", id="name-from-runtime-value"),
])
def test_a_slip_fails_the_check(tmp_path: Path, pattern: str, replacement: str,
                                expected: str | None) -> None:
    report = mutated(tmp_path, pattern, replacement)
    if expected is None:
        assert report.errors == []
    else:
        assert any(expected in error for error in report.errors), report.errors


# ---- Small files: what the checker resolves and what it skips ----------------------------------


def checked(tmp_path: Path, files: dict[str, str]) -> bicep_types.Report:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return bicep_types.check(tmp_path, TYPES)


def test_undecidable_values_are_counted_not_guessed(tmp_path: Path) -> None:
    report = checked(tmp_path, {"main.bicep": """
param names array
param tier string
var kept = filter(names, each => each != 'x')
resource accounts 'Microsoft.Storage/storageAccounts@2023-05-01' = [for n in kept: {
  name: n
  location: resourceGroup().location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
}]
resource one 'Microsoft.Storage/storageAccounts@2023-05-01' = if (!empty(tier)) {
  name: 'one${uniqueString(tier)}'
  location: resourceGroup().location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: tier
  }
}
"""})
    assert report.errors == []
    assert report.skipped["loop"] >= 1
    assert report.skipped["condition"] == 1
    assert report.skipped["parameter"] >= 1  # tier: a string only known at deployment
    assert "skipped (cannot decide)" in report.summary()


def test_parameters_follow_module_calls_and_allowed_values(tmp_path: Path) -> None:
    report = checked(tmp_path, {
        "main.bicep": """
@allowed([
  'Hot'
  'Warm'
])
param tier string = 'Hot'
module store 'app/store.bicep' = {
  name: 'store'
  params: {
    tier: tier
    action: 'Block'
  }
}
""",
        "app/store.bicep": """
param tier string
param action string
param name string = 'st${uniqueString(resourceGroup().id)}'
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: resourceGroup().location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: tier
    networkAcls: {
      defaultAction: action
    }
  }
}
output endpoint string = account.properties.primaryEndpoints.blob
""",
    })
    text = "\n".join(report.errors)
    assert "networkAcls.defaultAction: 'Block' is not one of 'Allow' | 'Deny'" in text
    assert "accessTier: 'Warm' is not one of" in text  # an @allowed value Azure refuses
    assert "accessTier: 'Hot'" not in text
    assert "via main.bicep > store" in text
    assert len(report.errors) == 2


def test_module_parameters_are_checked_against_their_declarations(tmp_path: Path) -> None:
    report = checked(tmp_path, {
        "main.bicep": """
@minValue(1)
@maxValue(100)
param days int = 7
module one 'app/one.bicep' = {
  name: 'one'
  params: {
    days: days
    count: 20
    enabled: 'yes'
    label: toLower('X')
  }
}
""",
        "app/one.bicep": """
@maxValue(30)
param days int
@minValue(1)
@maxValue(10)
param count int
param enabled bool
param label int
output days int = days
""",
    })
    text = "\n".join(report.errors)
    assert "parameter 'days': a value in [1, 100] is passed where the module accepts " \
           "[unbounded, 30]" in text
    assert "parameter 'count': 20 is outside the module's [1, 10]" in text
    assert "parameter 'enabled': 'yes' is not a bool" in text
    assert "parameter 'label': a string expression is passed to an int parameter" in text
    assert len(report.errors) == 4


def test_scope_of_a_resource_type(tmp_path: Path) -> None:
    report = checked(tmp_path, {"main.bicep": """
targetScope = 'subscription'
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stx'
  location: 'westeurope'
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
}
"""})
    assert any("cannot be deployed as subscription scope" in e for e in report.errors)


def test_interpolated_expressions_are_parsed() -> None:
    syntax = bicep_types.Syntax()
    tree = bicep_types._parser.lark_parser.parse(
        "var x = 'a${b.c[0].listKeys().keys}-${d::e.f ? 'x' : g}'\n")
    value = syntax.expr(tree.children[0].children[-1])
    assert value[0] == "interp"
    chains = [bicep_types._chain_text(n) for n in bicep_types.walk(value) if n[0] == "chain"]
    assert chains == ["b.c[...].listKeys().keys", "d::e.f"]
