//! `revoke doctor`, the real binary: every check ok against the Samba AD
//! domain and the lab (servers and a BIG-IP); then, on a Windows-like
//! embedded estate, each injected problem reported with its fix: a missing
//! CA, wrong passwords, a delegated operator without Replication
//! Synchronization, a server that refuses connections, a missing pool, a
//! BIG-IP that refuses its login, and a password not given at all.

use std::net::Ipv4Addr;

use revoke_lab::directory::{DcConfig, Directory, DirectoryConfig};
use revoke_lab::{BigIpConfig, Fault, LabBigIp, LabConfig};
use serde_json::Value;

use crate::common::{Revoke, Run, TestLab, fast_lab, fault};
use crate::samba::AdEstate;

const F5_USER: &str = "revoke-f5";

/// `revoke doctor --output json` as `revoke` runs it; exit code and document.
async fn doctor(revoke: Revoke) -> (Run, Value) {
    let run = revoke.run().await;
    let json = run.json();
    (run, json)
}

fn checks(report: &Value) -> &Vec<Value> {
    report["checks"].as_array().expect("checks is an array")
}

/// The row of `check` for `target` (the target as the report names it).
#[track_caller]
fn row<'a>(report: &'a Value, check: &str, target: &str) -> &'a Value {
    checks(report)
        .iter()
        .find(|r| r["check"] == check && r["target"].as_str().is_some_and(|t| t.contains(target)))
        .unwrap_or_else(|| panic!("no {check} row for {target}: {report:#}"))
}

#[track_caller]
fn assert_problem(report: &Value, check: &str, target: &str, detail: &str, fix: &str) {
    let r = row(report, check, target);
    assert_eq!(r["status"], "problem", "{r:#}");
    let got = r["detail"].as_str().unwrap();
    assert!(got.contains(detail), "detail {got:?} lacks {detail:?}");
    let got = r["fix"].as_str().unwrap();
    assert!(got.contains(fix), "fix {got:?} lacks {fix:?}");
}

#[track_caller]
fn assert_ok(report: &Value, check: &str, target: &str, detail: &str) {
    let r = row(report, check, target);
    assert_eq!(r["status"], "ok", "{r:#}");
    let got = r["detail"].as_str().unwrap();
    assert!(got.contains(detail), "detail {got:?} lacks {detail:?}");
}

#[track_caller]
fn assert_no_secret(run: &Run, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a password was printed:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

/// A lab BIG-IP and the `[f5]` section of `config` that names it.
async fn add_bigip(lab: &TestLab, password: &str) -> LabBigIp {
    let bigip = lab
        .lab
        .start_bigip(BigIpConfig {
            admin_user: F5_USER.into(),
            admin_password: password.into(),
            ..BigIpConfig::default()
        })
        .await
        .expect("a lab BIG-IP");
    bigip.add_session("someone", "203.0.113.7");
    let text = std::fs::read_to_string(&lab.config).unwrap();
    let mut config: toml::Table = text.parse().unwrap();
    let mut section = toml::Table::new();
    section.insert("devices".into(), vec![bigip.device()].into());
    section.insert("user".into(), F5_USER.into());
    section.insert("ca_file".into(), "lab-ca.pem".into());
    section.insert("timeout".into(), 10.into());
    config.insert("f5".into(), section.into());
    std::fs::write(&lab.config, config.to_string()).unwrap();
    bigip
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_passes_on_samba_and_the_lab() {
    let estate = AdEstate::start(2).await;
    let d = estate.domain;
    let f5_password = "F5-doctor-Passw0rd";
    let _bigip = add_bigip(estate.lab(), f5_password).await;
    let (run, report) = doctor(
        estate
            .revoke("doctor", &["--output", "json"])
            .env("REVOKE_F5_PASSWORD", f5_password),
    )
    .await;
    run.assert_code(0);
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["problems"], 0);
    for r in checks(&report) {
        assert_eq!(r["status"], "ok", "{r:#}");
        assert!(r["fix"].is_null(), "{r:#}");
    }
    let dc1 = d.dc_url(1);
    assert_ok(&report, "dc-tls", &dc1, "signed by the CA in");
    assert_ok(&report, "dc-bind", &dc1, d.operator_upn());
    // Samba answers no "Who am I?": the bind name, resolved.
    assert_ok(&report, "operator", d.operator_upn(), "CN=");
    assert_ok(&report, "domain-controllers", d.base_dn(), "writable");
    // DC2: bound, and forced replication is not something Samba does.
    let dc2 = d.dc_host(2);
    assert_ok(&report, "dc-bind", dc2, "bound as");
    assert_ok(&report, "replication-sync", dc2, "not supported by this DC");
    for server in estate.lab().servers() {
        let host = estate.lab().host(server);
        assert_ok(&report, "winrm-reachable", &host, "answers at http://");
        assert_ok(&report, "winrm-auth", &host, "Negotiate (NTLM) over HTTP");
        assert_ok(&report, "appcmd", &host, &server.name);
        assert_ok(&report, "pools", &host, "5 pools present and started");
    }
    assert_ok(&report, "f5-login", "127.0.0.1", F5_USER);
    assert_ok(&report, "f5-sessions", "127.0.0.1", "listed 1 APM");
    assert_no_secret(&run, &[d.operator_password(), f5_password]);
    // Nothing was changed on a server: only the survey ran.
    for (server, line) in estate.lab().all_commands() {
        assert!(!crate::common::is_mutating(&line), "{server} ran {line}");
    }

    // The table for people says the same.
    let run = estate
        .revoke("doctor", &[] as &[&str])
        .env("REVOKE_F5_PASSWORD", f5_password)
        .run()
        .await;
    run.assert_code(0);
    assert!(run.stdout.starts_with("CHECK "), "{}", run.stdout);
    assert!(run.stdout.contains("checks ok"), "{}", run.stdout);
    assert!(!run.stdout.contains("fix:"), "{}", run.stdout);
}

/// A Windows-like embedded domain (two DCs, forced replication served, the
/// operator delegated on OU=Staff only, not granted Replication
/// Synchronization), three lab servers with `faults`, a BIG-IP and the
/// revoke.toml for all of it.
struct Troubled {
    directory: Directory,
    lab: TestLab,
    bigip: LabBigIp,
}

const OPERATOR_PASSWORD: &str = "Op-Passw0rd-doctor";

async fn troubled_estate(faults: Vec<revoke_lab::FaultSpec>) -> Troubled {
    let directory = Directory::start(DirectoryConfig {
        dcs: (1..=2)
            .map(|n| DcConfig {
                address: Ipv4Addr::new(127, 0, 0, n),
                replication_delay: None,
            })
            .collect(),
        ldap_port: None,
        operator: Some(("revoke-op".into(), OPERATOR_PASSWORD.into())),
        ..DirectoryConfig::default()
    })
    .await
    .expect("directory");
    directory.set_forced_replication(true);
    let lab = TestLab::start(LabConfig {
        admin_user: "revoke-op".into(),
        admin_password: OPERATOR_PASSWORD.into(),
        faults,
        ..fast_lab(3)
    })
    .await;
    lab.use_directory(&directory, "revoke-op@lab.example.test", &[]);
    let bigip = add_bigip(&lab, OPERATOR_PASSWORD).await;
    Troubled {
        directory,
        lab,
        bigip,
    }
}

impl Troubled {
    fn doctor(&self) -> Revoke {
        Revoke::new(&[
            "doctor",
            "--output",
            "json",
            "--config",
            self.lab.config.to_str().unwrap(),
        ])
    }

    fn edit_directory(&self, edit: impl FnOnce(&mut toml::Table)) {
        let text = std::fs::read_to_string(&self.lab.config).unwrap();
        let mut config: toml::Table = text.parse().unwrap();
        edit(config["directory"].as_table_mut().unwrap());
        std::fs::write(&self.lab.config, config.to_string()).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_each_problem_with_its_fix() {
    let estate = troubled_estate(vec![
        fault("EX02", Fault::RefuseConnections),
        fault(
            "EX03",
            Fault::PoolAbsent {
                pool: "MSExchangeOWAAppPool".into(),
            },
        ),
    ])
    .await;
    let ex02 = estate.lab.host(estate.lab.server("EX02"));
    let ex03 = estate.lab.host(estate.lab.server("EX03"));
    let ex01 = estate.lab.host(estate.lab.server("EX01"));

    // The operator lacks Replication Synchronization; EX02 refuses
    // connections; EX03 has no OWA pool. The rest is ok.
    let (run, report) = doctor(estate.doctor().password(OPERATOR_PASSWORD)).await;
    run.assert_code(2);
    assert_eq!(report["ok"], false);
    assert_eq!(report["problems"], 3, "{report:#}");
    assert_problem(
        &report,
        "replication-sync",
        "127.0.0.2",
        "missing right \"Replication Synchronization\"",
        "dsacls \"DC=lab,DC=example,DC=test\" /G \"revoke-op@lab.example.test:CA;Replication Synchronization\"",
    );
    assert_ok(&report, "replication-sync", "127.0.0.1", "not needed here");
    // Windows-like: the DC answers "Who am I?".
    assert_ok(
        &report,
        "operator",
        "revoke-op@",
        "\"Who am I?\" answered u:LAB\\revoke-op",
    );
    assert_problem(
        &report,
        "winrm-reachable",
        &ex02,
        "connection refused",
        "check that WinRM listens on 127.0.0.1",
    );
    assert_problem(
        &report,
        "pools",
        &ex03,
        "no such pool: MSExchangeOWAAppPool",
        "[flush] pools",
    );
    assert_ok(&report, "appcmd", &ex03, "appcmd list apppool ran on EX03");
    assert_ok(&report, "pools", &ex01, "5 pools present and started");
    assert_ok(&report, "f5-sessions", "127.0.0.1", "listed 1");
    assert_no_secret(&run, &[OPERATOR_PASSWORD]);
    // The human table puts each fix under its problem.
    let table = Revoke::new(&["doctor", "--config", estate.lab.config.to_str().unwrap()])
        .password(OPERATOR_PASSWORD)
        .run()
        .await;
    table.assert_code(2);
    let lines: Vec<&str> = table.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("replication-sync") && l.contains("PROBLEM"))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    assert!(
        lines[at + 1]
            .trim_start()
            .starts_with("fix: grant it: dsacls"),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .ends_with("3 problems: see each one's fix above.\n"),
        "{}",
        table.stdout
    );

    // Granted, the right is reported as there (and DC2 pulled the object).
    let operator = format!("CN=revoke-op,CN=Users,{}", estate.directory.base_dn());
    estate.directory.grant_replication_sync(&operator);
    let (run, report) = doctor(estate.doctor().password(OPERATOR_PASSWORD)).await;
    run.assert_code(2);
    assert_ok(
        &report,
        "replication-sync",
        "127.0.0.2",
        "has Replication Synchronization",
    );
    assert_eq!(report["problems"], 2, "{report:#}");

    // Wrong passwords: the bind and WinRM logons are refused, each says whose
    // password to check; the BIG-IP refuses its login.
    estate.bigip.refuse_logins(true);
    let (run, report) = doctor(
        estate
            .doctor()
            .password(OPERATOR_PASSWORD)
            .env("REVOKE_DIRECTORY_PASSWORD", "Wrong-Passw0rd-1")
            .env("REVOKE_WINRM_PASSWORD", "Wrong-Passw0rd-2"),
    )
    .await;
    run.assert_code(2);
    assert_problem(
        &report,
        "dc-bind",
        "ldaps://127.0.0.1",
        "wrong password",
        "REVOKE_DIRECTORY_PASSWORD",
    );
    assert_ok(
        &report,
        "dc-tls",
        "ldaps://127.0.0.1",
        "signed by the CA in",
    );
    assert_problem(
        &report,
        "winrm-auth",
        &ex01,
        "authentication refused",
        "REVOKE_WINRM_PASSWORD",
    );
    assert_problem(
        &report,
        "f5-login",
        "127.0.0.1",
        "login refused",
        "REVOKE_F5_PASSWORD",
    );
    assert_no_secret(
        &run,
        &["Wrong-Passw0rd-1", "Wrong-Passw0rd-2", OPERATOR_PASSWORD],
    );
    estate.bigip.refuse_logins(false);

    // No CA file: the DC's certificate is not trusted, and the fix is the
    // exact flag to give it.
    estate.edit_directory(|d| {
        d.remove("ca_file");
    });
    let (run, report) = doctor(estate.doctor().password(OPERATOR_PASSWORD)).await;
    run.assert_code(2);
    assert_ok(
        &report,
        "dc-reachable",
        "ldaps://127.0.0.1",
        "answers on port",
    );
    assert_problem(
        &report,
        "dc-tls",
        "ldaps://127.0.0.1",
        "its certificate is not signed by a CA revoke trusts",
        "--directory-ca-file FILE (or ca_file in [directory])",
    );
    // Nothing beyond the failed connection is claimed about the directory.
    assert!(
        !checks(&report).iter().any(|r| r["check"] == "operator"),
        "{report:#}"
    );

    // No password at all: said per account, and nothing is contacted.
    let before = estate.lab.server("EX01").requests.len();
    let (run, report) = doctor(estate.doctor()).await;
    run.assert_code(2);
    assert_problem(
        &report,
        "secrets",
        "revoke-op@lab.example.test (LDAP bind)",
        "no password given",
        "REVOKE_DIRECTORY_PASSWORD",
    );
    assert_eq!(estate.lab.server("EX01").requests.len(), before);
}
