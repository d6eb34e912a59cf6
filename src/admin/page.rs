//! The ops page: one server-rendered HTML page, no JavaScript needed.
//! Shows token state and the fix for each account's last error; never a secret.

use html_escape::encode_text as esc;

use super::{AccountDetail, AccountView};
use crate::accounts::MapStatus;

fn when(unix: Option<u64>) -> String {
    unix.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t as i64).ok())
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| "—".to_string())
}

/// The diagnosis for negotiated rates that are asked for and silently not given.
pub fn silent_negotiated_rates_fix(account_number: &str, in_a_row: u32) -> String {
    format!(
        "The last {in_a_row} rate/ship answers asked for negotiated rates and UPS returned none, without an error: \
         shipper {account_number} is on the UPS.com login that authorized the app but not verified. \
         Verify it on UPS.com under \"Accounts and Payment\" → \"View Account Details\" with data from a recent invoice."
    )
}

/// What ops should do about an account's state or last error.
pub fn fix_for(view: &AccountView) -> Option<String> {
    if let Some(d) = &view.diagnosis {
        return Some(d.clone());
    }
    let err = view.last_error.as_deref().unwrap_or("");
    let lower = err.to_ascii_lowercase();
    if lower.contains("negotiated rate") {
        return Some(format!(
            "UPS does not give negotiated rates to shipper {n} through this app: add account {n} to the UPS.com profile that authorized the app \
             (UPS.com → Account Summary → Add Existing Account) and verify it with data from a recent invoice; until then, \
             rate without the negotiated-rates indicator.",
            n = view.ups_account_number
        ));
    }
    match view.token.state {
        "needs_authorization" => Some("The account owner must authorize once: click Authorize and log in at UPS (or run `upsbridge accounts authorize NAME`).".into()),
        "failing" if lower.contains("client_id") || lower.contains("refused account") => Some(
            "UPS refused this app's credentials: check client_id and the client secret (developer.ups.com → My Apps) in the account map and its secret source.".into(),
        ),
        "failing" => Some("UPS's token endpoint is failing or unreachable; requests retry by themselves. Check connectivity to UPS if it persists.".into()),
        _ if !err.is_empty() => Some("See UPS's message; the client received it in its own format.".into()),
        _ => None,
    }
}

/// The ops page. `csrf`: the session's token, put in every form that changes something.
/// The store as the ops page shows it.
pub struct StoreView {
    /// `sled` or `postgres`.
    pub backend: &'static str,
    /// PostgreSQL: `HOST:PORT/DB` and this instance's name.
    pub database: Option<(String, String)>,
    /// Every instance's last imported map (PostgreSQL), or why it could not be read.
    pub instances: Result<Vec<(String, crate::store::InstanceMap)>, String>,
    /// The last readiness probe (the one `/readyz` answers from).
    pub probe: super::ready::Probe,
    /// Accounts whose token is being renewed right now, and the instance renewing it.
    pub leases: Vec<(String, String)>,
}

/// Whether the database answered the last readiness probe, and when (and why not, unless
/// `said` already says it).
fn probe_line(probe: &super::ready::Probe, said: Option<&str>) -> String {
    match &probe.answer {
        Ok(()) => format!(
            "<p id=\"store-probe\" data-up=\"true\">The database answered the last probe, at {}.</p>",
            when(Some(probe.at_unix))
        ),
        Err(why) if said == Some(why.as_str()) => format!(
            "<p id=\"store-probe\" data-up=\"false\">The database did not answer the last probe, at {}; /readyz answers 503 until it does.</p>",
            when(Some(probe.at_unix))
        ),
        Err(why) => format!(
            "<p id=\"store-probe\" data-up=\"false\" class=\"rejected\">The database did not answer the last probe, at {}: {} /readyz answers 503 until it does.</p>",
            when(Some(probe.at_unix)),
            esc(why)
        ),
    }
}

/// Token renewals in progress, with the instance holding each account's lease.
fn leases_line(leases: &[(String, String)]) -> String {
    if leases.is_empty() {
        return "<p id=\"leases\">No token renewal in progress.</p>".into();
    }
    let items: Vec<String> = leases
        .iter()
        .map(|(account, holder)| format!("{} (by {})", esc(account), esc(holder)))
        .collect();
    format!("<p id=\"leases\">Renewing now: {}</p>", items.join(", "))
}

fn store_section(store: &StoreView) -> String {
    let Some((database, me)) = &store.database else {
        return "<h2>Store</h2><p id=\"store\">sled, on this host only</p>".into();
    };
    let instances = match &store.instances {
        Err(e) => {
            return format!(
                "<h2>Store</h2><p id=\"store\" class=\"rejected\">PostgreSQL at {} is unreachable: {}</p>{}",
                esc(database),
                esc(e),
                probe_line(&store.probe, Some(e))
            )
        }
        Ok(i) => i,
    };
    let mut rows = String::new();
    for (name, map) in instances {
        rows.push_str(&format!(
            "<tr><td>{}{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(name),
            if name == me { " (this one)" } else { "" },
            map.accounts.len(),
            esc(map.digest.get(..12).unwrap_or(&map.digest)),
            when(Some(map.imported_at_unix)),
        ));
    }
    let differ = instances
        .iter()
        .any(|(_, m)| Some(&m.digest) != instances.first().map(|(_, f)| &f.digest));
    let warning = if differ {
        "<div class=\"rejected\" id=\"maps-differ\"><b>The instances load different account maps.</b> \
         Each imports its own map file; an account only some list works only through those. \
         Give every instance the same file.</div>"
    } else {
        ""
    };
    format!(
        "<h2>Store</h2><p id=\"store\">PostgreSQL at {} (this instance: {})</p>{probe}{warning}\
         <table id=\"instances\"><tr><th>instance</th><th>accounts</th><th>map</th><th>imported</th></tr>{rows}</table>{leases}",
        esc(database),
        esc(me),
        probe = probe_line(&store.probe, None),
        leases = leases_line(&store.leases),
    )
}

pub fn render(
    views: &[AccountView],
    map: &MapStatus,
    store: &StoreView,
    flash: Option<(&str, bool)>,
    csrf: &str,
) -> String {
    let mut rows = String::new();
    for v in views {
        let mut button = if v.grant == "authorization_code" {
            authorize_form(&v.name, csrf)
        } else {
            String::new()
        };
        button.push_str(&disable_form(&v.name, v.disabled, csrf));
        let fix = fix_for(v)
            .map(|f| format!("<div class=\"fix\">{}</div>", esc(&f)))
            .unwrap_or_default();
        rows.push_str(&format!(
            "<tr id=\"account-{name}\"><td><a href=\"/accounts/{name}\">{name}</a></td><td>{number}</td><td>{grant}</td>\
             <td><span class=\"state {state}\" data-state=\"{state}\">{state}</span>{off}</td><td>{expires}</td><td>{used}</td>\
             <td>{error}{fix}</td><td>{button}</td></tr>\n",
            name = esc(&v.name),
            number = esc(&v.ups_account_number),
            grant = v.grant,
            state = v.token.state,
            expires = when(v.token.expires_at),
            used = when(v.token.last_used),
            error = esc(v.last_error.as_deref().unwrap_or("")),
            off = if v.disabled {
                " <span class=\"state failing\" data-disabled=\"true\">disabled</span>"
            } else {
                ""
            },
        ));
    }
    let flash = flash
        .map(|(m, ok)| {
            format!(
                "<p class=\"flash {}\" id=\"flash\">{}</p>",
                if ok { "ok" } else { "bad" },
                esc(m)
            )
        })
        .unwrap_or_default();
    let problems = if map.rejected.is_empty() {
        String::new()
    } else {
        let items: String = map
            .rejected
            .iter()
            .map(|p| format!("<li>{}</li>", esc(p)))
            .collect();
        format!(
            "<div class=\"rejected\" id=\"map-rejected\"><b>Last change rejected at {} — the previous map stays in force:</b><ul>{items}</ul></div>",
            when(map.rejected_at)
        )
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>upsbridge</title><style>\
         body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;width:100%}}\
         td,th{{border-bottom:1px solid #ddd;padding:.5em;text-align:left;vertical-align:top}}\
         .state{{padding:.1em .5em;border-radius:.3em;color:#fff;background:#888}}.valid{{background:#2a7d2a}}\
         .needs_authorization{{background:#b8860b}}.failing{{background:#b22222}}.fix{{color:#555;font-size:.9em;margin-top:.3em}}\
         .flash{{padding:.6em;border-radius:.3em}}.flash.ok{{background:#e3f4e3}}.flash.bad{{background:#f8e0e0}}\
         .rejected{{background:#f8e0e0;padding:.6em;margin:1em 0}}</style></head><body>\
         <h1>upsbridge</h1>{flash}\
         <h2>Accounts</h2><p><a href=\"/accounts/new\" id=\"new-account\">New account</a></p><table><tr><th>name</th><th>UPS account</th><th>grant</th><th>token</th><th>expires</th><th>last use</th><th>last error</th><th></th></tr>\n{rows}</table>\
         <h2>Account map</h2><p id=\"map-status\">{file}: {n} accounts, loaded {loaded}; {reloads} reloads, {rejections} rejected</p>{problems}\
         {store}</body></html>",
        store = store_section(store),
        file = esc(&map.file),
        n = map.accounts,
        loaded = when(map.loaded_at),
        reloads = map.reloads,
        rejections = map.rejections,
    )
}

fn authorize_form(name: &str, csrf: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/accounts/{n}/authorize\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\"><button type=\"submit\" id=\"authorize-{n}\">Authorize</button></form>",
        n = esc(name),
        c = esc(csrf)
    )
}

/// Disable or Enable, as a form.
fn disable_form(name: &str, disabled: bool, csrf: &str) -> String {
    let (action, label) = if disabled {
        ("enable", "Enable")
    } else {
        ("disable", "Disable")
    };
    format!(
        "<form method=\"post\" action=\"/accounts/{n}/{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\"><button type=\"submit\" id=\"{action}-{n}\">{label}</button></form>",
        n = esc(name),
        c = esc(csrf)
    )
}

/// One account: who it is at UPS and for the legacy program, its token, its traffic by
/// dialect and service, latency, the last refusals, and Re-authorize / Disable.
pub fn account(d: &AccountDetail, csrf: &str) -> String {
    let v = &d.view;
    let mut rows = String::new();
    for c in &d.traffic.by_service {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            c.dialect, c.service, c.requests_last_hour, c.errors_last_hour, c.requests_last_day, c.errors_last_day
        ));
    }
    let latency = d
        .traffic
        .latency_ms
        .map(|[p50, p95, p99]| format!("p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms"))
        .unwrap_or_else(|| "no requests yet".into());
    let refusals: String = d
        .traffic
        .last_refusals
        .iter()
        .map(|r| {
            format!(
                "<li>{} {} {}: {}</li>",
                when(Some(r.at)),
                r.dialect,
                r.service,
                esc(&r.reason)
            )
        })
        .collect();
    let mut buttons = String::new();
    if v.grant == "authorization_code" {
        buttons.push_str(&authorize_form(&v.name, csrf).replace(">Authorize<", ">Re-authorize<"));
    }
    buttons.push_str(&disable_form(&v.name, v.disabled, csrf));
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>upsbridge: {n}</title><style>\
         body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:.4em .8em;text-align:left}}\
         .n{{text-align:right}}form{{display:inline;margin-right:.5em}}.fix{{color:#555}}</style></head><body>\
         <p><a href=\"/\">← all accounts</a></p><h1 id=\"account\">{n}</h1>\
         <table><tr><th>UPS account</th><td>{number}</td></tr><tr><th>environment</th><td id=\"environment\">{env}</td></tr>\
         <tr><th>calls go to</th><td id=\"ups-base\">{base}</td></tr>\
         <tr><th>called the other environment's host</th><td id=\"host-mismatches\">{mismatches} request(s); [ups] host_policy = \"{policy}\" sends them {policy_to}</td></tr>\
         <tr><th>grant</th><td>{grant}</td></tr><tr><th>legacy access key</th><td id=\"access-key\">{key}</td></tr><tr><th>legacy user id</th><td id=\"user-id\">{user}</td></tr>\
         <tr><th>token</th><td><span data-state=\"{state}\">{state}</span>, expires {expires}</td></tr><tr><th>state</th><td id=\"enabled\">{enabled}</td></tr>\
         <tr><th>last error</th><td>{error}<div class=\"fix\">{fix}</div></td></tr></table>\
         <p>{buttons}</p>\
         <h2>Traffic</h2><table id=\"traffic\"><tr><th>dialect</th><th>service</th><th>requests, last hour</th><th>errors, last hour</th><th>requests, last day</th><th>errors, last day</th></tr>{rows}</table>\
         <p id=\"latency\">Latency over the last day: {latency}</p>\
         <h2>Last refusals</h2><ul id=\"refusals\">{refusals}</ul></body></html>",
        n = esc(&v.name),
        number = esc(&v.ups_account_number),
        env = esc(d.environment),
        base = esc(&d.ups_base),
        mismatches = d.host_mismatches,
        policy = d.host_policy,
        policy_to = if d.host_policy == "client" {
            "to the environment the client called"
        } else {
            "to this account's environment"
        },
        grant = v.grant,
        key = esc(&d.access_license_number),
        user = esc(&d.user_id),
        state = v.token.state,
        expires = when(v.token.expires_at),
        enabled = if v.disabled { "disabled" } else { "enabled" },
        error = esc(v.last_error.as_deref().unwrap_or("")),
        fix = esc(&fix_for(v).unwrap_or_default()),
    )
}

/// The New-account form; `blocks`: `[[account]]` text to paste when the map is not writable.
pub fn new_account(
    csrf: &str,
    map_digest: &str,
    writable: bool,
    problem: Option<&str>,
    blocks: &[String],
) -> String {
    let problem = problem
        .map(|p| format!("<p class=\"flash bad\" id=\"flash\">{}</p>", esc(p)))
        .unwrap_or_default();
    let paste: String = blocks
        .iter()
        .map(|b| format!("<p>The account map is not written from here ([admin] map_writable = false): add this block to it yourself.</p><pre id=\"block\">{}</pre>", esc(b)))
        .collect();
    let field = |id: &str, label: &str, kind: &str, hint: &str| {
        format!("<p><label>{label}<br><input type=\"{kind}\" name=\"{id}\" id=\"{id}\" size=\"40\"></label> <small>{hint}</small></p>")
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>upsbridge: new account</title><style>body{{font-family:sans-serif;margin:2em}}\
         .flash{{padding:.6em}}.bad{{background:#f8e0e0}}pre{{background:#eee;padding:1em}}</style></head><body>\
         <p><a href=\"/\">← all accounts</a></p><h1>New account</h1>{problem}{paste}\
         <form method=\"post\" action=\"/accounts/new\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"map_digest\" value=\"{digest}\">\
         <h2>At UPS</h2>{name}{number}\
         <p><label>Environment<br><select name=\"environment\" id=\"environment\"><option value=\"\">the one [ups] base_url names</option><option value=\"production\">production (onlinetools.ups.com)</option><option value=\"cie\">CIE test (wwwcie.ups.com)</option></select></label></p>\
         <p><label>Grant<br><select name=\"grant\" id=\"grant\"><option value=\"client_credentials\">client credentials</option><option value=\"authorization_code\">authorization code (the owner logs in at UPS)</option></select></label></p>\
         {client}{secret}\
         <h2>What the legacy program sends</h2>{key}{user}{password}\
         <p><button type=\"submit\" id=\"add\">{action}</button></p></form></body></html>",
        csrf = esc(csrf),
        digest = esc(map_digest),
        name = field("name", "Name", "text", "lower case, digits and -"),
        number = field("ups_account_number", "UPS account (shipper) number", "text", ""),
        client = field("client_id", "Client id of the UPS app", "text", "developer.ups.com → My Apps"),
        secret = field("secret_source", "Where the client secret comes from", "text", "env:VARIABLE (set for upsbridge) or file:PATH"),
        key = field("access_license_number", "Access license number", "text", ""),
        user = field("user_id", "User id", "text", ""),
        password = field("password", "Password", "password", "hashed here, never stored or shown in clear"),
        action = if writable { "Add to the account map" } else { "Make the block to paste" },
    )
}

/// The login form (`problem`: why the last try failed).
pub fn login(problem: Option<&str>) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>upsbridge: log in</title></head><body><h1>upsbridge</h1>{p}\
         <form method=\"post\" action=\"/login\"><label>Admin password <input type=\"password\" name=\"password\" id=\"password\" autofocus></label> \
         <button type=\"submit\" id=\"login\">Log in</button></form></body></html>",
        p = problem
            .map(|m| format!("<p class=\"flash bad\" id=\"flash\">{}</p>", esc(m)))
            .unwrap_or_default()
    )
}

/// Starting a flow is a POST: a GET of the authorize URL shows the button.
pub fn confirm_authorize(name: &str, csrf: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Authorize {n}</title></head><body><h1>Authorize {n}</h1>\
         <p>The account owner logs in at UPS and allows upsbridge to use the account.</p>{f}<p><a href=\"/\">Back to the ops page</a></p></body></html>",
        n = esc(name),
        f = authorize_form(name, csrf)
    )
}

/// A small page for onboarding outcomes (400s).
pub fn message(title: &str, text: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><p id=\"message\">{m}</p><p><a href=\"/\">Back to the ops page</a></p></body></html>",
        t = esc(title),
        m = esc(text)
    )
}
