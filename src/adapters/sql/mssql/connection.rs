//! From a SQL Server connection string to a connection target: the server settings, which
//! `tiberius` reads from the string itself, and the Microsoft Entra ID flow, which it does not
//! know and which is read here with the crate's one connection-string parser.

use std::sync::Arc;

use tiberius::Config;

use super::error::MssqlError;
use super::token::AccessTokenSource;
use crate::adapters::connection_string::Pairs;

/// How connections authenticate.
#[derive(Clone)]
pub enum Auth {
    /// What the connection string says (a SQL login, or none).
    FromConnectionString,
    /// A Microsoft Entra ID token fetched for every new connection.
    Token(Arc<dyn AccessTokenSource>),
}

/// A connection target parsed from the connection string.
#[derive(Clone)]
pub struct Target {
    pub config: Config,
    pub auth: Auth,
}

/// Which Entra ID flow a connection string's `Authentication=` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntraAuth {
    /// `ActiveDirectoryDefault`: the developer tools' sign-in (Azure CLI, azd).
    Default,
    /// `ActiveDirectoryManagedIdentity` / `ActiveDirectoryMSI`; `User Id` picks a user-assigned
    /// identity by client id.
    ManagedIdentity { client_id: Option<String> },
}

/// What a connection string says: the driver's settings, and the Entra ID flow when it asks for
/// one (`None`: a SQL login, or no authentication, as `config` holds it).
#[derive(Clone)]
pub struct ConnectionSettings {
    pub config: Config,
    pub entra: Option<EntraAuth>,
}

/// Recognises the SQL Server connection string forms: ADO.NET (`Server=…;Database=…`) and
/// `sqlserver://host[:port];database=…` (the JDBC form without `jdbc:`).
pub fn is_mssql_connection_string(s: &str) -> bool {
    let lower = s.trim_start().to_ascii_lowercase();
    lower.starts_with("sqlserver://")
        || lower.starts_with("jdbc:sqlserver://")
        || [
            "server=",
            "data source=",
            "address=",
            "addr=",
            "network address=",
        ]
        .iter()
        .any(|k| lower.starts_with(k) || lower.contains(&format!(";{k}")))
}

/// Parses a connection string into the driver's config and the Entra ID flow it asks for.
/// Errors never quote the string (it may hold a password).
pub fn parse_connection_string(s: &str) -> Result<ConnectionSettings, MssqlError> {
    let bad = |what: String| MssqlError::BadConnectionString(what);
    let trimmed = s.trim();
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("sqlserver://") || lower.starts_with("jdbc:sqlserver://") {
        let jdbc = if lower.starts_with("jdbc:") {
            trimmed.to_string()
        } else {
            format!("jdbc:{trimmed}")
        };
        let config = Config::from_jdbc_string(&jdbc)
            .map_err(|_| bad("unparseable sqlserver:// string".into()))?;
        // The JDBC form's properties are read the same way as ADO.NET's for `authentication`.
        let rest = jdbc.split_once(';').map_or("", |(_, rest)| rest);
        let keys = Pairs::parse(rest).map_err(|e| bad(e.to_string()))?;
        return Ok(ConnectionSettings {
            config,
            entra: entra_auth(&keys)?,
        });
    }
    let keys = Pairs::parse(trimmed).map_err(|e| bad(e.to_string()))?;
    let config =
        Config::from_ado_string(trimmed).map_err(|_| bad("unusable ADO.NET string".into()))?;
    Ok(ConnectionSettings {
        config,
        entra: entra_auth(&keys)?,
    })
}

fn entra_auth(keys: &Pairs) -> Result<Option<EntraAuth>, MssqlError> {
    let Some(method) = keys.get("authentication") else {
        return Ok(None);
    };
    let normalized: String = method
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    match normalized.as_str() {
        "sqlpassword" => Ok(None),
        "activedirectorydefault" => Ok(Some(EntraAuth::Default)),
        "activedirectorymanagedidentity" | "activedirectorymsi" => {
            let client_id = keys
                .first_of(&["user id", "uid", "user"])
                .map(str::to_string);
            Ok(Some(EntraAuth::ManagedIdentity { client_id }))
        }
        _ => Err(MssqlError::BadConnectionString(format!(
            "Authentication={method} is not supported (SqlPassword, ActiveDirectoryDefault, \
             ActiveDirectoryManagedIdentity)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_of_both_forms_are_recognised_and_parsed() {
        let ado = "Server=tcp:example.database.windows.net,1433;Database=stats;User Id=app;Password=s3cret;Encrypt=true";
        assert!(is_mssql_connection_string(ado));
        let parsed = parse_connection_string(ado).unwrap();
        assert_eq!(
            parsed.config.get_addr(),
            "example.database.windows.net:1433"
        );
        assert_eq!(parsed.entra, None);

        let managed = "Server=tcp:example.database.windows.net,1433;Database=stats;Authentication=Active Directory Managed Identity;User Id=1234";
        assert_eq!(
            parse_connection_string(managed).unwrap().entra,
            Some(EntraAuth::ManagedIdentity {
                client_id: Some("1234".into())
            })
        );
        let default = "Server=example.database.windows.net;Database=stats;Authentication=ActiveDirectoryDefault";
        assert_eq!(
            parse_connection_string(default).unwrap().entra,
            Some(EntraAuth::Default)
        );

        let url = "sqlserver://localhost:1433;database=stats;user=sa;password=s3cret;trustServerCertificate=true";
        assert!(is_mssql_connection_string(url));
        let parsed = parse_connection_string(url).unwrap();
        assert_eq!(parsed.config.get_addr(), "localhost:1433");
        assert_eq!(parsed.entra, None);

        assert!(!is_mssql_connection_string("postgres://u@h/db"));
        assert!(!is_mssql_connection_string("sqlite:/tmp/x.db"));
        let e = parse_connection_string(
            "Server=x;Password=s3cret;Authentication=ActiveDirectoryInteractive",
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("not supported"), "{e}");
        assert!(!e.to_string().contains("s3cret"));
    }

    /// Base64 passwords end in `=`; the parser before this one refused them.
    #[test]
    fn passwords_may_hold_equals_signs_and_quotes() {
        for text in [
            "Server=db,1433;User Id=app;Password=c2VjcmV0cw==;Authentication=SqlPassword",
            "Server=db,1433;User Id=app;Password='s3c;ret=';Authentication=SqlPassword",
            "Server=db,1433;User Id=app;Password={s3c;ret=};Authentication=SqlPassword",
            "sqlserver://db:1433;user=app;password={c2VjcmV0cw==};authentication=SqlPassword",
        ] {
            let parsed = parse_connection_string(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.config.get_addr(), "db:1433", "{text}");
            assert_eq!(parsed.entra, None, "{text}");
        }
    }

    #[test]
    fn syntax_errors_name_the_key_never_the_password() {
        for (text, names) in [
            ("Server=db;Password='s3cret", "password"),
            ("Server=db;Password=s3cret;password=s3cret", "password"),
            ("Server=db;s3cret", "part 2"),
        ] {
            let e = parse_connection_string(text).err().unwrap().to_string();
            assert!(e.contains(names), "{text}: {e}");
            assert!(!e.contains("s3cret"), "{text}: {e}");
        }
    }
}
