# azd postdeploy hook (azure.yaml), Windows/PowerShell twin of postdeploy.sh: point Event Grid
# at the `split` blob trigger once the host's blobs_extension key exists, by deploying
# infra/app/blob-events-subscription.bicep (which reads the key itself with listKeys()).
# Safe to re-run.
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot

if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
  Write-Error 'The Azure CLI (az) is required; see docs/DEPLOY.md'
  exit 1
}

# azd passes the environment's values to hooks; load them when run by hand.
if (-not $env:AZURE_FUNCTION_APP_NAME -and (Get-Command azd -ErrorAction SilentlyContinue)) {
  foreach ($line in (& azd env get-values)) {
    if ($line -match '^([^#=][^=]*)=(.*)$') {
      [Environment]::SetEnvironmentVariable($Matches[1], ($Matches[2] -replace '^"|"$'))
    }
  }
}

foreach ($name in 'RESOURCE_GROUP', 'AZURE_FUNCTION_APP_NAME', 'AZURE_STORAGE_ACCOUNT_NAME',
                  'EVENTGRID_SYSTEM_TOPIC_NAME') {
  if (-not [Environment]::GetEnvironmentVariable($name)) {
    Write-Error "$name is not set (run from an azd environment after 'azd provision')"
    exit 1
  }
}
$exports = if ($env:EXPORTS_CONTAINER_NAME) { $env:EXPORTS_CONTAINER_NAME } else { 'exports' }
$deadLetter = if ($env:EVENTGRID_DEADLETTER_CONTAINER_NAME) { $env:EVENTGRID_DEADLETTER_CONTAINER_NAME } else { 'eventgrid-deadletter' }
$pollSeconds = if ($env:POSTDEPLOY_POLL_SECONDS) { [int]$env:POSTDEPLOY_POLL_SECONDS } else { 10 }

Write-Host "Waiting for the blobs_extension key of $($env:AZURE_FUNCTION_APP_NAME)..."
$attempt = 0
while ($true) {
  $attempt++
  # Only tested for presence; never printed.
  $key = az functionapp keys list --resource-group $env:RESOURCE_GROUP `
    --name $env:AZURE_FUNCTION_APP_NAME --query 'systemKeys.blobs_extension' --output tsv 2>$null
  if ($key) { break }
  if ($attempt -ge 30) {
    Write-Error "No blobs_extension key after $attempt tries. Is the app running and the 'split' function indexed? See docs/DEPLOY.md, 'Troubleshooting'."
    exit 1
  }
  Start-Sleep -Seconds $pollSeconds
}
$key = $null

Write-Host "Creating/updating the Event Grid subscription (BlobCreated in '$exports' -> split)..."
az deployment group create `
  --resource-group $env:RESOURCE_GROUP `
  --name exports-blob-events `
  --template-file (Join-Path $root 'infra/app/blob-events-subscription.bicep') `
  --parameters `
    "functionAppName=$($env:AZURE_FUNCTION_APP_NAME)" `
    "systemTopicName=$($env:EVENTGRID_SYSTEM_TOPIC_NAME)" `
    "storageAccountName=$($env:AZURE_STORAGE_ACCOUNT_NAME)" `
    "exportsContainerName=$exports" `
    "deadLetterContainerName=$deadLetter" `
  --only-show-errors --output none
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

Write-Host "Event Grid subscription ready: new blobs in '$exports' now trigger 'split'."
