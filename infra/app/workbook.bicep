// The admins' view in the Azure portal: an Azure Monitor workbook on the Application Insights
// the app logs to (its gallery shows it under Workbooks). The queries are in workbook.json; they
// read only the log events, metrics and custom dimensions the code emits (checked by
// tests/infra/kql_contract.py) and show counts, never numbers or addresses.

param location string
param tags object
param applicationInsightsName string

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; this one is stable per resource group and component.
  name: guid(resourceGroup().id, applicationInsightsName, 'telegram-archive-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Telegram archive'
    category: 'workbook'
    sourceId: appInsights.id
    // fallbackResourceIds: the component the queries run against when opened from the gallery.
    serializedData: string(union(loadJsonContent('workbook.json'), {
      fallbackResourceIds: [
        appInsights.id
      ]
    }))
  }
}

output id string = workbook.id
