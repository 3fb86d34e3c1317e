// Service Bus Standard (duplicate detection needs it; Basic has none) with the observations and
// summaries queues. Every queue property comes from eventide.settings.json, the file the Rust
// tests compare with what the adapters assume; none is written here.

param name string
param location string
param tags object

@description('Principal of the app identity.')
param principalId string

var settings = loadJsonContent('../eventide.settings.json')
var queues = [settings.serviceBus.observations, settings.serviceBus.summaries]
var dataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
var dataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'

// Ingest and quarantine replay send observations, the trigger receives them; summarize sends
// (schedules) and receives summaries. So the app sends and receives on both queues, and on
// nothing else in the namespace.
var grants = [
  { queue: 0, role: dataSender }
  { queue: 0, role: dataReceiver }
  { queue: 1, role: dataSender }
  { queue: 1, role: dataReceiver }
]

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queueResources 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [
  for queue in queues: {
    parent: namespace
    name: queue.name
    properties: queue.properties
  }
]

resource queueRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for grant in grants: {
    name: guid(queueResources[grant.queue].id, principalId, grant.role)
    scope: queueResources[grant.queue]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

output name string = namespace.name
// `https://NAME.servicebus.windows.net:443/` -> `NAME.servicebus.windows.net`
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '//')[1], ':')[0]
