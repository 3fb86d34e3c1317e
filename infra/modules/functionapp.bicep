// The Function App on the Flex Consumption plan (Linux), runtime `custom`: Eventide's static
// binary as the custom handler. Every connection — the host's storage, the Service Bus trigger,
// the deployment container, Application Insights and Eventide's own — uses the one user-assigned
// identity; no app setting holds a key.

param planName string
param appName string
param location string
param tags object

@description('Resource ID of the user-assigned identity.')
param identityId string

@description('Client ID of that identity.')
param identityClientId string

@description('Storage account of the host (AzureWebJobsStorage).')
param storageAccountName string

@description('URL of the blob container the package is deployed from.')
param deploymentContainerUrl string

@description('Blob service URL of the quarantine (EVENTIDE_QUARANTINE).')
param quarantineBlobUrl string

@description('Service Bus namespace host, e.g. NAME.servicebus.windows.net.')
param serviceBusNamespace string

@description('Cosmos DB account endpoint.')
param cosmosEndpoint string

@description('RU/s this app may spend on Cosmos DB in total; each instance gets its share.')
param cosmosRuPerSecond int

@description('EVENTIDE_SUMMARY_SINK: an Entra ID connection string, or a Key Vault reference.')
param summarySink string

@description('Application Insights connection string (no key: local auth is off).')
param appInsightsConnectionString string

@description('IANA time zone whose calendar days are summarized (EVENTIDE_TIME_ZONE).')
param timeZone string

@description('Memory of each instance, in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int

@description('Most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Instances kept warm for the HTTP function (ingest); 0 for none.')
@minValue(0)
param alwaysReadyInstances int

var settings = loadJsonContent('../eventide.settings.json')
var trigger = settings.serviceBusTrigger

// Each instance's share of the Cosmos DB budget: the whole budget over the most instances there
// can be, so a fully scaled-out app stays within it (EVENTIDE_COSMOS_RU_PER_SECOND).
var ruPerInstance = max(1, cosmosRuPerSecond / maximumInstanceCount)

// The app settings that name resources; the fixed ones come from eventide.settings.json.
// tests/suite/infra_settings.rs reads the names between the markers and checks each against
// the settings the binary and the host read.
// app-settings:start
var resourceSettings = {
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusNamespace
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identityClientId
  AzureFunctionsJobHost__extensions__serviceBus__maxConcurrentCalls: string(trigger.maxConcurrentCalls)
  AzureFunctionsJobHost__extensions__serviceBus__maxMessageBatchSize: string(trigger.maxMessageBatchSize)
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  EVENTIDE_AZURE_CLIENT_ID: identityClientId
  EVENTIDE_TIME_ZONE: timeZone
  EVENTIDE_COSMOS_ENDPOINT: cosmosEndpoint
  EVENTIDE_COSMOS_DATABASE: settings.cosmos.database
  EVENTIDE_COSMOS_CONTAINER: settings.cosmos.container
  EVENTIDE_COSMOS_TTL_SECONDS: string(settings.cosmos.defaultTtlSeconds)
  EVENTIDE_COSMOS_RU_PER_SECOND: string(ruPerInstance)
  EVENTIDE_SERVICEBUS_NAMESPACE: serviceBusNamespace
  EVENTIDE_OBSERVATIONS_QUEUE: settings.serviceBus.observations.name
  EVENTIDE_SUMMARIES_QUEUE: settings.serviceBus.summaries.name
  EVENTIDE_QUARANTINE: quarantineBlobUrl
  EVENTIDE_QUARANTINE_CONTAINER: settings.storage.quarantineContainer
  EVENTIDE_SUMMARY_SINK: summarySink
}
// app-settings:end
var appSettings = union(settings.appSettings, resourceSettings)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': 'eventide' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertMode: 'Optional'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(appSettings): { name: setting.key, value: setting.value }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: alwaysReadyInstances > 0 ? [{ name: 'http', instanceCount: alwaysReadyInstances }] : []
      }
      runtime: settings.functionApp.runtime
    }
  }
}

output name string = app.name
output defaultHostName string = app.properties.defaultHostName
