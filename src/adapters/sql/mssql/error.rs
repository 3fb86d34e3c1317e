//! What can go wrong talking to SQL Server, and whether retrying can help: the one place that
//! knows Azure SQL's transient error numbers, so the retry policy and the port's error kind
//! agree on every failure.

use std::time::Duration;

use crate::pipeline::ports::PortError;
use crate::pipeline::retry::Verdict;

/// Error numbers worth retrying: the transient faults of Azure SQL Database (connection
/// throttling, failover, resource limits, service busy), the classic connection breaks, and
/// deadlock victims.
pub(super) const TRANSIENT_ERRORS: &[u32] = &[
    615, 926, 1205, 4060, 4221, 10053, 10054, 10060, 10928, 10929, 40143, 40197, 40501, 40540,
    40613, 42108, 42109, 49918, 49919, 49920,
];

/// Azure SQL asks clients to wait this long after 40501 ("the service is currently busy").
const SERVICE_BUSY_WAIT: Duration = Duration::from_secs(10);

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of this adapter.
#[derive(Debug, thiserror::Error)]
pub enum MssqlError {
    #[error(transparent)]
    Sql(#[from] tiberius::error::Error),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("getting a Microsoft Entra ID access token: {0}")]
    Token(BoxError),
    #[error("no connection from the pool within {0:?}")]
    PoolTimedOut(Duration),
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    #[error("the connection string is not valid: {0}")]
    BadConnectionString(String),
    #[error("unexpected result: {0}")]
    Unexpected(String),
}

/// Whether retrying can help.
pub fn verdict(error: &MssqlError) -> Verdict {
    match error {
        MssqlError::Sql(e) => sql_verdict(e),
        MssqlError::Connect { .. } | MssqlError::PoolTimedOut(_) | MssqlError::TimedOut(_) => {
            Verdict::Transient { retry_after: None }
        }
        // A token service that is down or throttling recovers; a misconfigured one does not,
        // but cannot be told apart here, and the retries are bounded.
        MssqlError::Token(_) => Verdict::Transient { retry_after: None },
        MssqlError::BadConnectionString(_) | MssqlError::Unexpected(_) => Verdict::Permanent,
    }
}

fn sql_verdict(error: &tiberius::error::Error) -> Verdict {
    use tiberius::error::Error;
    match error {
        Error::Server(e) if e.code() == 40501 => Verdict::Transient {
            retry_after: Some(SERVICE_BUSY_WAIT),
        },
        Error::Server(e) if TRANSIENT_ERRORS.contains(&e.code()) => {
            Verdict::Transient { retry_after: None }
        }
        // A broken stream or a connection that the server dropped mid-message.
        Error::Io { .. } | Error::Protocol(_) => Verdict::Transient { retry_after: None },
        _ => Verdict::Permanent,
    }
}

/// The port's error for a failure that retrying did not (or could not) mend.
pub(super) fn port_error(context: &str, e: MssqlError) -> PortError {
    PortError::classified(verdict(&e), context, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_the_documented_ones() {
        for code in [
            4060, 40197, 40501, 40613, 49918, 49919, 49920, 10928, 10929, 1205,
        ] {
            assert!(TRANSIENT_ERRORS.contains(&code), "{code}");
        }
        assert_eq!(
            verdict(&MssqlError::TimedOut(Duration::from_secs(1))),
            Verdict::Transient { retry_after: None }
        );
        assert_eq!(
            sql_verdict(&tiberius::error::Error::Io {
                kind: std::io::ErrorKind::ConnectionReset,
                message: "reset".into()
            }),
            Verdict::Transient { retry_after: None }
        );
        assert_eq!(
            sql_verdict(&tiberius::error::Error::Conversion("bad".into())),
            Verdict::Permanent
        );
    }
}
