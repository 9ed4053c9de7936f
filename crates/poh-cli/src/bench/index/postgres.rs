//! [`TempPostgres`]: a PostgreSQL server of the bench's own, as an operator would run one on
//! this machine: `initdb` and `pg_ctl start` in a temporary directory on a free loopback
//! port, as the `postgres` user when the bench runs as root (PostgreSQL refuses root), and
//! stopped when dropped. The integration tests start theirs the same way.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// A running server and its data directory.
pub(super) struct TempPostgres {
    /// `postgresql://postgres@127.0.0.1:PORT/postgres`.
    pub url: String,
    pg_ctl: PathBuf,
    dir: tempfile::TempDir,
}

/// `name` from `PATH`, else from Debian's `/usr/lib/postgresql/VERSION/bin` (the newest
/// version), where the `postgresql` package puts it.
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if let Some(path) = on_path {
        return Ok(path);
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
    versions.pop().map(|(_, p)| p).with_context(|| {
        format!("no {name}: install PostgreSQL (Debian: postgresql), or give --postgres URL")
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// `program` run as the user PostgreSQL runs as.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) -> anyhow::Result<()> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl TempPostgres {
    pub(super) fn start() -> anyhow::Result<Self> {
        let (initdb, pg_ctl) = (binary("initdb")?, binary("pg_ctl")?);
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        if is_root() {
            let mut chown = Command::new("chown");
            chown.arg("postgres:").arg(dir.path());
            run(chown, "chown postgres: (the data directory)")?;
        }
        let data = dir.path().join("data");
        let mut init = as_owner(&initdb);
        init.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(init, "initdb")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free port")?
            .port();
        let mut start = as_owner(&pg_ctl);
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                dir.path().display()
            ))
            .args(["start", "-w", "-t", "60"]);
        run(start, "pg_ctl start")?;
        Ok(Self {
            url: format!("postgresql://postgres@127.0.0.1:{port}/postgres"),
            pg_ctl,
            dir,
        })
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let mut stop = as_owner(&self.pg_ctl);
        stop.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["stop", "-m", "immediate", "-w"]);
        let _ = stop.output();
    }
}
