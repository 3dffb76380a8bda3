// Key Vault (RBAC mode) for the TeleMessage password and the optional Graph client secret. The
// app settings reference them with @Microsoft.KeyVault(SecretUri=...), resolved by the platform
// with the app's user-assigned identity (keyVaultReferenceIdentity, Key Vault Secrets User).
// Secret values arrive only as @secure() parameters and are never output.

param name string
param location string
param tags object

@secure()
param telemessagePassword string

@secure()
param graphClientSecret string

param logAnalyticsWorkspaceId string

var telemessagePasswordSecretName = 'telemessage-password'
var graphClientSecretName = 'graph-client-secret'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_109:No VNet in this deployment: Key Vault references are resolved by the App Service platform for a Flex app without VNet integration over the public endpoint. RBAC-only (enableRbacAuthorization), two secrets, read by one identity.
  //checkov:skip=CKV_AZURE_189:Same as CKV_AZURE_109: public network access is needed without VNet integration/private endpoints; every request needs an Entra token and a Key Vault RBAC role.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Written only when a value is given, so `azd provision` without one never blanks a secret that
// was set by hand (docs/DEPLOY.md).
resource telemessagePasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(telemessagePassword)) {
  //checkov:skip=CKV_AZURE_114:contentType is set (text/plain) below; checkov does not look inside a conditional (`= if (...)`) Bicep resource.
  //checkov:skip=CKV_AZURE_41:Rotation is driven by the issuer (TeleMessage account policy; the Entra app credential's own expiry). A Key Vault exp would be a second, unsynchronised clock; a stale password shows as the no-successful-fetch alert.
  parent: vault
  name: telemessagePasswordSecretName
  properties: {
    value: telemessagePassword
    contentType: 'text/plain'
  }
}

resource graphClientSecretSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(graphClientSecret)) {
  //checkov:skip=CKV_AZURE_114:contentType is set (text/plain) below; checkov does not look inside a conditional (`= if (...)`) Bicep resource.
  //checkov:skip=CKV_AZURE_41:Rotation is driven by the issuer (TeleMessage account policy; the Entra app credential's own expiry). A Key Vault exp would be a second, unsynchronised clock; a stale password shows as the no-successful-fetch alert.
  parent: vault
  name: graphClientSecretName
  properties: {
    value: graphClientSecret
    contentType: 'text/plain'
  }
}

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
output telemessagePasswordSecretName string = telemessagePasswordSecretName
output graphClientSecretName string = graphClientSecretName
