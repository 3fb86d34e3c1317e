// Cosmos DB for NoSQL: the account (keys off; Microsoft Entra ID only), the database and the
// series-day container. Partition key, default TTL and indexing policy come from
// eventide.settings.json, the same file the store's code reads (src/infra_settings.rs).

param name string
param location string
param tags object

@description('`serverless` (pay per request unit) or `provisioned` (manual RU/s on the container).')
@allowed(['serverless', 'provisioned'])
param throughputMode string

@description('RU/s of the container when provisioned.')
param provisionedRuPerSecond int

@description('Principal of the app identity.')
param principalId string

var settings = loadJsonContent('../eventide.settings.json')
var cosmos = settings.cosmos
var dataContributor = '00000000-0000-0000-0000-000000000002'

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    capabilities: throughputMode == 'serverless' ? [{ name: 'EnableServerless' }] : []
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: account
  name: cosmos.database
  properties: {
    resource: {
      id: cosmos.database
    }
  }
}

resource container 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: cosmos.container
  properties: {
    resource: {
      id: cosmos.container
      partitionKey: {
        paths: [cosmos.partitionKeyPath]
        kind: 'Hash'
      }
      defaultTtl: cosmos.defaultTtlSeconds
      indexingPolicy: cosmos.indexingPolicy
    }
    options: throughputMode == 'provisioned' ? { throughput: provisionedRuPerSecond } : {}
  }
}

// Data plane only: read and write items. Creating databases and containers stays with the
// deployment (EVENTIDE_COSMOS_CREATE=false).
resource dataRole 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: account
  name: guid(account.id, principalId, dataContributor)
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/${dataContributor}'
    principalId: principalId
    scope: account.id
  }
}

output endpoint string = account.properties.documentEndpoint
