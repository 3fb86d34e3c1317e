// The one user-assigned managed identity every connection of the app uses: the Functions host's
// (storage, Service Bus trigger, deployment, Application Insights) and Eventide's own
// (EVENTIDE_AZURE_CLIENT_ID). One identity to grant roles to.

@description('Name of the identity.')
param name string

@description('Azure region.')
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
