//! `upsbridge`: command line. Parses arguments, sets up logging, hands over to
//! the library. Nothing else lives here.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use upsbridge::{accounts, config::Config, server};
use upsbridge_sim as sim;

mod demo;

/// mimalloc, built without transparent huge pages: why in `upsbridge::memory`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "upsbridge",
    version,
    about = "Keeps legacy UPS access-key clients working against UPS's OAuth REST API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy and the admin listener.
    Serve {
        #[arg(long, default_value = "config/upsbridge.toml")]
        config: PathBuf,
    },
    /// Run the UPS simulator (for tests, benchmarks and trying things out).
    Sim {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// A registered API client, ID:SECRET (repeatable).
        #[arg(long = "client", value_parser = sim::parse_client)]
        clients: Vec<(String, String)>,
        /// Access-token lifetime in seconds.
        #[arg(long, default_value_t = 14399)]
        token_ttl: u64,
    },
    /// Start a simulator and a proxy with a demo account, print a curl line to try.
    Demo,
    /// (internal) one refresh-token rotation, run by `serve` as a crash-safe helper process.
    #[command(hide = true)]
    InternalRotate,
    /// Manage the account map.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Check the set-up: config, map, listeners, TLS, how UPS resolves, UPS reachable,
    /// accounts authorized, clock. Exits non-zero when something blocks traffic.
    Doctor {
        #[arg(long, default_value = "config/upsbridge.toml")]
        config: PathBuf,
    },
    /// Certificates for the TLS listener and CONNECT tunnels.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// The store: moving it between backends.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy every tree (accounts, tokens, key check and secrets, digests, kept answers) from
    /// one store into another, bytes unchanged, so tokens keep working: keep [store] key_file
    /// (or UPSBRIDGE_STORE_KEY) as it is. Stop `serve` first. Prints counts, never values.
    /// The PostgreSQL password comes from UPSBRIDGE_STORE_PASSWORD or --password-file.
    Migrate {
        /// sled:PATH or postgres:URL (e.g. postgres:postgres://upsbridge@db:5432/upsbridge).
        #[arg(long)]
        from: String,
        /// sled:PATH or postgres:URL.
        #[arg(long)]
        to: String,
        /// File holding the PostgreSQL password (UPSBRIDGE_STORE_PASSWORD overrides it).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// TLS to PostgreSQL: disable or require (the server's certificate is checked).
        #[arg(long, default_value = "disable")]
        tls: String,
        /// Extra CA certificates (PEM) for --tls require.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Bound on each database operation, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
        /// Replace the target even when it already holds tokens.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Make a private CA limited to UPS's names (kept if it exists) and a leaf for them in
    /// [tls] dir; prints the CA certificate's path last, for the clients' trust stores.
    Init {
        #[arg(long, default_value = "config/upsbridge.toml")]
        config: PathBuf,
        /// Another name or IP the CA may certify (repeatable; only when the CA is made).
        #[arg(long = "name")]
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Validate an account map file: every problem as FILE:LINE: message.
    Check { file: PathBuf },
    /// Read a legacy password on stdin, print the hash to put in the map.
    HashPassword,
    /// Add an account to the map file (the legacy password is read on stdin and stored only
    /// as its hash); the running server picks the change up.
    Add {
        #[arg(long, default_value = "config/upsbridge.toml")]
        config: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        ups_account_number: String,
        /// client_credentials or authorization_code.
        #[arg(long, default_value = "client_credentials")]
        grant: String,
        #[arg(long)]
        client_id: String,
        /// env:VARIABLE or file:PATH.
        #[arg(long)]
        client_secret: String,
        #[arg(long)]
        access_license_number: String,
        #[arg(long)]
        user_id: String,
        /// production or cie (default: the one [ups] base_url names).
        #[arg(long)]
        environment: Option<String>,
    },
    /// One line per account with its token state (never secrets).
    List {
        #[arg(long, default_value = "config/upsbridge.toml")]
        config: PathBuf,
    },
    /// Authorization-code onboarding from a terminal: prints the UPS login URL and waits
    /// until the account owner has allowed access (the running server receives the callback).
    Authorize {
        name: String,
        #[arg(long, default_value = "config/upsbridge.toml")]
        config: PathBuf,
    },
}

/// Logs to stderr, `RUST_LOG` respected (default `info`). Lines are batched
/// ([`upsbridge::logbuf`]); the returned guard flushes them when dropped (keep it for the life
/// of the process).
///
/// pingora's own debug and trace records are never emitted, whatever `RUST_LOG` says: they
/// print raw request bytes and whole request headers (a malformed request's first 2 KB, every
/// `Password:` header at trace). upsbridge's own records carry the same events without secrets.
/// Nor are tokio-postgres's: at debug it prints every query's parameters, i.e. every store
/// record (sealed, but account records and digests are not for logs either).
fn init_logging() -> FlushOnExit {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{filter, fmt, EnvFilter, Layer};
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let no_raw_bytes = filter::filter_fn(|meta| {
        let chatty =
            meta.target().starts_with("pingora") || meta.target().starts_with("tokio_postgres");
        !(chatty && *meta.level() > tracing::Level::INFO)
    });
    upsbridge::logbuf::start_flusher();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let out = fmt::layer()
        .with_writer(upsbridge::logbuf::BatchedStderr)
        .fmt_fields(upsbridge::logbuf::PlainFields)
        .event_format(upsbridge::logbuf::LineFormat::new(
            upsbridge::logbuf::SecondCachedTime,
        ))
        .with_ansi(ansi)
        // One filter of both: `tracing::enabled!` (the request line asks it) reads a stack
        // of two per-layer filters as enabled when the outer one alone enables.
        .with_filter(filter::FilterExt::and(env, no_raw_bytes));
    // With the `tracing-log` feature, try_init also routes pingora's `log` records here.
    if tracing_subscriber::registry().with(out).try_init().is_ok() && !ansi {
        // The request line may skip the layer: it writes what the layer would.
        upsbridge::logbuf::write_lines_directly();
    }
    FlushOnExit
}

/// Flushes the batched log when `main` returns.
struct FlushOnExit;

impl Drop for FlushOnExit {
    fn drop(&mut self) {
        upsbridge::logbuf::flush();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = init_logging();
    match cli.command {
        Command::Serve { config } => match Config::load(&config) {
            Err(e) => fail(&e.to_string()),
            Ok(c) => match server::serve(c) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e.to_string()),
            },
        },
        Command::Sim {
            listen,
            clients,
            token_ttl,
        } => run_sim(listen, clients, token_ttl),
        Command::InternalRotate => upsbridge::oauth::rotate::helper_main(),
        Command::Doctor { config } => {
            let lines = upsbridge::doctor::run(&config);
            for l in &lines {
                println!("{l}");
            }
            let failed = lines
                .iter()
                .filter(|l| l.verdict == upsbridge::doctor::Verdict::Fail)
                .count();
            if failed == 0 {
                println!("nothing blocks traffic");
                ExitCode::SUCCESS
            } else {
                println!("{failed} problem(s) block traffic: fix the FAIL lines above");
                ExitCode::FAILURE
            }
        }
        Command::Tls {
            command: TlsCommand::Init { config, names },
        } => match Config::load(&config)
            .map_err(|e| e.to_string())
            .and_then(|c| upsbridge::tls::init(&c.tls, &names).map_err(|e| e.to_string()))
        {
            Ok(ca) => {
                println!("{}", ca.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Store {
            command:
                StoreCommand::Migrate {
                    from,
                    to,
                    password_file,
                    tls,
                    ca_file,
                    timeout_ms,
                    force,
                },
        } => {
            let tls = match (tls.as_str(), ca_file) {
                ("disable", None) => upsbridge::config::PostgresTls::Disable,
                ("require", ca_file) => upsbridge::config::PostgresTls::Require { ca_file },
                ("disable", Some(_)) => return fail("--ca-file needs --tls require"),
                (other, _) => return fail(&format!("--tls `{other}`: disable or require")),
            };
            let options = upsbridge::store::migrate::Options {
                from,
                to,
                password_file,
                tls,
                timeout: Duration::from_millis(timeout_ms.max(1)),
                force,
            };
            match upsbridge::store::migrate::run(&options) {
                Ok(copied) => {
                    println!("copied:\n{copied}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Demo => match demo::run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Accounts { command } => match command {
            AccountsCommand::Check { file } => match accounts::load_map(&file) {
                Ok(a) => {
                    println!("{}: {} accounts, no problems", file.display(), a.len());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            },
            AccountsCommand::Add {
                config,
                name,
                ups_account_number,
                grant,
                client_id,
                client_secret,
                access_license_number,
                user_id,
                environment,
            } => {
                let c = match Config::load(&config) {
                    Ok(c) => c,
                    Err(e) => return fail(&e.to_string()),
                };
                let grant = match grant.as_str() {
                    "client_credentials" => accounts::Grant::ClientCredentials,
                    "authorization_code" => accounts::Grant::AuthorizationCode,
                    other => {
                        return fail(&format!(
                            "--grant `{other}`: client_credentials or authorization_code"
                        ))
                    }
                };
                let mut password = String::new();
                if let Err(e) = std::io::stdin().read_to_string(&mut password) {
                    return fail(&format!("cannot read the password on stdin: {e}"));
                }
                let new = accounts::add::NewAccount {
                    name: name.clone(),
                    ups_account_number,
                    grant,
                    client_id,
                    secret_source: client_secret,
                    access_license_number,
                    user_id,
                    environment,
                };
                let password = password.trim_end_matches(['\r', '\n']);
                match accounts::add::add_to_file(&c.accounts.file, None, &new, password) {
                    Ok(()) => {
                        println!("{name} added to {}", c.accounts.file.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&e.to_string()),
                }
            }
            AccountsCommand::HashPassword => {
                let mut password = String::new();
                if let Err(e) = std::io::stdin().read_to_string(&mut password) {
                    return fail(&format!("cannot read stdin: {e}"));
                }
                let password = password.trim_end_matches(['\r', '\n']);
                if password.is_empty() {
                    return fail("no password on stdin");
                }
                match accounts::password::hash(password) {
                    Ok(h) => {
                        println!("{h}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&format!("hashing failed: {e}")),
                }
            }
            AccountsCommand::Authorize { name, config } => match Config::load(&config) {
                Err(e) => fail(&e.to_string()),
                Ok(c) => match upsbridge::admin::authorize_from_terminal(&c, &name) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(&e.to_string()),
                },
            },
            AccountsCommand::List { config } => match Config::load(&config) {
                Err(e) => fail(&e.to_string()),
                Ok(c) => match upsbridge::admin::list(&c) {
                    Ok(lines) => {
                        for l in lines {
                            println!("{l}");
                        }
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&e.to_string()),
                },
            },
        },
    }
}

fn run_sim(listen: SocketAddr, clients: Vec<(String, String)>, token_ttl: u64) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start runtime: {e}")),
    };
    rt.block_on(async {
        let opts = sim::SimOptions {
            clients,
            token_ttl: Duration::from_secs(token_ttl),
            ..sim::SimOptions::default()
        };
        match sim::start(listen, opts).await {
            Err(e) => fail(&format!("cannot listen on {listen}: {e}")),
            Ok(running) => {
                println!("listening on {}", running.base_url());
                let _ = tokio::signal::ctrl_c().await;
                running.shutdown().await;
                ExitCode::SUCCESS
            }
        }
    })
}

fn fail(message: &str) -> ExitCode {
    // The log lines that led here come first.
    upsbridge::logbuf::flush();
    eprintln!("upsbridge: {message}");
    ExitCode::FAILURE
}
