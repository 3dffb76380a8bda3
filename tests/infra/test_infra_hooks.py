"""The azd postdeploy hook (scripts/postdeploy.sh) with stand-ins for `az` and `azd`: it waits
for the blobs_extension key without printing it, then deploys the Event Grid subscription."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOOK = REPO / "scripts" / "postdeploy.sh"
SECRET = "blobs-extension-key-value"

AZ = f"""#!/bin/sh
echo "$*" >> "$STUB_LOG"
case "$*" in
  *"functionapp keys list"*)
    n=$(cat "$STUB_DIR/count" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$STUB_DIR/count"
    if [ "$n" -ge "${{KEY_AFTER:-2}}" ]; then echo {SECRET}; fi ;;
  *"deployment group create"*) exit "${{DEPLOY_EXIT:-0}}" ;;
esac
"""

AZD = """#!/bin/sh
if [ "$*" = "env get-values" ]; then
  echo 'RESOURCE_GROUP="rg-test"'
  echo 'AZURE_FUNCTION_APP_NAME="func-test"'
  echo 'AZURE_STORAGE_ACCOUNT_NAME="sttest"'
  echo 'EVENTGRID_SYSTEM_TOPIC_NAME="evgt-test"'
  echo 'EXPORTS_CONTAINER_NAME="exports"'
fi
"""

NAMES = {"RESOURCE_GROUP": "rg-x", "AZURE_FUNCTION_APP_NAME": "func-x",
         "AZURE_STORAGE_ACCOUNT_NAME": "stx", "EVENTGRID_SYSTEM_TOPIC_NAME": "evgt-x"}


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    if shutil.which("sh") is None:
        pytest.skip("no POSIX shell")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "az").write_text(AZ)
    (bin_dir / "az").chmod(0o755)
    return tmp_path


def run_hook(stubs: Path, env: dict[str, str],
             with_azd: bool = False) -> subprocess.CompletedProcess[str]:
    if with_azd:
        (stubs / "bin" / "azd").write_text(AZD)
        (stubs / "bin" / "azd").chmod(0o755)
    base = {"PATH": f"{stubs / 'bin'}:/usr/bin:/bin", "STUB_LOG": str(stubs / "az.log"),
            "STUB_DIR": str(stubs), "POSTDEPLOY_POLL_SECONDS": "0", "HOME": str(stubs)}
    return subprocess.run(["sh", str(HOOK)], env={**base, **env}, capture_output=True,
                          text=True, timeout=60, cwd=stubs)


def test_waits_for_the_key_then_deploys_the_subscription(stubs: Path) -> None:
    result = run_hook(stubs, {**NAMES, "KEY_AFTER": "3"})
    assert result.returncode == 0, result.stderr
    calls = (stubs / "az.log").read_text().splitlines()
    assert sum("functionapp keys list" in c for c in calls) == 3
    deploy = [c for c in calls if "deployment group create" in c]
    assert len(deploy) == 1
    assert f"--template-file {REPO}/infra/app/blob-events-subscription.bicep" in deploy[0]
    for part in ("--resource-group rg-x", "functionAppName=func-x", "systemTopicName=evgt-x",
                 "storageAccountName=stx", "exportsContainerName=exports",
                 "deadLetterContainerName=eventgrid-deadletter"):
        assert part in deploy[0]
    assert SECRET not in result.stdout + result.stderr + deploy[0]


def test_names_come_from_the_azd_environment_when_not_exported(stubs: Path) -> None:
    result = run_hook(stubs, {}, with_azd=True)
    assert result.returncode == 0, result.stderr
    deploy = [c for c in (stubs / "az.log").read_text().splitlines()
              if "deployment group create" in c][0]
    assert "--resource-group rg-test" in deploy and "functionAppName=func-test" in deploy


def test_missing_names_fail_clearly(stubs: Path) -> None:
    result = run_hook(stubs, {"RESOURCE_GROUP": "rg-x"})
    assert result.returncode == 1
    assert "AZURE_FUNCTION_APP_NAME is not set" in result.stderr


def test_gives_up_when_the_key_never_appears(stubs: Path) -> None:
    result = run_hook(stubs, {**NAMES, "KEY_AFTER": "1000"})
    assert result.returncode == 1
    assert "no blobs_extension key" in result.stderr
    assert "deployment group create" not in (stubs / "az.log").read_text()


def test_a_failed_deployment_fails_the_hook(stubs: Path) -> None:
    result = run_hook(stubs, {**NAMES, "DEPLOY_EXIT": "1"})
    assert result.returncode != 0


def test_the_scripts_are_executable() -> None:
    for name in ("postdeploy.sh", "grant-graph-permissions.sh"):
        assert os.access(REPO / "scripts" / name, os.X_OK), name
    result = subprocess.run(["bash", "-n", str(REPO / "scripts" / "grant-graph-permissions.sh")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
