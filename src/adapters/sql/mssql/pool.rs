//! The connection pool's side of `bb8`: opening a connection (token, TLS handshake, Azure SQL's
//! gateway redirect) under the sink's time bound, and dropping any connection whose last call
//! did not finish cleanly, since its session state is unknown.

use std::time::Duration;

use tiberius::{AuthMethod, Client, Config};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use super::connection::{Auth, Target};
use super::error::MssqlError;

/// One pooled connection; `clean` is false while a call is in flight, so a call that was cut
/// short (an error, a timeout) leaves it marked and the pool drops it.
pub(super) struct Conn {
    pub(super) client: Client<Compat<TcpStream>>,
    pub(super) clean: bool,
}

/// Opens connections for the pool.
pub(super) struct Manager {
    pub(super) target: Target,
    pub(super) timeout: Duration,
}

impl Manager {
    async fn open(&self) -> Result<Conn, MssqlError> {
        let mut config = self.target.config.clone();
        if let Auth::Token(source) = &self.target.auth {
            let token = source.token().await.map_err(MssqlError::Token)?;
            config.authentication(AuthMethod::aad_token(token));
        }
        config.handshake_timeout(Some(self.timeout));
        let client = match self.connect(&config).await {
            // Azure SQL's gateway may redirect the session to the node that holds the database.
            Err(MssqlError::Sql(tiberius::error::Error::Routing { host, port })) => {
                config.host(&host);
                config.port(port);
                self.connect(&config).await?
            }
            other => other?,
        };
        Ok(Conn {
            client,
            clean: true,
        })
    }

    async fn connect(&self, config: &Config) -> Result<Client<Compat<TcpStream>>, MssqlError> {
        let addr = config.get_addr();
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|source| MssqlError::Connect {
                addr: addr.clone(),
                source,
            })?;
        tcp.set_nodelay(true)
            .map_err(|source| MssqlError::Connect {
                addr: addr.clone(),
                source,
            })?;
        Ok(Client::connect(config.clone(), tcp.compat_write()).await?)
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = MssqlError;

    async fn connect(&self) -> Result<Conn, MssqlError> {
        match tokio::time::timeout(self.timeout, self.open()).await {
            Ok(result) => result,
            Err(_) => Err(MssqlError::TimedOut(self.timeout)),
        }
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), MssqlError> {
        conn.client
            .simple_query("SELECT 1")
            .await?
            .into_results()
            .await?;
        Ok(())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        !conn.clean
    }
}
