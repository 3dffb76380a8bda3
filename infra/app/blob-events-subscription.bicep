// Event Grid subscription: BlobCreated in `exports` -> the `split` blob trigger's webhook.
//
// Deployed by the azd postdeploy hook (scripts/postdeploy.sh|ps1) with
// `az deployment group create`, NOT by main.bicep: the webhook URL carries the host's
// blobs_extension system key, which exists only once the code has been deployed and the host
// has started. The key is read here with listKeys(), so it never passes through a shell, a
// parameter or the deployment history. Re-running it is safe (create-or-update).

@description('Function app name (azd output AZURE_FUNCTION_APP_NAME).')
param functionAppName string

@description('Event Grid system topic on the storage account (azd output EVENTGRID_SYSTEM_TOPIC_NAME).')
param systemTopicName string

@description('Storage account name (azd output AZURE_STORAGE_ACCOUNT_NAME).')
param storageAccountName string

param exportsContainerName string = 'exports'
param deadLetterContainerName string = 'eventgrid-deadletter'

@description('The blob-triggered function (function_app.py `split`).')
param functionName string = 'split'

param subscriptionName string = 'exports-blob-created'

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName

  resource host 'host' existing = {
    name: 'default'
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: subscriptionName
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${site.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${site::host.listKeys().systemKeys.blobs_extension}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${exportsContainerName}/'
      // Only fully committed blobs: block blob commits, copies, and (hierarchical namespace /
      // SFTP accounts) the final flush or SFTP commit, not the empty file a DFS/SFTP client
      // creates first.
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.api'
          values: [
            'PutBlob'
            'PutBlockList'
            'CopyBlob'
            'FlushWithClose'
            'SftpCommit'
          ]
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    // Undeliverable events land in `eventgrid-deadletter` (alert: export-event-dead-lettered).
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output name string = subscription.name
