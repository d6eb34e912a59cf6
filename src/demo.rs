//! `upsbridge demo`: a simulator and a proxy with one demo account, in a temp
//! dir, so a newcomer can see a legacy request answered within a minute.

use std::time::Duration;

use upsbridge::config::Config;
use upsbridge_sim as sim;

pub const DEMO_ACCESS_KEY: &str = "ACCESSKEY123";
pub const DEMO_USER: &str = "legacyuser";
pub const DEMO_PASSWORD: &str = "legacypass";
pub const DEMO_SHIPPER: &str = "9Y9Y9Y";
const DEMO_CLIENT: (&str, &str) = ("demo-client", "demo-client-secret");

/// A header-style rate request body, as the 2018–2022 JSON clients sent it.
pub const DEMO_RATE_BODY: &str = r#"{"RateRequest":{"Request":{"RequestOption":"Rate"},"Shipment":{"Shipper":{"ShipperNumber":"9Y9Y9Y","Address":{"AddressLine":["10 Elm Rd"],"City":"Dover","StateProvinceCode":"DE","PostalCode":"19901","CountryCode":"US"}},"ShipTo":{"Name":"Acme","Address":{"AddressLine":["5 Oak Ave"],"City":"Reno","StateProvinceCode":"NV","PostalCode":"89501","CountryCode":"US"}},"Service":{"Code":"03"},"Package":{"PackagingType":{"Code":"02"},"PackageWeight":{"UnitOfMeasurement":{"Code":"LBS"},"Weight":"3"}}}}}"#;

pub fn run() -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("upsbridge-demo-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?;

    // The simulator runs on its own thread and runtime for the life of the demo.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("demo simulator runtime");
        rt.block_on(async move {
            let opts = sim::SimOptions {
                clients: vec![(DEMO_CLIENT.0.to_string(), DEMO_CLIENT.1.to_string())],
                ..sim::SimOptions::default()
            };
            match sim::start("127.0.0.1:0".parse().expect("static addr"), opts).await {
                Ok(s) => {
                    let _ = tx.send(Ok(s.base_url()));
                    std::future::pending::<()>().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        });
    });
    let sim_url = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the simulator did not start".to_string())??;

    let hash = upsbridge::accounts::password::hash(DEMO_PASSWORD).map_err(|e| e.to_string())?;
    // The ops page needs a password: a fresh one per demo, printed below.
    let admin_password = upsbridge::admin::auth::hex(&rand::random::<[u8; 8]>());
    let admin_hash =
        upsbridge::accounts::password::hash(&admin_password).map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("client-secret"), DEMO_CLIENT.1).map_err(|e| e.to_string())?;
    let map = format!(
        "[[account]]\nname = \"demo\"\nups_account_number = \"{DEMO_SHIPPER}\"\naccess_license_number = \"{DEMO_ACCESS_KEY}\"\nuser_id = \"{DEMO_USER}\"\npassword_hash = \"{hash}\"\nclient_id = \"{}\"\nclient_secret_file = \"client-secret\"\n",
        DEMO_CLIENT.0
    );
    std::fs::write(dir.path().join("accounts.toml"), map).map_err(|e| e.to_string())?;
    let config = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\nshutdown_grace_secs = 1\n[admin]\nlisten = \"127.0.0.1:0\"\npassword_hash = \"{admin_hash}\"\n[store]\npath = \"store\"\n[accounts]\nfile = \"accounts.toml\"\n[ups]\nbase_url = \"{sim_url}\"\n"
    );
    let config_path = dir.path().join("upsbridge.toml");
    std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
    let config = Config::load(&config_path).map_err(|e| e.to_string())?;

    upsbridge::server::serve_with(config, |proxy, admin| {
        println!();
        println!("upsbridge demo: a UPS simulator at {sim_url} and the proxy at http://{proxy}");
        println!("ops page and status: http://{admin}/   (JSON: http://{admin}/api/accounts); admin password {admin_password}");
        println!("demo legacy credentials: access key {DEMO_ACCESS_KEY}, user {DEMO_USER}, password {DEMO_PASSWORD}");
        println!();
        println!("Try a header-style rate request, exactly as an old client sends it:");
        println!();
        println!(
            "curl -s http://{proxy}/ship/v1801/rating/Rate -H 'AccessLicenseNumber: {DEMO_ACCESS_KEY}' -H 'Username: {DEMO_USER}' -H 'Password: {DEMO_PASSWORD}' -H 'Content-Type: application/json' -d '{DEMO_RATE_BODY}'"
        );
        println!();
        println!("Press Ctrl-C to stop.");
    })
    .map_err(|e| e.to_string())
}
