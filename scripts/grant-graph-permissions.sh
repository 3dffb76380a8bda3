#!/usr/bin/env bash
# Give the connector's identity the Microsoft Graph application permissions it needs, then
# print the Exchange Online commands that limit it to the archived mailboxes.
#
#   scripts/grant-graph-permissions.sh [--mode rbac|policy|tenant] [--principal-id ID | --app-id ID]
#                                       [--group ADDRESS] [--dry-run]
#
# The code calls Graph for users (GET /users/{id}: User.Read.All) and mail (folders, messages,
# attachments, upload sessions in the archived users' mailboxes: Mail.ReadWrite).
#
# --mode rbac    (default, recommended) Entra gets User.Read.All only; mailbox access is granted
#                in Exchange Online with RBAC for Applications ("Application Mail.ReadWrite"
#                limited to a management scope). An Entra Mail.ReadWrite grant would be
#                tenant-wide and would override that scope, so it is not granted (and flagged).
# --mode policy  Entra gets Mail.ReadWrite + User.Read.All; an application access policy
#                (New-ApplicationAccessPolicy -AccessRight RestrictAccess) limits mail access to
#                a mail-enabled security group. Microsoft now recommends RBAC for Applications.
# --mode tenant  Entra Mail.ReadWrite for every mailbox in the tenant. Not recommended.
#
# The principal defaults to the function app's user-assigned identity (azd output
# AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID). For GRAPH_CREDENTIAL_KIND client_secret/certificate,
# pass the app registration's --app-id instead.
#
# Needs: Azure CLI signed in (`az login`) as a Privileged Role Administrator (or Global
# Administrator) of the tenant that holds the mailboxes: granting application permissions of
# Microsoft Graph is admin consent.
set -euo pipefail

GRAPH_APP_ID=00000003-0000-0000-c000-000000000000
GRAPH=https://graph.microsoft.com/v1.0
mode=rbac
principal_id=""
app_id=""
group="<mail-enabled security group of the archived users>"
dry_run=0

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --mode) mode="$2"; shift 2 ;;
    --principal-id) principal_id="$2"; shift 2 ;;
    --app-id) app_id="$2"; shift 2 ;;
    --group) group="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
done

case "$mode" in
  rbac) roles=(User.Read.All) ;;
  policy|tenant) roles=(Mail.ReadWrite User.Read.All) ;;
  *) echo "error: --mode must be rbac, policy or tenant" >&2; exit 2 ;;
esac

command -v az >/dev/null || { echo "error: the Azure CLI (az) is required" >&2; exit 1; }

if [[ -z "$principal_id" && -z "$app_id" ]]; then
  principal_id="${AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID:-}"
  if [[ -z "$principal_id" ]] && command -v azd >/dev/null; then
    principal_id=$(azd env get-value AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID 2>/dev/null || true)
  fi
  [[ -n "$principal_id" ]] || {
    echo "error: no principal: run inside the azd environment or pass --principal-id/--app-id" >&2
    exit 2
  }
fi

# The service principal (enterprise application) of the identity: for a managed identity its
# object id is the identity's principalId and its appId is the identity's client id.
sp_query='[id, appId, displayName]'
if [[ -n "$app_id" ]]; then
  read -r sp_id sp_app_id sp_name < <(az ad sp show --id "$app_id" --query "$sp_query" -o tsv)
else
  read -r sp_id sp_app_id sp_name < <(az ad sp show --id "$principal_id" --query "$sp_query" -o tsv)
fi
graph_sp=$(az ad sp show --id "$GRAPH_APP_ID" --query id -o tsv)
echo "Principal: $sp_name (service principal $sp_id, app id $sp_app_id); mode: $mode"

role_id() {
  az ad sp show --id "$GRAPH_APP_ID" -o tsv --query \
    "appRoles[?value=='$1' && contains(allowedMemberTypes, 'Application')].id | [0]"
}

assigned() {
  az rest --method get --url "$GRAPH/servicePrincipals/$sp_id/appRoleAssignments" -o tsv \
    --query "value[?appRoleId=='$1' && resourceId=='$graph_sp'].id | [0]"
}

for role in "${roles[@]}"; do
  id=$(role_id "$role")
  [[ -n "$id" ]] || { echo "error: Microsoft Graph has no application role $role" >&2; exit 1; }
  if [[ -n "$(assigned "$id")" ]]; then
    echo "  $role: already granted"
  elif [[ $dry_run -eq 1 ]]; then
    echo "  $role: would grant (dry run)"
  else
    az rest --method post --url "$GRAPH/servicePrincipals/$sp_id/appRoleAssignments" \
      --headers Content-Type=application/json --output none \
      --body "{\"principalId\":\"$sp_id\",\"resourceId\":\"$graph_sp\",\"appRoleId\":\"$id\"}"
    echo "  $role: granted"
  fi
done

if [[ "$mode" == rbac ]]; then
  mail_id=$(role_id Mail.ReadWrite)
  existing=$(assigned "$mail_id")
  if [[ -n "$existing" ]]; then
    echo
    echo "WARNING: $sp_name holds tenant-wide Mail.ReadWrite in Entra ID. Exchange RBAC for"
    echo "Applications cannot narrow an Entra grant (the two add up). Remove it with:"
    echo "  az rest --method delete --url $GRAPH/servicePrincipals/$sp_id/appRoleAssignments/$existing"
  fi
fi

echo
case "$mode" in
  rbac)
    cat <<EOT
Next, in PowerShell with the ExchangeOnlineManagement module, as an Exchange administrator,
limit mail access to the archived users (members of $group):

  ./scripts/scope-mailbox-access.ps1 -Mode Rbac -AppId $sp_app_id -ServicePrincipalObjectId $sp_id \\
      -Group '$group' -TestMailbox <an archived user's address> -OutsideMailbox <anyone else's>

which runs:
  New-ServicePrincipal -AppId $sp_app_id -ObjectId $sp_id -DisplayName '$sp_name'
  New-ManagementScope -Name 'Telegram archive mailboxes' -RecipientRestrictionFilter "MemberOfGroup -eq '<group DN, quotes doubled>'"
  New-ManagementRoleAssignment -App $sp_app_id -Role 'Application Mail.ReadWrite' -CustomResourceScope 'Telegram archive mailboxes'
  Test-ServicePrincipalAuthorization -Identity $sp_app_id -Resource <each of the two mailboxes>
and stops with an error if an existing service principal, scope or role assignment differs.
EOT
    ;;
  policy)
    cat <<EOT
Next, in PowerShell with the ExchangeOnlineManagement module, as an Exchange administrator,
restrict the tenant-wide Mail.ReadWrite to the archived users (members of $group):

  ./scripts/scope-mailbox-access.ps1 -Mode Policy -AppId $sp_app_id -Group '$group' \\
      -TestMailbox <an archived user's address> -OutsideMailbox <anyone else's>

which runs:
  New-ApplicationAccessPolicy -AppId $sp_app_id -PolicyScopeGroupId '$group' -AccessRight RestrictAccess -Description 'Telegram archive connector'
  Test-ApplicationAccessPolicy -Identity <each of the two mailboxes> -AppId $sp_app_id
and stops with an error if an existing policy for the app is not RestrictAccess on the group.
EOT
    ;;
  tenant)
    echo "The identity can now write to EVERY mailbox in the tenant. Prefer --mode rbac."
    ;;
esac
