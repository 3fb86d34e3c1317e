//! Microsoft Entra ID access tokens for Azure SQL, from an `azure_core` credential.
//!
//! A connection string's `Authentication=ActiveDirectory…` only says "use Microsoft Entra ID";
//! the credential is the application's one (`app::identity`), the same every Azure adapter
//! uses. Credentials cache and refresh tokens themselves; the sink asks for one per new
//! connection.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;

use super::mssql::{AZURE_SQL_SCOPE, AccessTokenSource};

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
}
