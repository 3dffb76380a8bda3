<#
.SYNOPSIS
  Limit the connector's Microsoft Graph mail access to the archived users' mailboxes
  (Exchange Online). Run after scripts/grant-graph-permissions.sh, which prints the arguments.

.DESCRIPTION
  -Mode Rbac (recommended): Exchange Online RBAC for Applications. Registers the service
  principal in Exchange, creates a management scope of the members of -Group and assigns the
  "Application Mail.ReadWrite" role limited to that scope. The identity must NOT also hold
  Mail.ReadWrite in Entra ID (that grant is tenant-wide and adds up with this one).

  -Mode Policy: an application access policy restricting the Entra Mail.ReadWrite grant to the
  members of -Group (a mail-enabled security group).

  Needs the ExchangeOnlineManagement module and an Exchange administrator sign-in. Idempotent.
  Membership changes of the group take effect after Exchange's cache refresh (can take up to
  an hour or more); management-scope filters do not expand nested groups.

.EXAMPLE
  ./scripts/scope-mailbox-access.ps1 -Mode Rbac -AppId <client id> -ServicePrincipalObjectId <sp object id> `
      -Group telegram-archived@contoso.com -TestMailbox alice@contoso.com
#>
[CmdletBinding(SupportsShouldProcess)]
param(
  [ValidateSet('Rbac', 'Policy')] [string] $Mode = 'Rbac',
  [Parameter(Mandatory)] [string] $AppId,
  [string] $ServicePrincipalObjectId,
  [Parameter(Mandatory)] [string] $Group,
  [string] $DisplayName = 'Telegram archive connector',
  [string] $ScopeName = 'Telegram archive mailboxes',
  [string] $TestMailbox
)
$ErrorActionPreference = 'Stop'

Import-Module ExchangeOnlineManagement
if (-not (Get-ConnectionInformation -ErrorAction SilentlyContinue)) {
  Connect-ExchangeOnline -ShowBanner:$false
}

if ($Mode -eq 'Rbac') {
  if (-not $ServicePrincipalObjectId) {
    throw '-ServicePrincipalObjectId (the enterprise application object id) is required with -Mode Rbac'
  }
  if (-not (Get-ServicePrincipal -Identity $AppId -ErrorAction SilentlyContinue)) {
    if ($PSCmdlet.ShouldProcess($AppId, 'New-ServicePrincipal')) {
      New-ServicePrincipal -AppId $AppId -ObjectId $ServicePrincipalObjectId -DisplayName $DisplayName | Out-Null
    }
  }
  $groupDn = (Get-Group -Identity $Group).DistinguishedName
  if (-not (Get-ManagementScope -Identity $ScopeName -ErrorAction SilentlyContinue)) {
    if ($PSCmdlet.ShouldProcess($ScopeName, 'New-ManagementScope')) {
      New-ManagementScope -Name $ScopeName -RecipientRestrictionFilter "MemberOfGroup -eq '$groupDn'" | Out-Null
    }
  }
  $existing = Get-ManagementRoleAssignment -Role 'Application Mail.ReadWrite' -ErrorAction SilentlyContinue |
    Where-Object { $_.RoleAssigneeName -eq $AppId -or $_.App -eq $AppId -or $_.RoleAssignee -like "*$AppId*" }
  if (-not $existing) {
    if ($PSCmdlet.ShouldProcess($AppId, 'New-ManagementRoleAssignment Application Mail.ReadWrite')) {
      New-ManagementRoleAssignment -App $AppId -Role 'Application Mail.ReadWrite' -CustomResourceScope $ScopeName | Out-Null
    }
  }
  if ($TestMailbox) {
    Test-ServicePrincipalAuthorization -Identity $AppId -Resource $TestMailbox | Format-Table -AutoSize
  }
}
else {
  $existing = Get-ApplicationAccessPolicy -ErrorAction SilentlyContinue | Where-Object { $_.AppId -eq $AppId }
  if (-not $existing) {
    if ($PSCmdlet.ShouldProcess($AppId, 'New-ApplicationAccessPolicy RestrictAccess')) {
      New-ApplicationAccessPolicy -AppId $AppId -PolicyScopeGroupId $Group -AccessRight RestrictAccess `
        -Description "$($DisplayName) - archived users only" | Out-Null
    }
  }
  if ($TestMailbox) {
    Test-ApplicationAccessPolicy -Identity $TestMailbox -AppId $AppId | Format-List
  }
}
Write-Host "Done. Mail access for $AppId is limited to the members of $Group ($Mode)."
