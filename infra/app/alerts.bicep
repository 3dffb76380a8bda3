// Alerts, all sent to one action group (an email address, parameter).
//
// The log alerts query the `traces` of Application Insights. They rely on these log records
// (logging `extra` becomes customDimensions):
//   "export report"  customDimensions: export, reconciled ("True"/"False"), discrepancy
//   "fetch run"      customDimensions: error (empty when the run succeeded)
//   "graph throttled"
// and on the Functions host's own warning when it moves a message to a poison queue
// ("Message has reached MaxDequeueCount of N. Moving message to queue '<queue>-poison'.").
// tests/infra/kql_contract.py checks that the queries read only events and customDimensions the
// code emits. The same queries are in docs/DEPLOY.md for use in the portal. The rules are stateful
// (autoMitigate): one notification when the condition appears, resolved when it is gone, rather
// than one per evaluation (the reconcile timer re-logs an unreconciled export every 10 minutes).

param location string
param tags object
param actionGroupName string
param alertEmail string
param applicationInsightsName string
param systemTopicName string
param throttleAlertThreshold int

@description('host.json extensions.queues.maxDequeueCount: the delivery after which a message is poisoned.')
param maxDequeueCount int

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'tgarchive'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// A message reached maxDequeueCount and sits in `items-poison` (or an export event in
// `webjobs-blobtrigger-poison`) until someone replays it. Storage exposes no per-queue metrics,
// so the moment of poisoning is detected in the logs: the host's warning, or the connector's
// own "import attempt failed" on the last delivery.
resource poisonAlert 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'poison-queue-not-empty'
  location: location
  tags: tags
  properties: {
    displayName: 'Telegram archive: message moved to a poison queue'
    description: 'A queue message (item import) or blob event (export split) exhausted its retries and is in a poison queue. See docs/DEPLOY.md "Alerts": inspect the failure, fix, replay.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'traces | where (message has "MaxDequeueCount" and message contains "poison") or (message == "import attempt failed" and toint(customDimensions.dequeue_count) >= ${maxDequeueCount}) | project timestamp, message, cloud_RoleInstance'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// An export whose per-item outcomes do not add up to its manifest (lost or duplicated items).
resource reconcileAlert 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'export-not-reconciled'
  location: location
  tags: tags
  properties: {
    displayName: 'Telegram archive: export report does not reconcile'
    description: 'An "export report" log record has reconciled == False; customDimensions.export names the export and discrepancy says what does not add up. Run `python -m shared report DAY`.'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'traces | where message == "export report" | where tostring(customDimensions.reconciled) =~ "false" | project timestamp, export = tostring(customDimensions.export), discrepancy = tostring(customDimensions.discrepancy)'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// The daily fetch has not succeeded for 26 hours (daily schedule plus slack). Fires also when
// nothing is logged at all (app stopped, telemetry broken). Evaluated hourly over a 2-day query
// range (overrideQueryTimeRange; the aggregation window itself cannot be that long), which the
// query narrows to 26 hours.
resource fetchAlert 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'no-successful-fetch-26h'
  location: location
  tags: tags
  properties: {
    displayName: 'Telegram archive: no successful fetch in 26 hours'
    description: 'No "fetch run" log record without an error in the last 26 hours. Check the fetch function\'s failures, the TeleMessage credentials (Key Vault reference status) and the timer.'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    overrideQueryTimeRange: 'P2D'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          // One row (no time column, so no binning) exactly when there was no success.
          query: 'let ok = toscalar(traces | where timestamp > ago(26h) | where message == "fetch run" | where isempty(tostring(customDimensions.error)) | count); print successful_fetches_26h = ok | where successful_fetches_26h == 0'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// Graph keeps answering 429/503: imports slow down and retries pile up.
resource throttleAlert 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'graph-throttling-sustained'
  location: location
  tags: tags
  properties: {
    displayName: 'Telegram archive: sustained Graph throttling'
    description: 'More than ${throttleAlertThreshold} "graph throttled" log records in 15 minutes. Consider lowering GRAPH_MAX_CONCURRENCY_PER_MAILBOX or maximumInstanceCount.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'traces | where message == "graph throttled" | project timestamp'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: throttleAlertThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// Event Grid gave up on a BlobCreated event (dead-lettered after its retries, or dropped): an
// export that will not be split until its event is replayed (docs/DEPLOY.md). One rule per
// metric: criteria in one rule are ANDed.
resource deadLetteredAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'export-event-dead-lettered'
  location: 'global'
  tags: tags
  properties: {
    description: 'A BlobCreated event for the exports container was dead-lettered (container eventgrid-deadletter); that export was not split.'
    severity: 1
    enabled: true
    scopes: [
      systemTopic.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'deadlettered'
          metricName: 'DeadLetteredCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

resource droppedAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'export-event-dropped'
  location: 'global'
  tags: tags
  properties: {
    description: 'A BlobCreated event for the exports container was dropped by Event Grid; that export was not split.'
    severity: 1
    enabled: true
    scopes: [
      systemTopic.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'dropped'
          metricName: 'DroppedEventCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}
