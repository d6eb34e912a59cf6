//! The floor of a Rust header swap without pingora: hyper 1 server and pooled client on a
//! current-thread runtime, dropping the three legacy headers and adding a static bearer.
//! benches/compare.sh runs it beside nginx and upsbridge (the team's shared-harness floor).
//! Env: CANDIDATE_PORT, UPSTREAM_PORT, BENCH_TOKEN.
use std::sync::Arc;

use http::header::{HeaderValue, AUTHORIZATION};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let up: Arc<str> = format!("127.0.0.1:{}", env("UPSTREAM_PORT")).into();
        let auth = HeaderValue::from_str(&format!("Bearer {}", env("BENCH_TOKEN"))).expect("token");
        let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build_http();
        let listener =
            tokio::net::TcpListener::bind(format!("127.0.0.1:{}", env("CANDIDATE_PORT")))
                .await
                .expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            stream.set_nodelay(true).ok();
            let (client, up, auth) = (client.clone(), up.clone(), auth.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (client, up, auth) = (client.clone(), up.clone(), auth.clone());
                    async move {
                        let (mut parts, body) = req.into_parts();
                        for h in ["accesslicensenumber", "username", "password"] {
                            parts.headers.remove(h);
                        }
                        parts.headers.insert(AUTHORIZATION, auth);
                        let pq = parts
                            .uri
                            .path_and_query()
                            .map(|p| p.as_str())
                            .unwrap_or("/");
                        parts.uri = Uri::builder()
                            .scheme("http")
                            .authority(&*up)
                            .path_and_query(pq)
                            .build()
                            .expect("uri");
                        client.request(Request::from_parts(parts, body)).await
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
