#!/bin/sh
# azd postdeploy hook (azure.yaml): point Event Grid at the `split` blob trigger.
#
# On Flex Consumption a blob trigger runs only from Event Grid: a BlobCreated subscription on
# the storage account's system topic must call
#   https://<app>/runtime/webhooks/blobs?functionName=Host.Functions.split&code=<blobs_extension>
# and the blobs_extension system key exists only once the code is deployed and the host has
# started. This waits for the key, then deploys infra/app/blob-events-subscription.bicep, which
# reads the key itself with listKeys() (it never passes through this shell). Safe to re-run.
#
# By hand: `azd env get-values` supplies the names; or export RESOURCE_GROUP,
# AZURE_FUNCTION_APP_NAME, AZURE_STORAGE_ACCOUNT_NAME, EVENTGRID_SYSTEM_TOPIC_NAME first.
set -eu

root=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)

if ! command -v az >/dev/null 2>&1; then
  echo "error: the Azure CLI (az) is required; see docs/DEPLOY.md" >&2
  exit 1
fi

# azd passes the environment's values to hooks; load them when run by hand.
if [ -z "${AZURE_FUNCTION_APP_NAME:-}" ] && command -v azd >/dev/null 2>&1; then
  tmp=$(mktemp)
  azd env get-values >"$tmp"
  while IFS='=' read -r key value; do
    case "$key" in
      ''|\#*) continue ;;
    esac
    value=$(printf '%s' "$value" | sed -e 's/^"//' -e 's/"$//')
    export "$key=$value"
  done <"$tmp"
  rm -f "$tmp"
fi

for name in RESOURCE_GROUP AZURE_FUNCTION_APP_NAME AZURE_STORAGE_ACCOUNT_NAME \
            EVENTGRID_SYSTEM_TOPIC_NAME; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "error: $name is not set (run from an azd environment after 'azd provision')" >&2
    exit 1
  fi
done

echo "Waiting for the blobs_extension key of $AZURE_FUNCTION_APP_NAME..."
attempt=0
while :; do
  attempt=$((attempt + 1))
  # Only tested for presence; never printed.
  key=$(az functionapp keys list --resource-group "$RESOURCE_GROUP" \
          --name "$AZURE_FUNCTION_APP_NAME" --query "systemKeys.blobs_extension" \
          --output tsv 2>/dev/null || true)
  if [ -n "$key" ]; then
    break
  fi
  if [ "$attempt" -ge 30 ]; then
    echo "error: no blobs_extension key after $attempt tries. Is the app running and the" >&2
    echo "       'split' function indexed? See docs/DEPLOY.md, 'Troubleshooting'." >&2
    exit 1
  fi
  sleep "${POSTDEPLOY_POLL_SECONDS:-10}"
done
key=''

echo "Creating/updating the Event Grid subscription (BlobCreated in" \
     "'${EXPORTS_CONTAINER_NAME:-exports}' -> split)..."
az deployment group create \
  --resource-group "$RESOURCE_GROUP" \
  --name exports-blob-events \
  --template-file "$root/infra/app/blob-events-subscription.bicep" \
  --parameters \
    functionAppName="$AZURE_FUNCTION_APP_NAME" \
    systemTopicName="$EVENTGRID_SYSTEM_TOPIC_NAME" \
    storageAccountName="$AZURE_STORAGE_ACCOUNT_NAME" \
    exportsContainerName="${EXPORTS_CONTAINER_NAME:-exports}" \
    deadLetterContainerName="${EVENTGRID_DEADLETTER_CONTAINER_NAME:-eventgrid-deadletter}" \
  --only-show-errors --output none

echo "Event Grid subscription ready: new blobs in" \
     "'${EXPORTS_CONTAINER_NAME:-exports}' now trigger 'split'."
