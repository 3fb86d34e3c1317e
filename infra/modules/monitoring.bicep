// Log Analytics with a daily ingestion cap, and workspace-based Application Insights that accepts
// only Microsoft Entra ID-authenticated telemetry (no instrumentation-key ingestion).

param workspaceName string
param appInsightsName string
param location string
param tags object

@description('Daily ingestion cap of the workspace, in GB; ingestion stops for the day when reached.')
param dailyQuotaGb int

@description('Principal that publishes telemetry (the app identity).')
param publisherPrincipalId string

var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
    workspaceCapping: {
      dailyQuotaGb: dailyQuotaGb
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
  }
}

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, publisherPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: publisherPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output workspaceId string = workspace.id
output appInsightsName string = appInsights.name
// The connection string names the component and its ingestion endpoint; with local auth off it
// grants nothing by itself (telemetry must carry an Entra ID token).
output connectionString string = appInsights.properties.ConnectionString
