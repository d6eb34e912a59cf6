//! Account lookup cost against map size (design §8: flat from 10 to 100,000 accounts), and
//! parsing cost of a generated map per account.
//!
//!     cargo bench --bench accounts
//!
//! Maps are generated with one argon2 hash shared by every record (each record unique by
//! access key + user id); lookups are of keys spread over the whole map, hits and misses.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use upsbridge::accounts::{self, map, AccountIndex, AccountRecord, Grant, SecretSource};

/// The allocator `upsbridge serve` runs with, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET_ENV: &str = "UPSBRIDGE_BENCH_SECRET";
/// A valid argon2id PHC string (the hash itself never gets verified here).
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$sYihtZ8qVQap5JqEEQbYZQ$R+r9W4C3b7hP1WTS0KtyxTqWIUexGPcxYhuQSwyrIrk";

fn key(i: usize) -> String {
    format!("BENCHKEY{i:06}")
}

fn user(i: usize) -> String {
    format!("benchuser{i}")
}

fn records(n: usize) -> Vec<AccountRecord> {
    (0..n)
        .map(|i| AccountRecord {
            name: format!("bench-{i}"),
            ups_account_number: format!("{:06}", 100_000 + i % 900_000),
            access_license_number: key(i),
            user_id: user(i),
            password_hash: HASH.to_string(),
            client_id: format!("bench-client-{i}"),
            client_secret: SecretSource::Env(SECRET_ENV.to_string()),
            grant: Grant::ClientCredentials,
            environment: None,
            line: 1 + 9 * i,
        })
        .collect()
}

fn index(n: usize) -> AccountIndex {
    std::env::set_var(SECRET_ENV, "bench-secret");
    AccountIndex::build(accounts::resolve(records(n), "bench").expect("generated map resolves"))
}

fn map_text(n: usize) -> String {
    let mut text = String::from("# generated\n");
    for r in records(n) {
        text.push_str(&format!(
            "\n[[account]]\nname = \"{}\"\nups_account_number = \"{}\"\naccess_license_number = \"{}\"\nuser_id = \"{}\"\npassword_hash = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"{SECRET_ENV}\"\n",
            r.name, r.ups_account_number, r.access_license_number, r.user_id, r.password_hash, r.client_id
        ));
    }
    text
}

/// 64 probe keys spread evenly over the map (owned, so lookups borrow like the proxy does).
fn probes(n: usize) -> Vec<(String, String)> {
    (0..64)
        .map(|j| (key(j * n / 64), user(j * n / 64)))
        .collect()
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("AccountIndex::lookup");
    g.throughput(Throughput::Elements(64));
    for n in [10, 1_000, 10_000, 100_000] {
        let idx = index(n);
        assert_eq!(idx.len(), n);
        let hits = probes(n);
        g.bench_with_input(BenchmarkId::new("hit", n), &hits, |b, hits| {
            b.iter(|| {
                for (k, u) in hits {
                    black_box(idx.lookup(black_box(k), black_box(u)).is_ok());
                }
            })
        });
        let misses: Vec<(String, String)> = hits
            .iter()
            .map(|(k, _)| (k.clone(), "nobody".to_string()))
            .collect();
        g.bench_with_input(BenchmarkId::new("wrong user", n), &misses, |b, misses| {
            b.iter(|| {
                for (k, u) in misses {
                    black_box(idx.lookup(black_box(k), black_box(u)).is_err());
                }
            })
        });
    }
    g.finish();
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("map::parse");
    g.sample_size(10);
    for n in [1_000, 10_000] {
        let text = map_text(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &text, |b, text| {
            b.iter(|| {
                map::parse(black_box(text), "bench.toml", Path::new("."))
                    .unwrap()
                    .len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, lookup, parse);
criterion_main!(benches);
