//! The seam for Microsoft Entra ID access tokens: the pool asks it for a token per new
//! connection, so the sink does not depend on how tokens are obtained (`entra` implements it
//! over `azure_identity`; tests may supply their own).

use async_trait::async_trait;

use super::error::BoxError;

/// The OAuth scope of Azure SQL Database access tokens.
pub const AZURE_SQL_SCOPE: &str = "https://database.windows.net/.default";

/// Where Microsoft Entra ID access tokens for Azure SQL come from.
#[async_trait]
pub trait AccessTokenSource: Send + Sync {
    /// A bearer token for [`AZURE_SQL_SCOPE`], valid for at least the next few minutes.
    async fn token(&self) -> Result<String, BoxError>;
}
