//! The documented example files stay valid.

use std::path::Path;

#[test]
fn example_config_and_account_map_are_valid() {
    let c = upsbridge::config::Config::load(Path::new("config/upsbridge.toml")).unwrap();
    assert_eq!(c.ups.base_url.as_str(), "https://wwwcie.ups.com/");
    let records = upsbridge::accounts::map::load(&c.accounts.file).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].access_license_number, "ACCESSKEY123");
    assert!(upsbridge::accounts::password::verify_slow(
        &records[0].password_hash,
        "legacypass"
    ));
}
