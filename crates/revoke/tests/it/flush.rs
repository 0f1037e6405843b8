//! `revoke flush` end to end: the real binary against an in-process lab,
//! checked the way an operator would check it (exit code, JSON report, the
//! table) and the way the servers saw it (command logs, IIS workers).

use std::time::{Duration, Instant};

use revoke_core::iis::{self, EXCHANGE_POOLS};
use revoke_lab::{Fault, LAB_DEFAULT_PASSWORD, LabConfig, LabTransport};
use serde_json::Value;

use crate::common::{
    Revoke, TestLab, action, assert_recycled, fast_lab, fault, is_mutating, mutation_times,
    path_str, pids, recycle_line, settle,
};

const OWA: &str = "MSExchangeOWAAppPool";

// ---------------------------------------------------------- happy paths

/// The whole estate flushed: every server ok, every Exchange pool recycled
/// once, the old workers gone and the reported new ones running.
async fn flush_all_ok(transport: LabTransport, servers: usize) {
    let config = fast_lab(servers);
    let lab = TestLab::start_with(config.clone(), transport).await;
    let before: Vec<Vec<u32>> = lab
        .servers()
        .iter()
        .map(|s| s.iis.workers().iter().map(|w| w.pid).collect())
        .collect();

    let (run, report) = lab.flush_json(&[]).await;
    run.assert_code(0);
    assert_eq!(report["summary"]["servers"], servers, "{report:#}");
    assert_eq!(report["summary"]["ok"], servers, "{report:#}");
    assert_eq!(report["summary"]["pools_recycled"], servers * 5);
    assert_eq!(report["summary"]["pools_failed"], 0);
    assert_eq!(
        report["servers"].as_array().unwrap().len(),
        servers,
        "{report:#}"
    );
    for server in lab.servers() {
        assert_recycled(lab.report_of(&report, server), server);
    }

    // Once drained, no worker that held a token before the flush survives
    // in an Exchange pool (DefaultAppPool's was not ours to touch).
    settle(&config).await;
    for (server, before) in lab.servers().iter().zip(before) {
        for w in server.iis.workers() {
            if EXCHANGE_POOLS.contains(&w.pool.as_str()) {
                assert!(
                    !before.contains(&w.pid),
                    "{}: {} still runs old worker {}",
                    server.name,
                    w.pool,
                    w.pid
                );
            } else {
                assert!(
                    before.contains(&w.pid),
                    "{}: {w:?} was replaced",
                    server.name
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recycles_eight_servers_over_http_ntlm_sealed() {
    flush_all_ok(LabTransport::Http, 8).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recycles_over_https_basic_validating_the_lab_ca() {
    flush_all_ok(LabTransport::HttpsBasic, 4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recycles_over_https_negotiate_validating_the_lab_ca() {
    flush_all_ok(LabTransport::HttpsNegotiate, 4).await;
}

/// Certificate validation really is on: the same HTTPS config without the
/// lab CA fails every server at TLS, and nothing runs anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn https_without_the_lab_ca_is_refused() {
    let lab = TestLab::start_with(fast_lab(2), LabTransport::HttpsBasic).await;
    let text = std::fs::read_to_string(&lab.config).unwrap();
    let without_ca: String = text
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(text, without_ca, "the lab config names its CA");
    std::fs::write(&lab.config, without_ca).unwrap();

    let (run, report) = lab.flush_json(&["--timeout", "20"]).await;
    run.assert_code(2);
    for server in lab.servers() {
        let entry = lab.report_of(&report, server);
        assert_eq!(entry["status"], "failed", "{entry:#}");
        let error = entry["error"].as_str().unwrap_or_default();
        assert!(error.contains("TLS"), "{error}");
        assert!(server.log.entries().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_servers_all_ok() {
    let config = LabConfig {
        recycle_time: Duration::from_millis(10),
        drain_time: Duration::from_millis(50),
        ..fast_lab(50)
    };
    let lab = TestLab::start(config).await;
    let (run, report) = lab.flush_json(&[]).await;
    run.assert_code(0);
    assert_eq!(report["summary"]["servers"], 50);
    assert_eq!(report["summary"]["ok"], 50, "{report:#}");
    assert_eq!(report["summary"]["pools_recycled"], 250);
    lab.assert_others_recycled(&report, &[]);
}

// -------------------------------------------------------------- dry run

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_looks_and_changes_nothing() {
    let lab = TestLab::start(fast_lab(4)).await;
    let before: Vec<Vec<u32>> = lab
        .servers()
        .iter()
        .map(|s| s.iis.workers().iter().map(|w| w.pid).collect())
        .collect();

    let (run, report) = lab.flush_json(&["--dry-run"]).await;
    run.assert_code(0);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["summary"]["planned"], 4, "{report:#}");
    assert_eq!(report["summary"]["pools_recycled"], 0);
    for (server, before) in lab.servers().iter().zip(before) {
        let entry = lab.report_of(&report, server);
        assert_eq!(entry["status"], "planned", "{entry:#}");
        assert_eq!(entry["computer"], server.name.as_str());
        let actions = entry["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 5, "{entry:#}");
        for pool in EXCHANGE_POOLS {
            let a = action(entry, pool);
            assert_eq!(a["status"], "planned", "{a:#}");
            assert_eq!(
                a["message"].as_str().unwrap(),
                format!("would run: {}", recycle_line(pool))
            );
            assert!(!pids(&a["old_pids"]).is_empty(), "{a:#}");
            assert!(pids(&a["new_pids"]).is_empty(), "{a:#}");
        }

        let log: Vec<String> = server
            .log
            .entries()
            .into_iter()
            .map(|e| e.command_line)
            .collect();
        assert!(
            !log.iter().any(|c| is_mutating(c)),
            "{}: a dry run sent {log:#?}",
            server.name
        );
        assert!(
            log.contains(&iis::list_apppools().command_line()),
            "{log:#?}"
        );
        assert!(
            log.contains(&iis::list_workers().command_line()),
            "{log:#?}"
        );
        let now: Vec<u32> = server.iis.workers().iter().map(|w| w.pid).collect();
        assert_eq!(now, before, "{}: workers changed", server.name);
    }

    // The human form says it is a dry run.
    let run = lab.flush(&["--dry-run"]).run().await;
    run.assert_code(0);
    assert!(run.stdout.contains("Dry run"), "{}", run.stdout);
    assert!(!lab.all_commands().iter().any(|(_, c)| is_mutating(c)));
}

#[tokio::test(flavor = "multi_thread")]
async fn iisreset_dry_run_does_not_reset() {
    let lab = TestLab::start(fast_lab(2)).await;
    let (run, report) = lab.flush_json(&["--dry-run", "--method", "iisreset"]).await;
    run.assert_code(0);
    for server in lab.servers() {
        let entry = lab.report_of(&report, server);
        assert_eq!(entry["status"], "planned", "{entry:#}");
        let a = action(entry, "*");
        assert_eq!(a["status"], "planned");
        assert_eq!(a["message"], "would run: iisreset /noforce");
    }
    assert!(
        !lab.all_commands().iter().any(|(_, c)| is_mutating(c)),
        "{:#?}",
        lab.all_commands()
    );
}

// --------------------------------------------------------------- faults

/// A four-server lab where EX03 has `fault`; the other three must be flushed
/// completely whatever EX03 does.
async fn with_fault(fault_kind: Fault, args: &[&str]) -> (TestLab, crate::common::Run, Value) {
    let config = LabConfig {
        faults: vec![fault("EX03", fault_kind)],
        ..fast_lab(4)
    };
    let lab = TestLab::start(config).await;
    let (run, report) = lab.flush_json(args).await;
    lab.assert_others_recycled(&report, &["EX03"]);
    assert_eq!(report["summary"]["servers"], 4);
    (lab, run, report)
}

#[track_caller]
fn assert_error_contains(entry: &Value, status: &str, text: &str) {
    assert_eq!(entry["status"], status, "{entry:#}");
    let error = entry["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error text: {entry:#}"));
    assert!(error.contains(text), "error {error:?} lacks {text:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_connection_is_unreachable() {
    let (lab, run, report) = with_fault(Fault::RefuseConnections, &[]).await;
    run.assert_code(2);
    let ex03 = lab.server("EX03");
    let entry = lab.report_of(&report, ex03);
    assert_error_contains(entry, "unreachable", "connection refused");
    assert!(entry["computer"].is_null());
    assert!(entry["actions"].as_array().unwrap().is_empty());
    assert_eq!(report["summary"]["unreachable"], 1);
    assert_eq!(report["summary"]["ok"], 3);
    assert!(ex03.log.entries().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn server_that_never_answers_times_out() {
    let started = Instant::now();
    let (lab, run, report) = with_fault(Fault::NeverAnswer, &["--timeout", "3"]).await;
    run.assert_code(2);
    let entry = lab.report_of(&report, lab.server("EX03"));
    assert_error_contains(entry, "timeout", "no answer within 3 s");
    assert_eq!(report["summary"]["timeout"], 1);
    assert_eq!(report["summary"]["ok"], 3);
    let ms = entry["duration_ms"].as_u64().unwrap();
    assert!((2900..6000).contains(&ms), "timed out after {ms} ms");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the run took {:?}",
        started.elapsed()
    );
    assert!(lab.server("EX03").log.entries().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_server_is_still_ok() {
    let (lab, run, report) = with_fault(Fault::Slow { latency_ms: 150 }, &[]).await;
    run.assert_code(0);
    let ex03 = lab.server("EX03");
    let entry = lab.report_of(&report, ex03);
    assert_recycled(entry, ex03);
    assert_eq!(report["summary"]["ok"], 4);
    // It really was slow: slower than the slowest fast server.
    let fast_max = lab
        .servers()
        .iter()
        .filter(|s| s.name != "EX03")
        .map(|s| lab.report_of(&report, s)["duration_ms"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(
        entry["duration_ms"].as_u64().unwrap() > fast_max,
        "EX03 {} ms, others up to {fast_max} ms",
        entry["duration_ms"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_credentials_fail_that_server() {
    let (lab, run, report) = with_fault(Fault::RejectCredentials, &[]).await;
    run.assert_code(2);
    let ex03 = lab.server("EX03");
    let entry = lab.report_of(&report, ex03);
    assert_error_contains(entry, "failed", "authentication refused (HTTP 401)");
    assert_eq!(report["summary"]["failed"], 1);
    assert!(ex03.log.entries().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn soap_fault_fails_that_server_with_the_fault_text() {
    let (lab, run, report) = with_fault(Fault::SoapFault, &[]).await;
    run.assert_code(2);
    let ex03 = lab.server("EX03");
    let entry = lab.report_of(&report, ex03);
    assert_error_contains(
        entry,
        "failed",
        "This user is allowed a maximum number of 5 concurrent shells",
    );
    assert_error_contains(entry, "failed", "QuotaLimit");
    assert_eq!(report["summary"]["failed"], 1);
    assert!(ex03.log.entries().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_recycle_is_partial_and_not_retried() {
    let (lab, run, report) = with_fault(Fault::CommandFails { pool: OWA.into() }, &[]).await;
    run.assert_code(2);
    let ex03 = lab.server("EX03");
    let entry = lab.report_of(&report, ex03);
    assert_eq!(entry["status"], "partial", "{entry:#}");
    // docs/report.md: `error` has plain words for anything not ok.
    assert_error_contains(entry, "partial", OWA);
    assert_error_contains(entry, "partial", "Access is denied");
    assert_eq!(report["summary"]["partial"], 1);
    assert_eq!(report["summary"]["pools_failed"], 1);
    let owa = action(entry, OWA);
    assert_eq!(owa["status"], "failed", "{owa:#}");
    let message = owa["message"].as_str().unwrap();
    assert!(message.contains("Access is denied"), "{message}");
    assert!(pids(&owa["new_pids"]).is_empty());
    for pool in EXCHANGE_POOLS.iter().filter(|p| **p != OWA) {
        let a = action(entry, pool);
        assert_eq!(a["status"], "recycled", "{a:#}");
        assert!(!pids(&a["new_pids"]).is_empty(), "{a:#}");
    }
    // Sent once (exit 5), never repeated; the other four went through. All
    // five ran in one command line, each with its own result: the failure
    // kept no other pool from being recycled or reported.
    let log = ex03.log.entries();
    let lines: std::collections::BTreeSet<usize> = log
        .iter()
        .filter(|e| is_mutating(&e.command_line))
        .map(|e| e.shell_command)
        .collect();
    assert_eq!(lines.len(), 1, "{log:#?}");
    let owa_tries: Vec<_> = log
        .iter()
        .filter(|e| e.command_line == recycle_line(OWA))
        .collect();
    assert_eq!(owa_tries.len(), 1, "{log:#?}");
    assert_eq!(owa_tries[0].exit_code, Some(5));
    assert_eq!(
        log.iter()
            .filter(|e| e.command_line.contains(" recycle ") && e.exit_code == Some(0))
            .count(),
        4
    );
    // The human report lists it as still open.
    let human = lab.flush(&[] as &[&str]).run().await;
    human.assert_code(2);
    assert!(human.stdout.contains("Still open:"), "{}", human.stdout);
    assert!(human.stdout.contains(OWA), "{}", human.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn absent_pool_is_a_warning() {
    let (lab, run, report) = with_fault(Fault::PoolAbsent { pool: OWA.into() }, &[]).await;
    run.assert_code(0);
    let ex03 = lab.server("EX03");
    let entry = lab.report_of(&report, ex03);
    assert_eq!(entry["status"], "ok", "{entry:#}");
    assert_eq!(action(entry, OWA)["status"], "absent");
    assert_eq!(report["summary"]["pools_absent"], 1);
    assert_eq!(report["summary"]["ok"], 4);
    // Present elsewhere: not a misspelling, so no report-wide warning.
    assert_eq!(report["warnings"], serde_json::json!([]));
    for pool in EXCHANGE_POOLS.iter().filter(|p| **p != OWA) {
        assert_eq!(action(entry, pool)["status"], "recycled");
    }
    assert!(
        !ex03
            .log
            .entries()
            .iter()
            .any(|e| e.command_line == recycle_line(OWA))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stopped_pool_is_a_warning() {
    let (lab, run, report) = with_fault(Fault::PoolStopped { pool: OWA.into() }, &[]).await;
    run.assert_code(0);
    let ex03 = lab.server("EX03");
    let entry = lab.report_of(&report, ex03);
    assert_eq!(entry["status"], "ok", "{entry:#}");
    let owa = action(entry, OWA);
    assert_eq!(owa["status"], "stopped", "{owa:#}");
    assert!(pids(&owa["old_pids"]).is_empty());
    assert_eq!(report["summary"]["pools_stopped"], 1);
    assert_eq!(report["summary"]["ok"], 4);
    for pool in EXCHANGE_POOLS.iter().filter(|p| **p != OWA) {
        assert_eq!(action(entry, pool)["status"], "recycled");
    }
    assert!(
        !ex03
            .log
            .entries()
            .iter()
            .any(|e| e.command_line == recycle_line(OWA))
    );
}

// ------------------------------------------------- refused before sending

#[tokio::test(flavor = "multi_thread")]
async fn bad_pool_names_are_refused_before_anything_is_sent() {
    let lab = TestLab::start(fast_lab(3)).await;
    // A listener of our own in the server list: not even a TCP connection.
    let sentinel = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    sentinel.set_nonblocking(true).unwrap();
    let mut servers: Vec<String> = lab.servers().iter().map(|s| lab.host(s)).collect();
    servers.push(sentinel.local_addr().unwrap().to_string());
    let servers = servers.join(",");

    for (bad, shown) in [("Bad\"Name", "'\"'"), ("x&calc", "'&'")] {
        for extra in [&[][..], &["--dry-run"][..]] {
            let mut args = vec!["--servers", &servers, "--pool", OWA, "--pool", bad];
            args.extend_from_slice(extra);
            let run = lab.flush(&args).run().await;
            run.assert_code(1);
            assert!(run.stdout.is_empty(), "{}", run.stdout);
            let err = &run.stderr;
            assert!(err.contains("invalid application pool name"), "{err}");
            let named = bad.replace('"', "\\\"");
            assert!(err.contains(&named), "{err} does not name {bad}");
            assert!(err.contains(shown), "{err} does not point at {shown}");
            assert!(
                err.contains("letters, digits, space, '.', '_', '-'"),
                "{err} does not say what is allowed"
            );
            assert!(err.contains("nothing was sent"), "{err}");
        }
    }
    assert!(lab.all_commands().is_empty(), "{:#?}", lab.all_commands());
    match sentinel.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("revoke connected to a server: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_fails_every_server() {
    let lab = TestLab::start(fast_lab(3)).await;
    let run = lab
        .flush(&["--output", "json"])
        .password("Not-The-Passw0rd")
        .run()
        .await;
    run.assert_code(2);
    let report = run.json();
    assert_eq!(report["summary"]["failed"], 3, "{report:#}");
    for server in lab.servers() {
        let entry = lab.report_of(&report, server);
        assert_error_contains(entry, "failed", "authentication refused (HTTP 401)");
        // Not retried: a wrong password would lock the account out.
        assert_eq!(entry["attempts"], 1, "{entry:#}");
        assert!(server.log.entries().is_empty());
    }
}

// ---------------------------------------------------------- the report

const SERVER_STATUSES: [&str; 8] = [
    "ok",
    "draining",
    "partial",
    "failed",
    "timeout",
    "unreachable",
    "planned",
    "interrupted",
];
const ACTION_STATUSES: [&str; 6] = [
    "recycled", "reset", "planned", "absent", "stopped", "failed",
];

#[track_caller]
fn assert_keys(value: &Value, keys: &[&str]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"));
    let mut have: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut want = keys.to_vec();
    have.sort_unstable();
    want.sort_unstable();
    assert_eq!(have, want, "keys of {value:#}");
}

#[track_caller]
fn assert_string_or_null(value: &Value, what: &str) {
    assert!(
        value.is_string() || value.is_null(),
        "{what} is neither string nor null: {value}"
    );
}

#[track_caller]
fn assert_timestamp(value: &Value, what: &str) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} not a string: {value}"));
    humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{what} {text:?}: {e}"));
}

fn check_schema(report: &Value) {
    assert_keys(
        report,
        &[
            "schema_version",
            "run_id",
            "action",
            "method",
            "dry_run",
            "started_at",
            "finished_at",
            "waves",
            "servers",
            "summary",
            "warnings",
            "directory",
            "flush_skipped",
            "exposure",
            "f5",
            "residual",
            "kerberos_policy",
            "journal",
            "no_journal",
            "retry_of",
            "ticket",
            "reason",
        ],
    );
    assert_eq!(report["schema_version"], 1);
    // A flush is journaled unless a dry run (docs/journal.md).
    assert_eq!(report["journal"].is_string(), report["dry_run"] == false);
    assert!(report["retry_of"].is_null());
    // A flush has no directory phase and always runs.
    assert!(report["directory"].is_null(), "{}", report["directory"]);
    assert!(report["flush_skipped"].is_null());
    if report["dry_run"] == true {
        assert!(report["exposure"].is_null());
    } else {
        let exposure = &report["exposure"];
        assert_keys(exposure, &["closed", "closed_at", "window_ms"]);
        let closed = exposure["closed"].as_bool().expect("closed is a boolean");
        // Closed exactly when the timestamps are there.
        assert_eq!(exposure["closed_at"].is_string(), closed);
        assert_eq!(exposure["window_ms"].is_u64(), closed);
    }
    // BIG-IPs are only for disable/reset.
    assert_eq!(report["f5"], serde_json::json!([]));
    // A flush changes no account: nothing of Kerberos to date.
    assert_eq!(report["residual"], serde_json::json!([]));
    assert!(report["kerberos_policy"].is_null());
    for warning in report["warnings"].as_array().expect("warnings is an array") {
        assert!(warning.is_string(), "warning not a string: {warning}");
    }
    let run_id = report["run_id"].as_str().expect("run_id string");
    uuid::Uuid::parse_str(run_id).expect("run_id is a UUID");
    assert_eq!(report["action"], "flush");
    assert!(
        ["recycle", "iisreset"].contains(&report["method"].as_str().unwrap()),
        "{}",
        report["method"]
    );
    assert!(report["dry_run"].is_boolean());
    assert_timestamp(&report["started_at"], "started_at");
    assert_timestamp(&report["finished_at"], "finished_at");
    let started = humantime::parse_rfc3339(report["started_at"].as_str().unwrap()).unwrap();
    let finished = humantime::parse_rfc3339(report["finished_at"].as_str().unwrap()).unwrap();
    assert!(started <= finished);
    for wave in report["waves"].as_array().expect("waves array") {
        for host in wave.as_array().expect("a wave is an array") {
            assert!(host.is_string());
        }
    }
    let servers = report["servers"].as_array().expect("servers array");
    for server in servers {
        assert_keys(
            server,
            &[
                "host",
                "computer",
                "auth",
                "wave",
                "status",
                "duration_ms",
                "attempts",
                "error",
                "old_workers_exited_at",
                "actions",
            ],
        );
        assert!(server["host"].is_string());
        assert_string_or_null(&server["computer"], "computer");
        if !server["old_workers_exited_at"].is_null() {
            assert_timestamp(&server["old_workers_exited_at"], "old_workers_exited_at");
        }
        assert!(server["wave"].is_null() || server["wave"].is_u64());
        assert!(
            SERVER_STATUSES.contains(&server["status"].as_str().expect("status string")),
            "{}",
            server["status"]
        );
        assert!(server["duration_ms"].is_u64());
        assert!(server["attempts"].as_u64().expect("attempts integer") >= 1);
        assert_string_or_null(&server["error"], "error");
        for a in server["actions"].as_array().expect("actions array") {
            assert_keys(
                a,
                &[
                    "pool",
                    "status",
                    "old_pids",
                    "new_pids",
                    "draining_pids",
                    "message",
                ],
            );
            assert!(a["pool"].is_string());
            assert!(ACTION_STATUSES.contains(&a["status"].as_str().expect("status string")));
            pids(&a["old_pids"]);
            pids(&a["new_pids"]);
            pids(&a["draining_pids"]);
            assert_string_or_null(&a["message"], "message");
        }
    }
    let summary = report["summary"].as_object().expect("summary object");
    for (key, value) in summary {
        assert!(value.is_u64(), "summary.{key} = {value}");
    }
    for status in SERVER_STATUSES {
        let n = servers.iter().filter(|s| s["status"] == status).count();
        assert_eq!(summary[status], n, "summary.{status}");
    }
    assert_eq!(summary["servers"], servers.len());
}

/// (host, status, [(pool, status)]) per server, from the JSON report.
type Statuses = Vec<(String, String, Vec<(String, String)>)>;

fn statuses_of_json(report: &Value) -> Statuses {
    report["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["host"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
                s["actions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| {
                        (
                            a["pool"].as_str().unwrap().to_string(),
                            a["status"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

/// The same, read back from the human table (the summary line first, then
/// the servers below their header); pools only where the table shows them.
fn statuses_of_table(table: &str) -> Statuses {
    let mut lines = table.lines().skip_while(|l| !l.starts_with("SERVER"));
    assert!(lines.next().is_some(), "no SERVER header: {table}");
    let mut out: Statuses = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let mut words = line.split_whitespace();
        let (first, second) = (words.next().unwrap(), words.next().unwrap());
        if line.starts_with("  ") {
            let server = out.last_mut().expect("a pool line after a server line");
            server.2.push((first.to_string(), second.to_lowercase()));
        } else {
            out.push((first.to_string(), second.to_string(), Vec::new()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn json_report_follows_the_schema_and_the_table_agrees() {
    let config = LabConfig {
        faults: vec![
            fault("EX02", Fault::RefuseConnections),
            fault("EX03", Fault::PoolAbsent { pool: OWA.into() }),
            fault("EX04", Fault::CommandFails { pool: OWA.into() }),
        ],
        ..fast_lab(4)
    };
    let lab = TestLab::start(config).await;
    let (run, report) = lab.flush_json(&[]).await;
    run.assert_code(2);
    check_schema(&report);
    assert_eq!(report["method"], "recycle");
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["waves"], serde_json::json!([]));
    // Report order is config order.
    let hosts: Vec<String> = lab.servers().iter().map(|s| lab.host(s)).collect();
    let reported: Vec<&str> = report["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["host"].as_str().unwrap())
        .collect();
    assert_eq!(reported, hosts);
    let json_statuses = statuses_of_json(&report);
    let by_server: Vec<&str> = json_statuses.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(by_server, ["ok", "unreachable", "ok", "partial"]);

    // --detail: every pool of every server.
    let table = lab.flush(&["--detail"]).run().await;
    table.assert_code(2);
    assert_eq!(
        statuses_of_table(&table.stdout),
        json_statuses,
        "{}",
        table.stdout
    );
    // The verdict comes first.
    assert!(
        table
            .stdout
            .starts_with("4 servers: 2 ok, 1 partial, 1 unreachable"),
        "{}",
        table.stdout
    );
    // Progress went to stderr, not into the table.
    assert!(!table.stdout.contains("[1/4]"), "{}", table.stdout);

    // Without it, one line per server: pools only for the one not ok.
    let compact = lab.flush(&[] as &[&str]).run().await;
    compact.assert_code(2);
    let pools_of_not_ok: Statuses = json_statuses
        .iter()
        .map(|(host, status, pools)| match status.as_str() {
            "ok" => (host.clone(), status.clone(), Vec::new()),
            _ => (host.clone(), status.clone(), pools.clone()),
        })
        .collect();
    assert_eq!(
        statuses_of_table(&compact.stdout),
        pools_of_not_ok,
        "{}",
        compact.stdout
    );
    assert!(
        compact.stdout.contains("5 pools recycled"),
        "{}",
        compact.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_report_of_a_dry_run_and_an_iisreset_follows_the_schema() {
    let lab = TestLab::start(fast_lab(2)).await;
    let (run, report) = lab.flush_json(&["--dry-run"]).await;
    run.assert_code(0);
    check_schema(&report);
    let (run, report) = lab.flush_json(&["--method", "iisreset"]).await;
    run.assert_code(0);
    check_schema(&report);
}

// -------------------------------------------------------------- iisreset

#[tokio::test(flavor = "multi_thread")]
async fn iisreset_goes_one_wave_at_a_time() {
    let config = fast_lab(3);
    let downtime = config.iisreset_downtime;
    let lab = TestLab::start(config).await;
    let before: Vec<Vec<u32>> = lab
        .servers()
        .iter()
        .map(|s| s.iis.workers().iter().map(|w| w.pid).collect())
        .collect();
    let (run, report) = lab
        .flush_json(&["--method", "iisreset", "--max-unavailable", "1"])
        .await;
    run.assert_code(0);
    assert_eq!(report["method"], "iisreset");
    let hosts: Vec<String> = lab.servers().iter().map(|s| lab.host(s)).collect();
    assert_eq!(
        report["waves"],
        serde_json::json!([[hosts[0]], [hosts[1]], [hosts[2]]])
    );
    assert_eq!(report["summary"]["ok"], 3);

    for (i, server) in lab.servers().iter().enumerate() {
        let entry = lab.report_of(&report, server);
        assert_eq!(entry["status"], "ok", "{entry:#}");
        assert_eq!(entry["wave"], i + 1);
        let actions = entry["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 1, "{entry:#}");
        let a = &actions[0];
        assert_eq!(a["pool"], "*");
        assert_eq!(a["status"], "reset");
        let mut old = pids(&a["old_pids"]);
        old.sort_unstable();
        let mut expected_old = before[i].clone();
        expected_old.sort_unstable();
        assert_eq!(old, expected_old, "every worker was there before");
        let new = pids(&a["new_pids"]);
        assert_eq!(new.len(), 6, "one new worker per started pool: {a:#}");
        let mut live: Vec<u32> = server.iis.workers().iter().map(|w| w.pid).collect();
        live.sort_unstable();
        let mut new_sorted = new.clone();
        new_sorted.sort_unstable();
        assert_eq!(live, new_sorted, "the lab runs exactly the new workers");
        let log = server.log.entries();
        assert_eq!(
            log.iter()
                .filter(|e| e.command_line == "iisreset /noforce")
                .count(),
            1,
            "{log:#?}"
        );
        assert!(!log.iter().any(|e| e.command_line.contains(" recycle ")));
    }

    // Wave k+1 starts only after wave k's server said it runs again.
    for pair in lab.servers().windows(2) {
        let (this, next) = (&pair[0], &pair[1]);
        let this_log = this.log.entries();
        let reset = this_log
            .iter()
            .find(|e| e.command_line == "iisreset /noforce")
            .unwrap();
        let last_status = this_log
            .iter()
            .rev()
            .find(|e| e.command_line == "iisreset /status")
            .unwrap_or_else(|| panic!("{} was never asked for its status", this.name));
        assert_eq!(last_status.exit_code, Some(0));
        assert!(
            last_status.at >= reset.at + downtime,
            "{}: status asked before the reset could have finished",
            this.name
        );
        let next_reset = next
            .log
            .entries()
            .into_iter()
            .find(|e| e.command_line == "iisreset /noforce")
            .unwrap();
        assert!(
            next_reset.at > last_status.at,
            "{} reset at {:?}, before {} answered running at {:?}",
            next.name,
            next_reset.at,
            this.name,
            last_status.at
        );
    }
}

// --------------------------------------------------------- usage errors

#[tokio::test(flavor = "multi_thread")]
async fn no_servers_and_no_config_is_a_usage_error() {
    let run = Revoke::new(&["flush"])
        .password(LAB_DEFAULT_PASSWORD)
        .run()
        .await;
    run.assert_code(1);
    assert!(run.stderr.contains("no servers to flush"), "{}", run.stderr);
    assert!(run.stderr.contains("--servers"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

/// A flag a command does not take is a usage error (exit 1, as documented),
/// not clap's default 2, which means "something is still open".
#[tokio::test(flavor = "multi_thread")]
async fn a_flag_the_command_does_not_take_is_a_usage_error() {
    for (args, flag) in [
        (&["servers", "--method", "iisreset"][..], "--method"),
        (&["servers", "--drain-timeout", "5"][..], "--drain-timeout"),
        (&["flush", "--no-such-flag"][..], "--no-such-flag"),
    ] {
        let run = Revoke::new(args).run().await;
        run.assert_code(1);
        assert!(run.stderr.contains(flag), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    let help = Revoke::new(&["servers", "--help"]).run().await;
    help.assert_code(0);
    assert!(help.stdout.contains("--check"), "{}", help.stdout);
    assert!(!help.stdout.contains("--method"), "{}", help.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_config_key_is_named() {
    let lab = TestLab::start(fast_lab(2)).await;
    let mut text = std::fs::read_to_string(&lab.config).unwrap();
    text.push_str("\n[flush]\nparalel = 4\n");
    std::fs::write(&lab.config, text).unwrap();
    let run = lab.flush(&[] as &[&str]).run().await;
    run.assert_code(1);
    assert!(run.stderr.contains("paralel"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&path_str(&lab.config)),
        "names the file: {}",
        run.stderr
    );
    assert!(lab.all_commands().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn server_name_with_shell_characters_is_refused() {
    let lab = TestLab::start(fast_lab(2)).await;
    let first = lab.host(&lab.servers()[0]);
    let servers = format!("{first},ex01;rm");
    let run = lab.flush(&["--servers", &servers]).run().await;
    run.assert_code(1);
    assert!(run.stderr.contains("ex01;rm"), "{}", run.stderr);
    assert!(lab.all_commands().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_password_source_is_a_usage_error() {
    let lab = TestLab::start(fast_lab(2)).await;
    let run = Revoke::new(&["flush", "--config", &path_str(&lab.config)])
        .run()
        .await;
    run.assert_code(1);
    assert!(run.stderr.contains("--password-stdin"), "{}", run.stderr);
    assert!(run.stderr.contains("REVOKE_PASSWORD"), "{}", run.stderr);
    assert!(lab.all_commands().is_empty());

    // --password-stdin with nothing on stdin.
    let run = Revoke::new(&[
        "flush",
        "--config",
        &path_str(&lab.config),
        "--password-stdin",
    ])
    .stdin("")
    .run()
    .await;
    run.assert_code(1);
    assert!(run.stderr.contains("--password-stdin"), "{}", run.stderr);
    assert!(lab.all_commands().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn password_from_stdin_works() {
    let lab = TestLab::start(fast_lab(2)).await;
    let run = Revoke::new(&[
        "flush",
        "--config",
        &path_str(&lab.config),
        "--password-stdin",
        "--output",
        "json",
    ])
    .stdin(&format!("{LAB_DEFAULT_PASSWORD}\n"))
    .run()
    .await;
    run.assert_code(0);
    lab.assert_others_recycled(&run.json(), &[]);

    // Windows line endings too, and stdin wins over the environment.
    let lab = TestLab::start(fast_lab(1)).await;
    let run = Revoke::new(&[
        "flush",
        "--config",
        &path_str(&lab.config),
        "--password-stdin",
        "--output",
        "json",
    ])
    .password("wrong-from-env")
    .stdin(&format!("{LAB_DEFAULT_PASSWORD}\r\n"))
    .run()
    .await;
    run.assert_code(0);
    lab.assert_others_recycled(&run.json(), &[]);
}

// --------------------------------------------------------------- secrets

#[tokio::test(flavor = "multi_thread")]
async fn the_password_never_appears_in_any_output() {
    const SECRET: &str = "Zebra-Quartz-7781!";
    for transport in [LabTransport::Http, LabTransport::HttpsBasic] {
        let config = LabConfig {
            admin_password: SECRET.into(),
            faults: vec![
                fault("EX02", Fault::RejectCredentials),
                fault("EX03", Fault::CommandFails { pool: OWA.into() }),
            ],
            ..fast_lab(3)
        };
        let lab = TestLab::start_with(config, transport).await;
        let config_text = std::fs::read_to_string(&lab.config).unwrap();
        assert!(!config_text.contains(SECRET));
        use base64::Engine;
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("LAB\\revoke-admin:{SECRET}"));
        for args in [
            &["--output", "json"][..],
            &["-vv", "--output", "json"][..],
            &["-vv"][..],
            &["-v"][..],
        ] {
            let run = lab.flush(args).password(SECRET).run().await;
            run.assert_code(2);
            for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
                assert!(
                    !text.contains(SECRET) && !text.contains(&basic),
                    "{transport:?} {args:?}: the password is in {what}:\n{text}"
                );
            }
            if args.contains(&"json") {
                let report = run.json();
                assert_eq!(report["summary"]["ok"], 1, "{report:#}");
                assert!(!report.to_string().contains(SECRET));
            }
        }
    }
}

// ------------------------------------------------------------- interrupt

/// Ctrl-C while EX03 hangs: exit 130, the report is still printed, the
/// servers that finished keep their outcome, the hanging one is interrupted.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_prints_what_finished() {
    let config = LabConfig {
        faults: vec![fault("EX03", Fault::NeverAnswer)],
        ..fast_lab(4)
    };
    let lab = TestLab::start(config).await;
    let run = lab
        .flush(&["--output", "json", "--timeout", "60"])
        .interrupt_after(Duration::from_secs(4))
        .run()
        .await;
    run.assert_code(130);
    let report = run.json();
    lab.assert_others_recycled(&report, &["EX03"]);
    let entry = lab.report_of(&report, lab.server("EX03"));
    assert_error_contains(entry, "interrupted", "interrupted");
    assert_eq!(report["summary"]["interrupted"], 1);
    assert!(report["finished_at"].is_string());
}

// ------------------------------------------------------- config details

/// The same server twice (any case) is flushed once.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_listed_twice_is_flushed_once() {
    let lab = TestLab::start(fast_lab(1)).await;
    let server = &lab.servers()[0];
    let host = lab.host(server);
    let port = server.http_addr.port();
    let servers = format!("{host},{host}, localhost:{port},LOCALHOST:{port}");
    let (run, report) = lab.flush_json(&["--servers", &servers]).await;
    run.assert_code(0);
    // 127.0.0.1 and localhost are different names for revoke; each once.
    assert_eq!(report["summary"]["servers"], 2, "{report:#}");
    let recycles = server
        .log
        .entries()
        .iter()
        .filter(|e| e.command_line == recycle_line(OWA))
        .count();
    assert_eq!(recycles, 2);
}

/// Exchange 2010 (14.x) also serves clients from DefaultAppPool: a server
/// whose config says so gets it recycled too; the others do not.
#[tokio::test(flavor = "multi_thread")]
async fn legacy_version_also_recycles_default_app_pool() {
    let lab = TestLab::start(fast_lab(2)).await;
    let [old, new] = lab.servers() else {
        unreachable!()
    };
    let text = format!(
        "servers = [\n  {{ host = \"{}\", port = {}, version = \"14.3\" }},\n  {{ host = \"{}\", port = {}, version = \"15.1\" }},\n]\n[winrm]\nuser = 'LAB\\revoke-admin'\n",
        old.http_addr.ip(),
        old.http_addr.port(),
        new.http_addr.ip(),
        new.http_addr.port()
    );
    std::fs::write(&lab.config, text).unwrap();
    let (run, report) = lab.flush_json(&[]).await;
    run.assert_code(0);
    let old_entry = lab.report_of(&report, old);
    assert_eq!(old_entry["status"], "ok", "{old_entry:#}");
    assert_eq!(old_entry["actions"].as_array().unwrap().len(), 6);
    assert_eq!(action(old_entry, "DefaultAppPool")["status"], "recycled");
    assert!(
        old.log
            .entries()
            .iter()
            .any(|e| e.command_line == recycle_line("DefaultAppPool"))
    );
    assert_recycled(lab.report_of(&report, new), new);
}

/// A relative ca_file is found next to the config file, wherever revoke runs.
#[tokio::test(flavor = "multi_thread")]
async fn relative_ca_file_is_relative_to_the_config() {
    let lab = TestLab::start_with(fast_lab(2), LabTransport::HttpsNegotiate).await;
    let text = std::fs::read_to_string(&lab.config).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("ca_file") {
                "ca_file = \"lab-ca.pem\"\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&lab.config, text).unwrap();
    let elsewhere = tempfile::TempDir::new().unwrap();
    let run = lab
        .flush(&["--output", "json"])
        .current_dir(elsewhere.path())
        .run()
        .await;
    run.assert_code(0);
    lab.assert_others_recycled(&run.json(), &[]);
}

/// `$REVOKE_CONFIG` names the config file when --config does not.
#[tokio::test(flavor = "multi_thread")]
async fn revoke_config_variable_is_read() {
    let lab = TestLab::start(fast_lab(2)).await;
    let run = Revoke::new(&["flush", "--output", "json"])
        .password(LAB_DEFAULT_PASSWORD)
        .env("REVOKE_CONFIG", &path_str(&lab.config))
        .run()
        .await;
    run.assert_code(0);
    lab.assert_others_recycled(&run.json(), &[]);
}

/// Passwords are not all ASCII: NTLM hashes UTF-16, Basic sends UTF-8.
#[tokio::test(flavor = "multi_thread")]
async fn non_ascii_password_and_upn_user_log_on() {
    const PASSWORD: &str = "Pä:ss wörd€ \"quoted\" \\ 𝄞";
    for transport in [
        LabTransport::Http,
        LabTransport::HttpsBasic,
        LabTransport::HttpsNegotiate,
    ] {
        let config = LabConfig {
            admin_password: PASSWORD.into(),
            ..fast_lab(1)
        };
        let lab = TestLab::start_with(config, transport).await;
        for user in [
            "LAB\\revoke-admin",
            "revoke-admin@lab.example.test",
            "lab\\REVOKE-ADMIN",
        ] {
            let run = lab
                .flush(&["--output", "json", "--user", user])
                .password(PASSWORD)
                .run()
                .await;
            assert_eq!(
                run.code, 0,
                "{transport:?} as {user}: {}\n{}",
                run.stdout, run.stderr
            );
        }
    }
}

/// A recycle that outlasts one WS-Management OperationTimeout: revoke keeps
/// receiving until the command ends, and does not send it again.
#[tokio::test(flavor = "multi_thread")]
async fn recycle_longer_than_the_operation_timeout() {
    let config = LabConfig {
        recycle_time: Duration::from_millis(2500),
        ..fast_lab(1)
    };
    let lab = TestLab::start(config).await;
    let mut text = std::fs::read_to_string(&lab.config).unwrap();
    text.push_str("operation_timeout = 1\n");
    std::fs::write(&lab.config, text).unwrap();
    let (run, report) = lab
        .flush_json(&["--pool", OWA, "--pool", "MSExchangeSyncAppPool"])
        .await;
    run.assert_code(0);
    let server = &lab.servers()[0];
    let entry = lab.report_of(&report, server);
    assert_eq!(entry["status"], "ok", "{entry:#}");
    assert_eq!(action(entry, OWA)["status"], "recycled");
    let n = server
        .log
        .entries()
        .iter()
        .filter(|e| e.command_line == recycle_line(OWA))
        .count();
    assert_eq!(n, 1);
}

/// IPv6 loopback: `[::1]:port` in the config.
#[tokio::test(flavor = "multi_thread")]
async fn ipv6_servers() {
    for transport in [LabTransport::Http, LabTransport::HttpsBasic] {
        let config = LabConfig {
            listen: "::1".parse().unwrap(),
            ..fast_lab(2)
        };
        let lab = TestLab::start_with(config, transport).await;
        let (run, report) = lab.flush_json(&[]).await;
        run.assert_code(0);
        lab.assert_others_recycled(&report, &[]);
    }
}

/// --max-unavailable 2 on five servers: waves of 2, 2, 1.
#[tokio::test(flavor = "multi_thread")]
async fn iisreset_waves_follow_max_unavailable() {
    let lab = TestLab::start(fast_lab(5)).await;
    let (run, report) = lab
        .flush_json(&["--method", "iisreset", "--max-unavailable", "2"])
        .await;
    run.assert_code(0);
    let hosts: Vec<String> = lab.servers().iter().map(|s| lab.host(s)).collect();
    assert_eq!(
        report["waves"],
        serde_json::json!([[hosts[0], hosts[1]], [hosts[2], hosts[3]], [hosts[4]]])
    );
    let waves = [1, 1, 2, 2, 3];
    for (server, wave) in lab.servers().iter().zip(waves) {
        let entry = lab.report_of(&report, server);
        assert_eq!(entry["wave"], wave);
        assert_eq!(action(entry, "*")["status"], "reset");
    }
}

/// IIS pool names are case-insensitive: the same pool named twice in two
/// spellings is one pool, recycled once.
#[tokio::test(flavor = "multi_thread")]
async fn a_pool_named_twice_in_any_case_is_recycled_once() {
    let lab = TestLab::start(fast_lab(1)).await;
    let (run, report) = lab
        .flush_json(&["--pool", OWA, "--pool", "msexchangeowaapppool"])
        .await;
    run.assert_code(0);
    let server = &lab.servers()[0];
    let entry = lab.report_of(&report, server);
    assert_eq!(entry["actions"].as_array().unwrap().len(), 1, "{entry:#}");
    let recycles: Vec<String> = server
        .log
        .entries()
        .into_iter()
        .map(|e| e.command_line)
        .filter(|c| c.contains(" recycle "))
        .collect();
    assert_eq!(recycles.len(), 1, "{recycles:#?}");
}

/// A misspelled --pool exists nowhere: each server only says "absent", so
/// the report says plainly that nothing was recycled for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_misspelled_pool_is_named_in_a_warning() {
    let lab = TestLab::start(fast_lab(2)).await;
    let (run, report) = lab
        .flush_json(&["--pool", "MSExchangeOWAAppPol", "--pool", OWA])
        .await;
    run.assert_code(0);
    let warnings = report["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("MSExchangeOWAAppPol exists on none of the servers"),
        "{warnings:#?}"
    );
    let table = lab
        .flush(&["--pool", "MSExchangeOWAAppPol", "--pool", OWA])
        .run()
        .await;
    assert!(
        table
            .stdout
            .contains("Warning: application pool MSExchangeOWAAppPol"),
        "{}",
        table.stdout
    );
}

/// A server whose iisreset outlasts its timeout may still be down: the next
/// wave must not take another server down meanwhile (--max-unavailable 1).
#[tokio::test(flavor = "multi_thread")]
async fn iisreset_never_takes_down_more_than_max_unavailable() {
    let config = LabConfig {
        iisreset_downtime: Duration::from_secs(6),
        ..fast_lab(2)
    };
    let lab = TestLab::start(config).await;
    let (run, report) = lab
        .flush_json(&[
            "--method",
            "iisreset",
            "--max-unavailable",
            "1",
            "--timeout",
            "2",
        ])
        .await;
    let [ex01, ex02] = lab.servers() else {
        unreachable!()
    };
    assert_eq!(
        lab.report_of(&report, ex01)["status"],
        "timeout",
        "{report:#}"
    );
    run.assert_code(2);
    let reset_at = |s: &revoke_lab::LabServer| {
        s.log
            .entries()
            .into_iter()
            .find(|e| e.command_line == "iisreset /noforce")
            .map(|e| e.at)
    };
    let ex01_reset = reset_at(ex01).expect("EX01 was reset");
    if let Some(ex02_reset) = reset_at(ex02) {
        assert!(
            ex02_reset >= ex01_reset + Duration::from_secs(6),
            "EX02 was reset {:?} after EX01, while EX01 was still down",
            ex02_reset.duration_since(ex01_reset).unwrap()
        );
    }
    // Held back, not attempted, and the report says why.
    assert!(ex02.log.entries().is_empty(), "{:#?}", ex02.log.entries());
    let ex02_entry = lab.report_of(&report, ex02);
    assert_error_contains(ex02_entry, "failed", "held back");
    assert_error_contains(ex02_entry, "failed", &lab.host(ex01));
    assert_eq!(ex02_entry["attempts"], 0);
    assert_eq!(ex02_entry["wave"], 2);
    let table = lab
        .flush(&["--method", "iisreset", "--timeout", "2"])
        .run()
        .await;
    table.assert_code(2);
    assert!(table.stdout.contains("held back"), "{}", table.stdout);
}

/// An unreachable server in a wave was never taken down: the next waves go on.
#[tokio::test(flavor = "multi_thread")]
async fn iisreset_waves_go_on_past_an_unreachable_server() {
    let config = LabConfig {
        faults: vec![fault("EX01", Fault::RefuseConnections)],
        ..fast_lab(3)
    };
    let lab = TestLab::start(config).await;
    let (run, report) = lab.flush_json(&["--method", "iisreset"]).await;
    run.assert_code(2);
    assert_eq!(
        lab.report_of(&report, lab.server("EX01"))["status"],
        "unreachable"
    );
    for name in ["EX02", "EX03"] {
        let entry = lab.report_of(&report, lab.server(name));
        assert_eq!(entry["status"], "ok", "{entry:#}");
        assert_eq!(action(entry, "*")["status"], "reset");
    }
}

// ------------------------------------------------- timing and progress

/// A server that runs out of time half-way: `timeout`, the actions reported
/// before did happen (the lab ran them), and nothing was sent twice.
#[tokio::test(flavor = "multi_thread")]
async fn timeout_half_way_keeps_what_was_done() {
    let config = LabConfig {
        recycle_time: Duration::from_millis(600),
        ..fast_lab(2)
    };
    let lab = TestLab::start(config).await;
    let (run, report) = lab.flush_json(&["--timeout", "3"]).await;
    run.assert_code(2);
    for server in lab.servers() {
        let entry = lab.report_of(&report, server);
        assert_error_contains(entry, "timeout", "no answer within 3 s");
        assert_eq!(entry["attempts"], 1, "a mutated server is not retried");
        let log = server.log.entries();
        let reported: Vec<&str> = entry["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == "recycled")
            .map(|a| a["pool"].as_str().unwrap())
            .collect();
        assert!(!reported.is_empty(), "some pools were done: {entry:#}");
        assert!(reported.len() < 5, "not all: {entry:#}");
        for pool in &reported {
            assert!(
                log.iter()
                    .any(|e| e.command_line == recycle_line(pool) && e.exit_code == Some(0)),
                "{}: reported {pool} recycled, the lab disagrees: {log:#?}",
                server.name
            );
        }
        for pool in EXCHANGE_POOLS {
            let n = log
                .iter()
                .filter(|e| e.command_line == recycle_line(pool))
                .count();
            assert!(n <= 1, "{}: {pool} sent {n} times", server.name);
        }
    }
    assert_eq!(report["summary"]["timeout"], 2);
}

/// --parallel 1: one server at a time, each one's commands inside its turn.
#[tokio::test(flavor = "multi_thread")]
async fn parallel_one_handles_one_server_at_a_time() {
    let lab = TestLab::start(fast_lab(3)).await;
    let (run, report) = lab.flush_json(&["--parallel", "1"]).await;
    run.assert_code(0);
    lab.assert_others_recycled(&report, &[]);
    let mut spans: Vec<_> = lab
        .servers()
        .iter()
        .map(|s| {
            let log = s.log.entries();
            (
                log.first().unwrap().at,
                log.last().unwrap().at,
                s.name.clone(),
            )
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 > pair[0].1,
            "{} started before {} had finished",
            pair[1].2,
            pair[0].2
        );
    }
}

/// A dead server delays nobody: the others finish in their own time.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_server_does_not_delay_the_others() {
    let config = LabConfig {
        faults: vec![fault("EX02", Fault::NeverAnswer)],
        ..fast_lab(6)
    };
    let lab = TestLab::start(config).await;
    // Fewer slots than servers: the dead one must not hold a slot the
    // others wait for, beyond its own timeout.
    let (run, report) = lab.flush_json(&["--timeout", "5", "--parallel", "3"]).await;
    run.assert_code(2);
    lab.assert_others_recycled(&report, &["EX02"]);
    for server in lab.servers().iter().filter(|s| s.name != "EX02") {
        let ms = lab.report_of(&report, server)["duration_ms"]
            .as_u64()
            .unwrap();
        assert!(ms < 4000, "{} took {ms} ms", server.name);
    }
}

/// Not on a terminal: one plain progress line per server on stderr for the
/// human output, none with --quiet or JSON; stdout holds only the report.
#[tokio::test(flavor = "multi_thread")]
async fn progress_goes_to_stderr_one_line_per_server() {
    let config = LabConfig {
        faults: vec![fault("EX02", Fault::RejectCredentials)],
        ..fast_lab(3)
    };
    let lab = TestLab::start(config).await;
    let run = lab.flush(&[] as &[&str]).run().await;
    run.assert_code(2);
    let lines: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(lines.len(), 3, "{}", run.stderr);
    for server in lab.servers() {
        let host = lab.host(server);
        let line = lines
            .iter()
            .find(|l| l.contains(&host))
            .unwrap_or_else(|| panic!("no progress line for {host}: {}", run.stderr));
        let want = if server.name == "EX02" {
            "failed"
        } else {
            "ok"
        };
        assert!(line.contains(&format!(": {want} (")), "{line}");
    }
    assert!(lines.iter().any(|l| l.starts_with("[3/3]")));
    assert!(
        run.stdout.starts_with("3 servers: 2 ok, 1 failed"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("\nSERVER "), "{}", run.stdout);

    let quiet = lab.flush(&["--quiet"]).run().await;
    quiet.assert_code(2);
    assert!(quiet.stderr.trim().is_empty(), "{}", quiet.stderr);
    assert_eq!(quiet.stdout.lines().count(), run.stdout.lines().count());

    let (json, _) = lab.flush_json(&[]).await;
    json.assert_code(2);
    assert!(json.stderr.trim().is_empty(), "{}", json.stderr);
}

// ---------------------------------------------------- transport settings

/// accept_invalid_certs works, and says loudly what it gives up.
#[tokio::test(flavor = "multi_thread")]
async fn accept_invalid_certs_warns() {
    let lab = TestLab::start_with(fast_lab(1), LabTransport::HttpsBasic).await;
    let text: String = std::fs::read_to_string(&lab.config)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "accept_invalid_certs = true\n";
    std::fs::write(&lab.config, text).unwrap();
    let (run, report) = lab.flush_json(&[]).await;
    run.assert_code(0);
    lab.assert_others_recycled(&report, &[]);
    assert!(run.stderr.contains("WARNING"), "{}", run.stderr);
    assert!(run.stderr.contains("NOT checked"), "{}", run.stderr);
}

/// Settings that would leak the password or cannot work are refused up front.
#[tokio::test(flavor = "multi_thread")]
async fn unsafe_or_unsupported_transport_settings_are_usage_errors() {
    let lab = TestLab::start(fast_lab(1)).await;
    for (args, says) in [
        (&["--auth", "basic"][..], "clear text"),
        // Kerberos-only with servers named by address (the lab's).
        (&["--auth", "kerberos"][..], "needs the servers' DNS names"),
        (&["--timeout", "0"][..], "--timeout"),
        (&["--parallel", "0"][..], "--parallel"),
    ] {
        let run = lab.flush(args).run().await;
        run.assert_code(1);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    assert!(lab.all_commands().is_empty());
}

/// `{ host = "::1", port = N }`: an IPv6 host in the detailed server form.
#[tokio::test(flavor = "multi_thread")]
async fn ipv6_host_with_port_in_the_detailed_form() {
    let config = LabConfig {
        listen: "::1".parse().unwrap(),
        ..fast_lab(2)
    };
    let lab = TestLab::start(config).await;
    let entries: String = lab
        .servers()
        .iter()
        .map(|s| {
            format!(
                "  {{ host = \"{}\", port = {} }},\n",
                s.http_addr.ip(),
                s.http_addr.port()
            )
        })
        .collect();
    std::fs::write(
        &lab.config,
        format!("servers = [\n{entries}]\n[winrm]\nuser = 'LAB\\revoke-admin'\n"),
    )
    .unwrap();
    let (run, report) = lab.flush_json(&["--timeout", "10"]).await;
    run.assert_code(0);
    lab.assert_others_recycled(&report, &[]);
}

// ------------------------------------------------- old workers

#[tokio::test(flavor = "multi_thread")]
async fn old_workers_are_waited_for_and_the_exposure_window_is_measured() {
    let drain = Duration::from_millis(700);
    let lab = TestLab::start(LabConfig {
        drain_time: drain,
        ..fast_lab(2)
    })
    .await;
    let (run, report) = lab.flush_json(&[]).await;
    run.assert_code(0);
    for server in lab.servers() {
        let entry = lab.report_of(&report, server);
        assert_eq!(entry["status"], "ok");
        let exited =
            humantime::parse_rfc3339(entry["old_workers_exited_at"].as_str().unwrap()).unwrap();
        // Not before the last recycle plus the drain: the old workers really had to go.
        let last_recycle = mutation_times(server).into_iter().max().unwrap();
        assert!(
            exited >= last_recycle + drain,
            "{}: exited too early",
            server.name
        );
        for action in entry["actions"].as_array().unwrap() {
            assert_eq!(action["draining_pids"], serde_json::json!([]));
        }
    }
    assert_eq!(report["exposure"]["closed"], true);
    assert!(report["exposure"]["window_ms"].as_u64().unwrap() >= drain.as_millis() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_outlives_the_drain_deadline_is_still_open() {
    let lab = TestLab::start(LabConfig {
        drain_time: Duration::from_secs(30),
        ..fast_lab(2)
    })
    .await;
    let (run, report) = lab.flush_json(&["--drain-timeout", "1"]).await;
    run.assert_code(2);
    for server in lab.servers() {
        let entry = lab.report_of(&report, server);
        assert_eq!(entry["status"], "draining", "{entry:#}");
        assert!(entry["old_workers_exited_at"].is_null());
        assert!(
            entry["error"].as_str().unwrap().contains("still running"),
            "{entry:#}"
        );
        for action in entry["actions"].as_array().unwrap() {
            assert_eq!(action["status"], "recycled");
            assert_eq!(action["draining_pids"], action["old_pids"], "{action:#}");
        }
    }
    assert_eq!(report["summary"]["draining"], 2);
    assert_eq!(report["exposure"]["closed"], false);

    let table = lab.flush(&["--drain-timeout", "0"]).run().await;
    table.assert_code(2);
    assert!(table.stdout.contains("Still open:"), "{}", table.stdout);
    assert!(
        table.stdout.contains("Exposure window NOT closed"),
        "{}",
        table.stdout
    );
}

// ------------------------------------------------------- round trips

/// The HTTP requests `server` received, one per round trip, in words: how
/// many of each kind (an NTLM leg, or a WS-Management action).
fn round_trips(server: &revoke_lab::LabServer) -> (usize, String) {
    let requests = server.requests.entries();
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for r in &requests {
        let kind = r
            .action
            .clone()
            .or_else(|| r.authorization.clone())
            .unwrap_or_else(|| format!("HTTP {}", r.status));
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
    }
    let words = kinds
        .iter()
        .map(|(k, n)| format!("{n} × {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    (requests.len(), words)
}

/// A recycle flush costs at most 12 HTTP round trips per server (it was 31):
/// 2 NTLM legs, Create, the survey line (Command, Receive, Signal), the
/// recycle line with the first drain check (Command, Receive, Signal), one
/// drain poll (Command, Receive; its Signal is left to the Delete), Delete.
/// Counted by the lab, which logs every POST to /wsman. The lab answers at
/// once (recycle time 0), and its old workers drain for 100 ms, so exactly
/// one poll (250 ms after the recycles) is needed. With recycles that take
/// time, each pool's result costs a Receive of its own (below).
#[tokio::test(flavor = "multi_thread")]
async fn a_recycle_flush_costs_at_most_twelve_round_trips_per_server() {
    let config = LabConfig {
        recycle_time: Duration::ZERO,
        drain_time: Duration::from_millis(100),
        ..fast_lab(3)
    };
    let lab = TestLab::start(config).await;
    let (run, report) = lab.flush_json(&[]).await;
    run.assert_code(0);
    lab.assert_others_recycled(&report, &[]);
    for server in lab.servers() {
        let (n, words) = round_trips(server);
        eprintln!("{}: {n} round trips: {words}", server.name);
        assert!(n <= 12, "{}: {n} round trips: {words}", server.name);
        // The five recycles went in one command line, reported one by one.
        let log = server.log.entries();
        let recycles: Vec<_> = log
            .iter()
            .filter(|e| is_mutating(&e.command_line))
            .collect();
        assert_eq!(recycles.len(), 5, "{log:#?}");
        assert!(
            recycles
                .iter()
                .all(|e| e.shell_command == recycles[0].shell_command),
            "{log:#?}"
        );
        // Three command lines: the survey, the recycles, one drain poll.
        let lines: std::collections::BTreeSet<usize> =
            log.iter().map(|e| e.shell_command).collect();
        assert_eq!(lines.len(), 3, "{}: {words}\n{log:#?}", server.name);
    }

    // Recycles that take time (20 ms each): each pool's result comes back in
    // a Receive of its own, as soon as it is printed (revoke reports every
    // recycle as soon as it happened), so the recycle line costs up to four
    // Receives more: at most 16, still half of the 31 it was.
    let lab = TestLab::start(fast_lab(2)).await;
    let (run, report) = lab.flush_json(&[]).await;
    run.assert_code(0);
    lab.assert_others_recycled(&report, &[]);
    for server in lab.servers() {
        let (n, words) = round_trips(server);
        eprintln!("{} (20 ms recycles): {n} round trips: {words}", server.name);
        assert!(n <= 16, "{}: {n} round trips: {words}", server.name);
    }

    // A dry run looks in one command line: 6 round trips, nothing mutating.
    let lab = TestLab::start(fast_lab(2)).await;
    let (run, _) = lab.flush_json(&["--dry-run"]).await;
    run.assert_code(0);
    for server in lab.servers() {
        let (n, words) = round_trips(server);
        assert!(
            n <= 6,
            "{}: {n} round trips in a dry run: {words}",
            server.name
        );
        assert!(
            !server
                .log
                .entries()
                .iter()
                .any(|e| is_mutating(&e.command_line))
        );
    }
}

// ------------------------------------------------------- open files

/// `revoke flush` against `servers` addresses where nothing listens, run by
/// `sh` after `ulimit ARGS`: (exit code, stderr).
fn flush_under_ulimit(ulimit: &str, servers: usize, extra: &[&str]) -> (i32, String) {
    // Distinct ports that were just free: connecting is refused at once.
    let listeners: Vec<_> = (0..servers)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addresses: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    drop(listeners);
    let home = tempfile::TempDir::new().unwrap();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit {ulimit} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_revoke"))
        .args(["flush", "--servers", &addresses.join(",")])
        .args([
            "--user",
            "LAB\\revoke-admin",
            "--timeout",
            "10",
            "--output",
            "json",
        ])
        .args(extra)
        .env_remove("REVOKE_CONFIG")
        .env("REVOKE_PASSWORD", LAB_DEFAULT_PASSWORD)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .output()
        .expect("run revoke under sh");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every server at once needs about two open files per server: revoke
/// raises its soft limit as far as that needs, and says so in one line when
/// the hard limit does not allow it.
#[test]
fn the_open_files_limit_is_raised_or_its_shortage_is_said() {
    // 40 servers need about 2 × 40 + 64 = 144.
    let (code, stderr) = flush_under_ulimit("-Sn 100", 40, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");

    let (code, stderr) = flush_under_ulimit("-n 100", 40, &[]);
    assert_eq!(code, 2, "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARNING")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0]
            .starts_with("WARNING: only 100 open files allowed; 40 servers at once need about 144"),
        "{stderr}"
    );

    // Fewer at once need fewer: --parallel 10 needs about 84.
    let (code, stderr) = flush_under_ulimit("-n 100", 40, &["--parallel", "10"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");
}
