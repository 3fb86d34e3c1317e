//! Applying the SQL Server schema migrations (the list is `sql::migrations::MSSQL`): one
//! transaction under an application lock, so sinks starting side by side apply each version
//! exactly once.

use tiberius::Client;
use tokio::net::TcpStream;
use tokio_util::compat::Compat;

use super::error::MssqlError;
use crate::adapters::sql::migrations;

/// Applies pending migrations on `client`; returns the schema version in force. `prefix` is the
/// quoted schema and a dot (or empty), `schema` the schema to create when it is missing.
pub(super) async fn apply(
    client: &mut Client<Compat<TcpStream>>,
    prefix: &str,
    schema: Option<&str>,
) -> Result<i32, MssqlError> {
    client
        .simple_query(
            "SET XACT_ABORT ON; BEGIN TRANSACTION;
             EXEC sp_getapplock @Resource = N'eventide_schema_migrations',
                @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 30000;",
        )
        .await?
        .into_results()
        .await?;
    let mut setup = String::new();
    if let Some(schema) = schema {
        setup.push_str(&format!(
            "IF SCHEMA_ID(N'{schema}') IS NULL EXEC(N'CREATE SCHEMA [{schema}]');\n"
        ));
    }
    setup.push_str(&format!(
        "IF OBJECT_ID(N'{prefix}eventide_schema_version', N'U') IS NULL
        CREATE TABLE {prefix}eventide_schema_version (
            version int NOT NULL PRIMARY KEY,
            description nvarchar(200) NOT NULL,
            applied_at datetimeoffset(7) NOT NULL DEFAULT SYSDATETIMEOFFSET());"
    ));
    client.simple_query(setup).await?.into_results().await?;
    let current = client
        .simple_query(format!(
            "SELECT ISNULL(MAX(version), 0) FROM {prefix}eventide_schema_version"
        ))
        .await?
        .into_row()
        .await?
        .and_then(|row| row.get::<i32, _>(0))
        .ok_or_else(|| MssqlError::Unexpected("no schema version row".into()))?;
    for migration in migrations::MSSQL.iter().filter(|m| m.version > current) {
        client
            .simple_query(migrations::render(migration, prefix))
            .await?
            .into_results()
            .await?;
        client
            .execute(
                format!(
                    "INSERT INTO {prefix}eventide_schema_version (version, description) VALUES (@P1, @P2)"
                ),
                &[&migration.version, &migration.description],
            )
            .await?;
    }
    client
        .simple_query("COMMIT TRANSACTION")
        .await?
        .into_results()
        .await?;
    Ok(current.max(migrations::latest(migrations::MSSQL)))
}
