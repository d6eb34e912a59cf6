//! The floor of pingora's proxy loop: a `ProxyHttp` that only swaps the three legacy
//! headers for a static bearer. benches/compare.sh runs it beside nginx and upsbridge (the
//! team's shared-harness floor). Env: CANDIDATE_PORT, UPSTREAM_PORT, BENCH_TOKEN.
use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Swap {
    upstream: String,
    auth: String,
}

#[async_trait]
impl ProxyHttp for Swap {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
    async fn upstream_request_filter(
        &self,
        _s: &mut Session,
        req: &mut RequestHeader,
        _c: &mut (),
    ) -> Result<()> {
        for h in ["AccessLicenseNumber", "Username", "Password"] {
            req.remove_header(h);
        }
        req.insert_header("Authorization", self.auth.as_str())?;
        Ok(())
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn main() {
    let upstream = format!("127.0.0.1:{}", env("UPSTREAM_PORT"));
    let auth = format!("Bearer {}", env("BENCH_TOKEN"));
    let mut server = Server::new(None).expect("server");
    server.bootstrap();
    let mut svc = http_proxy_service(&server.configuration, Swap { upstream, auth });
    svc.add_tcp(&format!("127.0.0.1:{}", env("CANDIDATE_PORT")));
    server.add_service(svc);
    server.run_forever();
}
