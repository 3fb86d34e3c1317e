// Azure SQL for the summary sink, with Microsoft Entra-only authentication: no SQL logins, no
// passwords. The server's Entra administrator is the deploying principal; the app identity gets
// its database user in a post-deployment step (scripts/grant-sql-user), since ARM cannot run
// T-SQL.

param serverName string
param databaseName string
param location string
param tags object

@description('Object ID of the server\'s Microsoft Entra administrator (the deploying user or group).')
param adminObjectId string

@description('Display name of that administrator.')
param adminLogin string

@description('`User`, `Group` or `Application`.')
@allowed(['User', 'Group', 'Application'])
param adminPrincipalType string

@description('Database SKU, e.g. Basic, S0, GP_S_Gen5_1.')
param skuName string

resource server 'Microsoft.Sql/servers@2023-08-01-preview' = {
  name: serverName
  location: location
  tags: tags
  properties: {
    minimalTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    administrators: {
      administratorType: 'ActiveDirectory'
      azureADOnlyAuthentication: true
      login: adminLogin
      sid: adminObjectId
      principalType: adminPrincipalType
      tenantId: subscription().tenantId
    }
  }
}

// Flex Consumption apps without a virtual network have no fixed outbound addresses: the rule
// "allow Azure services" (0.0.0.0) admits them; authentication is Entra ID only.
resource allowAzure 'Microsoft.Sql/servers/firewallRules@2023-08-01-preview' = {
  parent: server
  name: 'AllowAllWindowsAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}


resource database 'Microsoft.Sql/servers/databases@2023-08-01-preview' = {
  parent: server
  name: databaseName
  location: location
  tags: tags
  sku: {
    name: skuName
  }
}

output serverName string = server.name
output fullyQualifiedDomainName string = server.properties.fullyQualifiedDomainName
output databaseName string = database.name
// What EVENTIDE_SUMMARY_SINK is set to: Entra ID with the application's credential, no secret.
output summarySink string = 'Server=tcp:${server.properties.fullyQualifiedDomainName},1433;Database=${database.name};Authentication=ActiveDirectoryManagedIdentity;Encrypt=true'
