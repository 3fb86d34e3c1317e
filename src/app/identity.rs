//! The application's one Microsoft Entra ID credential. It is built at most once, on first use,
//! and the same instance is handed to every Azure adapter that authenticates without a key
//! (Service Bus by namespace, Blob by service URL, Cosmos DB without a key) and to the SQL
//! Server sink: one identity to grant roles to, one token cache, one setting to change.

use std::sync::{Arc, OnceLock};

use azure_core::credentials::TokenCredential;
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

use super::config::{CredentialKind, IdentityConfig};

/// Builds the configured credential on first use and shares it afterwards.
pub struct Identity {
    config: IdentityConfig,
    credential: OnceLock<Arc<dyn TokenCredential>>,
}

impl Identity {
    pub fn new(config: IdentityConfig) -> Self {
        Self {
            config,
            credential: OnceLock::new(),
        }
    }

    /// The credential; the first call builds it.
    pub fn credential(&self) -> Result<Arc<dyn TokenCredential>, String> {
        if let Some(credential) = self.credential.get() {
            return Ok(credential.clone());
        }
        let built = self.build()?;
        Ok(self.credential.get_or_init(|| built).clone())
    }

    fn build(&self) -> Result<Arc<dyn TokenCredential>, String> {
        let credential: Arc<dyn TokenCredential> = match self.config.kind {
            CredentialKind::ManagedIdentity => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: self
                        .config
                        .client_id
                        .as_deref()
                        .map(str::trim)
                        .filter(|id| !id.is_empty())
                        .map(|id| UserAssignedId::ClientId(id.to_string())),
                    ..Default::default()
                };
                ManagedIdentityCredential::new(Some(options))
                    .map_err(|e| format!("creating the managed identity credential: {e}"))?
            }
            CredentialKind::Developer => DeveloperToolsCredential::new(None)
                .map_err(|e| format!("creating the developer sign-in credential: {e}"))?,
        };
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_credential_builds() {
        for (kind, client_id) in [
            (CredentialKind::ManagedIdentity, None),
            (
                CredentialKind::ManagedIdentity,
                Some("00000000-0000-0000-0000-000000000001".to_string()),
            ),
            (CredentialKind::Developer, None),
        ] {
            Identity::new(IdentityConfig { kind, client_id })
                .credential()
                .unwrap();
        }
    }

    #[test]
    fn the_credential_is_built_once_and_shared() {
        let identity = Identity::new(IdentityConfig {
            kind: CredentialKind::ManagedIdentity,
            client_id: Some("00000000-0000-0000-0000-000000000001".into()),
        });
        let first = identity.credential().unwrap();
        let second = identity.credential().unwrap();
        assert!(Arc::ptr_eq(&first, &second));
    }
}
