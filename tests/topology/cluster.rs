//! A PostgreSQL primary and a synchronous streaming standby of its own, in a temporary
//! directory owned by the postgres user, on free loopback ports; stopped and removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// PostgreSQL's server binaries (Debian's layout), newest version first.
fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_basebackup").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Why the test cannot run here, said on stderr (a failure in CI).
fn cannot_run(why: &str) -> Option<Cluster> {
    assert!(!is_ci(), "the topology test must run in CI: {why}");
    eprintln!("topology: not run: {why}");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    pub primary_port: u16,
    pub standby_port: u16,
}

impl Cluster {
    /// A primary with one synchronous standby (`synchronous_commit = on`: a commit waits
    /// for the standby to have the WAL on disk, not to have applied it, so pausing its replay
    /// does not stop writes).
    pub async fn start(name: &str) -> Option<Cluster> {
        let Some(bin) = pg_bin() else {
            return cannot_run("PostgreSQL's server binaries are not installed");
        };
        let root = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&root.stdout).trim() != "0" {
            return cannot_run("the test runs PostgreSQL as the postgres user, which needs root");
        }
        let dir = std::env::temp_dir().join(format!(
            "group-topology-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("the cluster's directory");
        run("chown", &["postgres:postgres", &dir.to_string_lossy()]);
        let cluster = Cluster {
            bin,
            dir,
            primary_port: free_port(),
            standby_port: free_port(),
        };
        let primary = cluster.dir.join("primary");
        cluster.as_postgres(
            "initdb",
            &[
                "-D",
                &primary.to_string_lossy(),
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        append(
            &primary.join("postgresql.conf"),
            &format!(
                "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 wal_level = replica\nmax_wal_senders = 5\nfsync = off\n\
                 synchronous_standby_names = 'standby1'\nsynchronous_commit = on\n",
                cluster.primary_port,
                cluster.dir.display()
            ),
        );
        cluster.pg_ctl(&primary, "start");
        let standby = cluster.dir.join("standby");
        cluster.as_postgres(
            "pg_basebackup",
            &[
                "-d",
                &format!(
                    "host=127.0.0.1 port={} user=postgres application_name=standby1",
                    cluster.primary_port
                ),
                "-D",
                &standby.to_string_lossy(),
                "-R",
                "-X",
                "stream",
            ],
        );
        append(
            &standby.join("postgresql.auto.conf"),
            &format!("port = {}\n", cluster.standby_port),
        );
        cluster.pg_ctl(&standby, "start");
        // Streaming, and synchronous, before the test begins.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let state = cluster
                .primary_query(
                    "SELECT sync_state FROM pg_stat_replication \
                     WHERE application_name = 'standby1'",
                )
                .await;
            if state.as_deref() == Some("sync") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the standby did not stream within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(cluster)
    }

    pub fn primary_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.primary_port
        )
    }

    pub fn standby_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.standby_port
        )
    }

    /// Both servers, the writable one chosen at each connection (libpq's multi-host form):
    /// what a server keeps using across a failover.
    pub fn failover_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?sslmode=disable\
             &target_session_attrs=read-write",
            self.primary_port, self.standby_port
        )
    }

    /// The primary goes away at once, as a crashed machine would (`pg_ctl stop -m
    /// immediate`).
    pub fn stop_primary(&self) {
        self.pg_ctl(&self.dir.join("primary"), "stop");
    }

    /// The standby becomes the primary (`pg_ctl promote`, waiting until it accepts writes).
    pub fn promote_standby(&self) {
        self.pg_ctl(&self.dir.join("standby"), "promote");
    }

    /// The first column of the first row of `sql` on the primary, as text.
    async fn primary_query(&self, sql: &str) -> Option<String> {
        let client = connect(&self.primary_url()).await;
        let rows = client
            .simple_query(sql)
            .await
            .expect("a query on the primary");
        rows.into_iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
    }

    /// Runs `sql` on the standby.
    pub async fn standby_sql(&self, sql: &str) {
        connect(&self.standby_url())
            .await
            .simple_query(sql)
            .await
            .expect("a statement on the standby");
    }

    fn as_postgres(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut all = vec!["-u", "postgres", "--", program.to_str().expect("a path")];
        all.extend_from_slice(args);
        run("runuser", &all);
    }

    fn pg_ctl(&self, data: &Path, action: &str) {
        let log = data.with_extension("log");
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-m",
                "immediate",
                action,
            ],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in ["standby", "primary"] {
            let data = self.dir.join(node);
            let program = self.bin.join("pg_ctl");
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(program)
                .args([
                    "-D",
                    &data.to_string_lossy(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn append(file: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    tokio::spawn(connection);
    client
}
