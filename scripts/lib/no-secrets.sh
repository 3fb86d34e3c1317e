#!/usr/bin/env bash
# Fails when a deployment file holds a key, a secret or a call that reads one: the templates use
# the managed identity everywhere, and the workflows sign in with OIDC federated credentials.
# Usage: no-secrets.sh PATH...
set -euo pipefail
patterns=(
    'listKeys\('            # storage / Cosmos / Service Bus keys read at deployment time
    'listConnectionStrings' # Cosmos connection strings
    'listCredentials'
    'AccountKey='           # storage connection strings
    'SharedAccessKey'       # Service Bus / Event Hubs SAS
    'SharedAccessSignature'
    'primaryMasterKey'
    'InstrumentationKey='   # Application Insights key-based ingestion
    'secrets\.'             # GitHub secrets in a workflow (the deploy uses repository variables)
    'client-secret'
    'creds:'                # azure/login with a stored service principal secret
)
found=0
for pattern in "${patterns[@]}"; do
    if grep -rnIE "$pattern" "$@"; then
        found=1
    fi
done
if [ "$found" -ne 0 ]; then
    echo "no-secrets: the lines above hold a key, a secret or a call that reads one" >&2
    exit 1
fi
echo "no-secrets: none in $*"
