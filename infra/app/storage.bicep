// The one storage account: the Functions host's own storage (AzureWebJobsStorage: leases, timer
// schedule, keys, deployment package) and the connector's data, which the code reaches through
// the same identity-based AzureWebJobsStorage settings (shared/clients.py).
//
//   blob   exports (raw TeleMessage ZIPs, protected), items (one blob per queued item, deleted by
//          the lifecycle rule), reports, quarantine, preserved (attachments withheld from the
//          mailbox, WORM), config (mapping.csv), the deployment package, and the Event Grid
//          dead-letter container
//   queue  items, items-poison (host moves messages there after maxDequeueCount), replay and
//          replay-poison (replay jobs from the HTTP function), and
//          webjobs-blobtrigger-poison (the host's poison queue for the `split` blob trigger)
//   table  connectorstate, ledger, outcomes
//
// Only Entra ID (RBAC) access: shared keys and SAS are disabled, nothing is public.

param name string
param location string
param tags object
param skuName string
param deploymentContainerName string
param exportsContainerName string
param itemsContainerName string
param reportsContainerName string
param quarantineContainerName string
@description('Graph\'s per-mailbox concurrency slots: one small blob per slot, leased by the worker processes (shared/mailbox_slots.py).')
param gateContainerName string
param preservedContainerName string
param configContainerName string
param deadLetterContainerName string
param itemsQueueName string
param itemsPoisonQueueName string
param replayQueueName string
param replayPoisonQueueName string
param blobTriggerPoisonQueueName string
param stateTableName string
param ledgerTableName string
param outcomesTableName string
param itemsRetentionDays int
param blobSoftDeleteDays int
param containerSoftDeleteDays int
param exportsImmutabilityDays int
param preservedRetentionDays int
param enableSftp bool
param sftpPublicKey string
param logAnalyticsWorkspaceId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35:No VNet in this deployment: Flex Consumption without VNet integration, Event Grid and TeleMessage SFTP reach the account over its public endpoint. Access is Entra-only (allowSharedKeyAccess false, no SAS, no public blobs) and scoped by RBAC instead of by IP.
  //checkov:skip=CKV_AZURE_59:Same as CKV_AZURE_35: public network access stays enabled for the app (no VNet), Event Grid and SFTP; every data request needs an Entra token (shared keys disabled, allowBlobPublicAccess false).
  //checkov:skip=CKV_AZURE_206:Replication is the storageSkuName parameter of main.bicep (default Standard_GZRS, LRS not the default); checkov cannot resolve a module parameter.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    // SFTP needs the hierarchical namespace, which cannot be switched on after creation.
    isHnsEnabled: enableSftp
    isSftpEnabled: enableSftp
    isLocalUserEnabled: enableSftp
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

// ---- Blob ---------------------------------------------------------------------------------------

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    // Raw exports are the source of truth: a deleted blob or container can be undeleted.
    deleteRetentionPolicy: {
      enabled: true
      days: blobSoftDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: containerSoftDeleteDays
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource exportsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: exportsContainerName
  properties: {
    publicAccess: 'None'
  }
}

// WORM on the raw exports: blobs can be created (the fetcher never overwrites one) but not
// changed or deleted for N days. Deployed unlocked; lock it once satisfied (docs/DEPLOY.md),
// after which the period can only be extended.
resource exportsImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (exportsImmutabilityDays > 0) {
  parent: exportsContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: exportsImmutabilityDays
    allowProtectedAppendWrites: false
  }
}

resource itemsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: itemsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource reportsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: reportsContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Export members the splitter rejected (kept as evidence; no lifecycle rule).
resource quarantineContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: quarantineContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Graph's 4-requests-per-mailbox slots, shared by every instance and worker process as leases.
resource gateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: gateContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Attachments withheld from the mailbox (OVERSIZE_POLICY=stub): the note that replaces each one
// in the mailbox points here. Written once per attachment, never changed or deleted for
// preservedRetentionDays (time-based retention; lock it like the exports policy, docs/DEPLOY.md).
resource preservedContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: preservedContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource preservedImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = {
  parent: preservedContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: preservedRetentionDays
    allowProtectedAppendWrites: false
  }
}

resource configContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: configContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Item blobs are transient (one per queued item; the mailbox holds the archived copy).
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-item-blobs'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${itemsContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: itemsRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    itemsContainer
  ]
}

// ---- Queue --------------------------------------------------------------------------------------

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource itemsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: itemsQueueName
}

resource itemsPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: itemsPoisonQueueName
}

// Replay jobs asked for over HTTP (the `replay_job` queue trigger) and its poison queue.
resource replayQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: replayQueueName
}

resource replayPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: replayPoisonQueueName
}

resource blobTriggerPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: blobTriggerPoisonQueueName
}

// ---- Table --------------------------------------------------------------------------------------

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource stateTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: stateTableName
}

resource ledgerTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: ledgerTableName
}

resource outcomesTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: outcomesTableName
}

// ---- SFTP (optional) ----------------------------------------------------------------------------

// TeleMessage's SFTP delivery writes ZIPs straight into `exports` (create/write/list only; it
// cannot read or delete archived exports). Key-based login only.
resource sftpUser 'Microsoft.Storage/storageAccounts/localUsers@2023-05-01' = if (enableSftp && !empty(sftpPublicKey)) {
  parent: account
  name: 'telemessage'
  properties: {
    homeDirectory: exportsContainerName
    hasSharedKey: false
    hasSshKey: true
    hasSshPassword: false
    permissionScopes: [
      {
        service: 'blob'
        resourceName: exportsContainerName
        permissions: 'cwl'
      }
    ]
    sshAuthorizedKeys: [
      {
        description: 'TeleMessage SFTP delivery'
        key: sftpPublicKey
      }
    ]
  }
  dependsOn: [
    exportsContainer
  ]
}

// ---- Audit logs to Log Analytics ----------------------------------------------------------------

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: queueService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: tableService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
