//! A PostgreSQL server of the test's own: `initdb` and `pg_ctl start` in a temporary
//! directory on a free port, as the `postgres` user when the tests run as root (CI does;
//! PostgreSQL refuses to run as root), stopped when dropped. `POH_TEST_POSTGRES_URL` names an
//! existing server instead; each test then gets a database of its own there.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::common::{is_root, text};

/// A server the test started, or one it was given.
pub struct Postgres {
    /// Where the test's database is (`postgresql://…`).
    pub url: String,
    own: Option<Own>,
}

/// What a server of the test's own needs to stop and start again.
struct Own {
    dir: tempfile::TempDir,
    port: u16,
    /// `-c` settings beyond the listening ones.
    settings: String,
}

/// `name` from `PATH`, else from Debian's `/usr/lib/postgresql/VERSION/bin` (the newest).
fn binary(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if let Some(path) = on_path {
        return path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin").join(name)))
        })
        .filter(|(_, p)| p.is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).unwrap_or_else(|| {
        panic!("no {name}: install PostgreSQL (Debian: apt-get install postgresql), or set POH_TEST_POSTGRES_URL")
    })
}

/// `program ARGS` as the user PostgreSQL runs as: `postgres` under root, else this one.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

impl Postgres {
    /// A server for one test.
    pub fn start() -> Self {
        if let Ok(url) = std::env::var("POH_TEST_POSTGRES_URL") {
            return Self::given(&url);
        }
        Self::own(None)
    }

    /// A server of the test's own that takes TLS only, with this certificate and key (PEM).
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        Self::own(Some((cert, key)))
    }

    fn own(tls: Option<(&Path, &Path)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:").arg(dir.path());
                    c
                },
                "chown the data directory to postgres",
            );
        }
        let mut initdb = as_owner(&binary("initdb"));
        initdb.arg("-D").arg(dir.path().join("data")).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb");
        let mut settings = "-c fsync=off".to_string();
        if let Some((cert, key)) = tls {
            let data = dir.path().join("data");
            std::fs::copy(cert, data.join("server.crt")).unwrap();
            std::fs::copy(key, data.join("server.key")).unwrap();
            let mut own = Command::new("chown");
            own.arg("postgres:")
                .arg(data.join("server.crt"))
                .arg(data.join("server.key"));
            if is_root() {
                run(own, "chown the server's key to postgres");
            }
            use std::os::unix::fs::PermissionsExt as _;
            let private = std::fs::Permissions::from_mode(0o600);
            std::fs::set_permissions(data.join("server.key"), private).unwrap();
            // TLS or nothing: a plaintext client is refused by pg_hba.
            std::fs::write(
                data.join("pg_hba.conf"),
                "hostssl all all 127.0.0.1/32 trust\nlocal all all trust\n",
            )
            .unwrap();
            settings.push_str(" -c ssl=on");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Self {
            url: format!("postgresql://postgres@127.0.0.1:{port}/postgres"),
            own: Some(Own {
                dir,
                port,
                settings,
            }),
        };
        server.start_again();
        server
    }

    /// A database of the test's own on the server at `url`.
    fn given(url: &str) -> Self {
        let name = format!(
            "poh_test_{}_{}",
            std::process::id(),
            crate::common::random(std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos() as u64)
                % 1_000_000
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("POH_TEST_POSTGRES_URL: {e}"));
            tokio::spawn(connection);
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
        });
        let mut config: tokio_postgres::Config = url.parse().unwrap();
        config.dbname(&name);
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        };
        let user = config.get_user().unwrap_or("postgres");
        let password = config
            .get_password()
            .map(|p| format!(":{}", String::from_utf8_lossy(p)))
            .unwrap_or_default();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        Self {
            url: format!("postgresql://{user}{password}@{host}:{port}/{name}"),
            own: None,
        }
    }

    /// Whether the test may stop and start the server (it started it).
    pub fn is_own(&self) -> bool {
        self.own.is_some()
    }

    /// `pg_ctl stop -m fast`: every connection is closed at once.
    pub fn stop(&self) {
        let own = self.own.as_ref().expect("a server of the test's own");
        let mut stop = as_owner(&binary("pg_ctl"));
        stop.arg("-D")
            .arg(own.dir.path().join("data"))
            .args(["stop", "-m", "fast", "-w"]);
        run(stop, "pg_ctl stop");
    }

    /// `pg_ctl start` on the same port and data.
    pub fn start_again(&self) {
        let own = self.own.as_ref().expect("a server of the test's own");
        let mut start = as_owner(&binary("pg_ctl"));
        start
            .arg("-D")
            .arg(own.dir.path().join("data"))
            .arg("-l")
            .arg(own.dir.path().join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 {}",
                own.port,
                own.dir.path().display(),
                own.settings
            ))
            .args(["start", "-w", "-t", "60"]);
        run(start, "pg_ctl start");
    }

    /// A client of the test's database, on `runtime`.
    pub fn client(&self, runtime: &tokio::runtime::Runtime) -> tokio_postgres::Client {
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(own) = &self.own {
            let mut stop = as_owner(&binary("pg_ctl"));
            stop.arg("-D")
                .arg(own.dir.path().join("data"))
                .args(["stop", "-m", "immediate", "-w"]);
            let _ = stop.output();
        }
    }
}
