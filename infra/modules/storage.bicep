// The storage account: the Functions host's storage (AzureWebJobsStorage), the deployment
// container Flex Consumption deploys the package from, and Eventide's quarantine container.
// Shared-key access is off: every client authenticates with Microsoft Entra ID.

param name string
param location string
param tags object

@description('Principal of the app identity.')
param principalId string

var settings = loadJsonContent('../eventide.settings.json')
var blobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

// Each container with the narrowest role its user needs: the host keeps timer leases and
// function keys in its two containers; Eventide writes and deletes quarantine entries; the
// platform reads the package from the deployment container (and azd writes it there).
var containers = [
  { name: settings.storage.deploymentContainer, role: blobDataContributor }
  { name: settings.storage.quarantineContainer, role: blobDataContributor }
  { name: 'azure-webjobs-hosts', role: blobDataOwner }
  { name: 'azure-webjobs-secrets', role: blobDataOwner }
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for container in containers: {
    parent: blobService
    name: container.name
    properties: {
      publicAccess: 'None'
    }
  }
]

resource containerRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (container, i) in containers: {
    name: guid(blobContainers[i].id, principalId, container.role)
    scope: blobContainers[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', container.role)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${settings.storage.deploymentContainer}'
