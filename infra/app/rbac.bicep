// Data-plane role assignments. The app identity gets exactly one role per storage service the
// code and the Functions host touch, plus telemetry and Key Vault reference rights; the operator
// (optional) gets what the admin CLI (`python -m shared ...`) and setting secrets by hand need,
// each scoped to the containers, queues and tables those commands use.
//
// The same account holds the deployment package (app-package-*) and the host's keys
// (azure-webjobs-secrets). Whoever can write the package runs code as the app identity, which
// holds Graph Mail.ReadWrite; whoever reads the keys can call the host's admin API. So no
// principal but the app identity gets a blob role that reaches those containers (account or
// blob-service scope), and tests/infra/contract.py fails the build if one does.
// tests/infra/contract.py also checks that blob, queue and table are each covered for the app.

param storageAccountName string
param applicationInsightsName string
param keyVaultName string

@description('Principal (object) id of the function app\'s user-assigned identity.')
param appPrincipalId string

@description('Operator object id; empty: no operator assignments.')
param operatorPrincipalId string = ''
param operatorPrincipalType string = 'User'

// The data the operator's admin commands touch (names from main.bicep).
param exportsContainerName string
param itemsContainerName string
param reportsContainerName string
param quarantineContainerName string
param configContainerName string
param deadLetterContainerName string
param itemsQueueName string
param itemsPoisonQueueName string
param stateTableName string
param outcomesTableName string

// Built-in role definition ids.
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource exportsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: exportsContainerName
}

resource itemsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: itemsContainerName
}

resource reportsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: reportsContainerName
}

resource quarantineContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: quarantineContainerName
}

resource configContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: configContainerName
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource itemsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: itemsQueueName
}

resource itemsPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: itemsPoisonQueueName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource stateTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: stateTableName
}

resource outcomesTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: outcomesTableName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// ---- Function app identity ----------------------------------------------------------------------

// Blob: Storage Blob Data Owner on the account, the role Azure Functions documents for the host's
// own storage (AzureWebJobsStorage) with identity-based connections: the host creates its
// containers (azure-webjobs-hosts, -secrets), takes blob leases (singleton/timer), keeps the
// timer schedule monitor and its keys there, and Flex reads the deployment package from the
// same account. The connector's own blob work (write exports and items, read mapping.csv, write
// reports, lease the Graph mailbox slots in graph-gate) needs no more than that, so there is
// no separate assignment for it.
resource appBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Queue: Storage Queue Data Contributor. The `split` function sends to `items`, the queue
// trigger peeks/dequeues/deletes/updates visibility on `items`, and the host writes the poison
// queues (`items-poison`, `webjobs-blobtrigger-poison`), creating them if missing. Reader,
// Sender and Message Processor each cover only part of that.
resource appQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Table: Storage Table Data Contributor. The connector reads and upserts entities in
// connectorstate, ledger and outcomes (checkpoints, idempotency ledger, per-item outcomes);
// Table Data Reader cannot write. (The tables are created by this template.)
resource appTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Application Insights with local auth disabled accepts telemetry only with an Entra token from
// an identity holding Monitoring Metrics Publisher on the component.
resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault references: the platform reads the secrets with the app's identity. Read-only on
// secret values; the vault holds nothing but this connector's secrets.
resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- Operator (optional) ------------------------------------------------------------------------
// Container, queue and table scope only: never the deployment package, the host's containers
// (azure-webjobs-hosts, azure-webjobs-secrets) or its queues.

// `python -m shared mapping upload` writes config/mapping.csv.
resource operatorConfigWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(configContainer.id, operatorPrincipalId, storageBlobDataContributor)
  scope: configContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// `replay` reads exports; an export can be uploaded by hand (docs/DEPLOY.md). Soft delete
// and the optional WORM policy protect what is there.
resource operatorExportsWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(exportsContainer.id, operatorPrincipalId, storageBlobDataContributor)
  scope: exportsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// `replay` re-splits exports and items, which writes item blobs.
resource operatorItemsWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(itemsContainer.id, operatorPrincipalId, storageBlobDataContributor)
  scope: itemsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// Reading the published reports.
resource operatorReportsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(reportsContainer.id, operatorPrincipalId, storageBlobDataReader)
  scope: reportsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// Looking at refused export members.
resource operatorQuarantineReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(quarantineContainer.id, operatorPrincipalId, storageBlobDataReader)
  scope: quarantineContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// Reading undelivered export events, to replay the exports they name.
resource operatorDeadLetterReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(deadLetterContainer.id, operatorPrincipalId, storageBlobDataReader)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// `python -m shared status` (queue depths) and `replay` (sends to the items queue).
resource operatorItemsQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(itemsQueue.id, operatorPrincipalId, storageQueueDataContributor)
  scope: itemsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// `replay poison` moves messages from items-poison back to items.
resource operatorPoisonQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(itemsPoisonQueue.id, operatorPrincipalId, storageQueueDataContributor)
  scope: itemsPoisonQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// `report` / `status` read connectorstate and outcomes; `replay` re-splits exports, which
// writes them (a reader could not). The ledger is the app's alone.
resource operatorStateTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(stateTable.id, operatorPrincipalId, storageTableDataContributor)
  scope: stateTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource operatorOutcomesTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(outcomesTable.id, operatorPrincipalId, storageTableDataContributor)
  scope: outcomesTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// Setting/rotating the TeleMessage password and Graph client secret by hand.
resource operatorSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}
