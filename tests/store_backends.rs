//! The store keeps one contract on both backends: sled in a temp dir, and a real
//! PostgreSQL (tests/common/pg.rs). Then what only PostgreSQL has to get right: instances
//! opening at once, a database that stops, restarts or hangs, and `store migrate` from sled
//! with the password never shown.

mod common;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::Command;
use std::time::{Duration, Instant};

use common::pg::{Postgres, PG_PASSWORD};
use upsbridge::accounts::map::{AccountRecord, SecretSource};
use upsbridge::accounts::Grant;
use upsbridge::config::{parse_postgres_url, PostgresConfig, PostgresTls};
use upsbridge::store::{Store, Tree};

fn record(name: &str) -> AccountRecord {
    AccountRecord {
        name: name.to_string(),
        ups_account_number: "9Y9Y9Y".into(),
        access_license_number: format!("KEY-{name}"),
        user_id: format!("user-{name}"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        client_id: format!("client-{name}"),
        client_secret: SecretSource::Env(format!("SECRET_{name}")),
        grant: Grant::ClientCredentials,
        environment: None,
        line: 1,
    }
}

fn pg_config(pg: &Postgres, timeout: Duration) -> PostgresConfig {
    PostgresConfig {
        connect: parse_postgres_url(&pg.url()).unwrap(),
        url: pg.url().into(),
        password_file: Some(pg.password_file()),
        tls: PostgresTls::Disable,
        timeout,
        instance: None,
    }
}

type Opening = Pin<Box<dyn Future<Output = Store>>>;

/// How a backend is opened for the contract, and how "a second handle" is had.
enum Backend<'a> {
    /// sled: one process holds the directory, so the second handle is a reopening.
    Sled(&'a Path),
    /// PostgreSQL: two handles open at once, as two instances would.
    Postgres(&'a PostgresConfig),
}

impl Backend<'_> {
    fn open(&self) -> Opening {
        match self {
            Backend::Sled(p) => {
                let p = p.to_path_buf();
                Box::pin(async move { Store::open(&p).await.unwrap() })
            }
            Backend::Postgres(c) => {
                let c = (*c).clone();
                Box::pin(async move { Store::open(&c).await.unwrap() })
            }
        }
    }
}

fn names(records: &[AccountRecord]) -> Vec<&str> {
    let mut n: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
    n.sort();
    n
}

/// The one contract both backends keep.
async fn contract(backend: Backend<'_>) {
    let store = backend.open().await;
    assert!(!store.has_tokens().await.unwrap());

    // Accounts replace/list; a removed account loses its tokens.
    let removed = store
        .replace_accounts(&[record("east"), record("west")])
        .await
        .unwrap();
    assert!(removed.is_empty());
    assert_eq!(names(&store.accounts().await.unwrap()), ["east", "west"]);
    assert_eq!(store.accounts().await.unwrap()[0], record("east"));
    store
        .put_token_durably("east", b"sealed-east-1".to_vec())
        .await
        .unwrap();
    store
        .put_token_durably("west", b"sealed-west".to_vec())
        .await
        .unwrap();
    store
        .put_token_durably("east", b"sealed-east-2".to_vec())
        .await
        .unwrap();
    assert!(store.has_tokens().await.unwrap());
    assert_eq!(
        store.token("east").await.unwrap().as_deref(),
        Some(&b"sealed-east-2"[..])
    );
    assert_eq!(store.token("north").await.unwrap(), None);
    let removed = store.replace_accounts(&[record("east")]).await.unwrap();
    assert_eq!(removed, ["west"]);
    assert_eq!(names(&store.accounts().await.unwrap()), ["east"]);
    assert_eq!(store.token("west").await.unwrap(), None);
    assert_eq!(
        store.token("east").await.unwrap().as_deref(),
        Some(&b"sealed-east-2"[..])
    );

    // Key check.
    assert_eq!(store.key_check().await.unwrap(), None);
    store.set_key_check(b"check-1".to_vec()).await.unwrap();
    assert_eq!(
        store.key_check().await.unwrap().as_deref(),
        Some(&b"check-1"[..])
    );

    // Disabled accounts.
    assert!(store.disabled_accounts().await.unwrap().is_empty());
    store.set_disabled("west", true).await.unwrap();
    store.set_disabled("east", true).await.unwrap();
    let mut disabled = store.disabled_accounts().await.unwrap();
    disabled.sort();
    assert_eq!(disabled, ["east", "west"]);
    store.set_disabled("west", false).await.unwrap();
    assert_eq!(store.disabled_accounts().await.unwrap(), ["east"]);

    // Digests: put/get, compare-and-swap (one winner), remove.
    let key = [7u8; 32];
    assert_eq!(store.digest(&key).await.unwrap(), None);
    store
        .put_digest_durably(&key, b"pending".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.digest(&key).await.unwrap().as_deref(),
        Some(&b"pending"[..])
    );
    let (a, b) = tokio::join!(
        store.swap_digest_durably(&key, b"pending", b"shipping-a".to_vec()),
        store.swap_digest_durably(&key, b"pending", b"shipping-b".to_vec()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a != b, "exactly one swap wins: {a} {b}");
    let winner: &[u8] = if a { b"shipping-a" } else { b"shipping-b" };
    assert_eq!(store.digest(&key).await.unwrap().as_deref(), Some(winner));
    assert!(!store
        .swap_digest_durably(&key, b"pending", b"late".to_vec())
        .await
        .unwrap());
    assert_eq!(store.digest(&key).await.unwrap().as_deref(), Some(winner));
    store.remove_digest(&key).await.unwrap();
    assert_eq!(store.digest(&key).await.unwrap(), None);

    // Kept answers.
    assert_eq!(store.replays_kept().await.unwrap(), 0);
    store
        .put_replay_durably(&[1; 32], b"answer-1".to_vec())
        .await
        .unwrap();
    store
        .put_replay_durably(&[2; 32], b"answer-2".to_vec())
        .await
        .unwrap();
    assert_eq!(store.replays_kept().await.unwrap(), 2);
    assert_eq!(
        store.replay(&[2; 32]).await.unwrap().as_deref(),
        Some(&b"answer-2"[..])
    );
    store.remove_replay(&[2; 32]).await.unwrap();
    assert_eq!(store.replay(&[2; 32]).await.unwrap(), None);
    assert_eq!(store.replays_kept().await.unwrap(), 1);

    // A secret is made once and every handle gets that one.
    let first = store.secret("digest_mac_key").await.unwrap();
    assert_eq!(store.secret("digest_mac_key").await.unwrap(), first);
    assert_ne!(store.secret("other").await.unwrap(), first);
    store.flush().await.unwrap();
    match backend {
        Backend::Sled(_) => {
            drop(store);
            let again = backend.open().await;
            assert_eq!(again.secret("digest_mac_key").await.unwrap(), first);
            // Everything above survived the reopening.
            assert_eq!(
                again.token("east").await.unwrap().as_deref(),
                Some(&b"sealed-east-2"[..])
            );
            assert_eq!(again.disabled_accounts().await.unwrap(), ["east"]);
        }
        Backend::Postgres(_) => {
            let (one, two) = tokio::join!(backend.open(), backend.open());
            assert_eq!(one.secret("digest_mac_key").await.unwrap(), first);
            // A secret neither handle has seen, asked for by both at once.
            let (x, y) = tokio::join!(one.secret("race"), two.secret("race"));
            assert_eq!(x.unwrap(), y.unwrap());
            assert_eq!(
                two.token("east").await.unwrap().as_deref(),
                Some(&b"sealed-east-2"[..])
            );
        }
    }
}

#[tokio::test]
async fn sled_keeps_the_store_contract() {
    let dir = common::tempdir();
    contract(Backend::Sled(&dir.path().join("store"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_store_contract() {
    let pg = Postgres::start();
    contract(Backend::Postgres(&pg_config(&pg, Duration::from_secs(5)))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_opening_postgres_at_once_all_start_and_apply_the_schema_once() {
    let pg = Postgres::start();
    let config = pg_config(&pg, Duration::from_secs(10));
    let opened = futures::future::join_all((0..6).map(|_| Store::open(&config))).await;
    for o in &opened {
        assert!(o.is_ok(), "{:?}", o.as_ref().err());
    }
    assert_eq!(
        pg.psql("SELECT string_agg(version::text, ',') FROM upsbridge_schema"),
        "1"
    );
    // Opening again later applies nothing.
    Store::open(&config).await.unwrap();
    assert_eq!(pg.psql("SELECT count(*) FROM upsbridge_schema"), "1");
}

/// What a loaded 2-core machine may add to a timeout before the error is seen.
const SLACK: Duration = Duration::from_millis(1000);

/// A store error's text, checked for what ops need and for what must never be there.
fn assert_says(e: &upsbridge::store::StoreError, pg: &Postgres, what: &str) {
    let text = e.to_string();
    eprintln!("store error: {text}");
    assert!(text.contains(what), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}/upsbridge", pg.port)),
        "names the database: {text}"
    );
    assert!(!text.contains(PG_PASSWORD), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_hung_postgres_is_an_error_within_the_timeout_and_the_pool_recovers() {
    let pg = Postgres::start();
    let timeout = Duration::from_millis(1500);
    let store = Store::open(&pg_config(&pg, timeout)).await.unwrap();
    store
        .put_token_durably("east", b"t1".to_vec())
        .await
        .unwrap();

    // Restarted under the pool's connections: the same handle goes on working.
    pg.restart();
    assert_eq!(
        store.token("east").await.unwrap().as_deref(),
        Some(&b"t1"[..])
    );
    store
        .put_token_durably("east", b"t2".to_vec())
        .await
        .unwrap();

    // Stopped: an error, within the timeout, that says where and what to check.
    pg.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let e = store.token("east").await.unwrap_err();
        let took = started.elapsed();
        assert!(took <= timeout + SLACK, "{took:?}: {e}");
        assert_says(&e, &pg, "is PostgreSQL up at");
    }
    let e = store
        .put_token_durably("east", b"t3".to_vec())
        .await
        .unwrap_err();
    assert_says(&e, &pg, "is PostgreSQL up at");

    // Back: the same handle works again, without reopening.
    pg.start_again();
    assert_eq!(
        store.token("east").await.unwrap().as_deref(),
        Some(&b"t2"[..])
    );

    // Hung (every PostgreSQL process stopped): a timeout, not a hang, for pooled
    // connections and new ones alike.
    pg.freeze();
    for _ in 0..3 {
        let started = Instant::now();
        let e = store.token("east").await.unwrap_err();
        let took = started.elapsed();
        assert!(
            took >= timeout - Duration::from_millis(100) && took <= timeout + SLACK,
            "{took:?}: {e}"
        );
        assert_says(&e, &pg, "did not answer within 1500 ms");
    }
    pg.thaw();
    assert_eq!(
        store.token("east").await.unwrap().as_deref(),
        Some(&b"t2"[..])
    );

    // Crashed (SIGKILL), then up again: the pool drops the dead connections.
    pg.kill();
    let started = Instant::now();
    assert!(store.token("east").await.is_err());
    assert!(started.elapsed() <= timeout + SLACK);
    pg.start_again();
    assert_eq!(
        store.token("east").await.unwrap().as_deref(),
        Some(&b"t2"[..])
    );
}

/// The readiness probe on a hung PostgreSQL: "not ready" within the timeout, counted as a
/// timeout; while the next probe waits on the hung database, another caller is told at
/// once what the last one found, and only one query is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_postgres_is_not_ready_within_the_timeout_and_probed_once_at_a_time() {
    use std::sync::Arc;
    use upsbridge::admin::ready::StoreProbe;
    use upsbridge::store::observe::Outcome;

    let pg = Postgres::start();
    let timeout = Duration::from_millis(1500);
    let store = Store::open(&pg_config(&pg, timeout)).await.unwrap();
    let probe = Arc::new(StoreProbe::with_max_age(
        store.clone(),
        Duration::from_millis(100),
    ));
    assert!(probe.check().await.answer.is_ok());
    let pings = |o| store.metrics().count("postgres", "ping", o);

    pg.freeze();
    std::thread::sleep(Duration::from_millis(150));
    let started = Instant::now();
    let why = probe.check().await.answer.unwrap_err();
    let took = started.elapsed();
    assert!(took <= timeout + SLACK, "{took:?}: {why}");
    assert!(why.contains("did not answer within 1500 ms"), "{why}");
    assert!(
        why.contains(&format!("127.0.0.1:{}/upsbridge", pg.port)),
        "{why}"
    );
    assert!(!why.contains(PG_PASSWORD) && !why.contains('\n'), "{why}");
    assert_eq!(pings(Outcome::Timeout), 1);

    // The answer is old now: one caller probes again (and waits), the others do not.
    std::thread::sleep(Duration::from_millis(150));
    let probing = tokio::spawn({
        let probe = probe.clone();
        async move { probe.check().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    for _ in 0..5 {
        assert!(probe.check().await.answer.is_err());
    }
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "callers waited on the hung database: {:?}",
        started.elapsed()
    );
    assert!(probing.await.unwrap().answer.is_err());
    assert_eq!(pings(Outcome::Timeout), 2, "one probe in flight at a time");

    pg.thaw();
    std::thread::sleep(Duration::from_millis(150));
    assert!(probe.check().await.answer.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_comes_from_the_file_and_is_never_in_a_message() {
    let pg = Postgres::start();
    // Wrong password: refused at open, with the hint, and neither password in the text.
    let wrong = pg.password_file().with_extension("wrong");
    std::fs::write(&wrong, "wrong-Pw-QQ81\n").unwrap();
    let mut config = pg_config(&pg, Duration::from_secs(5));
    config.password_file = Some(wrong);
    let e = Store::open(&config).await.err().expect("refused");
    assert_says(&e, &pg, "password authentication failed");
    assert!(!e.to_string().contains("wrong-Pw-QQ81"), "{e}");
    // No password at all.
    config.password_file = None;
    let e = Store::open(&config).await.err().expect("refused");
    assert_says(&e, &pg, "cannot connect to PostgreSQL at");
    // A password in the URL is accepted, and not shown when the database is down.
    let mut config = pg_config(&pg, Duration::from_secs(1));
    config.password_file = None;
    config.connect = parse_postgres_url(&format!(
        "postgres://upsbridge:{PG_PASSWORD}@127.0.0.1:{}/upsbridge",
        pg.port
    ))
    .unwrap();
    let store = Store::open(&config).await.unwrap();
    pg.stop();
    let e = store.token("east").await.unwrap_err();
    assert_says(&e, &pg, "is PostgreSQL up at");
    let e = Store::open(&config).await.err().expect("down");
    assert_says(&e, &pg, "is PostgreSQL up at");
}

/// `upsbridge store migrate ARGS` with the password in the environment.
fn migrate(args: &[&str]) -> (bool, String) {
    let out = Command::new(common::BIN)
        .args(["store", "migrate"])
        .args(args)
        .env("UPSBRIDGE_STORE_PASSWORD", PG_PASSWORD)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains(PG_PASSWORD),
        "the password was printed:\n{text}"
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_migrate_copies_sled_into_postgres_byte_for_byte() {
    let dir = common::tempdir();
    let sled_dir = dir.path().join("store");
    let pg = Postgres::start();
    let config = pg_config(&pg, Duration::from_secs(5));
    let sled = Store::open(&sled_dir).await.unwrap();
    sled.replace_accounts(&[record("east"), record("west")])
        .await
        .unwrap();
    sled.put_token_durably("east", vec![0, 1, 2, 255])
        .await
        .unwrap();
    sled.put_token_durably("west", b"west-sealed".to_vec())
        .await
        .unwrap();
    sled.set_key_check(b"check".to_vec()).await.unwrap();
    let secret = sled.secret("digest_mac_key").await.unwrap();
    sled.set_disabled("west", true).await.unwrap();
    sled.put_digest_durably(&[9; 32], b"{\"state\":\"pending\"}".to_vec())
        .await
        .unwrap();
    sled.put_replay_durably(&[3; 32], b"kept".to_vec())
        .await
        .unwrap();
    let from = format!("sled:{}", sled_dir.display());
    let to = format!("postgres:{}", pg.url());

    // While something holds the sled store (a running serve), migrate refuses.
    let (ok, text) = migrate(&["--from", &from, "--to", &to]);
    assert!(
        !ok && text.contains("is another upsbridge using it?"),
        "{text}"
    );
    let mut expected = vec![];
    for tree in Tree::ALL {
        expected.push((tree, sled.entries(tree).await.unwrap()));
    }
    drop(sled);

    let (ok, text) = migrate(&["--from", &from, "--to", &to]);
    assert!(ok, "{text}");
    for line in [
        "accounts: 2",
        "tokens: 2",
        "meta: 3 (key check: yes, secrets: 1, disabled accounts: 1)",
        "digests: 1",
        "replays: 1",
    ] {
        assert!(text.contains(line), "`{line}` in:\n{text}");
    }

    let target = Store::open(&config).await.unwrap();
    for (tree, entries) in &expected {
        assert_eq!(&target.entries(*tree).await.unwrap(), entries, "{tree:?}");
    }
    assert_eq!(target.secret("digest_mac_key").await.unwrap(), secret);
    assert_eq!(
        target.token("east").await.unwrap().as_deref(),
        Some(&[0, 1, 2, 255][..])
    );
    assert_eq!(target.disabled_accounts().await.unwrap(), ["west"]);

    // The target holds tokens now: refused, unless forced.
    let (ok, text) = migrate(&["--from", &from, "--to", &to]);
    assert!(!ok && text.contains("already holds tokens"), "{text}");
    target
        .put_token_durably("north", b"only-in-postgres".to_vec())
        .await
        .unwrap();
    let (ok, text) = migrate(&["--from", &from, "--to", &to, "--force"]);
    assert!(ok, "{text}");
    assert_eq!(target.token("north").await.unwrap(), None, "an exact copy");
    assert_eq!(
        target.token("west").await.unwrap().as_deref(),
        Some(&b"west-sealed"[..])
    );

    // A password in the URL is never printed, not even when the database is down.
    let with_password = format!(
        "postgres:postgres://upsbridge:{PG_PASSWORD}@127.0.0.1:{}/upsbridge",
        pg.port
    );
    let (ok, text) = migrate(&["--from", &from, "--to", &with_password, "--force"]);
    assert!(ok, "{text}");
    pg.stop();
    let (ok, text) = migrate(&[
        "--from",
        &from,
        "--to",
        &with_password,
        "--timeout-ms",
        "1000",
    ]);
    assert!(!ok && text.contains("is PostgreSQL up at"), "{text}");
    let (ok, text) = migrate(&["--from", &from, "--to", "mysql://x"]);
    assert!(!ok && text.contains("sled:PATH or postgres:URL"), "{text}");
}

fn rate(proxy: &common::Proxy) -> reqwest::blocking::Response {
    let body = serde_json::json!({"RateRequest": {"Request": {"RequestOption": "Rate"},
        "Shipment": {"Shipper": {"ShipperNumber": "9Y9Y9Y", "Address": {"AddressLine": ["10 Elm Rd"], "City": "Dover", "StateProvinceCode": "DE", "PostalCode": "19901", "CountryCode": "US"}},
                     "ShipTo": {"Name": "Acme", "Address": {"AddressLine": ["5 Oak Ave"], "City": "Reno", "StateProvinceCode": "NV", "PostalCode": "89501", "CountryCode": "US"}},
                     "Service": {"Code": "02"},
                     "Package": {"PackagingType": {"Code": "02"}, "PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "3"}}}}});
    common::header_request(
        &proxy.http,
        reqwest::Method::POST,
        &format!("{}/ship/v1801/rating/Rate", proxy.url),
        &common::EAST,
        Some(&body),
    )
}

#[test]
fn serve_on_postgres_goes_on_with_the_tokens_migrated_from_sled() {
    use common::{Proxy, Sim, EAST, FAST_TIMEOUTS, NORTH};
    let dir = common::tempdir();
    let pg = Postgres::start();
    let sim = Sim::start(dir.path(), &[&EAST, &NORTH], 14399);
    // On sled: a client-credentials token, an authorized account, a confirmed shipment.
    let digest = {
        let proxy = Proxy::start(dir.path(), &sim, &[&EAST, &NORTH], FAST_TIMEOUTS);
        assert_eq!(rate(&proxy).status(), 200);
        let callback = common::log_in_at_ups(&common::start_authorize(&proxy, NORTH.name));
        assert_eq!(common::follow_callback(&callback).status(), 303);
        assert_eq!(common::track(&proxy, &NORTH).status(), 200);
        let confirmed = common::old_xml(&proxy, "ShipConfirm", common::confirm(&EAST));
        common::xml_text(&confirmed, "ShipmentDigest").expect("a digest")
    };
    assert_eq!(sim.token_requests("client_credentials"), 1);

    let (ok, text) = migrate(&[
        "--from",
        &format!("sled:{}", dir.path().join("store").display()),
        "--to",
        &format!("postgres:{}", pg.url()),
    ]);
    assert!(ok, "{text}");

    let config = Proxy::config_text(&sim.url, FAST_TIMEOUTS).replace(
        "[store]\npath = \"store\"\n",
        &format!(
            "[store]\npath = \"store\"\nbackend = \"postgres\"\nurl = \"{}\"\npassword_file = \"{}\"\ntimeout_ms = 3000\n",
            pg.url(),
            pg.password_file().display()
        ),
    );
    assert!(config.contains("backend = \"postgres\""));
    let proxy = Proxy::start_with_config(dir.path(), &[&EAST, &NORTH], &config);
    assert_eq!(rate(&proxy).status(), 200);
    // The token came from PostgreSQL, sealed by the same key: UPS was not asked again.
    assert_eq!(sim.token_requests("client_credentials"), 1);
    // The authorized account goes on without anyone logging in again.
    assert_eq!(common::track(&proxy, &NORTH).status(), 200);
    assert_eq!(sim.token_requests("authorization_code"), 1);
    // The shipment confirmed before the move is accepted after it, once.
    common::old_xml(&proxy, "ShipAccept", common::accept(&EAST, &digest));
    assert_eq!(common::ships(&sim), 1);
    let log = proxy.log_text();
    assert!(
        log.contains("store opened") && log.contains("postgres"),
        "{log}"
    );
    assert!(!log.contains(PG_PASSWORD));
    // tokio-postgres's debug lines print every query's parameters: kept out of the log.
    assert!(!log.contains("with parameters"), "{log}");
    // The account map was imported into PostgreSQL too.
    assert_eq!(
        pg.psql("SELECT count(*) FROM upsbridge_kv WHERE tree = 'accounts'"),
        "2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_require_checks_the_database_certificate() {
    let pg = Postgres::start_tls();
    let mut config = pg_config(&pg, Duration::from_secs(5));
    // The web PKI does not know the test CA: refused, and the message says why.
    config.tls = PostgresTls::Require { ca_file: None };
    let e = Store::open(&config).await.err().expect("refused");
    assert_says(&e, &pg, "UnknownIssuer");
    // With its CA: connected over TLS.
    config.tls = PostgresTls::Require {
        ca_file: Some(pg.ca_file()),
    };
    let store = Store::open(&config).await.unwrap();
    store
        .put_token_durably("east", b"t".to_vec())
        .await
        .unwrap();
    assert_eq!(
        pg.psql(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'upsbridge'"
        ),
        "t"
    );
    // A CA file that holds no certificate is a clear error.
    let empty = pg.ca_file().with_extension("empty");
    std::fs::write(&empty, "").unwrap();
    config.tls = PostgresTls::Require {
        ca_file: Some(empty),
    };
    let e = Store::open(&config).await.err().expect("refused");
    assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
}

/// The token lease on PostgreSQL: a second instance waits while the first holds it, then
/// reads what the first committed; the ops page's view names the holder while it holds it;
/// a lease dropped without commit (its holder failed) frees the account at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_lease_is_held_by_one_instance_at_a_time() {
    let pg = Postgres::start();
    let named = |name: &str| {
        let mut c = pg_config(&pg, Duration::from_secs(5));
        c.instance = Some(name.to_string());
        c
    };
    let a = Store::open(&named("a")).await.unwrap();
    let b = Store::open(&named("b")).await.unwrap();
    let accounts = vec!["east".to_string(), "west".to_string()];

    let mut held = a.token_lease("east", Duration::from_secs(5)).await.unwrap();
    assert_eq!(held.token().await.unwrap(), None);
    assert_eq!(
        b.lease_holders(&accounts).await.unwrap(),
        vec![("east".to_string(), "a".to_string())]
    );
    // b wants the same lease: it waits for a's commit, then sees a's record.
    let waiter = tokio::spawn({
        let b = b.clone();
        async move {
            let started = std::time::Instant::now();
            let mut lease = b.token_lease("east", Duration::from_secs(5)).await.unwrap();
            let seen = lease.token().await.unwrap();
            lease.release().await;
            (started.elapsed(), seen)
        }
    });
    // Another account's lease is not held up.
    b.token_lease("west", Duration::from_millis(500))
        .await
        .unwrap()
        .release()
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    held.commit_token(b"sealed-1".to_vec()).await.unwrap();
    let (waited, seen) = waiter.await.unwrap();
    assert!(waited >= Duration::from_millis(600), "{waited:?}");
    assert_eq!(seen.as_deref(), Some(&b"sealed-1"[..]));
    assert!(b.lease_holders(&accounts).await.unwrap().is_empty());

    // A holder that fails (its lease dropped uncommitted) frees the account at once, and
    // nothing of its transaction is stored.
    let dropped = a.token_lease("east", Duration::from_secs(5)).await.unwrap();
    drop(dropped);
    let started = std::time::Instant::now();
    let mut lease = b.token_lease("east", Duration::from_secs(5)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        lease.token().await.unwrap().as_deref(),
        Some(&b"sealed-1"[..])
    );
    // A wait longer than allowed is an error, not a hang.
    let started = std::time::Instant::now();
    let e = match a.token_lease("east", Duration::from_millis(300)).await {
        Ok(_) => panic!("a second holder got the lease"),
        Err(e) => e,
    };
    assert!(started.elapsed() < Duration::from_secs(5) + SLACK, "{e}");
    lease.release().await;
}
