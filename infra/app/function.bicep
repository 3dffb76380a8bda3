// Flex Consumption (FC1) plan and the Python 3.11 function app, with every app setting the code
// reads (shared/settings.py). Runtime, version, scale and the deployment package location live in
// functionAppConfig: on Flex, FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION,
// WEBSITE_RUN_FROM_PACKAGE and the WEBSITE_CONTENT* settings are not app settings.

param name string
param planName string
param location string
param tags object

@description('Resource id of the user-assigned identity.')
param identityId string
param identityClientId string

param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param keyVaultUri string
param telemessagePasswordSecretName string
param graphClientSecretName string

param maximumInstanceCount int
param instanceMemoryMB int

param telemessageBaseUrl string
param telemessageUsername string
param graphBaseUrl string
param graphTenantId string
param graphClientId string
param graphCredentialKind string
param graphCertificatePath string
param archiveFolderName string
param maxItemBytes int
param fetchSchedule string
param fetchInitialLookbackHours int
param autoMapping bool
param mappingRefreshSeconds int
param mappingBlob string
param exportsContainerName string
param itemsContainerName string
param reportsContainerName string
param quarantineContainerName string
param gateContainerName string
param preservedContainerName string
param itemsQueueName string
param replayQueueName string
param stateTableName string
param ledgerTableName string
param outcomesTableName string
param directoryCacheSeconds int
param retryBaseSeconds int
param retryMaxDelaySeconds int
param retryHorizonSeconds int
param graphMaxConcurrencyPerMailbox int
param reportSchedule string
param reportGraceMinutes int
param maxDequeueCount int
param oversizePolicy string
param damagedPolicy string
param mailboxMaxMessageBytes int

// azd finds the app to deploy to by this tag (azure.yaml service `connector`).
var serviceName = 'connector'

// With the managed_identity kind, the code builds ManagedIdentityCredential(client_id=
// GRAPH_CLIENT_ID or None); a user-assigned identity must be named, so default to ours.
var effectiveGraphClientId = (graphCredentialKind == 'managed_identity' && empty(graphClientId)) ? identityClientId : graphClientId

var telemessagePasswordReference = '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${telemessagePasswordSecretName}/)'
var graphClientSecretReference = '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${graphClientSecretName}/)'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  //checkov:skip=CKV_AZURE_225:Zone redundancy for Flex Consumption is region-dependent. All triggers are durable and retried (Event Grid 24 h with dead-lettering, storage queue, daily idempotent fetch), so a zone outage delays archiving without losing data.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_222:Event Grid must reach the host's blob-trigger webhook (/runtime/webhooks/blobs, protected by the blobs_extension system key) and operators call the `replay` HTTP function (function key, HTTPS only); this deployment has no VNet/private endpoint.
  //checkov:skip=CKV_AZURE_17:Event Grid's webhook delivery presents no client certificate; the blob webhook is protected by the host system key and `replay` by a function key.
  //checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero per trigger; the triggers are asynchronous and retried (timer, storage queue, Event Grid), so always-ready instances would add cost without preventing loss.
  //checkov:skip=CKV_AZURE_213:The only HTTP function is the operator's `replay` API; Flex Consumption scales instances per trigger from zero, so there is no always-on instance pool for a health-check path to rotate.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Event Grid calls the host's blob webhook (system key) and operators the `replay` API
    // (function key) over the internet.
    publicNetworkAccess: 'Enabled'
    // Key Vault references resolve with the user-assigned identity, not a system identity.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Every setting shared/settings.py reads is here (tests/infra/contract.py checks it), except
// the documented exceptions in contract.py (AzureWebJobsStorage as a connection string and
// GRAPH_STATIC_TOKEN, which are local-only).
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13:False positive: this is the `appsettings` config (application settings), not `authsettingsV2`. The blob webhook needs the host system key and `replay` a function key (docs/DEPLOY.md shows how to add Entra authentication in front of `replay`).
  //checkov:skip=CKV_AZURE_63:False positive: `appsettings` holds application settings, not the `web` config where HTTP logging lives. Telemetry goes to Application Insights.
  //checkov:skip=CKV_AZURE_65:False positive: `appsettings` holds application settings, not the `web` config (detailed error pages are off by default).
  //checkov:skip=CKV_AZURE_66:False positive: `appsettings` holds application settings, not the `web` config (failed request tracing); requests are traced in Application Insights.
  //checkov:skip=CKV_AZURE_80:False positive: a Python app; `appsettings` has no .NET Framework version.
  //checkov:skip=CKV_AZURE_88:False positive: Flex Consumption runs from the deployment blob container (functionAppConfig), not from an Azure Files content share.
  //checkov:skip=CKV_AZURE_222:False positive on the `appsettings` child; see the site resource for why public network access is enabled.
  parent: site
  name: 'appsettings'
  properties: {
    // Host and connector storage, identity-based (shared keys are disabled on the account).
    AzureWebJobsStorage__accountName: storage.name
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
    AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
    AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
    // Telemetry; Entra-authenticated ingestion with the same identity.
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // DefaultAzureCredential (e.g. an OpenTelemetry exporter) picks the user-assigned identity.
    AZURE_CLIENT_ID: identityClientId
    // TeleMessage; the password only as a Key Vault reference.
    TELEMESSAGE_BASE_URL: telemessageBaseUrl
    TELEMESSAGE_USERNAME: telemessageUsername
    TELEMESSAGE_PASSWORD: telemessagePasswordReference
    // Microsoft Graph.
    GRAPH_BASE_URL: graphBaseUrl
    GRAPH_TENANT_ID: graphTenantId
    GRAPH_CLIENT_ID: effectiveGraphClientId
    GRAPH_CREDENTIAL_KIND: graphCredentialKind
    GRAPH_CLIENT_SECRET: graphCredentialKind == 'client_secret' ? graphClientSecretReference : ''
    GRAPH_CERTIFICATE_PATH: graphCertificatePath
    // Connector behaviour.
    ARCHIVE_FOLDER_NAME: archiveFolderName
    MAX_ITEM_BYTES: string(maxItemBytes)
    OVERSIZE_POLICY: oversizePolicy
    DAMAGED_POLICY: damagedPolicy
    MAILBOX_MAX_MESSAGE_BYTES: string(mailboxMaxMessageBytes)
    FETCH_SCHEDULE: fetchSchedule
    FETCH_INITIAL_LOOKBACK_HOURS: string(fetchInitialLookbackHours)
    AUTO_MAPPING: autoMapping ? 'true' : 'false'
    MAPPING_REFRESH_SECONDS: string(mappingRefreshSeconds)
    DIRECTORY_CACHE_SECONDS: string(directoryCacheSeconds)
    RETRY_BASE_SECONDS: string(retryBaseSeconds)
    RETRY_MAX_DELAY_SECONDS: string(retryMaxDelaySeconds)
    RETRY_HORIZON_SECONDS: string(retryHorizonSeconds)
    GRAPH_MAX_CONCURRENCY_PER_MAILBOX: string(graphMaxConcurrencyPerMailbox)
    MAX_DEQUEUE_COUNT: string(maxDequeueCount)
    REPORT_SCHEDULE: reportSchedule
    REPORT_GRACE_MINUTES: string(reportGraceMinutes)
    // Resource names (created by storage.bicep from the same values).
    MAPPING_BLOB: mappingBlob
    EXPORTS_CONTAINER: exportsContainerName
    ITEMS_CONTAINER: itemsContainerName
    REPORTS_CONTAINER: reportsContainerName
    QUARANTINE_CONTAINER: quarantineContainerName
    GATE_CONTAINER: gateContainerName
    PRESERVED_CONTAINER: preservedContainerName
    ITEMS_QUEUE: itemsQueueName
    REPLAY_QUEUE: replayQueueName
    STATE_TABLE: stateTableName
    LEDGER_TABLE: ledgerTableName
    OUTCOMES_TABLE: outcomesTableName
  }
}

// Deployment is Entra-authenticated (azd); no FTP or SCM basic-auth publishing credentials.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
