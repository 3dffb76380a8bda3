"""The Bicep parses (pycep-parser, the parser checkov's bicep framework uses, and the contract's
own reader), and the azd files around it are well-formed and hold no secret."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import contract
import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


def _bicep_parser() -> Any:
    try:
        from pycep import BicepParser
    except ImportError:
        message = "pycep-parser is not installed (requirements-dev.txt pins it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return BicepParser()


def test_the_infrastructure_is_there() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert {"main.bicep", "app/function.bicep", "app/storage.bicep", "app/rbac.bicep",
            "app/blob-events-subscription.bicep"} <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_parses(path: Path) -> None:
    parsed = _bicep_parser().parse(file_path=path)  # raises on a syntax error
    assert parsed["resources"] or parsed["outputs"] or parsed["parameters"]
    contract.parse_bicep(path)  # and the contract's reader understands all of it


def test_unreadable_bicep_is_an_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.bicep"
    broken.write_text("resource x 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: \n")
    with pytest.raises(Exception):  # noqa: B017 - lark raises its own error types
        _bicep_parser().parse(file_path=broken)
    with pytest.raises(contract.BicepError):
        contract.parse_bicep(broken)


def _walk(node: Any) -> Any:
    yield node
    if isinstance(node, tuple):
        for child in node[1:]:
            yield from _walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child)
    elif isinstance(node, dict):
        for child in node.values():
            yield from _walk(child)


def test_parameters_file_uses_azd_substitution_and_holds_no_secret() -> None:
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    main = contract.parse_bicep(INFRA / "main.bicep")
    assert params["environmentName"] == {"value": "${AZURE_ENV_NAME}"}
    assert params["location"] == {"value": "${AZURE_LOCATION}"}
    assert set(params) <= set(main.params), "parameters that main.bicep does not declare"
    for name, entry in params.items():
        assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*(=[^}]*)?\}", entry["value"]), (
            f"{name}: only azd environment references belong in main.parameters.json")
    for name in main.secure_params & set(params):
        # A secret comes from the azd environment (or `azd env set-secret`), never a default.
        assert re.fullmatch(r"\$\{[A-Z0-9_]+=?\}", params[name]["value"]), name
    required = {n for n, (_, default) in main.params.items() if default is None}
    assert required <= set(params), "main.bicep parameters azd would have to prompt for"


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_no_secret_in_outputs(path: Path) -> None:
    parsed = contract.parse_bicep(path)
    secure = parsed.secure_params
    for name, node in parsed.outputs.items():
        used = {n[1] for n in _walk(node) if isinstance(n, tuple) and n and n[0] == "id"}
        assert not used & secure, f"output {name} exposes a @secure() parameter"
        calls = {n[2] for n in _walk(node) if isinstance(n, tuple) and n and n[0] == "mcall"}
        assert not {c for c in calls if c.lower().startswith("list")}, (
            f"output {name} exposes keys (list*())")


def test_azure_yaml_matches_the_bicep_and_the_hooks_exist() -> None:
    text = (REPO / "azure.yaml").read_text()
    function = (INFRA / "app" / "function.bicep").read_text()
    service = re.search(r"var serviceName = '([^']+)'", function)
    assert service, "function.bicep must tag the app with azd-service-name"
    block = re.search(rf"(?m)^services:\n  {re.escape(service.group(1))}:\n((?:    .*\n)+)",
                      text)
    assert block, f"azure.yaml has no service {service.group(1)!r}"
    assert "language: python" in block.group(1)
    assert "host: function" in block.group(1)
    assert re.search(r"project: \.\s*$", block.group(1), re.M)
    hooks = re.findall(r"run: (\./scripts/\S+)", text)
    assert {Path(h).suffix for h in hooks} == {".sh", ".ps1"}
    for hook in hooks:
        script = REPO / hook
        assert script.exists(), hook
        if script.suffix == ".sh":
            assert os.access(script, os.X_OK), f"{hook} is not executable"


def test_funcignore_keeps_the_package_small_and_the_app_whole() -> None:
    ignored = {line.strip().rstrip("/") for line in (REPO / ".funcignore").read_text()
               .splitlines() if line.strip() and not line.startswith("#")}
    for needed in ("function_app.py", "host.json", "requirements.txt", "shared"):
        assert needed not in ignored
    for excluded in ("tests", "infra", ".venv", "node_modules", "local.settings.json"):
        assert excluded in ignored
