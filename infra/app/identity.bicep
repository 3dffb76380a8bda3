// The function app's user-assigned managed identity: storage (host and app data), Key Vault
// references, Application Insights ingestion and, with GRAPH_CREDENTIAL_KIND=managed_identity,
// Microsoft Graph (scripts/grant-graph-permissions.sh gives it the Graph app roles).

param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
