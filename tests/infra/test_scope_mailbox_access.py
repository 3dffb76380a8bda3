"""scripts/scope-mailbox-access.ps1 (issue 16.13): the group's DN is escaped into the OPATH
filter, and what already exists is verified before success is reported.

PowerShell cannot be installed here (no Debian package, NuGet out of reach), so these are
static checks of the script's text; its syntax is checked with the tree-sitter grammar by
tests/infra/test_scripts.py.
"""

from __future__ import annotations

import re
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "scope-mailbox-access.ps1"


def source() -> str:
    return SCRIPT.read_text(encoding="utf-8")


def test_no_variable_is_pasted_into_an_opath_literal() -> None:
    """`"MemberOfGroup -eq '$groupDn'"`: a quote in the DN ends the literal early."""
    pasted = re.findall(r"-(?:eq|ne|like)\s+'\$\(?\w", source(), re.IGNORECASE)
    assert pasted == []
    assert re.search(r"RecipientRestrictionFilter \$filter\b", source())
    assert re.search(r'\$filter = "MemberOfGroup -eq \$\(ConvertTo-OPathLiteral '
                     r'\$groupObject\.DistinguishedName\)"', source())


def test_the_opath_literal_doubles_single_quotes() -> None:
    body = re.search(r"function ConvertTo-OPathLiteral\(\[string\] \$Value\) \{(.*?)\n\}",
                     source(), re.DOTALL)
    assert body is not None
    assert '''"'" + $Value.Replace("'", "''") + "'"''' in body.group(1)


def test_existing_objects_are_compared_not_skipped() -> None:
    text = source()
    # the service principal's object id, the scope's filter and type, every mail role's scope,
    # and the policy's access right and group
    for check in ("$sp.ObjectId -ne $ServicePrincipalObjectId",
                  "(Format-Filter $scope.RecipientFilter) -ne (Format-Filter $filter)",
                  "$scope.ScopeRestrictionType -ne 'RecipientScope'",
                  '"$($a.CustomResourceScope)" -ne $ScopeName',
                  "$p.AccessRight -ne 'RestrictAccess' -or -not $onGroup"):
        assert check in text, check
    assert text.count("Stop-Differs \"") == 4  # one call per kind of object


def test_success_is_reported_only_after_exchange_confirms() -> None:
    text = source()
    assert re.search(r"\[Parameter\(Mandatory\)\] \[string\] \$TestMailbox", text)
    verified = text.index('Write-Host "Verified:')
    for probe in ("Test-ServicePrincipalAuthorization -Identity $AppId -Resource $TestMailbox",
                  "Test-ServicePrincipalAuthorization -Identity $AppId -Resource $OutsideMailbox",
                  "Test-ApplicationAccessPolicy -Identity $TestMailbox",
                  "Test-ApplicationAccessPolicy -Identity $OutsideMailbox"):
        assert -1 < text.index(probe) < verified, probe
    assert "$ErrorActionPreference = 'Stop'" in text
    assert "Done." not in text
