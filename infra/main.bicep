// Eventide in Azure: one resource group holding the Function App (Flex Consumption, custom
// handler), Service Bus, Cosmos DB, storage, the SQL summary sink, monitoring and the one
// managed identity every connection uses. Deployed by `azd up` (see docs/deploy.md).
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('Name of the azd environment; names the resource group and seeds resource names.')
param environmentName string

@minLength(1)
@description('Azure region of every resource.')
param location string

@description('Cosmos DB throughput: `serverless` (pay per RU, nothing when idle) or `provisioned` (manual RU/s, billed every hour).')
@allowed(['serverless', 'provisioned'])
param cosmosThroughputMode string = 'serverless'

@description('RU/s the app may spend on Cosmos DB: the container\'s provisioned RU/s, or the share of a serverless partition (at most 5,000) the app budgets for.')
@minValue(100)
param cosmosRuPerSecond int = 400

@description('The summary sink: `sql` (Azure SQL, Microsoft Entra ID only) or `postgres` (PostgreSQL Flexible Server, password in Key Vault).')
@allowed(['sql', 'postgres'])
param sinkKind string = 'sql'

@description('Azure SQL database SKU.')
param sqlSkuName string = 'Basic'

@description('Object ID of the SQL server\'s Entra administrator; azd passes the signed-in principal.')
param principalId string = ''

@description('Display name of that administrator (a UPN or group name).')
param principalName string = 'eventide-sql-admin'

@description('`User`, `Group` or `Application` (a CI service principal).')
@allowed(['User', 'Group', 'Application'])
param principalType string = 'User'

@description('PostgreSQL administrator login (sinkKind = postgres).')
param postgresAdminLogin string = 'eventide'

@secure()
@description('PostgreSQL administrator password (sinkKind = postgres); stored only in Key Vault.')
param postgresAdminPassword string = ''

@description('Memory of each Function App instance, in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Most Function App instances; the Cosmos DB budget is shared among them.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Always-ready instances for ingest (0: none, nothing billed when idle).')
@minValue(0)
param alwaysReadyInstances int = 0

@description('Daily ingestion cap of the Log Analytics workspace, in GB.')
@minValue(1)
param logDailyQuotaGb int = 1

@description('IANA time zone whose calendar days are summarized.')
param timeZone string = 'UTC'

var tags = { 'azd-env-name': environmentName }
var token = toLower(uniqueString(subscription().id, environmentName, location))

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  scope: group
  name: 'identity'
  params: {
    name: 'id-eventide-${token}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  scope: group
  name: 'monitoring'
  params: {
    workspaceName: 'log-eventide-${token}'
    appInsightsName: 'appi-eventide-${token}'
    location: location
    tags: tags
    dailyQuotaGb: logDailyQuotaGb
    publisherPrincipalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  scope: group
  name: 'storage'
  params: {
    name: 'steventide${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  scope: group
  name: 'servicebus'
  params: {
    name: 'sb-eventide-${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
  }
}

module cosmos 'modules/cosmos.bicep' = {
  scope: group
  name: 'cosmos'
  params: {
    name: 'cosmos-eventide-${token}'
    location: location
    tags: tags
    throughputMode: cosmosThroughputMode
    provisionedRuPerSecond: cosmosRuPerSecond
    principalId: identity.outputs.principalId
  }
}

module sql 'modules/sql.bicep' = if (sinkKind == 'sql') {
  scope: group
  name: 'sql'
  params: {
    serverName: 'sql-eventide-${token}'
    databaseName: 'eventide'
    location: location
    tags: tags
    adminObjectId: principalId
    adminLogin: principalName
    adminPrincipalType: principalType
    skuName: sqlSkuName
  }
}

module postgres 'modules/postgres.bicep' = if (sinkKind == 'postgres') {
  scope: group
  name: 'postgres'
  params: {
    serverName: 'psql-eventide-${token}'
    vaultName: 'kv-eventide-${take(token, 12)}'
    databaseName: 'eventide'
    location: location
    tags: tags
    adminLogin: postgresAdminLogin
    adminPassword: postgresAdminPassword
    principalId: identity.outputs.principalId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  scope: group
  name: 'functionapp'
  params: {
    planName: 'plan-eventide-${token}'
    appName: 'func-eventide-${token}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    quarantineBlobUrl: storage.outputs.blobEndpoint
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosRuPerSecond: cosmosRuPerSecond
    summarySink: sinkKind == 'sql' ? sql.outputs.summarySink : postgres.outputs.summarySink
    appInsightsConnectionString: monitoring.outputs.connectionString
    timeZone: timeZone
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    alwaysReadyInstances: alwaysReadyInstances
  }
}

// Read by azd (and by scripts/grant-sql-user after provisioning).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = group.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output EVENTIDE_INGEST_URL string = 'https://${functionApp.outputs.defaultHostName}/api/ingest'
output EVENTIDE_IDENTITY_NAME string = identity.outputs.name
output EVENTIDE_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output EVENTIDE_SINK_KIND string = sinkKind
output EVENTIDE_SQL_SERVER string = sinkKind == 'sql' ? sql.outputs.fullyQualifiedDomainName : ''
output EVENTIDE_SQL_DATABASE string = sinkKind == 'sql' ? sql.outputs.databaseName : ''
