//! Microsoft Entra ID access tokens for Azure SQL, from `azure_identity` credentials.
//!
//! `Authentication=ActiveDirectoryManagedIdentity` (or `ActiveDirectoryMSI`) uses the managed
//! identity of the Function App or VM — a user-assigned one when `User Id` holds its client id.
//! `Authentication=ActiveDirectoryDefault` uses the developer tools' sign-in (`az login`,
//! `azd auth login`); `azure_identity` 1.0 has no "default" chain, so this is the developer
//! side of .NET's `DefaultAzureCredential`, and deployments should name the managed identity.
//! Credentials cache and refresh tokens themselves; the sink asks for one per new connection.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

use super::mssql::{AZURE_SQL_SCOPE, AccessTokenSource, EntraAuth};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Tokens for Azure SQL from any `azure_core` credential.
#[derive(Debug, Clone)]
pub struct CredentialTokenSource {
    credential: Arc<dyn TokenCredential>,
}

impl CredentialTokenSource {
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        Self { credential }
    }

    /// The credential the connection string's `Authentication=` asks for.
    pub fn for_auth(auth: &EntraAuth) -> Result<Self, BoxError> {
        let credential: Arc<dyn TokenCredential> = match auth {
            EntraAuth::Default => DeveloperToolsCredential::new(None)?,
            EntraAuth::ManagedIdentity { client_id } => {
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    ..Default::default()
                }))?
            }
        };
        Ok(Self::new(credential))
    }
}

#[async_trait]
impl AccessTokenSource for CredentialTokenSource {
    async fn token(&self) -> Result<String, BoxError> {
        let token = self.credential.get_token(&[AZURE_SQL_SCOPE], None).await?;
        Ok(token.token.secret().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::credentials::{AccessToken, TokenRequestOptions};
    use std::sync::Mutex;

    /// A FAKE credential: records the scopes it was asked for and hands out a fixed token.
    /// It checks our side of the seam only; no token service is contacted.
    #[derive(Debug, Default)]
    struct FakeCredential {
        scopes: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl TokenCredential for FakeCredential {
        async fn get_token(
            &self,
            scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.scopes
                .lock()
                .unwrap()
                .extend(scopes.iter().map(|s| s.to_string()));
            Ok(AccessToken::new(
                "fake-token",
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    #[tokio::test]
    async fn asks_for_the_azure_sql_scope_and_returns_the_bearer_token() {
        let fake = Arc::new(FakeCredential::default());
        let source = CredentialTokenSource::new(fake.clone());
        assert_eq!(source.token().await.unwrap(), "fake-token");
        assert_eq!(
            *fake.scopes.lock().unwrap(),
            ["https://database.windows.net/.default"]
        );
    }

    #[test]
    fn credentials_are_built_for_each_supported_flow() {
        CredentialTokenSource::for_auth(&EntraAuth::Default).unwrap();
        CredentialTokenSource::for_auth(&EntraAuth::ManagedIdentity { client_id: None }).unwrap();
        CredentialTokenSource::for_auth(&EntraAuth::ManagedIdentity {
            client_id: Some("00000000-0000-0000-0000-000000000001".into()),
        })
        .unwrap();
    }
}
