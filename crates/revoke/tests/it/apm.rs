//! The APM half of the bug (docs/windows-behaviour.md §1.6, §6), end to end: a mail client
//! reaches the lab's Exchange front ends THROUGH a lab BIG-IP's APM virtual
//! server, which pre-authenticates it against the directory once and then
//! lets its session cookie in without asking again. A disable by hand does
//! not end the session; `revoke disable` with `[f5]` kills it. Lab servers
//! with their front end, the real binary; run against both directories
//! (Samba AD and the embedded one) like account.rs.

use std::time::Duration;

use revoke_lab::{BigIpConfig, ENDPOINTS, Fault, LabBigIp, LabConfig, VirtualServerConfig};
use serde_json::{Value, json};

use super::backend::{AdEstate, TestUser, UAC_DISABLED};
use crate::common::{fault, header, tls_trusting};

const F5_USER: &str = "revoke-f5";

/// An estate of `servers` lab servers with a front end, and a BIG-IP whose
/// virtual server pre-authenticates against the same directory and pools
/// every front end; revoke.toml has `[f5]` for it. Returns the BIG-IP's
/// REST password too (`$REVOKE_F5_PASSWORD`).
/// `tweak` adjusts the lab (faults).
async fn estate_with_apm(
    servers: usize,
    tweak: impl FnOnce(&mut LabConfig),
) -> (AdEstate, LabBigIp, String) {
    let estate = AdEstate::start_with_front_end(servers, tweak).await;
    let lab = &estate.lab().lab;
    let password = format!("F5-{:08x}.Pw", getrandom::u32().expect("random"));
    let front_end = lab.config_front_end().expect("the lab's front end");
    let bigip = lab
        .start_bigip(BigIpConfig {
            admin_user: F5_USER.into(),
            admin_password: password.clone(),
            virtual_server: Some(VirtualServerConfig::for_front_end(front_end)),
            ..BigIpConfig::default()
        })
        .await
        .expect("start a lab BIG-IP with a virtual server");
    let mut section = toml::Table::new();
    section.insert("devices".into(), vec![bigip.device()].into());
    section.insert("user".into(), F5_USER.into());
    section.insert("ca_file".into(), "lab-ca.pem".into());
    section.insert("timeout".into(), 10.into());
    estate.set_f5(section);
    (estate, bigip, password)
}

/// What one request through the virtual server got.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The MRHSession value the BIG-IP set, if it set one.
    new_session: Option<String>,
    /// Which Exchange server answered (None: the BIG-IP answered itself).
    server: Option<String>,
    /// `hit` or `miss`: that server's token cache.
    cache: Option<String>,
}

/// A phone: Basic credentials, and the APM cookie it was given (kept by
/// hand, so a test can replay an old one).
struct Phone {
    http: reqwest::Client,
    url: String,
    user: String,
    password: String,
}

impl Phone {
    fn new(estate: &AdEstate, bigip: &LabBigIp, user: &str, password: &str) -> Self {
        let tls = tls_trusting(estate.lab().lab.ca_pem().as_bytes());
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("reqwest client");
        let url = bigip
            .virtual_server_url(&ENDPOINTS[1])
            .expect("a virtual server");
        Phone {
            http,
            url,
            user: user.to_string(),
            password: password.to_string(),
        }
    }

    /// `LAB\sam`, as a phone is usually set up.
    fn nt4(estate: &AdEstate, bigip: &LabBigIp, user: &TestUser) -> Self {
        let logon = format!("{}\\{}", estate.domain.netbios_domain(), user.sam);
        Self::new(estate, bigip, &logon, &user.password)
    }

    /// One ActiveSync Sync, with this session cookie (if any).
    async fn sync(&self, session: Option<&str>) -> Answer {
        let mut request = self
            .http
            .post(format!("{}?Cmd=Sync&DeviceId=PHONE1", self.url))
            .basic_auth(&self.user, Some(&self.password));
        if let Some(session) = session {
            request = request.header("cookie", format!("MRHSession={session}"));
        }
        let response = request.send().await.expect("an answer from the BIG-IP");
        let header = |name: &str| header(&response, name);
        let new_session = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("MRHSession="))
            .map(|v| v.split(';').next().unwrap_or_default().to_string());
        let answer = Answer {
            status: response.status().as_u16(),
            new_session,
            server: header("x-feserver"),
            cache: header("x-lab-token-cache"),
        };
        if answer.status == 401 {
            let challenge = header("www-authenticate").unwrap_or_default();
            assert!(challenge.starts_with("Basic realm="), "{challenge:?}");
        }
        answer
    }
}

/// An iControl REST session with the device: client, base URL, token.
struct Rest {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Rest {
    async fn login(bigip: &LabBigIp, ca_pem: &str, password: &str) -> Rest {
        let tls = tls_trusting(ca_pem.as_bytes());
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .no_proxy()
            .build()
            .expect("reqwest client");
        let base = format!("https://{}", bigip.device());
        let login = json!({"username": F5_USER, "password": password, "loginProviderName": "tmos"});
        let answer = http
            .post(format!("{base}/mgmt/shared/authn/login"))
            .header("content-type", "application/json")
            .body(login.to_string())
            .send()
            .await
            .expect("login");
        assert_eq!(answer.status(), 200);
        let doc: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
        let token = doc["token"]["token"].as_str().expect("a token").to_string();
        Rest { http, base, token }
    }

    /// `GET /mgmt/tm/apm/access-info`: (id, logonUser, clientIp) of each session.
    async fn sessions(&self) -> Vec<(String, String, String)> {
        let answer = self
            .http
            .get(format!("{}/mgmt/tm/apm/access-info", self.base))
            .header("X-F5-Auth-Token", &self.token)
            .send()
            .await
            .expect("access-info");
        assert_eq!(answer.status(), 200);
        let body = answer.bytes().await.unwrap();
        revoke_core::f5::parse_access_info(&body)
            .expect("access-info parses")
            .into_iter()
            .map(|s| (s.id, s.user, s.client_ip.unwrap_or_default()))
            .collect()
    }

    /// `DELETE /mgmt/tm/apm/session/<id>`: its status.
    async fn kill(&self, id: &str) -> u16 {
        self.http
            .delete(format!("{}/mgmt/tm/apm/session/{id}", self.base))
            .header("X-F5-Auth-Token", &self.token)
            .send()
            .await
            .expect("delete")
            .status()
            .as_u16()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apm_session_outlives_the_manual_disable_until_revoke_kills_it() {
    let (estate, bigip, f5_password) = estate_with_apm(2, |_| {}).await;
    let ca = estate.lab().lab.ca_pem().to_string();
    let d = estate.domain;
    let user = d.new_user("apmvs").await;
    let phone = Phone::nt4(&estate, &bigip, &user);

    // Pre-authentication: one logon, one session, the cookie.
    let first = phone.sync(None).await;
    assert_eq!(first.status, 200, "{first:?}");
    let cookie = first.new_session.clone().expect("MRHSession set");
    assert_eq!(first.server.as_deref(), Some("EX01"));
    let rest = Rest::login(&bigip, &ca, &f5_password).await;
    let listed = rest.sessions().await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (id, logon_user, client_ip) = &listed[0];
    assert!(cookie.ends_with(id.as_str()), "{cookie} / {id}");
    assert_eq!(logon_user, &format!("LAB\\{}", user.sam));
    assert_eq!(client_ip, "127.0.0.1");
    // With the cookie: no new session, the pool round-robin.
    let second = phone.sync(Some(&cookie)).await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.new_session, None);
    assert_eq!(second.server.as_deref(), Some("EX02"));
    assert_eq!(bigip.sessions().len(), 1);

    // Disabled by hand on both DCs: the directory refuses her now...
    for dc in [1, 2] {
        d.set_user_account_control(dc, &user.dn, UAC_DISABLED).await;
    }
    assert!(d.bind(1, &user.upn, &user.password).await.is_err());
    // ...and a client without a session is refused by the BIG-IP itself.
    let laptop = Phone::new(&estate, &bigip, &user.upn, &user.password);
    let refused = laptop.sync(None).await;
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(refused.server, None, "the BIG-IP answers, not Exchange");
    assert_eq!(bigip.sessions().len(), 1);
    // The bug: the phone's session and every worker's token cache still let
    // it in, on every server.
    for server in ["EX01", "EX02", "EX01", "EX02"] {
        let answer = phone.sync(Some(&cookie)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.server.as_deref(), Some(server));
        assert_eq!(answer.cache.as_deref(), Some("hit"));
        assert_eq!(answer.new_session, None);
    }

    // revoke disable: the gate, the flush, and the session killed.
    let run = estate
        .disable_json(&user.sam)
        .env("REVOKE_F5_PASSWORD", &f5_password)
        .run()
        .await;
    run.assert_code(0);
    let report = run.json();
    let device = &report["f5"][0];
    assert_eq!(device["status"], "ok", "{device:#}");
    assert_eq!(device["killed"], 1, "{device:#}");
    assert_eq!(device["sessions"][0]["id"], id.as_str(), "{device:#}");
    assert_eq!(device["sessions"][0]["status"], "killed", "{device:#}");
    assert_eq!(
        report["exposure"]["closed"], true,
        "{:#}",
        report["exposure"]
    );
    assert!(bigip.sessions().is_empty());
    assert!(rest.sessions().await.is_empty());

    // The same cookie is worthless now: the BIG-IP asks AD, which says no.
    let after = phone.sync(Some(&cookie)).await;
    assert_eq!(after.status, 401, "{after:?}");
    assert_eq!(after.server, None, "refused by the BIG-IP");
    assert!(bigip.sessions().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_session_must_log_on_again_and_bad_credentials_get_none() {
    let (estate, bigip, f5_password) = estate_with_apm(1, |_| {}).await;
    let ca = estate.lab().lab.ca_pem().to_string();
    let user = estate.domain.new_user("apmre").await;

    // A wrong password: 401 from the BIG-IP, no session.
    let wrong = Phone::new(&estate, &bigip, &user.upn, "not-the-password");
    let answer = wrong.sync(None).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!((answer.server, answer.new_session), (None, None));
    assert!(bigip.sessions().is_empty());

    // A UPN logon is recorded as typed.
    let phone = Phone::new(&estate, &bigip, &user.upn, &user.password);
    let first = phone.sync(None).await;
    assert_eq!(first.status, 200, "{first:?}");
    let cookie = first.new_session.expect("MRHSession set");
    let rest = Rest::login(&bigip, &ca, &f5_password).await;
    let listed = rest.sessions().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1, user.upn);

    // Killed on the device (as revoke does it): the old cookie no longer
    // counts; an enabled user logs on again and gets a new session.
    assert_eq!(rest.kill(&listed[0].0).await, 200);
    let again = phone.sync(Some(&cookie)).await;
    assert_eq!(again.status, 200, "{again:?}");
    let renewed = again.new_session.expect("a new session");
    assert_ne!(renewed, cookie);
    let listed = rest.sessions().await;
    assert_eq!(listed.len(), 1);
    assert!(renewed.ends_with(&listed[0].0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_member_that_is_down_is_skipped() {
    let (estate, bigip, _) = estate_with_apm(3, |c| {
        c.faults.push(fault("EX02", Fault::RefuseConnections));
    })
    .await;
    let user = estate.domain.new_user("apmpool").await;
    let phone = Phone::nt4(&estate, &bigip, &user);
    let first = phone.sync(None).await;
    let cookie = first.new_session.expect("MRHSession set");
    let mut servers = vec![first.server.expect("an Exchange server answered")];
    for _ in 0..5 {
        let answer = phone.sync(Some(&cookie)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        servers.push(answer.server.expect("an Exchange server answered"));
    }
    assert!(!servers.iter().any(|s| s == "EX02"), "{servers:?}");
    assert!(servers.iter().any(|s| s == "EX01"), "{servers:?}");
    assert!(servers.iter().any(|s| s == "EX03"), "{servers:?}");
    assert_eq!(bigip.sessions().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_poll_through_the_big_ip_is_dropped_with_its_worker() {
    let (estate, bigip, _) = estate_with_apm(1, |c| {
        c.drain_time = Duration::from_millis(300);
        c.front_end.as_mut().expect("front end").ping_heartbeat = Duration::from_secs(30);
    })
    .await;
    let user = estate.domain.new_user("apmping").await;
    let phone = Phone::nt4(&estate, &bigip, &user);
    let cookie = phone.sync(None).await.new_session.expect("MRHSession set");
    // A DirectPush Ping through the BIG-IP, held by EX01's ActiveSync worker.
    let ping = phone
        .http
        .post(format!("{}?Cmd=Ping&DeviceId=PHONE1", phone.url))
        .basic_auth(&phone.user, Some(&phone.password))
        .header("cookie", format!("MRHSession={cookie}"))
        .send();
    let held = tokio::spawn(ping);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ex01 = &estate.lab().servers()[0];
    let pool = revoke_core::iis::PoolName::parse("MSExchangeSyncAppPool").unwrap();
    let cmd = revoke_core::iis::recycle(&pool);
    let started = std::time::Instant::now();
    assert_eq!(ex01.iis.execute(&cmd.program, &cmd.args).await.exit_code, 0);
    // The worker exits at the drain limit, EX01 drops the Ping, and so does
    // the BIG-IP: the phone sees its connection dropped, not an answer.
    let dropped = held.await.expect("ping task");
    assert!(dropped.is_err(), "{dropped:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "held until the drain limit"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The APM session is not the worker's: the phone's next sync gets in.
    let next = phone.sync(Some(&cookie)).await;
    assert_eq!(next.status, 200, "{next:?}");
    assert_eq!(next.new_session, None);
}
