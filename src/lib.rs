//! upsbridge: an authenticating reverse proxy that keeps legacy UPS access-key
//! clients (header JSON, legacy JSON, SOAP, old XML) working against UPS's
//! OAuth 2.0 REST API.
//!
//! Module map (one concern each):
//! - [`config`]: the TOML config, validated once into typed structs.
//! - [`accounts`]: the account map file → sled store → in-memory lookup index.
//! - [`store`]: the sled store (imported map, tokens).
//! - [`dialect`]: one module per legacy dialect (detect, credentials, to/from REST, errors).
//! - [`oauth`]: the token broker (client credentials, authorization code, refresh rotation).
//! - [`pipeline`]: one request, transport-independent: dialect, authentication, token,
//!   the UPS call, the answer, the record.
//! - [`proxy`]: the listener (a pingora service served by hyper) and the UPS upstream.
//! - [`admin`]: the ops listener (health, metrics, account status).
//! - [`clock`]: Unix time; [`memory`]: the process allocator; [`logbuf`]: the batched log writer;
//!   [`substring`]: byte strings searched for in bodies.
//! - [`server`]: assembles one `serve` process.
//! - [`tls`]: the private CA, certificates by SNI, reload and renewal; [`doctor`]: the
//!   set-up checklist.
//!
//! Not here: the UPS simulator is its own crate (`sim/`, `upsbridge-sim`), and the demo is
//! the binary's (`src/demo.rs`): test support never ships in the product library.

pub mod accounts;
pub mod admin;
pub mod clock;
pub mod config;
pub mod dialect;
pub mod doctor;
pub mod error;
pub mod logbuf;
pub mod memory;
pub mod metrics;
pub mod oauth;
pub mod pipeline;
pub mod proxy;
pub mod rest;
pub mod server;
pub mod store;
pub mod substring;
pub mod tls;
