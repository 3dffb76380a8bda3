// Telegram archive connector: the Azure side of `azd up`.
//
// Layout follows Azure-Samples/functions-quickstart-python-azd-eventgrid-blob: a subscription-scope
// main.bicep creating one resource group, modules under app/, a Flex Consumption (FC1) Python app
// with a user-assigned identity and identity-based AzureWebJobsStorage. The Event Grid
// subscription that feeds the `split` blob trigger needs the host's blobs_extension key, which
// exists only after the code is deployed: scripts/postdeploy.sh|ps1 deploy
// app/blob-events-subscription.bicep then (azure.yaml `postdeploy` hook).
//
// The names the code uses (shared/settings.py defaults, host.json) are in `names` below;
// tests/infra/contract.py fails the build if they drift apart.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; hashed into every resource name.')
param environmentName string

@minLength(1)
@description('Region for every resource (Flex Consumption must be available there).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the operator (azd sets AZURE_PRINCIPAL_ID): gets the data roles needed for `python -m shared mapping upload` / `report` and to set Key Vault secrets. Empty: none.')
param principalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = 'User'

// ---- TeleMessage -------------------------------------------------------------------------------

@description('TeleMessage export API base URL (TELEMESSAGE_BASE_URL).')
param telemessageBaseUrl string

@description('TeleMessage API user (TELEMESSAGE_USERNAME).')
param telemessageUsername string

@secure()
@description('TeleMessage API password. Written to Key Vault only; empty: set the secret `telemessage-password` yourself (docs/DEPLOY.md).')
param telemessagePassword string = ''

// ---- Microsoft Graph ---------------------------------------------------------------------------

@allowed([
  'managed_identity'
  'client_secret'
  'certificate'
])
@description('How the app authenticates to Graph. static_token is loopback-only and never deployed.')
param graphCredentialKind string = 'managed_identity'

param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('Tenant of the mailboxes; empty: this deployment\'s tenant.')
param graphTenantId string = ''

@description('App (client) id for client_secret/certificate; empty with managed_identity: the function identity.')
param graphClientId string = ''

@secure()
@description('Graph client secret (client_secret kind only). Written to Key Vault only.')
param graphClientSecret string = ''

@description('Path of the PEM/PFX certificate file (certificate kind only).')
param graphCertificatePath string = ''

// ---- Connector behaviour (defaults = shared/settings.py) -----------------------------------------

param archiveFolderName string = 'Telegram Archiver'

@minValue(1)
param maxItemBytes int = 10485760

@allowed([
  'skip'
  'stub'
  'import'
])
@description('Items over maxItemBytes: skip (recorded oversize), stub (imported with each attachment that does not fit replaced by a note; the original kept in the preserved container), import (whole, within Graph\'s limits).')
param oversizePolicy string = 'skip'

@allowed([
  'quarantine'
  'best_effort'
])
@description('Damaged EMLs (truncated or malformed MIME, missing or unparsable Date): quarantine, or best_effort (imported with what could be read, the original EML attached, marked).')
param damagedPolicy string = 'quarantine'

@minValue(1)
@maxValue(157286400)
@description('The archived mailboxes\' maximum message size (Exchange Online default 35 MB; set it to their MaxReceiveSize, up to 150 MB, for oversizePolicy import).')
param mailboxMaxMessageBytes int = 36700160

@description('NCRONTAB (6 fields, UTC) of the fetch timer.')
param fetchSchedule string = '0 30 1 * * *'

@minValue(1)
param fetchInitialLookbackHours int = 48

param autoMapping bool = true

@minValue(1)
@description('How often (seconds) the app checks config/mapping.csv for a new version.')
param mappingRefreshSeconds int = 60

@minValue(0)
param directoryCacheSeconds int = 3600

@minValue(1)
@description('First delay (seconds) before an item whose import failed is tried again; doubled per attempt.')
param retryBaseSeconds int = 30

@minValue(1)
@maxValue(604800)
@description('Longest delay (seconds) between two attempts of an item (a queue message waits at most 7 days).')
param retryMaxDelaySeconds int = 3600

@minValue(0)
@description('How long (seconds) after its first failure an item keeps being retried before it is failed and put in items-poison.')
param retryHorizonSeconds int = 86400

@minValue(1)
@maxValue(4)
param graphMaxConcurrencyPerMailbox int = 4

@description('NCRONTAB (6 fields, UTC) of the reconcile timer that publishes export reports.')
param reportSchedule string = '0 */10 * * * *'

@minValue(0)
@description('Minutes after a split before an export\'s report counts pending items as missing.')
param reportGraceMinutes int = 60

// ---- Storage protection ------------------------------------------------------------------------

@minValue(1)
@description('Item blobs (the `items` container) are deleted this many days after they were written.')
param itemsRetentionDays int = 30

@minValue(1)
@maxValue(365)
param blobSoftDeleteDays int = 14

@minValue(1)
@maxValue(365)
param containerSoftDeleteDays int = 14

@minValue(0)
@description('Days of WORM (time-based immutability) on the exports container; 0: none. Unlocked as deployed; lock it by hand once tested (docs/DEPLOY.md).')
param exportsImmutabilityDays int = 0

@minValue(1)
@maxValue(146000)
@description('Days of time-based retention (WORM) on the preserved container, which keeps attachments withheld from the mailbox. Unlocked as deployed; lock it once tested (docs/DEPLOY.md).')
param preservedRetentionDays int = 2555

@description('SFTP endpoint on the storage account so TeleMessage can deliver ZIPs into `exports`. Needs the hierarchical namespace, which can only be chosen when the account is created.')
param enableSftp bool = false

@description('OpenSSH public key of the TeleMessage SFTP user (not a secret). Empty: add the local user later.')
param sftpPublicKey string = ''

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSkuName string = 'Standard_GZRS'

// ---- Compute and monitoring --------------------------------------------------------------------

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Address that receives the alerts; empty: alerts fire without notifications.')
param alertEmail string = ''

@minValue(1)
@description('`graph throttled` log records in 15 minutes that count as sustained throttling.')
param throttleAlertThreshold int = 50

@description('Entra-only ingestion into Application Insights (the app identity has Monitoring Metrics Publisher).')
param appInsightsLocalAuthDisabled bool = true

@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

// The names the code uses: shared/settings.py defaults, and host.json for maxDequeueCount.
var names = {
  exportsContainer: 'exports'
  itemsContainer: 'items'
  reportsContainer: 'reports'
  quarantineContainer: 'quarantine'
  gateContainer: 'graph-gate'
  preservedContainer: 'preserved'
  configContainer: 'config'
  mappingBlob: 'config/mapping.csv'
  itemsQueue: 'items'
  itemsPoisonQueue: 'items-poison'
  replayQueue: 'replay'
  replayPoisonQueue: 'replay-poison'
  blobTriggerPoisonQueue: 'webjobs-blobtrigger-poison'
  stateTable: 'connectorstate'
  ledgerTable: 'ledger'
  outcomesTable: 'outcomes'
  deadLetterContainer: 'eventgrid-deadletter'
}

// host.json is the one source of the poison threshold (the code's last-attempt bookkeeping, the
// host's move to `items-poison`, and the poison alert all use it).
var maxDequeueCount = loadJsonContent('../host.json', '$.extensions.queues.maxDequeueCount')

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
var systemTopicName = 'evgt-${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionDays
    disableLocalAuth: appInsightsLocalAuthDisabled
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    exportsContainerName: names.exportsContainer
    itemsContainerName: names.itemsContainer
    reportsContainerName: names.reportsContainer
    quarantineContainerName: names.quarantineContainer
    gateContainerName: names.gateContainer
    preservedContainerName: names.preservedContainer
    configContainerName: names.configContainer
    deadLetterContainerName: names.deadLetterContainer
    itemsQueueName: names.itemsQueue
    itemsPoisonQueueName: names.itemsPoisonQueue
    replayQueueName: names.replayQueue
    replayPoisonQueueName: names.replayPoisonQueue
    blobTriggerPoisonQueueName: names.blobTriggerPoisonQueue
    stateTableName: names.stateTable
    ledgerTableName: names.ledgerTable
    outcomesTableName: names.outcomesTable
    itemsRetentionDays: itemsRetentionDays
    blobSoftDeleteDays: blobSoftDeleteDays
    containerSoftDeleteDays: containerSoftDeleteDays
    exportsImmutabilityDays: exportsImmutabilityDays
    preservedRetentionDays: preservedRetentionDays
    enableSftp: enableSftp
    sftpPublicKey: sftpPublicKey
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    telemessagePassword: telemessagePassword
    graphClientSecret: graphClientSecret
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: keyVault.outputs.name
    appPrincipalId: identity.outputs.principalId
    operatorPrincipalId: principalId
    operatorPrincipalType: principalType
    exportsContainerName: names.exportsContainer
    itemsContainerName: names.itemsContainer
    reportsContainerName: names.reportsContainer
    quarantineContainerName: names.quarantineContainer
    configContainerName: names.configContainer
    deadLetterContainerName: names.deadLetterContainer
    itemsQueueName: names.itemsQueue
    itemsPoisonQueueName: names.itemsPoisonQueue
    stateTableName: names.stateTable
    outcomesTableName: names.outcomesTable
  }
}

module functionApp 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultUri: keyVault.outputs.uri
    telemessagePasswordSecretName: keyVault.outputs.telemessagePasswordSecretName
    graphClientSecretName: keyVault.outputs.graphClientSecretName
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    telemessageBaseUrl: telemessageBaseUrl
    telemessageUsername: telemessageUsername
    graphBaseUrl: graphBaseUrl
    graphTenantId: empty(graphTenantId) ? tenant().tenantId : graphTenantId
    graphClientId: graphClientId
    graphCredentialKind: graphCredentialKind
    graphCertificatePath: graphCertificatePath
    archiveFolderName: archiveFolderName
    maxItemBytes: maxItemBytes
    oversizePolicy: oversizePolicy
    damagedPolicy: damagedPolicy
    mailboxMaxMessageBytes: mailboxMaxMessageBytes
    fetchSchedule: fetchSchedule
    fetchInitialLookbackHours: fetchInitialLookbackHours
    autoMapping: autoMapping
    mappingRefreshSeconds: mappingRefreshSeconds
    mappingBlob: names.mappingBlob
    exportsContainerName: names.exportsContainer
    itemsContainerName: names.itemsContainer
    reportsContainerName: names.reportsContainer
    quarantineContainerName: names.quarantineContainer
    gateContainerName: names.gateContainer
    preservedContainerName: names.preservedContainer
    itemsQueueName: names.itemsQueue
    replayQueueName: names.replayQueue
    stateTableName: names.stateTable
    ledgerTableName: names.ledgerTable
    outcomesTableName: names.outcomesTable
    directoryCacheSeconds: directoryCacheSeconds
    retryBaseSeconds: retryBaseSeconds
    retryMaxDelaySeconds: retryMaxDelaySeconds
    retryHorizonSeconds: retryHorizonSeconds
    graphMaxConcurrencyPerMailbox: graphMaxConcurrencyPerMailbox
    reportSchedule: reportSchedule
    reportGraceMinutes: reportGraceMinutes
    maxDequeueCount: maxDequeueCount
  }
  // The host must be able to read its storage before it starts.
  dependsOn: [
    rbac
  ]
}

module eventGrid 'app/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    name: systemTopicName
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    deadLetterContainerName: names.deadLetterContainer
  }
}

module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    actionGroupName: 'ag-${resourceToken}'
    alertEmail: alertEmail
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    systemTopicName: eventGrid.outputs.name
    throttleAlertThreshold: throttleAlertThreshold
    maxDequeueCount: maxDequeueCount
  }
}

module workbook 'app/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

// azd writes these into .azure/<env>/.env; the postdeploy hook, scripts/ and docs/DEPLOY.md
// use them. No secret, key or connection string is output.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output EXPORTS_CONTAINER_NAME string = names.exportsContainer
output EVENTGRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.name
output EVENTGRID_DEADLETTER_CONTAINER_NAME string = names.deadLetterContainer
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
