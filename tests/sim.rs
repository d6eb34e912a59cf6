//! The UPS simulator, driven over real TCP like the proxy will drive it:
//! OAuth grants, the `/api` gatekeeping, service shapes, inspection and faults.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use upsbridge_sim::{self as sim, RunningSim, SimOptions};

const ID: &str = "client-a";
const SECRET: &str = "secret-a";
const OTHER_ID: &str = "client-b";
const OTHER_SECRET: &str = "secret-b";
const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

async fn start() -> RunningSim {
    let opts = SimOptions {
        clients: vec![
            (ID.to_string(), SECRET.to_string()),
            (OTHER_ID.to_string(), OTHER_SECRET.to_string()),
        ],
        ..SimOptions::default()
    };
    sim::start("127.0.0.1:0".parse().expect("addr"), opts)
        .await
        .expect("simulator starts")
}

fn http() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

fn ups_err(code: &str, message: &str) -> Value {
    json!({"response": {"errors": [{"code": code, "message": message}]}})
}

async fn body(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, v)
}

async fn cc_token_raw(c: &Client, s: &RunningSim, id: &str, secret: &str) -> reqwest::Response {
    c.post(format!("{}/security/v1/oauth/token", s.base_url()))
        .basic_auth(id, Some(secret))
        .header("x-merchant-id", "A1B2C3")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request")
}

async fn cc_token(c: &Client, s: &RunningSim) -> String {
    let (st, v) = body(cc_token_raw(c, s, ID, SECRET).await).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

fn rate_body() -> Value {
    json!({"RateRequest": {
        "Request": {"TransactionReference": {"CustomerContext": "order-42"}},
        "Shipment": {
            "Shipper": {"ShipperNumber": "A1B2C3", "Address": {"AddressLine": "1 Main St", "PostalCode": "30303", "CountryCode": "US"}},
            "ShipTo": {"Address": {"AddressLine": ["5 Elm St", "Suite 2"], "PostalCode": "10001", "CountryCode": "US"}},
            "Service": {"Code": "02"},
            "Package": [
                {"PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "2.5"}},
                {"PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "5"}}
            ]
        }
    }})
}

async fn api_post(
    c: &Client,
    s: &RunningSim,
    path: &str,
    token: &str,
    b: &Value,
) -> (StatusCode, Value) {
    body(
        c.post(format!("{}{path}", s.base_url()))
            .bearer_auth(token)
            .json(b)
            .send()
            .await
            .expect("api request"),
    )
    .await
}

async fn set_faults(c: &Client, s: &RunningSim, f: Value) {
    let r = c
        .post(format!("{}/__sim/faults", s.base_url()))
        .json(&f)
        .send()
        .await
        .expect("faults");
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "{}",
        r.text().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn client_credentials_token_is_all_strings_and_opens_the_rating_api() {
    let s = start().await;
    let c = http();
    let (st, tok) = body(cc_token_raw(&c, &s, ID, SECRET).await).await;
    assert_eq!(st, StatusCode::OK);
    for k in [
        "token_type",
        "issued_at",
        "client_id",
        "access_token",
        "scope",
        "expires_in",
        "refresh_count",
        "status",
    ] {
        assert!(tok[k].is_string(), "{k} must be a string in {tok}");
    }
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["client_id"], ID);
    assert_eq!(tok["expires_in"], "14399");
    assert_eq!(tok["refresh_count"], "0");
    assert_eq!(tok["status"], "approved");
    assert!(
        tok.get("refresh_token").is_none(),
        "client credentials get no refresh token"
    );
    let at = tok["access_token"].as_str().unwrap_or_default();
    assert!(
        at.len() >= 32 && at.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{at}"
    );
    assert!(tok["issued_at"]
        .as_str()
        .unwrap_or_default()
        .parse::<u64>()
        .is_ok());

    let (st, v) = api_post(&c, &s, "/api/rating/v2409/Rate", at, &rate_body()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let rr = &v["RateResponse"];
    assert_eq!(
        rr["Response"]["ResponseStatus"],
        json!({"Code": "1", "Description": "Success"})
    );
    assert_eq!(
        rr["Response"]["TransactionReference"]["CustomerContext"],
        "order-42"
    );
    let rs = &rr["RatedShipment"];
    assert!(
        rs.is_object(),
        "Rate answers one RatedShipment object: {rs}"
    );
    assert_eq!(rs["Service"]["Code"], "02");
    assert_eq!(rs["BillingWeight"]["Weight"], "7.5");
    assert_eq!(rs["BillingWeight"]["UnitOfMeasurement"]["Code"], "LBS");
    assert_eq!(rs["GuaranteedDelivery"]["BusinessDaysInTransit"], "2");
    assert_eq!(rs["RatedPackage"].as_array().map(Vec::len), Some(2));
    assert_eq!(rs["RatedShipmentAlert"].as_array().map(Vec::len), Some(1));
    assert_eq!(rs["TotalCharges"]["CurrencyCode"], "USD");
    assert!(rs.get("NegotiatedRateCharges").is_none());
    // Deterministic: the same request costs the same.
    let (_, again) = api_post(&c, &s, "/api/rating/v2409/Rate", at, &rate_body()).await;
    assert_eq!(
        again["RateResponse"]["RatedShipment"]["TotalCharges"],
        rs["TotalCharges"]
    );

    // The token list shows client and merchant, never the token.
    let r = c
        .get(format!("{}/__sim/tokens", s.base_url()))
        .send()
        .await
        .expect("tokens");
    let text = r.text().await.unwrap_or_default();
    assert!(!text.contains(at), "token string leaked: {text}");
    let list: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_eq!(list[0]["client_id"], ID);
    assert_eq!(list[0]["merchant_id"], "A1B2C3");
    let left = list[0]["expires_in_secs"].as_u64().unwrap_or(0);
    assert!((14390..=14399).contains(&left), "{left}");
    s.shutdown().await;
}

#[tokio::test]
async fn shop_rates_three_services_and_negotiated_rates_on_request() {
    let s = start().await;
    let c = http();
    let t = cc_token(&c, &s).await;
    let mut b = rate_body();
    b["RateRequest"]["Shipment"]["Package"] =
        json!({"PackageWeight": {"UnitOfMeasurement": {"Code": "KGS"}, "Weight": 3}});
    b["RateRequest"]["Shipment"]["ShipmentRatingOptions"] = json!({"NegotiatedRatesIndicator": ""});
    let (st, v) = api_post(&c, &s, "/api/rating/v2409/shop", &t, &b).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let list = v["RateResponse"]["RatedShipment"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let codes: Vec<&str> = list
        .iter()
        .filter_map(|r| r["Service"]["Code"].as_str())
        .collect();
    assert_eq!(codes, ["03", "02", "01"]);
    assert!(
        list[0].get("GuaranteedDelivery").is_none(),
        "ground is not guaranteed"
    );
    assert_eq!(list[2]["GuaranteedDelivery"]["BusinessDaysInTransit"], "1");
    assert!(
        list[0]["RatedPackage"].is_object(),
        "one package collapses to an object"
    );
    assert_eq!(list[0]["BillingWeight"]["Weight"], "3.0");
    assert_eq!(list[0]["BillingWeight"]["UnitOfMeasurement"]["Code"], "KGS");
    let total: f64 = list[0]["TotalCharges"]["MonetaryValue"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0.0);
    let nego: f64 = list[0]["NegotiatedRateCharges"]["TotalCharge"]["MonetaryValue"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0.0);
    assert!(
        nego > 0.0 && nego < total,
        "negotiated {nego} < list {total}"
    );

    set_faults(&c, &s, json!({"negotiated_rates_unapproved": ["A1B2C3"]})).await;
    let (st, v) = api_post(&c, &s, "/api/rating/v2409/Shop", &t, &b).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        ups_err(
            "111210",
            "The Shipper ID is not approved for negotiated rates."
        )
    );
    // Without the indicator the same shipper still rates.
    b["RateRequest"]["Shipment"]
        .as_object_mut()
        .map(|o| o.remove("ShipmentRatingOptions"));
    let (st, _) = api_post(&c, &s, "/api/rating/v2409/Shop", &t, &b).await;
    assert_eq!(st, StatusCode::OK);
    s.shutdown().await;
}

/// One refused token request: what was sent, what UPS answers.
struct TokenRefusal {
    authorization: Option<String>,
    form: &'static [(&'static str, &'static str)],
    status: StatusCode,
    /// UPS's error body, when the simulator is expected to give one.
    error: Option<Value>,
}

#[tokio::test]
async fn token_endpoint_refuses_bad_clients_and_grants() {
    let s = start().await;
    let c = http();
    let basic = |id: &str, secret: &str| {
        use base64::Engine;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        Some(format!("Basic {pair}"))
    };
    const CC: &[(&str, &str)] = &[("grant_type", "client_credentials")];
    let bad_client = |authorization| TokenRefusal {
        authorization,
        form: CC,
        status: StatusCode::UNAUTHORIZED,
        error: Some(ups_err("10401", "ClientId is Invalid")),
    };
    let cases = [
        bad_client(basic(ID, "wrong")),
        bad_client(basic("nobody", SECRET)),
        bad_client(None),
        TokenRefusal {
            authorization: Some("Basic !!!notbase64".into()),
            form: CC,
            status: StatusCode::UNAUTHORIZED,
            error: None,
        },
        TokenRefusal {
            authorization: basic(ID, SECRET),
            form: &[("grant_type", "password")],
            status: StatusCode::BAD_REQUEST,
            error: Some(ups_err("10400", "Invalid/Missing grant_type")),
        },
        TokenRefusal {
            authorization: basic(ID, SECRET),
            form: &[
                ("grant_type", "authorization_code"),
                ("code", "made-up"),
                ("redirect_uri", REDIRECT),
            ],
            status: StatusCode::BAD_REQUEST,
            error: Some(ups_err("10400", "Invalid Authorization Code")),
        },
    ];
    for case in cases {
        let mut req = c
            .post(format!("{}/security/v1/oauth/token", s.base_url()))
            .form(case.form);
        if let Some(a) = &case.authorization {
            req = req.header("authorization", a);
        }
        let r = req.send().await.expect("send");
        let what = format!("{:?} {:?}", case.authorization, case.form);
        match case.error {
            Some(error) => assert_eq!(body(r).await, (case.status, error), "{what}"),
            None => assert_eq!(r.status(), case.status, "{what}"),
        }
    }
    s.shutdown().await;
}

#[tokio::test]
async fn api_requires_a_live_bearer_and_no_legacy_credentials() {
    let s = start().await;
    let c = http();
    let url = format!("{}/api/rating/v2409/Rate", s.base_url());
    let invalid = ups_err("250002", "Invalid Authentication Information.");
    let r = c.post(&url).json(&rate_body()).send().await.expect("send");
    assert_eq!(body(r).await, (StatusCode::UNAUTHORIZED, invalid.clone()));
    let r = c
        .post(&url)
        .bearer_auth("not-a-token")
        .json(&rate_body())
        .send()
        .await
        .expect("send");
    assert_eq!(body(r).await, (StatusCode::UNAUTHORIZED, invalid));

    let t = cc_token(&c, &s).await;
    for h in ["AccessLicenseNumber", "username", "PASSWORD"] {
        let r = c
            .post(&url)
            .bearer_auth(&t)
            .header(h, "x")
            .json(&rate_body())
            .send()
            .await
            .expect("send");
        let (st, v) = body(r).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{h}");
        assert_eq!(v["response"]["errors"][0]["code"], "250099");
        let msg = v["response"]["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            msg.contains(&h.to_ascii_lowercase()),
            "message names {h}: {msg}"
        );
    }
    for member in ["UPSSecurity", "Security"] {
        let mut b = rate_body();
        b[member] = json!({"UsernameToken": {"Username": "u", "Password": "p"}});
        let (st, v) = api_post(&c, &s, "/api/rating/v2409/Rate", &t, &b).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert_eq!(v["response"]["errors"][0]["code"], "250099");
        assert!(v["response"]["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(member));
    }
    let r = c
        .post(&url)
        .bearer_auth(&t)
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(
        body(r).await,
        (
            StatusCode::BAD_REQUEST,
            ups_err("10001", "The request is not well formed")
        )
    );
    let r = c
        .post(&url)
        .bearer_auth(&t)
        .body("[1,2]")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .get(format!("{}/api/nothing/v1/here", s.base_url()))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(
        body(r).await,
        (
            StatusCode::NOT_FOUND,
            ups_err("10404", "Resource not found")
        )
    );
    s.shutdown().await;
}

/// Pulls `name`'s value out of the login page's hidden fields.
fn hidden(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')? + start;
    Some(
        page[start..end]
            .replace("&amp;", "&")
            .replace("&quot;", "\""),
    )
}

/// The login page → submitted form → redirect query (code, state).
async fn authorize(
    c: &Client,
    s: &RunningSim,
    state: &str,
    challenge: Option<&str>,
) -> (String, String) {
    let mut q = vec![
        ("client_id", ID),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("state", state),
        ("scope", "read"),
    ];
    if let Some(ch) = challenge {
        q.push(("code_challenge", ch));
        q.push(("code_challenge_method", "S256"));
    }
    let r = c
        .get(format!("{}/security/v1/oauth/authorize", s.base_url()))
        .query(&q)
        .send()
        .await
        .expect("authorize page");
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap_or_default();
    for needle in [
        "name=\"user\"",
        "id=\"user\"",
        "name=\"password\"",
        "id=\"password\"",
        "id=\"allow\"",
        ">Allow</button>",
    ] {
        assert!(page.contains(needle), "login page lacks {needle}: {page}");
    }
    let mut form: Vec<(String, String)> = [
        "client_id",
        "redirect_uri",
        "response_type",
        "state",
        "scope",
        "code_challenge",
        "code_challenge_method",
    ]
    .iter()
    .filter_map(|k| hidden(&page, k).map(|v| (k.to_string(), v)))
    .collect();
    assert_eq!(hidden(&page, "state").as_deref(), Some(state));
    // Empty password: the page again, with an error, and no redirect.
    let mut empty = form.clone();
    empty.push(("user".into(), "shipper".into()));
    empty.push(("password".into(), String::new()));
    let r = c
        .post(format!("{}/security/v1/oauth/authorize", s.base_url()))
        .form(&empty)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    let again = r.text().await.unwrap_or_default();
    assert!(
        again.contains("id=\"error\"") && again.contains("id=\"allow\""),
        "{again}"
    );

    form.push(("user".into(), "shipper".into()));
    form.push(("password".into(), "pw".into()));
    let r = c
        .post(format!("{}/security/v1/oauth/authorize", s.base_url()))
        .form(&form)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(loc.starts_with(&format!("{REDIRECT}?code=")), "{loc}");
    let u = url::Url::parse(&loc).expect("location is a URL");
    let get = |k: &str| {
        u.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    (get("code"), get("state"))
}

async fn exchange(c: &Client, s: &RunningSim, code: &str) -> (StatusCode, Value) {
    let r = c
        .post(format!("{}/security/v1/oauth/token", s.base_url()))
        .basic_auth(ID, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .expect("exchange");
    body(r).await
}

async fn refresh(
    c: &Client,
    s: &RunningSim,
    id: &str,
    secret: &str,
    rt: &str,
) -> (StatusCode, Value) {
    let r = c
        .post(format!("{}/security/v1/oauth/refresh", s.base_url()))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .expect("refresh");
    body(r).await
}

#[tokio::test]
async fn authorization_code_flow_end_to_end_with_refresh_rotation() {
    let s = start().await;
    let c = http();
    let state = "acct 7&x=/ü";
    let (code, echoed) = authorize(&c, &s, state, None).await;
    assert_eq!(echoed, state, "state comes back exactly");
    assert!(code.len() >= 32);

    let (st, tok) = exchange(&c, &s, &code).await;
    assert_eq!(st, StatusCode::OK, "{tok}");
    for k in [
        "access_token",
        "refresh_token",
        "refresh_token_expires_in",
        "refresh_token_status",
        "refresh_token_issued_at",
        "expires_in",
    ] {
        assert!(tok[k].is_string(), "{k} in {tok}");
    }
    assert_eq!(tok["refresh_token_expires_in"], "5183999");
    assert_eq!(tok["refresh_token_status"], "approved");
    // A code is single use.
    assert_eq!(
        exchange(&c, &s, &code).await,
        (
            StatusCode::BAD_REQUEST,
            ups_err("10400", "Invalid Authorization Code")
        )
    );

    let rt1 = tok["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Refresh tokens belong to their client.
    let (st, v) = refresh(&c, &s, OTHER_ID, OTHER_SECRET, &rt1).await;
    assert_eq!(
        (st, v),
        (
            StatusCode::UNAUTHORIZED,
            ups_err("10401", "Invalid Refresh Token")
        )
    );
    let (st, r1) = refresh(&c, &s, ID, SECRET, &rt1).await;
    assert_eq!(st, StatusCode::OK, "{r1}");
    let rt2 = r1["refresh_token"].as_str().unwrap_or_default().to_string();
    assert_ne!(rt2, rt1, "refresh rotates the refresh token");
    assert_ne!(r1["access_token"], tok["access_token"]);
    assert_eq!(r1["refresh_count"], "1");
    let (st, v) = refresh(&c, &s, ID, SECRET, &rt1).await;
    assert_eq!(
        (st, v),
        (
            StatusCode::UNAUTHORIZED,
            ups_err("10401", "Invalid Refresh Token")
        )
    );
    let (st, r2) = refresh(&c, &s, ID, SECRET, &rt2).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r2["refresh_count"], "2");
    let (st, v) = refresh(&c, &s, ID, "bad", &rt2).await;
    assert_eq!(
        (st, v),
        (
            StatusCode::UNAUTHORIZED,
            ups_err("10401", "ClientId is Invalid")
        )
    );

    // The refreshed access token works on the API.
    let at = r2["access_token"].as_str().unwrap_or_default();
    let (st, _) = api_post(&c, &s, "/api/rating/v1/Rate", at, &rate_body()).await;
    assert_eq!(st, StatusCode::OK);
    s.shutdown().await;
}

#[tokio::test]
async fn authorize_refuses_unknown_clients_and_checks_pkce() {
    let s = start().await;
    let c = http();
    let r = c
        .get(format!("{}/security/v1/oauth/authorize", s.base_url()))
        .query(&[
            ("client_id", "nobody"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r
        .text()
        .await
        .unwrap_or_default()
        .contains("Unknown client_id"));
    let r = c
        .get(format!("{}/security/v1/oauth/authorize", s.base_url()))
        .query(&[("client_id", ID), ("response_type", "code")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r
        .text()
        .await
        .unwrap_or_default()
        .contains("Missing redirect_uri"));

    let verifier = "a-verifier-of-sufficient-length-0123456789abcdef";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let (code, _) = authorize(&c, &s, "s1", Some(&challenge)).await;
    let pkce = |code: String, v: &'static str| {
        let c = c.clone();
        let url = format!("{}/security/v1/oauth/token", s.base_url());
        async move {
            let r = c
                .post(url)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT),
                    ("client_id", ID),
                    ("code_verifier", v),
                ])
                .send()
                .await
                .expect("send");
            body(r).await
        }
    };
    assert_eq!(
        pkce(code, "wrong-verifier").await,
        (
            StatusCode::BAD_REQUEST,
            ups_err("10400", "Invalid code_verifier")
        )
    );
    let (code, _) = authorize(&c, &s, "s2", Some(&challenge)).await;
    let (st, v) = pkce(code, verifier).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["client_id"], ID);
    assert!(v["refresh_token"].is_string());
    s.shutdown().await;
}

#[tokio::test]
async fn token_and_api_status_faults() {
    let s = start().await;
    let c = http();
    let t = cc_token(&c, &s).await;
    set_faults(&c, &s, json!({"token_status": 503})).await;
    let (st, v) = body(cc_token_raw(&c, &s, ID, SECRET).await).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["response"]["errors"][0]["code"], "10503");
    assert!(v.get("access_token").is_none());
    let (st, _) = refresh(&c, &s, ID, SECRET, "whatever").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    let live: Value = c
        .get(format!("{}/__sim/tokens", s.base_url()))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(
        live.as_array().map(Vec::len),
        Some(1),
        "no token issued under the fault"
    );

    set_faults(&c, &s, json!({"api_status": 429})).await;
    let (st, v) = api_post(&c, &s, "/api/rating/v2409/Rate", &t, &rate_body()).await;
    assert_eq!(
        (st, v),
        (
            StatusCode::TOO_MANY_REQUESTS,
            ups_err("10429", "Too Many Requests")
        )
    );
    set_faults(&c, &s, json!({"api_status": 500})).await;
    let (st, v) = api_post(&c, &s, "/api/rating/v2409/Rate", &t, &rate_body()).await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["response"]["errors"][0]["code"], "10500");

    let r = c
        .post(format!("{}/__sim/faults", s.base_url()))
        .json(&json!({"api_status": "soon"}))
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "malformed faults are refused"
    );

    let r = c
        .delete(format!("{}/__sim/faults", s.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let (st, _) = api_post(&c, &s, "/api/rating/v2409/Rate", &t, &rate_body()).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = body(cc_token_raw(&c, &s, ID, SECRET).await).await;
    assert_eq!(st, StatusCode::OK);
    s.shutdown().await;
}

#[tokio::test]
async fn latency_faults_delay_answers() {
    let s = start().await;
    let c = http();
    let t = cc_token(&c, &s).await;
    set_faults(&c, &s, json!({"latency_ms": 300})).await;
    let t0 = Instant::now();
    let (st, _) = api_post(&c, &s, "/api/rating/v2409/Rate", &t, &rate_body()).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    let t0 = Instant::now();
    cc_token(&c, &s).await;
    assert!(
        t0.elapsed() < Duration::from_millis(300),
        "latency_ms is for /api only"
    );

    set_faults(&c, &s, json!({"latency_ms": 0, "token_latency_ms": 250})).await;
    let t0 = Instant::now();
    cc_token(&c, &s).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    s.shutdown().await;
}

#[tokio::test]
async fn revoke_invalidates_access_tokens_but_not_refresh_tokens() {
    let s = start().await;
    let c = http();
    let t = cc_token(&c, &s).await;
    let (code, _) = authorize(&c, &s, "st", None).await;
    let (_, tok) = exchange(&c, &s, &code).await;
    let rt = tok["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    set_faults(&c, &s, json!({"revoke_tokens": true})).await;
    let (st, v) = api_post(&c, &s, "/api/rating/v2409/Rate", &t, &rate_body()).await;
    assert_eq!(
        (st, v),
        (
            StatusCode::UNAUTHORIZED,
            ups_err("250002", "Invalid Authentication Information.")
        )
    );
    let live: Value = c
        .get(format!("{}/__sim/tokens", s.base_url()))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(live, json!([]));

    // One-shot: tokens issued afterwards work, and the refresh token survived.
    let (st, r) = refresh(&c, &s, ID, SECRET, &rt).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let fresh = r["access_token"].as_str().unwrap_or_default();
    let (st, _) = api_post(&c, &s, "/api/rating/v2409/Rate", fresh, &rate_body()).await;
    assert_eq!(st, StatusCode::OK);
    s.shutdown().await;
}

#[tokio::test]
async fn reset_connections_drops_new_connections_until_cleared() {
    let s = start().await;
    let admin = http();
    set_faults(&admin, &s, json!({"reset_connections": true})).await;
    // A fresh client opens a fresh connection, which is reset without an answer.
    let err = http()
        .get(format!("{}/__sim/stats", s.base_url()))
        .send()
        .await
        .expect_err("connection must be reset");
    assert!(err.status().is_none(), "no HTTP answer: {err}");
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    // The pooled admin connection still works, so the fault can be cleared.
    let r = admin
        .delete(format!("{}/__sim/faults", s.base_url()))
        .send()
        .await
        .expect("clear");
    assert_eq!(r.status(), StatusCode::OK);
    let r = http()
        .get(format!("{}/__sim/stats", s.base_url()))
        .send()
        .await
        .expect("works again");
    assert_eq!(r.status(), StatusCode::OK);
    s.shutdown().await;
}

#[tokio::test]
async fn requests_and_stats_record_what_was_received() {
    let s = start().await;
    let c = http();
    let t = cc_token(&c, &s).await;
    let _ = cc_token_raw(&c, &s, ID, "wrong").await;
    let r = c
        .get(format!(
            "{}/api/track/v1/details/1Z12345E0205271688?locale=en_US",
            s.base_url()
        ))
        .bearer_auth(&t)
        .header("transId", "t-1")
        .header("transactionSrc", "tests")
        .send()
        .await
        .expect("track");
    assert_eq!(r.status(), StatusCode::OK);
    let (_, _) = api_post(&c, &s, "/api/rating/v2409/Rate", &t, &rate_body()).await;
    let _ = refresh(&c, &s, ID, SECRET, "nope").await;

    let log: Value = c
        .get(format!("{}/__sim/requests", s.base_url()))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .unwrap_or(Value::Null);
    let log = log.as_array().cloned().unwrap_or_default();
    let paths: Vec<&str> = log.iter().filter_map(|r| r["path"].as_str()).collect();
    assert_eq!(
        paths,
        [
            "/security/v1/oauth/token",
            "/security/v1/oauth/token",
            "/api/track/v1/details/1Z12345E0205271688",
            "/api/rating/v2409/Rate",
            "/security/v1/oauth/refresh",
        ],
        "every request in order, /__sim/* not recorded"
    );
    assert_eq!(log[0]["method"], "POST");
    assert_eq!(log[0]["body"], "grant_type=client_credentials");
    assert_eq!(log[0]["headers"]["x-merchant-id"], "A1B2C3");
    let basic = format!("Basic {}", STANDARD.encode(format!("{ID}:{SECRET}")));
    assert_eq!(log[0]["headers"]["authorization"], basic.as_str());
    assert_eq!(log[2]["method"], "GET");
    assert_eq!(log[2]["query"], "locale=en_US");
    assert_eq!(log[2]["headers"]["transid"], "t-1");
    assert_eq!(log[2]["headers"]["transactionsrc"], "tests");
    let sent: Value =
        serde_json::from_str(log[3]["body"].as_str().unwrap_or("")).unwrap_or(Value::Null);
    assert_eq!(sent, rate_body());

    let stats: Value = c
        .get(format!("{}/__sim/stats", s.base_url()))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(
        stats,
        json!({"token_requests": {"client_credentials": 2, "authorization_code": 0, "refresh_token": 1}, "api_requests": 2})
    );

    c.delete(format!("{}/__sim/requests", s.base_url()))
        .send()
        .await
        .expect("send");
    c.delete(format!("{}/__sim/stats", s.base_url()))
        .send()
        .await
        .expect("send");
    let log: Value = c
        .get(format!("{}/__sim/requests", s.base_url()))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(log, json!([]));
    let stats: Value = c
        .get(format!("{}/__sim/stats", s.base_url()))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(stats["token_requests"]["client_credentials"], 0);
    assert_eq!(stats["api_requests"], 0);
    s.shutdown().await;
}

#[tokio::test]
async fn ship_and_void_echo_the_shipper_and_tracking_numbers() {
    let s = start().await;
    let c = http();
    let t = cc_token(&c, &s).await;
    let ship = json!({"ShipmentRequest": {
        "Request": {"TransactionReference": {"CustomerContext": "ship-1"}},
        "Shipment": {
            "Shipper": {"ShipperNumber": "9Y9Y9Y"},
            "Service": {"Code": "01"},
            "ShipmentRatingOptions": {"NegotiatedRatesIndicator": "Y"},
            "Package": [
                {"PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "1"}},
                {"PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "2"}}
            ]
        }
    }});
    let (st, v) = api_post(&c, &s, "/api/shipments/v2409/ship", &t, &ship).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let res = &v["ShipmentResponse"]["ShipmentResults"];
    let id = res["ShipmentIdentificationNumber"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(id.len(), 18, "{id}");
    assert!(id.starts_with("1Z9Y9Y9Y01"), "{id}");
    assert_eq!(
        v["ShipmentResponse"]["Response"]["TransactionReference"]["CustomerContext"],
        "ship-1"
    );
    assert_eq!(res["BillingWeight"]["Weight"], "3.0");
    assert!(res["NegotiatedRateCharges"]["TotalCharge"]["MonetaryValue"].is_string());
    let pkgs = res["PackageResults"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(pkgs.len(), 2);
    assert_eq!(pkgs[0]["TrackingNumber"], id);
    assert_ne!(pkgs[1]["TrackingNumber"], pkgs[0]["TrackingNumber"]);
    assert_eq!(pkgs[0]["ShippingLabel"]["ImageFormat"]["Code"], "GIF");
    let gif = STANDARD
        .decode(
            pkgs[0]["ShippingLabel"]["GraphicImage"]
                .as_str()
                .unwrap_or(""),
        )
        .unwrap_or_default();
    assert!(
        gif.starts_with(b"GIF89a") && gif.ends_with(b";"),
        "a valid GIF"
    );
    assert!(STANDARD
        .decode(pkgs[0]["ShippingLabel"]["HTMLImage"].as_str().unwrap_or(""))
        .is_ok());

    let r = c
        .delete(format!(
            "{}/api/shipments/v2409/void/cancel/{id}?trackingnumber=%5B%221ZA%22,%221ZB%22%5D",
            s.base_url()
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("void");
    let (st, v) = body(r).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["VoidShipmentResponse"]["SummaryResult"]["Status"],
        json!({"Code": "1", "Description": "Voided"})
    );
    let tns: Vec<&str> = v["VoidShipmentResponse"]["PackageLevelResults"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["TrackingNumber"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(tns, ["1ZA", "1ZB"]);
    let r = c
        .delete(format!(
            "{}/api/shipments/v2409/void/cancel/1ZNOTFOUND0000001",
            s.base_url()
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("void");
    assert_eq!(
        body(r).await,
        (
            StatusCode::BAD_REQUEST,
            ups_err("190117", "The shipment identification number is invalid")
        )
    );
    s.shutdown().await;
}

#[tokio::test]
async fn tracking_needs_trans_headers_and_reports_not_found_as_a_warning() {
    let s = start().await;
    let c = http();
    let t = cc_token(&c, &s).await;
    let url = |n: &str| format!("{}/api/track/v1/details/{n}", s.base_url());
    let r = c
        .get(url("1Z12345E0205271688"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    let (st, v) = body(r).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(v["response"]["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("transId"));

    let get = |u: String| {
        c.get(u)
            .bearer_auth(&t)
            .header("transId", "1")
            .header("transactionSrc", "t")
            .send()
    };
    let (st, v) = body(get(url("1Z12345E0205271688")).await.expect("send")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let sh = &v["trackResponse"]["shipment"][0];
    assert_eq!(sh["inquiryNumber"], "1Z12345E0205271688");
    let p = &sh["package"][0];
    assert_eq!(p["trackingNumber"], "1Z12345E0205271688");
    assert_eq!(p["deliveryDate"][0]["type"], "DEL");
    let acts = p["activity"].as_array().cloned().unwrap_or_default();
    assert_eq!(acts.len(), 4);
    let dates: Vec<&str> = acts.iter().filter_map(|a| a["date"].as_str()).collect();
    assert!(
        dates[0] > dates[1] && dates[1] > dates[2],
        "newest first: {dates:?}"
    );
    assert!(acts
        .iter()
        .all(|a| a["time"].as_str().is_some_and(|t| t.len() == 6)));
    assert!(acts[0]["location"]["address"]["countryCode"].is_string());
    let types: Vec<&str> = p["packageAddress"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["type"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(types, ["ORIGIN", "DESTINATION"]);
    assert_eq!(p["service"]["code"], "002");

    let (st, v) = body(get(url("1ZNOTFOUND12345678")).await.expect("send")).await;
    assert_eq!(st, StatusCode::OK);
    let sh = &v["trackResponse"]["shipment"][0];
    assert_eq!(
        sh["warnings"],
        json!([{"code": "TW0001", "message": "Tracking Information Not Found"}])
    );
    assert!(sh.get("package").is_none());

    let (st, v) = body(
        get(format!(
            "{}/api/track/v1/reference/details/PO-77",
            s.base_url()
        ))
        .await
        .expect("send"),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["trackResponse"]["shipment"][0]["inquiryNumber"], "PO-77");
    assert_eq!(
        v["trackResponse"]["shipment"][0]["package"][0]["activity"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    s.shutdown().await;
}

#[tokio::test]
async fn address_validation_and_transit_times_echo_their_inputs() {
    let s = start().await;
    let c = http();
    let t = cc_token(&c, &s).await;
    let akf = json!({"AddressLine": "26601 ALISO CREEK ROAD", "PoliticalDivision2": "ALISO VIEJO", "PoliticalDivision1": "CA", "PostcodePrimaryLow": "92656", "CountryCode": "US"});
    let (st, v) = api_post(
        &c,
        &s,
        "/api/addressvalidation/v2/3",
        &t,
        &json!({"XAVRequest": {"AddressKeyFormat": akf}}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let x = &v["XAVResponse"];
    assert_eq!(x["ValidAddressIndicator"], "");
    assert_eq!(
        x["AddressClassification"],
        json!({"Code": "1", "Description": "Commercial"})
    );
    assert_eq!(x["Candidate"]["AddressKeyFormat"], akf);
    let mut none = akf.clone();
    none["PostcodePrimaryLow"] = json!("00000");
    let (_, v) = api_post(
        &c,
        &s,
        "/api/addressvalidation/v2/1",
        &t,
        &json!({"XAVRequest": {"AddressKeyFormat": none}}),
    )
    .await;
    assert_eq!(v["XAVResponse"]["NoCandidatesIndicator"], "");
    assert!(v["XAVResponse"].get("Candidate").is_none());
    assert!(
        v["XAVResponse"].get("AddressClassification").is_none(),
        "option 1 does not classify"
    );

    let tnt = json!({"originCountryCode": "US", "originPostalCode": "30303", "destinationCountryCode": "US", "destinationPostalCode": "10001", "destinationCityName": "NEW YORK", "weight": "10.5", "weightUnitOfMeasure": "LBS", "shipDate": "2019-05-01", "numberOfPackages": "1"});
    let url = format!("{}/api/shipments/v1/transittimes", s.base_url());
    let r = c
        .post(&url)
        .bearer_auth(&t)
        .json(&tnt)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "transId/transactionSrc are required"
    );
    let r = c
        .post(&url)
        .bearer_auth(&t)
        .header("transId", "x")
        .header("transactionSrc", "y")
        .json(&tnt)
        .send()
        .await
        .expect("send");
    let (st, v) = body(r).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let ems = &v["emsResponse"];
    assert_eq!(ems["originPostalCode"], "30303");
    assert_eq!(ems["destinationCityName"], "NEW YORK");
    assert_eq!(ems["weight"], "10.5");
    assert_eq!(ems["shipDate"], "2019-05-01");
    let svcs = ems["services"].as_array().cloned().unwrap_or_default();
    assert_eq!(svcs.len(), 3);
    assert_eq!(ems["numberOfServices"], 3);
    // Wednesday + 1 business day = Thursday.
    assert_eq!(svcs[0]["deliveryDate"], "2019-05-02");
    assert_eq!(svcs[0]["deliveryDayOfWeek"], "THU");
    assert_eq!(v["originPickList"], json!([]));
    s.shutdown().await;
}

#[tokio::test]
async fn pickup_and_label_recovery_answer_their_shapes() {
    let s = start().await;
    let c = http();
    let t = cc_token(&c, &s).await;
    let (st, v) = api_post(
        &c,
        &s,
        "/api/pickupcreation/v2409/pickup",
        &t,
        &json!({"PickupCreationRequest": {"RatePickupIndicator": "Y"}}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let prn = v["PickupCreationResponse"]["PRN"]
        .as_str()
        .unwrap_or_default();
    assert!(prn.starts_with("2929") && prn.len() == 11, "{prn}");
    assert_eq!(
        v["PickupCreationResponse"]["RateResult"]["CurrencyCode"],
        "USD"
    );

    let (st, v) = api_post(
        &c,
        &s,
        "/api/shipments/v2409/pickup/oncall",
        &t,
        &json!({"PickupRateRequest": {}}),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        v["PickupRateResponse"]["RateResult"]["GrandTotalOfAllCharge"],
        "6.45"
    );

    let r = c
        .delete(format!("{}/api/shipments/v2409/pickup/02", s.base_url()))
        .bearer_auth(&t)
        .header("Prn", prn)
        .send()
        .await
        .expect("send");
    let (st, v) = body(r).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["PickupCancelResponse"]["Response"]["ResponseStatus"]["Code"],
        "1"
    );
    let r = c
        .delete(format!("{}/api/shipments/v2409/pickup/02", s.base_url()))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "CancelBy 02 needs the Prn header"
    );

    let (st, v) = api_post(
        &c,
        &s,
        "/api/labels/v1/recovery",
        &t,
        &json!({"LabelRecoveryRequest": {"TrackingNumber": "1Z12345E8791315509"}}),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        v["LabelRecoveryResponse"]["LabelResults"]["TrackingNumber"],
        "1Z12345E8791315509"
    );
    assert!(v["LabelRecoveryResponse"]["LabelResults"]["LabelImage"]["GraphicImage"].is_string());
    s.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let s = start().await;
    let addr = s.addr();
    assert_eq!(s.base_url(), format!("http://{addr}"));
    assert_ne!(addr.port(), 0);
    s.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after shutdown"
    );
}

#[tokio::test]
async fn tokens_expire_after_their_ttl() {
    let opts = SimOptions {
        clients: vec![(ID.to_string(), SECRET.to_string())],
        token_ttl: Duration::from_secs(1),
        refresh_ttl: Duration::from_secs(1),
    };
    let s = sim::start("127.0.0.1:0".parse().expect("addr"), opts)
        .await
        .expect("start");
    let c = http();
    let (st, tok) = body(cc_token_raw(&c, &s, ID, SECRET).await).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(tok["expires_in"], "1");
    let t = tok["access_token"].as_str().unwrap_or_default().to_string();
    let (code, _) = authorize(&c, &s, "st", None).await;
    let (_, ac) = exchange(&c, &s, &code).await;
    assert_eq!(ac["refresh_token_expires_in"], "1");
    let rt = ac["refresh_token"].as_str().unwrap_or_default().to_string();
    let (st, _) = api_post(&c, &s, "/api/rating/v2409/Rate", &t, &rate_body()).await;
    assert_eq!(st, StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, v) = api_post(&c, &s, "/api/rating/v2409/Rate", &t, &rate_body()).await;
    assert_eq!(
        (st, v),
        (
            StatusCode::UNAUTHORIZED,
            ups_err("250002", "Invalid Authentication Information.")
        )
    );
    let (st, v) = refresh(&c, &s, ID, SECRET, &rt).await;
    assert_eq!(
        (st, v),
        (
            StatusCode::UNAUTHORIZED,
            ups_err("10401", "Invalid Refresh Token")
        )
    );
    let live: Value = c
        .get(format!("{}/__sim/tokens", s.base_url()))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(live, json!([]), "expired tokens are not listed");
    s.shutdown().await;
}
