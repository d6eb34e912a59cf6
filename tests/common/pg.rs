//! A real PostgreSQL server for tests: Debian's binaries (`pg_config --bindir`, else the
//! newest `/usr/lib/postgresql/*/bin`; `scripts/setup.sh` installs them), a cluster made
//! by `initdb` in a temp dir, listening on 127.0.0.1 at a free port and on a unix socket
//! in that dir. Tests run as root and `initdb` refuses root, so `initdb` and `pg_ctl` run
//! as the `postgres` user (`runuser -u postgres --`), in a dir chowned to it (run as
//! another user, they run as that user). [`Postgres::start_tls`] turns TLS on with a
//! certificate of a CA made for the test.
//!
//! The cluster has a database `upsbridge` owned by a role `upsbridge` that logs in over TCP
//! with a password only (scram-sha-256; [`Postgres::password_file`]), and the superuser
//! `postgres`, trusted on the unix socket ([`Postgres::admin_url`]) for the tests' own looks.
//! `fsync=off`: durability against the OS is not what these tests check.
//!
//! Every server is its own (dir, port), so test binaries and tests run in parallel.
//! Dropping a [`Postgres`] stops it (`pg_ctl stop -m immediate`, SIGKILL if that fails):
//! no server outlives its test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The password of the `upsbridge` role (only ever in the password file and in tests).
pub const PG_PASSWORD: &str = "pg-Pw-7fQz2LxR";

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// `initdb`, `pg_ctl`, `psql` of the installed PostgreSQL.
fn bindir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|d| d.join("initdb").exists());
    if let Some(d) = from_pg_config {
        return d;
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .expect("no PostgreSQL server binaries (initdb); run scripts/setup.sh")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Postgres {
    /// A new cluster, started and ready.
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// [`Postgres::start`] with TLS on: the server's certificate (for 127.0.0.1 and
    /// localhost) is issued by a CA of its own, in [`Postgres::ca_file`].
    pub fn start_tls() -> Postgres {
        Postgres::start_with(true)
    }

    fn start_with(tls: bool) -> Postgres {
        let bin = bindir();
        let dir = tempfile::Builder::new()
            .prefix("upsbridge-pg-")
            .tempdir()
            .expect("tempdir");
        let mut pg = Postgres { dir, bin, port: 0 };
        std::fs::create_dir(pg.sock_dir()).unwrap();
        if tls {
            pg.write_certificates();
        }
        if is_root() {
            let owned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .status()
                .expect("chown");
            assert!(owned.success(), "chown the PostgreSQL dir to postgres");
        }
        let initdb = pg.as_postgres(&pg.bin.join("initdb"), |c| {
            c.arg("-D").arg(pg.data_dir()).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]);
        });
        assert!(initdb.status.success(), "initdb: {}", text(&initdb));
        std::fs::write(
            pg.data_dir().join("pg_hba.conf"),
            "local all all trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        std::fs::write(pg.password_file(), format!("{PG_PASSWORD}\n")).unwrap();
        // A port someone else took between the probe and the start: try another.
        for attempt in 0.. {
            pg.port = free_port();
            let conf = format!(
                "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 fsync = off\nfull_page_writes = off\nshared_buffers = 16MB\nmax_connections = 60\n\
                 log_min_messages = warning\n{}",
                pg.port,
                pg.sock_dir().display(),
                if tls {
                    format!(
                        "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                        pg.dir.path().join("server.crt").display(),
                        pg.dir.path().join("server.key").display()
                    )
                } else {
                    String::new()
                }
            );
            std::fs::write(pg.data_dir().join("postgresql.auto.conf"), conf).unwrap();
            match pg.pg_ctl_start() {
                Ok(()) => break,
                Err(e) if attempt < 3 => eprintln!("PostgreSQL did not start, another port: {e}"),
                Err(e) => panic!("PostgreSQL did not start: {e}"),
            }
        }
        pg.psql_in(
            "postgres",
            &format!("CREATE ROLE upsbridge LOGIN PASSWORD '{PG_PASSWORD}'"),
        );
        pg.psql_in("postgres", "CREATE DATABASE upsbridge OWNER upsbridge");
        pg
    }

    /// The CA that issued the server's certificate ([`Postgres::start_tls`]).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn write_certificates(&self) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        use std::os::unix::fs::PermissionsExt;
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_ca_cert_pem(&ca_cert.pem(), &ca_key).unwrap();
        let leaf =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
        std::fs::write(self.ca_file(), ca_cert.pem()).unwrap();
        std::fs::write(self.dir.path().join("server.crt"), leaf.pem()).unwrap();
        let key = self.dir.path().join("server.key");
        std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where the unix socket is (`.s.PGSQL.<port>`).
    pub fn sock_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// The `upsbridge` role's password, one line, as `[store] password_file` reads it.
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    /// The database over TCP as the `upsbridge` role (no password in it: see
    /// [`Postgres::password_file`]).
    pub fn url(&self) -> String {
        format!("postgres://upsbridge@127.0.0.1:{}/upsbridge", self.port)
    }

    /// The same database as the superuser over the unix socket (trusted; for looking).
    pub fn admin_url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=upsbridge",
            self.sock_dir().display(),
            self.port
        )
    }

    /// Run a PostgreSQL program as the `postgres` user (as root), or as this user.
    fn as_postgres(&self, program: &Path, args: impl FnOnce(&mut Command)) -> Output {
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        args(&mut c);
        // pg_ctl and psql must not inherit a working directory postgres cannot read.
        c.current_dir(self.dir.path());
        c.output().expect("runuser")
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let out = self.as_postgres(&self.bin.join("pg_ctl"), |c| {
            c.arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-w", "-t", "60", "start"]);
        });
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{}\n{}", text(&out), self.log()))
        }
    }

    fn pg_ctl_stop(&self, mode: &str) -> Output {
        self.as_postgres(&self.bin.join("pg_ctl"), |c| {
            c.arg("-D")
                .arg(self.data_dir())
                .args(["-m", mode, "-w", "-t", "60", "stop"]);
        })
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Run SQL as the superuser in the `upsbridge` database (over the socket); panics on
    /// failure. The answer's rows, unaligned.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("upsbridge", sql)
    }

    fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = self.as_postgres(&self.bin.join("psql"), |c| {
            c.args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(self.sock_dir())
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    db,
                    "-c",
                    sql,
                ]);
        });
        assert!(out.status.success(), "psql {sql}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stop (fast: connections are closed) and start again on the same port.
    pub fn restart(&self) {
        self.stop();
        self.pg_ctl_start()
            .unwrap_or_else(|e| panic!("PostgreSQL did not start again: {e}"));
    }

    /// Stop (fast shutdown).
    pub fn stop(&self) {
        let out = self.pg_ctl_stop("fast");
        assert!(out.status.success(), "pg_ctl stop: {}", text(&out));
    }

    /// Start a stopped server again.
    pub fn start_again(&self) {
        self.pg_ctl_start()
            .unwrap_or_else(|e| panic!("PostgreSQL did not start again: {e}"));
    }

    /// The postmaster and every process it started.
    fn processes(&self) -> Vec<i32> {
        let Some(postmaster) = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        else {
            return vec![];
        };
        // A stale pid file must not make us signal whatever has that pid now.
        let comm = std::fs::read_to_string(format!("/proc/{postmaster}/comm")).unwrap_or_default();
        if !comm.starts_with("postgres") {
            return vec![];
        }
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid …: comm may hold spaces, so read after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }

    fn signal(&self, signal: &str) {
        for pid in self.processes() {
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }

    /// Crash: SIGKILL the postmaster and its processes.
    pub fn kill(&self) {
        self.signal("-KILL");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self
            .processes()
            .iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(self.data_dir().join("postmaster.pid"));
    }

    /// Hang: SIGSTOP the postmaster and its processes (connections stay open, nothing
    /// answers). [`Postgres::thaw`] undoes it.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.thaw();
        let out = self.pg_ctl_stop("immediate");
        if !out.status.success() {
            self.kill();
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
