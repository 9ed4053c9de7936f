//! Which database `poh index` writes to, and the connection to it: TLS when the URL asks
//! for it, verified.

use std::{path::Path, str::FromStr as _, time::Duration};

use tokio_postgres::config::SslMode;

use super::{IndexError, db::Db};

/// Which database, and how to reach it.
pub(super) struct Target {
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// Host and database, for messages (never the password).
    shown: String,
}

impl Target {
    /// `url` (a `postgresql://` URL or `key=value` pairs): TLS when it says
    /// `sslmode=require` or `ca` is given, verified against `ca` or the system's roots.
    /// `prefer` (the default) means no TLS here: unverified TLS would only look safer.
    pub(super) fn new(url: &str, ca: Option<&Path>) -> Result<Self, IndexError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| IndexError::Config(format!("--postgres: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        // A connection whose server vanished is found out in a minute, not in two hours.
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(Duration::from_secs(30));
        }
        if config.get_application_name().is_none() {
            config.application_name("poh index");
        }
        let tls = match (config.get_ssl_mode(), ca) {
            (SslMode::Require, _) | (_, Some(_)) => {
                config.ssl_mode(SslMode::Require);
                let trust = match ca {
                    Some(ca) => poh_node::tls::ServerTrust::Ca(ca.to_path_buf()),
                    None => poh_node::tls::ServerTrust::System,
                };
                let tls = poh_node::tls::client_config(&trust, None, &[])
                    .map_err(|e| IndexError::Config(format!("TLS to the database: {e}")))?;
                Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            }
            _ => {
                config.ssl_mode(SslMode::Disable);
                None
            }
        };
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let shown = format!(
            "{}/{}",
            hosts.join(","),
            config.get_dbname().unwrap_or_default()
        );
        Ok(Self { config, tls, shown })
    }

    /// Host and database, for messages.
    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    /// A connection whose schema and statements are ready.
    pub(super) async fn connect(&self) -> Result<Db, IndexError> {
        let db = |e| IndexError::Db {
            shown: self.shown.clone(),
            error: e,
        };
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await.map_err(db)?;
                tokio::spawn(drive(connection));
                client
            }
            None => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(db)?;
                tokio::spawn(drive(connection));
                client
            }
        };
        Db::prepare(client, self.shown.clone()).await
    }
}

/// Runs a connection until it closes; its error, if any, also fails the next statement,
/// which is where the session learns of it.
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "the database connection closed");
    }
}
