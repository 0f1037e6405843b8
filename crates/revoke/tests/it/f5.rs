//! `revoke disable` with `[f5]`: the account's APM sessions on lab BIG-IPs
//! (iControl REST over HTTPS, certificates from the lab CA) are killed after
//! the convergence gate, alongside the flush, against the real Samba AD.

use std::time::{Duration, SystemTime};

use revoke_core::Password;
use revoke_core::events::{Event, EventSink};
use revoke_core::f5::{F5Client, F5Device, F5Settings, F5Status, SessionOwner, SessionStatus};
use revoke_lab::{BigIpConfig, LAB_DEFAULT_PASSWORD, Lab, LabBigIp};
use serde_json::Value;

use crate::common::{Run, TestLab, fast_lab, mutation_times};
use crate::samba::{AdEstate, TestUser};

const F5_USER: &str = "revoke-f5";
const EXCHANGE_POOL_COUNT: usize = revoke_core::iis::EXCHANGE_POOLS.len();

/// A password only the BIG-IPs know (`$REVOKE_F5_PASSWORD`).
fn f5_password() -> String {
    format!("F5-{:08x}.Pw", getrandom::u32().expect("random"))
}

async fn bigip(estate: &AdEstate, name: &str, password: &str) -> LabBigIp {
    estate
        .lab()
        .lab
        .start_bigip(BigIpConfig {
            name: name.into(),
            admin_user: F5_USER.into(),
            admin_password: password.into(),
            ..BigIpConfig::default()
        })
        .await
        .expect("start a lab BIG-IP")
}

/// `[f5]` with these devices; `ca_file` relative to revoke.toml (the lab
/// writes lab-ca.pem beside it).
fn configure_f5(estate: &AdEstate, devices: &[&LabBigIp]) {
    let mut section = toml::Table::new();
    let devices: Vec<String> = devices.iter().map(|d| d.device()).collect();
    section.insert("devices".into(), devices.into());
    section.insert("user".into(), F5_USER.into());
    section.insert("ca_file".into(), "lab-ca.pem".into());
    section.insert("timeout".into(), 10.into());
    estate.set_f5(section);
}

fn device_report<'a>(report: &'a Value, device: &LabBigIp) -> &'a Value {
    report["f5"]
        .as_array()
        .expect("f5 is an array")
        .iter()
        .find(|d| d["device"] == device.device().as_str())
        .unwrap_or_else(|| panic!("no {} in {report:#}", device.device()))
}

fn ids(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn session_ids(device: &LabBigIp) -> Vec<String> {
    ids(device.sessions().into_iter().map(|s| s.id).collect())
}

fn reported_ids(entry: &Value, status: &str) -> Vec<String> {
    ids(entry["sessions"]
        .as_array()
        .expect("sessions[]")
        .iter()
        .filter(|s| s["status"] == status)
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect())
}

#[track_caller]
fn assert_no_secrets(run: &Run, secrets: &[&str]) {
    for secret in secrets {
        assert!(!run.stdout.contains(secret), "a secret on stdout");
        assert!(!run.stderr.contains(secret), "a secret on stderr");
    }
}

/// Every lab Exchange server had each Exchange pool recycled once.
#[track_caller]
fn assert_every_server_flushed(estate: &AdEstate) {
    for server in estate.lab().servers() {
        let recycles = mutation_times(server).len();
        assert_eq!(recycles, EXCHANGE_POOL_COUNT, "{}", server.name);
    }
}

fn secrets<'a>(estate: &'a AdEstate, user: &'a TestUser, f5: &'a str) -> [&'a str; 3] {
    [
        estate.domain.operator_password(),
        user.password.as_str(),
        f5,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn disable_kills_exactly_the_users_sessions_on_every_device() {
    let estate = AdEstate::start(2).await;
    let user = estate.domain.new_user("apm").await;
    let password = f5_password();
    let one = bigip(&estate, "bigip1", &password).await;
    let two = bigip(&estate, "bigip2", &password).await;
    configure_f5(&estate, &[&one, &two]);

    // Hers by sAMAccountName, by UPN and by DOMAIN\sam, in any case.
    let by_sam = one.add_session(&user.sam, "203.0.113.10");
    let by_upn = one.add_session(&user.upn.to_uppercase(), "203.0.113.11");
    let by_domain = two.add_session(&format!("LAB\\{}", user.sam.to_uppercase()), "198.51.100.7");
    // Not hers: a longer name, someone else.
    let lookalike = one.add_session(&format!("{}2", user.sam), "203.0.113.12");
    let other = one.add_session("LAB\\someone-else", "203.0.113.13");
    let other_upn = two.add_session("bob@lab.example.test", "198.51.100.8");

    let run = estate
        .disable_json(&user.sam)
        .env("REVOKE_F5_PASSWORD", &password)
        .run()
        .await;
    run.assert_code(0);
    assert_no_secrets(&run, &secrets(&estate, &user, &password));
    let report = run.json();

    let first = device_report(&report, &one);
    assert_eq!(first["status"], "ok", "{first:#}");
    assert_eq!(first["killed"], 2, "{first:#}");
    assert_eq!(
        reported_ids(first, "killed"),
        ids(vec![by_sam.clone(), by_upn.clone()])
    );
    let session = first["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == by_sam.as_str())
        .unwrap();
    assert_eq!(session["user"], user.sam.as_str());
    assert_eq!(session["client_ip"], "203.0.113.10");
    assert_eq!(session["account"], user.sam.as_str());
    let second = device_report(&report, &two);
    assert_eq!(second["status"], "ok", "{second:#}");
    assert_eq!(second["killed"], 1, "{second:#}");
    assert_eq!(reported_ids(second, "killed"), [by_domain]);

    // The BIG-IPs agree: only the others' sessions are left.
    assert_eq!(session_ids(&one), ids(vec![lookalike, other]));
    assert_eq!(session_ids(&two), [other_upn]);

    // Killed only once every DC had the change (a read-only DC without the
    // user's password has nothing to confirm).
    let last_dc = report["directory"]["domain_controllers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|dc| dc["status"] != "not-cached")
        .map(|dc| {
            let at = dc["confirmed_at"].as_str().expect("confirmed_at");
            humantime::parse_rfc3339(at).expect("RFC 3339")
        })
        .max()
        .unwrap();
    let deletes: Vec<SystemTime> = [&one, &two]
        .iter()
        .flat_map(|d| d.requests())
        .filter(|r| r.method == "DELETE")
        .map(|r| r.at)
        .collect();
    assert_eq!(deletes.len(), 3);
    assert!(
        deletes.iter().all(|at| *at >= last_dc),
        "a session was killed before the gate"
    );

    // The exposure window closes no earlier than the last BIG-IP was clean.
    let exposure = &report["exposure"];
    assert_eq!(exposure["closed"], true, "{exposure:#}");
    let closed_at = humantime::parse_rfc3339(exposure["closed_at"].as_str().unwrap()).unwrap();
    for entry in [first, second] {
        let at = entry["confirmed_at"].as_str().expect("confirmed_at");
        assert!(
            humantime::parse_rfc3339(at).unwrap() <= closed_at,
            "{entry:#}"
        );
    }

    assert_eq!(report["summary"]["ok"], 2, "{:#}", report["summary"]);
    assert_every_server_flushed(&estate);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_lists_the_sessions_and_kills_none() {
    let estate = AdEstate::start(1).await;
    let user = estate.domain.new_user("apmdry").await;
    // No $REVOKE_F5_PASSWORD: the operator's password logs on to the BIG-IP.
    let device = bigip(&estate, "bigip1", estate.domain.operator_password()).await;
    configure_f5(&estate, &[&device]);
    let a = device.add_session(&user.sam, "203.0.113.20");
    let b = device.add_session(&user.upn, "203.0.113.21");
    let other = device.add_session("someone-else", "203.0.113.22");

    let run = estate
        .revoke("disable", &[&user.sam, "--dry-run", "--output", "json"])
        .run()
        .await;
    run.assert_code(0);
    assert_no_secrets(&run, &[estate.domain.operator_password()]);
    let report = run.json();
    let entry = device_report(&report, &device);
    assert_eq!(entry["status"], "planned", "{entry:#}");
    assert_eq!(entry["killed"], 0);
    assert_eq!(
        reported_ids(entry, "planned"),
        ids(vec![a.clone(), b.clone()])
    );
    assert_eq!(entry["sessions"].as_array().unwrap().len(), 2);

    assert_eq!(session_ids(&device), ids(vec![a, b, other]));
    let requests = device.requests();
    assert!(
        requests.iter().all(|r| r.method != "DELETE"),
        "a dry run deleted: {requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.status == 200)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_that_refuses_the_login_fails_alone() {
    let estate = AdEstate::start(2).await;
    let user = estate.domain.new_user("apmref").await;
    let password = f5_password();
    let refusing = bigip(&estate, "bigip1", &password).await;
    refusing.refuse_logins(true);
    let working = bigip(&estate, "bigip2", &password).await;
    configure_f5(&estate, &[&refusing, &working]);
    let left = refusing.add_session(&user.sam, "203.0.113.30");
    working.add_session(&user.sam, "198.51.100.30");
    working.add_session(&user.upn, "198.51.100.31");

    // Human output: the table and what is still open.
    let run = estate
        .revoke("disable", &[&user.sam, "--yes"])
        .env("REVOKE_F5_PASSWORD", &password)
        .run()
        .await;
    run.assert_code(2);
    assert_no_secrets(&run, &secrets(&estate, &user, &password));
    let open = format!(
        "APM sessions of {} on {} not killed: login refused (HTTP 401)",
        user.sam,
        refusing.device()
    );
    assert!(run.stdout.contains(&open), "{}", run.stdout);
    assert!(
        run.stdout.contains("Exposure window NOT closed"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Still open:"), "{}", run.stdout);
    // One plain progress line per device on stderr.
    assert!(
        run.stderr
            .contains(&format!("APM {}: failed", refusing.device())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "APM {}: ok, 2 session(s) killed",
            working.device()
        )),
        "{}",
        run.stderr
    );

    assert_eq!(session_ids(&refusing), [left]);
    assert!(working.sessions().is_empty(), "{:#?}", working.sessions());
    assert_every_server_flushed(&estate);
}

fn device(addr: std::net::SocketAddr) -> F5Device {
    F5Device {
        host: addr.ip().to_string(),
        port: addr.port(),
        label: addr.to_string(),
    }
}

/// No AD needed: the F5 step alone, in-process, against one good device and
/// three that fail differently (certificate from another CA, nothing
/// listening, never answering). Each fails alone, in plain words, and the
/// good one is not held up.
#[tokio::test(flavor = "multi_thread")]
async fn each_device_fails_on_its_own() {
    let lab = TestLab::start(fast_lab(1)).await;
    let ca_file = lab.config.with_file_name("lab-ca.pem");
    let good = lab
        .lab
        .start_bigip(BigIpConfig::default())
        .await
        .expect("BIG-IP");
    let elsewhere = Lab::start(fast_lab(1)).await.expect("another lab");
    let foreign = elsewhere
        .start_bigip(BigIpConfig::default())
        .await
        .expect("BIG-IP of another CA");
    let closed = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let mine = good.add_session("LAB\\alice", "203.0.113.1");
    let theirs = foreign.add_session("alice", "203.0.113.2");

    let client = F5Client::new(
        F5Settings {
            devices: vec![
                device(good.addr()),
                device(foreign.addr()),
                device(closed),
                device(silent_addr),
            ],
            user: "revoke-f5".into(),
            ca_file: Some(ca_file),
            accept_invalid_certs: false,
            timeout: Duration::from_secs(2),
        },
        Password::new(LAB_DEFAULT_PASSWORD.into()),
    )
    .expect("client");
    let (sink, mut events) = EventSink::channel();
    let alice = SessionOwner {
        sam: "alice".into(),
        upn: Some("alice@lab.example.test".into()),
    };
    revoke_core::f5::kill_sessions(client, vec![alice], false, sink).await;
    let mut outcomes = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::F5DeviceFinished { device } = event {
            outcomes.push(device);
        }
    }
    assert_eq!(outcomes.len(), 4, "{outcomes:#?}");
    let outcome = |addr: std::net::SocketAddr| {
        outcomes
            .iter()
            .find(|o| o.device == addr.to_string())
            .unwrap_or_else(|| panic!("no outcome for {addr}: {outcomes:#?}"))
    };

    let ok = outcome(good.addr());
    assert_eq!(ok.status, F5Status::Ok, "{ok:#?}");
    assert_eq!(ok.killed, 1);
    assert_eq!(ok.sessions[0].id, mine);
    assert_eq!(ok.sessions[0].status, SessionStatus::Killed);
    // The slowest of the others takes the full 2 s timeout.
    assert!(ok.duration_ms < 1900, "held up by the others: {ok:#?}");
    assert!(good.sessions().is_empty());

    let tls = outcome(foreign.addr());
    assert_eq!(tls.status, F5Status::Failed);
    let message = tls.message.as_deref().unwrap();
    assert!(message.starts_with("TLS: "), "{message}");
    assert!(message.contains("certificate"), "{message}");
    assert!(
        foreign.has_session(&theirs),
        "a device not trusted was sent a DELETE"
    );
    assert!(foreign.requests().is_empty(), "{:#?}", foreign.requests());

    let refused = outcome(closed);
    assert_eq!(
        refused.message.as_deref(),
        Some(
            format!(
                "connection refused (nothing listens on port {})",
                closed.port()
            )
            .as_str()
        )
    );
    let timeout = outcome(silent_addr);
    assert_eq!(timeout.status, F5Status::Failed);
    assert_eq!(timeout.message.as_deref(), Some("no answer within 2 s"));
}
