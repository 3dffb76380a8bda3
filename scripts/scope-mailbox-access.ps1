<#
.SYNOPSIS
  Limit the connector's Microsoft Graph mail access to the archived users' mailboxes
  (Exchange Online), then verify that the limit is what Exchange has. Run after
  scripts/grant-graph-permissions.sh, which prints the arguments.

.DESCRIPTION
  -Mode Rbac (recommended): Exchange Online RBAC for Applications. Registers the service
  principal in Exchange, creates a management scope of the members of -Group and assigns the
  "Application Mail.ReadWrite" role limited to that scope. The identity must NOT also hold
  Mail.ReadWrite in Entra ID (that grant is tenant-wide and adds up with this one).

  -Mode Policy: an application access policy restricting the Entra Mail.ReadWrite grant to the
  members of -Group (a mail-enabled security group).

  Objects that already exist are checked, not trusted: a service principal registered with
  another object id, a scope with another filter, an application mail role assignment that is
  not limited to the scope, or a policy that is not RestrictAccess on -Group stops the script
  with an error that says what differs and how to fix it. It then asks Exchange
  (Test-ServicePrincipalAuthorization / Test-ApplicationAccessPolicy) whether -TestMailbox is
  in scope and, with -OutsideMailbox, whether a mailbox outside the group is not; it reports
  success only when both answers are right.

  Needs the ExchangeOnlineManagement module and an Exchange administrator sign-in. Idempotent.
  Membership changes of the group take effect after Exchange's cache refresh (can take up to
  two hours); management-scope filters do not expand nested groups.

.EXAMPLE
  ./scripts/scope-mailbox-access.ps1 -Mode Rbac -AppId <client id> -ServicePrincipalObjectId <sp object id> `
      -Group telegram-archived@contoso.com -TestMailbox alice@contoso.com -OutsideMailbox bob@contoso.com
#>
[CmdletBinding(SupportsShouldProcess)]
param(
  [ValidateSet('Rbac', 'Policy')] [string] $Mode = 'Rbac',
  [Parameter(Mandatory)] [string] $AppId,
  [string] $ServicePrincipalObjectId,
  [Parameter(Mandatory)] [string] $Group,
  [Parameter(Mandatory)] [string] $TestMailbox,
  [string] $OutsideMailbox,
  [string] $DisplayName = 'Telegram archive connector',
  [string] $ScopeName = 'Telegram archive mailboxes'
)
$ErrorActionPreference = 'Stop'
$Role = 'Application Mail.ReadWrite'

# An OPATH string literal: single quotes around the value, each single quote in it doubled.
# A group's distinguished name may contain one (CN=O'Brien's team,...); unescaped, it would end
# the literal early and the rest of the name would become filter syntax.
function ConvertTo-OPathLiteral([string] $Value) {
  return "'" + $Value.Replace("'", "''") + "'"
}

# Filters as Exchange stores them may differ in outer parentheses, spacing and case only.
function Format-Filter([string] $Filter) {
  $text = ($Filter -replace '\s+', ' ').Trim()
  while ($text.StartsWith('(') -and $text.EndsWith(')')) { $text = $text.Substring(1, $text.Length - 2).Trim() }
  return $text.ToLowerInvariant()
}

function Stop-Differs([string] $What, [string] $Expected, [string] $Found, [string] $Fix) {
  throw "$What differs from what this script sets up.`n  expected: $Expected`n  found:    $Found`n  fix:      $Fix"
}

Import-Module ExchangeOnlineManagement
if (-not (Get-ConnectionInformation -ErrorAction SilentlyContinue)) {
  Connect-ExchangeOnline -ShowBanner:$false
}

$groupObject = @(Get-Group -Identity $Group)
if ($groupObject.Count -ne 1) {
  throw "-Group '$Group' must name exactly one group; found $($groupObject.Count)"
}
$groupObject = $groupObject[0]

if ($Mode -eq 'Rbac') {
  if (-not $ServicePrincipalObjectId) {
    throw '-ServicePrincipalObjectId (the enterprise application object id) is required with -Mode Rbac'
  }

  # 1. The service principal pointer, registered with the right Entra object.
  $sp = Get-ServicePrincipal -Identity $AppId -ErrorAction SilentlyContinue
  if (-not $sp) {
    if ($PSCmdlet.ShouldProcess($AppId, 'New-ServicePrincipal')) {
      New-ServicePrincipal -AppId $AppId -ObjectId $ServicePrincipalObjectId -DisplayName $DisplayName | Out-Null
      $sp = Get-ServicePrincipal -Identity $AppId
    }
  }
  elseif ($sp.ObjectId -ne $ServicePrincipalObjectId) {
    Stop-Differs "Exchange service principal for app $AppId" "ObjectId $ServicePrincipalObjectId" `
      "ObjectId $($sp.ObjectId)" "Remove-ServicePrincipal -Identity $AppId, then run this script again"
  }

  # 2. The management scope: the members of the group, and nothing else.
  $filter = "MemberOfGroup -eq $(ConvertTo-OPathLiteral $groupObject.DistinguishedName)"
  $scope = Get-ManagementScope -Identity $ScopeName -ErrorAction SilentlyContinue
  if (-not $scope) {
    if ($PSCmdlet.ShouldProcess($ScopeName, "New-ManagementScope -RecipientRestrictionFilter $filter")) {
      New-ManagementScope -Name $ScopeName -RecipientRestrictionFilter $filter | Out-Null
      $scope = Get-ManagementScope -Identity $ScopeName
    }
  }
  if ($scope -and ((Format-Filter $scope.RecipientFilter) -ne (Format-Filter $filter) -or
                   $scope.ScopeRestrictionType -ne 'RecipientScope')) {
    Stop-Differs "Management scope '$ScopeName'" "RecipientScope, $filter" `
      "$($scope.ScopeRestrictionType), $($scope.RecipientFilter)" `
      "Set-ManagementScope -Identity '$ScopeName' -RecipientRestrictionFilter `"$filter`" (or pass another -ScopeName)"
  }

  # 3. Every application mail role of this service principal limited to that scope.
  if ($sp) {
    $ids = @($sp.Identity, $sp.Name, $sp.ServiceId, $sp.AppId, $sp.ObjectId, $sp.DisplayName) |
      Where-Object { $_ } | ForEach-Object { "$_" }
    # Every assignment of any application mail role (Mail.Read, Mail.ReadWrite, Mail.Send, ...)
    # to this service principal, whatever created it.
    $mine = {
      @(Get-ManagementRole -Identity 'Application Mail.*' | ForEach-Object {
          Get-ManagementRoleAssignment -Role $_.Name } |
        Where-Object { $ids -contains "$($_.RoleAssignee)" -or $ids -contains "$($_.RoleAssigneeName)" })
    }
    $assigned = & $mine
    if (-not ($assigned | Where-Object { $_.Role -eq $Role })) {
      if ($PSCmdlet.ShouldProcess($AppId, "New-ManagementRoleAssignment $Role -CustomResourceScope $ScopeName")) {
        New-ManagementRoleAssignment -App $sp.AppId -Role $Role -CustomResourceScope $ScopeName | Out-Null
        $assigned = & $mine
      }
    }
    if (-not $WhatIfPreference -and -not ($assigned | Where-Object { $_.Role -eq $Role })) {
      throw "No '$Role' assignment for $AppId is visible after creating it; check Get-ManagementRoleAssignment -Role '$Role'"
    }
    foreach ($a in $assigned) {
      if ("$($a.CustomResourceScope)" -ne $ScopeName) {
        Stop-Differs "Role assignment '$($a.Name)' ($($a.Role))" "CustomResourceScope '$ScopeName'" `
          "CustomResourceScope '$($a.CustomResourceScope)', RecipientWriteScope $($a.RecipientWriteScope)" `
          "Remove-ManagementRoleAssignment -Identity '$($a.Name)', then run this script again"
      }
    }
  }

  # 4. What Exchange answers for a mailbox inside and one outside the group.
  if (-not $WhatIfPreference) {
    $inside = @(Test-ServicePrincipalAuthorization -Identity $AppId -Resource $TestMailbox |
      Where-Object { $_.RoleName -eq $Role })
    $inside | Format-Table -AutoSize | Out-Host
    if (-not ($inside | Where-Object { "$($_.InScope)" -eq 'True' -and $_.AllowedResourceScope -eq $ScopeName })) {
      throw "$TestMailbox is not in scope of '$Role' for $AppId. Is it a direct member of $Group? (nested groups do not count)"
    }
    if ($OutsideMailbox) {
      $outside = @(Test-ServicePrincipalAuthorization -Identity $AppId -Resource $OutsideMailbox |
        Where-Object { $_.RoleName -like 'Application Mail.*' -and "$($_.InScope)" -eq 'True' })
      if ($outside) {
        $outside | Format-Table -AutoSize | Out-Host
        throw "$OutsideMailbox (outside $Group) is in scope of $($outside[0].RoleName) for $AppId"
      }
    }
  }
}
else {
  $groupIds = @($groupObject.Identity, $groupObject.Name, $groupObject.DisplayName,
                $groupObject.PrimarySmtpAddress, $groupObject.DistinguishedName,
                $groupObject.Guid, $groupObject.ExternalDirectoryObjectId) |
    Where-Object { $_ } | ForEach-Object { "$_" }
  if ($groupObject.RecipientTypeDetails -ne 'MailUniversalSecurityGroup') {
    throw "-Group must be a mail-enabled security group for an application access policy; '$Group' is $($groupObject.RecipientTypeDetails)"
  }
  $policies = @(Get-ApplicationAccessPolicy | Where-Object { @($_.AppId) -contains $AppId })
  if (-not $policies) {
    if ($PSCmdlet.ShouldProcess($AppId, 'New-ApplicationAccessPolicy RestrictAccess')) {
      New-ApplicationAccessPolicy -AppId $AppId -PolicyScopeGroupId $groupObject.PrimarySmtpAddress `
        -AccessRight RestrictAccess -Description "$($DisplayName) - archived users only" | Out-Null
      $policies = @(Get-ApplicationAccessPolicy | Where-Object { @($_.AppId) -contains $AppId })
    }
  }
  foreach ($p in $policies) {
    $onGroup = $groupIds -contains "$($p.ScopeIdentity)" -or $groupIds -contains "$($p.ScopeName)"
    if ($p.AccessRight -ne 'RestrictAccess' -or -not $onGroup) {
      Stop-Differs "Application access policy '$($p.Identity)'" "RestrictAccess on $Group" `
        "$($p.AccessRight) on $($p.ScopeName)" `
        "Remove-ApplicationAccessPolicy -Identity '$($p.Identity)', then run this script again"
    }
  }
  if (-not $WhatIfPreference) {
    $inside = Test-ApplicationAccessPolicy -Identity $TestMailbox -AppId $AppId
    $inside | Format-List | Out-Host
    if ($inside.AccessCheckResult -ne 'Granted') {
      throw "$TestMailbox is not granted to $AppId ($($inside.AccessCheckResult)). Is it a member of $Group?"
    }
    if ($OutsideMailbox) {
      $outside = Test-ApplicationAccessPolicy -Identity $OutsideMailbox -AppId $AppId
      if ($outside.AccessCheckResult -ne 'Denied') {
        throw "$OutsideMailbox (outside $Group) is $($outside.AccessCheckResult) to $AppId"
      }
    }
  }
}

if ($WhatIfPreference) {
  Write-Host "What-if only: nothing was changed or verified."
}
else {
  $checked = if ($OutsideMailbox) { "$TestMailbox in scope, $OutsideMailbox out of scope" } else { "$TestMailbox in scope" }
  Write-Host "Verified: mail access for $AppId is limited to the members of $Group ($Mode; $checked)."
}
