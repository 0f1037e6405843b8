//! The bug `revoke` exists for, reproduced end to end (docs/windows-behaviour.md §1.1-§1.4):
//! a mail client keeps reading the mailbox after its account is disabled or
//! its password reset in AD, because every IIS worker caches the logon
//! token and slides it on every request. Only a new worker (recycle) asks
//! the directory again. Real Samba AD (two DCs), lab Exchange servers with
//! their client front end, the real `revoke` binary.

use std::time::{Duration, Instant, SystemTime};

use revoke_lab::{ENDPOINTS, Endpoint, LabServer};
use serde_json::Value;

use super::backend::{AdEstate, TestUser, UAC_DISABLED};
use crate::common::{action, header, pids, tls_trusting};

const SERVERS: usize = 3;
const ACTIVESYNC: &str = "MSExchangeSyncAppPool";

/// What one request got.
#[derive(Debug, Clone)]
struct Answer {
    server: String,
    endpoint: &'static str,
    status: u16,
    /// `hit` or `miss` (the lab's X-Lab-Token-Cache), on a 200.
    cache: Option<String>,
    /// The worker that served it (the lab's X-Lab-Worker).
    worker: Option<u32>,
}

/// A mail client with one set of credentials, trusting the lab CA only.
struct MailClient {
    http: reqwest::Client,
    user: String,
    password: String,
}

impl MailClient {
    fn new(estate: &AdEstate, user: &str, password: &str) -> Self {
        let tls = tls_trusting(estate.lab().lab.ca_pem().as_bytes());
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("reqwest client");
        MailClient {
            http,
            user: user.to_string(),
            password: password.to_string(),
        }
    }

    /// `LAB\sam` and the user's password.
    fn nt4(estate: &AdEstate, user: &TestUser, password: &str) -> Self {
        let logon = format!("{}\\{}", estate.domain.netbios_domain(), user.sam);
        Self::new(estate, &logon, password)
    }

    fn url(server: &LabServer, endpoint: &Endpoint) -> String {
        server
            .front_end_url(endpoint)
            .unwrap_or_else(|| panic!("{} has no front end", server.name))
    }

    async fn send(
        &self,
        server: &str,
        endpoint: &'static Endpoint,
        request: reqwest::RequestBuilder,
    ) -> Answer {
        self.try_send(server, endpoint, request)
            .await
            .unwrap_or_else(|e| panic!("{server} {}: {e:?}", endpoint.name))
    }

    /// Err when no HTTP answer came (connection refused or dropped).
    async fn try_send(
        &self,
        server: &str,
        endpoint: &'static Endpoint,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, reqwest::Error> {
        let response = request
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await?;
        let header = |name: &str| header(&response, name);
        let answer = Answer {
            server: server.to_string(),
            endpoint: endpoint.name,
            status: response.status().as_u16(),
            cache: header("x-lab-token-cache"),
            worker: header("x-lab-worker").and_then(|p| p.parse().ok()),
        };
        if answer.status == 401 {
            let challenge = header("www-authenticate").unwrap_or_default();
            assert!(challenge.starts_with("Basic realm="), "{challenge:?}");
        }
        Ok(answer)
    }

    async fn get(&self, server: &LabServer, endpoint: &'static Endpoint) -> Answer {
        let request = self.http.get(Self::url(server, endpoint));
        self.send(&server.name, endpoint, request).await
    }

    /// Every endpoint of every server, one request each.
    async fn everywhere(&self, estate: &AdEstate) -> Vec<Answer> {
        let mut answers = Vec::new();
        for server in estate.lab().servers() {
            for endpoint in &ENDPOINTS {
                answers.push(self.get(server, endpoint).await);
            }
        }
        answers
    }

    /// An ActiveSync DirectPush long poll, held by the server for its
    /// heartbeat; returns a task that ends with the answer and when it came.
    fn ping(self, server: &LabServer) -> tokio::task::JoinHandle<(Answer, SystemTime)> {
        let task = self.try_ping(server);
        tokio::spawn(async move {
            let (answer, at) = task.await.expect("ping task");
            (answer.unwrap_or_else(|e| panic!("Ping: {e:?}")), at)
        })
    }

    fn try_ping(
        self,
        server: &LabServer,
    ) -> tokio::task::JoinHandle<(Result<Answer, reqwest::Error>, SystemTime)> {
        let endpoint = &ENDPOINTS[1];
        assert_eq!(endpoint.pool, ACTIVESYNC);
        let url = format!(
            "{}?Cmd=Ping&User=phone&DeviceId=phone1&DeviceType=Phone",
            Self::url(server, endpoint)
        );
        let name = server.name.clone();
        tokio::spawn(async move {
            let request = self.http.post(url).timeout(Duration::from_secs(120));
            let answer = self.try_send(&name, endpoint, request).await;
            (answer, SystemTime::now())
        })
    }
}

/// Every answer has `status`; else panics listing the ones that do not.
#[track_caller]
fn assert_all(answers: &[Answer], status: u16, when: &str) {
    assert_eq!(answers.len(), SERVERS * ENDPOINTS.len(), "{when}");
    let wrong: Vec<&Answer> = answers.iter().filter(|a| a.status != status).collect();
    assert!(
        wrong.is_empty(),
        "{when}: expected {status} everywhere, got: {wrong:#?}"
    );
}

/// Every answer came from a worker's token cache (no directory asked).
#[track_caller]
fn assert_cached(answers: &[Answer], when: &str) {
    let asked: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.cache.as_deref() != Some("hit"))
        .collect();
    assert!(asked.is_empty(), "{when}: not from the cache: {asked:#?}");
}

/// The user is refused by both DCs with `data` code `code`.
async fn assert_refused_by_ad(estate: &AdEstate, user: &TestUser, password: &str, code: &str) {
    for dc in [1, 2] {
        let refused = estate
            .domain
            .bind(dc, &user.upn, password)
            .await
            .expect_err("AD must refuse");
        assert!(refused.contains(code), "dc{dc}: {refused}");
    }
}

fn at(value: &Value) -> SystemTime {
    humantime::parse_rfc3339(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a time: {value}")),
    )
    .unwrap_or_else(|e| panic!("{value}: {e}"))
}

/// Keeps polling every endpoint for `period`: all 200, all from the cache.
async fn keep_polling(
    phone: &MailClient,
    estate: &AdEstate,
    period: Duration,
    when: &str,
) -> usize {
    let until = Instant::now() + period;
    let mut rounds = 0;
    while Instant::now() < until {
        let answers = phone.everywhere(estate).await;
        assert_all(&answers, 200, when);
        assert_cached(&answers, when);
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    rounds
}

// ------------------------------------------------------------ disable

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_account_keeps_reading_mail_until_revoke_disable() {
    // A short token lifetime, so that polling for longer than it shows the
    // sliding expiry: the cache never lets go while the client keeps asking.
    // Long enough that the checks between the first request and the polling
    // (two writes, two binds, a round of the laptop) fit in it on a loaded
    // machine: a 3 s lifetime let the entry expire there.
    let ttl = Duration::from_secs(8);
    let estate = AdEstate::start_with_front_end(SERVERS, |c| {
        c.front_end.as_mut().expect("front end").token_cache_ttl = ttl;
    })
    .await;
    let d = estate.domain;
    let user = d.new_user("stale").await;
    let phone = MailClient::nt4(&estate, &user, &user.password);
    let first = phone.everywhere(&estate).await;
    assert_all(&first, 200, "before the disable");
    assert!(first.iter().all(|a| a.cache.as_deref() == Some("miss")));

    // The operator disables the account by hand, on both DCs.
    let disabled = Instant::now();
    for dc in [1, 2] {
        d.set_user_account_control(dc, &user.dn, UAC_DISABLED).await;
    }
    assert_refused_by_ad(&estate, &user, &user.password, "data 533").await;
    // A client the workers have not cached is refused: the directory says no.
    let laptop = MailClient::new(&estate, &user.upn, &user.password);
    assert_all(&laptop.everywhere(&estate).await, 401, "an uncached client");

    // The bug: the phone keeps reading the mailbox on every endpoint of
    // every server for as long as it keeps polling (here twice the TTL).
    let rounds = keep_polling(
        &phone,
        &estate,
        ttl + Duration::from_secs(2),
        "after the disable in AD",
    )
    .await;
    eprintln!(
        "exposure: still served {:.1?} after the disable ({rounds} rounds of {} requests)",
        disabled.elapsed(),
        SERVERS * ENDPOINTS.len()
    );

    let run = estate.disable_json(&user.sam).run().await;
    run.assert_code(0);
    let report = run.json();
    assert_eq!(
        report["exposure"]["closed"], true,
        "{:#}",
        report["exposure"]
    );

    // The same phone is refused everywhere now, and so is everyone else.
    assert_all(
        &phone.everywhere(&estate).await,
        401,
        "after revoke disable",
    );
    assert_all(
        &laptop.everywhere(&estate).await,
        401,
        "after revoke disable",
    );
    eprintln!(
        "exposure: window closed by revoke in {} ms",
        report["exposure"]["window_ms"]
    );

    // What no flush closes: tickets issued before every DC had the disable.
    let cutoff = last_dc(&report);
    let tgt = residual(&report, "kerberos-tgt");
    assert_eq!(at(&tgt["issued_before"]), cutoff, "{tgt:#}");
    assert_eq!(at(&tgt["until"]), cutoff + 20 * MINUTE, "{tgt:#}");
    let service = residual(&report, "kerberos-service-ticket");
    assert_eq!(at(&service["until"]), cutoff + 10 * HOUR, "{service:#}");
    assert!(
        service["why"].as_str().unwrap().contains("default"),
        "{service:#}"
    );
    assert_eq!(residual(&report, "cached-logon")["until"], Value::Null);
    assert_eq!(report["kerberos_policy"]["source"], "defaults");
    assert_eq!(report["kerberos_policy"]["max_service_ticket_minutes"], 600);

    // The human report says it too, with the domain's own policy when the
    // config gives it: never a bare "exposure window closed".
    set_kerberos_policy(&estate, 240, 4);
    let human = estate
        .revoke("disable", &[user.sam.as_str(), "--yes"])
        .run()
        .await;
    human.assert_code(0);
    let out = &human.stdout;
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("IIS token caches closed at "), "{out}");
    assert!(last.contains("Kerberos tickets issued before "), "{out}");
    assert!(last.contains(" may be used until "), "{out}");
    assert!(!out.contains("Exposure window closed"), "{out}");
    assert!(
        out.contains("Not closed by revoke (times from the Kerberos policy in [kerberos_policy], 240 min service tickets, 4 h TGTs"),
        "{out}"
    );
    assert!(out.contains("kerberos-service-ticket of "), "{out}");
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// When the last DC was seen with the change (a read-only DC that holds no
/// copy of the user's password has nothing to confirm).
fn last_dc(report: &Value) -> SystemTime {
    report["directory"]["domain_controllers"]
        .as_array()
        .expect("domain_controllers[]")
        .iter()
        .filter(|dc| dc["status"] != "not-cached")
        .map(|dc| at(&dc["confirmed_at"]))
        .max()
        .expect("a DC")
}

/// The report's `residual` entry of `kind`.
#[track_caller]
fn residual<'a>(report: &'a Value, kind: &str) -> &'a Value {
    report["residual"]
        .as_array()
        .expect("residual[]")
        .iter()
        .find(|r| r["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:#}", report["residual"]))
}

/// `[kerberos_policy]` in revoke.toml, as an estate with its own policy has it.
fn set_kerberos_policy(estate: &AdEstate, service_minutes: u64, user_hours: u64) {
    let path = estate.config();
    let mut config: toml::Table = std::fs::read_to_string(path)
        .expect("read revoke.toml")
        .parse()
        .expect("revoke.toml");
    let mut policy = toml::Table::new();
    policy.insert(
        "max_service_ticket_minutes".into(),
        (service_minutes as i64).into(),
    );
    policy.insert("max_user_ticket_hours".into(), (user_hours as i64).into());
    config.insert("kerberos_policy".into(), policy.into());
    std::fs::write(path, config.to_string()).expect("write revoke.toml");
}

// ------------------------------------------------------------ reset

#[tokio::test(flavor = "multi_thread")]
async fn an_old_password_keeps_reading_mail_until_revoke_reset() {
    let estate = AdEstate::start_with_front_end(SERVERS, |_| {}).await;
    let d = estate.domain;
    let user = d.new_user("oldpw").await;
    let phone = MailClient::nt4(&estate, &user, &user.password);
    assert_all(&phone.everywhere(&estate).await, 200, "before the reset");

    // A helpdesk reset by hand on both DCs: the phone does not notice.
    let by_hand = format!("{}-hd", user.password);
    for dc in [1, 2] {
        d.set_password(dc, &user.dn, &by_hand).await;
    }
    keep_polling(
        &phone,
        &estate,
        Duration::from_secs(2),
        "after the reset by hand",
    )
    .await;

    let (run, new, _dir) = estate.reset_to_file(&user.sam).await;
    let report = run.json();
    assert_eq!(
        report["exposure"]["closed"], true,
        "{:#}",
        report["exposure"]
    );
    // A reset does not stop Kerberos: TGTs renew for 7 days (the default),
    // and cached logons and certificates do not use the new password.
    let tgt = residual(&report, "kerberos-tgt");
    assert_eq!(
        at(&tgt["until"]),
        last_dc(&report) + 7 * 24 * HOUR,
        "{tgt:#}"
    );
    assert_eq!(residual(&report, "cached-logon")["until"], Value::Null);
    let certificates = residual(&report, "certificate-logon");
    assert!(
        certificates["why"]
            .as_str()
            .unwrap()
            .contains("Windows Hello"),
        "{certificates:#}"
    );

    assert_all(
        &phone.everywhere(&estate).await,
        401,
        "old password after revoke reset",
    );
    assert_refused_by_ad(&estate, &user, &user.password, "data 52e").await;
    let by_hand_client = MailClient::nt4(&estate, &user, &by_hand);
    assert_all(
        &by_hand_client.everywhere(&estate).await,
        401,
        "the hand-set password",
    );
    // The new password works everywhere, in both logon forms.
    let updated = MailClient::nt4(&estate, &user, &new);
    let answers = updated.everywhere(&estate).await;
    assert_all(&answers, 200, "new password");
    assert!(answers.iter().all(|a| a.cache.as_deref() == Some("miss")));
    let upn = MailClient::new(&estate, &user.upn, &new);
    assert_all(&upn.everywhere(&estate).await, 200, "new password, UPN");
}

// ------------------------------------------------------------ long poll

#[tokio::test(flavor = "multi_thread")]
async fn a_long_poll_outlives_the_recycle_and_revoke_waits_for_its_worker() {
    let heartbeat = Duration::from_secs(10);
    let estate = AdEstate::start_with_front_end(SERVERS, |c| {
        // Windows' default drain limit is 90 s; long enough here.
        c.drain_time = Duration::from_secs(60);
        c.front_end.as_mut().expect("front end").ping_heartbeat = heartbeat;
    })
    .await;
    let d = estate.domain;
    let user = d.new_user("push").await;
    let phone = MailClient::nt4(&estate, &user, &user.password);
    let first = phone.everywhere(&estate).await;
    assert_all(&first, 200, "before");

    let lab = estate.lab();
    let ex02 = lab.server("EX02");
    let holder = first
        .iter()
        .find(|a| a.server == "EX02" && a.endpoint == "ActiveSync")
        .and_then(|a| a.worker)
        .expect("the worker that served ActiveSync on EX02");
    assert_eq!(
        revoke_core::iis::pids_of(&ex02.iis.workers(), ACTIVESYNC),
        [holder]
    );

    // The phone parks a DirectPush Ping on EX02's ActiveSync worker.
    let ping_sent = SystemTime::now();
    let ping = MailClient::nt4(&estate, &user, &user.password).ping(ex02);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!ping.is_finished(), "the Ping is held");

    let run = estate.disable_json(&user.sam).run().await;
    run.assert_code(0);
    let report = run.json();
    let (answer, ping_done) = ping.await.expect("ping task");

    // The Ping was accepted before the recycle and answered after it, 200,
    // by the old worker: its cached token outlived the disable and the flush.
    let recycled_at = ex02
        .log
        .entries()
        .into_iter()
        .find(|e| e.command_line.contains(ACTIVESYNC) && e.command_line.contains("recycle"))
        .expect("ActiveSync recycled on EX02")
        .at;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.worker, Some(holder), "served by the old worker");
    assert!(
        ping_done > recycled_at,
        "the Ping ended before the recycle: the heartbeat is too short for this machine"
    );

    // revoke waited for that worker: EX02 is the last server whose old
    // workers were gone, not before the Ping ended, and it closed the window.
    let entry = lab.report_of(&report, ex02);
    assert!(pids(&action(entry, ACTIVESYNC)["old_pids"]).contains(&holder));
    let ex02_exited = at(&entry["old_workers_exited_at"]);
    let ping_end_earliest = ping_sent + heartbeat;
    assert!(
        ex02_exited >= ping_end_earliest,
        "EX02's old workers reported gone before the Ping ended: {entry:#}"
    );
    for server in lab.servers().iter().filter(|s| s.name != "EX02") {
        let exited = at(&lab.report_of(&report, server)["old_workers_exited_at"]);
        assert!(exited < ex02_exited, "{} exited after EX02", server.name);
        assert!(
            exited < ping_end_earliest,
            "{}: idle old workers exit at the recycle",
            server.name
        );
    }
    assert_eq!(
        report["exposure"]["closed"], true,
        "{:#}",
        report["exposure"]
    );
    assert_eq!(at(&report["exposure"]["closed_at"]), ex02_exited);
    assert!(!ex02.iis.worker_alive(holder));
    assert_all(
        &phone.everywhere(&estate).await,
        401,
        "after revoke disable",
    );
    eprintln!(
        "exposure: Ping answered {:?} after it was sent; window {} ms",
        ping_done.duration_since(ping_sent).unwrap_or_default(),
        report["exposure"]["window_ms"]
    );
}

// ------------------------------------------------------------ IIS itself

#[tokio::test(flavor = "multi_thread")]
async fn a_token_not_used_for_its_lifetime_expires() {
    let ttl = Duration::from_millis(1500);
    let estate = AdEstate::start_with_front_end(1, |c| {
        c.front_end.as_mut().expect("front end").token_cache_ttl = ttl;
    })
    .await;
    let d = estate.domain;
    let user = d.new_user("idle").await;
    let ex01 = &estate.lab().servers()[0];
    let phone = MailClient::nt4(&estate, &user, &user.password);
    let ews = &ENDPOINTS[0];
    assert_eq!(phone.get(ex01, ews).await.cache.as_deref(), Some("miss"));
    assert_eq!(phone.get(ex01, ews).await.cache.as_deref(), Some("hit"));
    for dc in [1, 2] {
        d.set_user_account_control(dc, &user.dn, UAC_DISABLED).await;
    }
    // A phone that stays quiet longer than the TTL is asked again, and refused.
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    assert_eq!(phone.get(ex01, ews).await.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn iisreset_drops_every_request_and_every_cache() {
    let downtime = Duration::from_millis(1500);
    let estate = AdEstate::start_with_front_end(1, |c| c.iisreset_downtime = downtime).await;
    let d = estate.domain;
    let user = d.new_user("reset").await;
    let ex01 = &estate.lab().servers()[0];
    let phone = MailClient::nt4(&estate, &user, &user.password);
    let owa = &ENDPOINTS[2];
    assert_eq!(phone.get(ex01, owa).await.cache.as_deref(), Some("miss"));
    assert_eq!(phone.get(ex01, owa).await.cache.as_deref(), Some("hit"));
    let held = phone_ping(&estate, &user, ex01);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for dc in [1, 2] {
        d.set_user_account_control(dc, &user.dn, UAC_DISABLED).await;
    }
    assert_eq!(phone.get(ex01, owa).await.status, 200, "cached");

    let reset = tokio::spawn({
        let iis = ex01.iis.clone();
        async move { iis.execute("iisreset", &["/noforce".to_string()]).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(phone.get(ex01, owa).await.status, 503, "IIS is down");
    let (dropped, _) = held.await.expect("ping task");
    assert!(
        dropped.is_err(),
        "the held Ping lost its connection: {dropped:?}"
    );
    assert_eq!(reset.await.expect("iisreset").exit_code, 0);
    // Fresh workers, empty caches: the directory is asked, and says no.
    assert_eq!(phone.get(ex01, owa).await.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_still_running_at_the_drain_limit_dies_with_its_worker() {
    let estate = AdEstate::start_with_front_end(1, |c| {
        c.drain_time = Duration::from_secs(1);
        c.front_end.as_mut().expect("front end").ping_heartbeat = Duration::from_secs(30);
    })
    .await;
    let user = estate.domain.new_user("drain").await;
    let ex01 = &estate.lab().servers()[0];
    let held = phone_ping(&estate, &user, ex01);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let holder = revoke_core::iis::pids_of(&ex01.iis.workers(), ACTIVESYNC)[0];
    let pool = revoke_core::iis::PoolName::parse(ACTIVESYNC).unwrap();
    let cmd = revoke_core::iis::recycle(&pool);
    let started = Instant::now();
    assert_eq!(ex01.iis.execute(&cmd.program, &cmd.args).await.exit_code, 0);
    assert!(ex01.iis.worker_alive(holder), "draining");
    let (dropped, _) = held.await.expect("ping task");
    assert!(dropped.is_err(), "killed at the drain limit: {dropped:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!ex01.iis.worker_alive(holder));
}

fn phone_ping(
    estate: &AdEstate,
    user: &TestUser,
    server: &LabServer,
) -> tokio::task::JoinHandle<(Result<Answer, reqwest::Error>, SystemTime)> {
    MailClient::nt4(estate, user, &user.password).try_ping(server)
}

// ------------------------------------------------------------ revoke lab

#[tokio::test(flavor = "multi_thread")]
async fn revoke_lab_serves_the_front_end_it_prints() {
    let d = super::backend::domain();
    let user = d.new_user("cli").await;
    // Three fixed ports per server with a front end: WinRM HTTP, HTTPS, front end.
    let base = crate::common::free_port_block(3);
    let front_end = std::net::SocketAddr::from(([127, 0, 0, 1], base + 2));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("revoke.toml");
    let lab = crate::common::Revoke::new(&[
        "lab",
        "--servers",
        "1",
        "--base-port",
        &base.to_string(),
        "--write-config",
        config.to_str().unwrap(),
        "--directory",
        &d.dc_url(1),
        "--directory-ca",
        d.ca_file().to_str().unwrap(),
    ])
    // Long enough for a slow start on a loaded machine, plus the requests.
    .interrupt_after(Duration::from_secs(15))
    .run();
    let lab = tokio::spawn(lab);

    // revoke.toml is written, after lab-ca.pem, once the lab runs.
    let ca_path = dir.path().join("lab-ca.pem");
    let started = Instant::now();
    while !config.exists() {
        if lab.is_finished() {
            let run = lab.await.expect("revoke lab");
            panic!("revoke lab ended before it ran: {run:?}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "the lab did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tls = tls_trusting(&std::fs::read(&ca_path).unwrap());
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("https://{front_end}/Microsoft-Server-ActiveSync");
    let logon = format!("{}\\{}", d.netbios_domain(), user.sam);
    let ok = http
        .get(&url)
        .basic_auth(&logon, Some(&user.password))
        .send()
        .await
        .expect("the front end answers");
    assert_eq!(ok.status().as_u16(), 200);
    let refused = http
        .get(&url)
        .basic_auth(&logon, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);

    let run = lab.await.expect("revoke lab");
    run.assert_code(0);
    assert!(
        run.stdout.contains(&format!("EX01    https://{front_end}")),
        "{}",
        run.stdout
    );
    for endpoint in &ENDPOINTS {
        assert!(run.stdout.contains(endpoint.path), "{}", run.stdout);
        assert!(run.stdout.contains(endpoint.pool), "{}", run.stdout);
    }
    assert!(run.stdout.contains(&d.dc_url(1)), "{}", run.stdout);
}
