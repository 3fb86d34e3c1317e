// PostgreSQL Flexible Server for the summary sink, the alternative to Azure SQL. Eventide's
// PostgreSQL sink authenticates with a password in its URL (it has no Entra ID token support),
// so the URL is kept in Key Vault and the app setting is a Key Vault reference resolved by the
// app identity: the app settings hold no secret.

param serverName string
param vaultName string
param databaseName string
param location string
param tags object

@description('Administrator login of the server.')
param adminLogin string

@secure()
@description('Administrator password of the server; stored only in Key Vault.')
param adminPassword string

@description('Principal of the app identity (reads the sink secret).')
param principalId string

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2022-12-01' = {
  name: serverName
  location: location
  tags: tags
  sku: {
    name: 'Standard_B1ms'
    tier: 'Burstable'
  }
  properties: {
    version: '16'
    administratorLogin: adminLogin
    administratorLoginPassword: adminPassword
    storage: {
      storageSizeGB: 32
    }
    backup: {
      backupRetentionDays: 7
      geoRedundantBackup: 'Disabled'
    }
    authConfig: {
      activeDirectoryAuth: 'Disabled'
      passwordAuth: 'Enabled'
    }
  }
}

resource allowAzure 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2022-12-01' = {
  parent: server
  name: 'AllowAllAzureServicesAndResourcesWithinAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2022-12-01' = {
  parent: server
  name: databaseName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: vaultName
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
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource sinkSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'summary-sink'
  properties: {
    contentType: 'EVENTIDE_SUMMARY_SINK (postgres URL)'
    value: 'postgres://${adminLogin}:${uriComponent(adminPassword)}@${server.properties.fullyQualifiedDomainName}:5432/${databaseName}?sslmode=require'
    attributes: {
      enabled: true
    }
  }
}

resource secretReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(sinkSecret.id, principalId, keyVaultSecretsUser)
  scope: sinkSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output serverName string = server.name
// A Key Vault reference, not the URL: the platform resolves it with the app identity.
output summarySink string = '@Microsoft.KeyVault(SecretUri=${sinkSecret.properties.secretUri})'
