//! A WinRM client that a hostile network cannot abuse (docs/security.md,
//! "Transport hardening"): the real binary against a lab server that answers
//! like an attacker on the path of plain HTTP would. Every run must stay
//! bounded in time and memory, the other servers must finish `ok`, and
//! nothing that changes a server may run twice on any server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use revoke_core::iis::EXCHANGE_POOLS;
use revoke_lab::{Fault, LabConfig};
use serde_json::Value;

use crate::common::{
    Run, TestLab, action, assert_recycled, fast_lab, fault, is_mutating, recycle_line,
};

/// Far above what revoke needs for four servers, far below what reading a
/// hostile answer without a cap would take.
const MEMORY_LIMIT: u64 = 384 * 1024 * 1024;
/// Well below the per-server `--timeout` given, so "bounded" is not just
/// "the timeout fired".
const TIME_LIMIT: Duration = Duration::from_secs(15);

/// A four-server lab where EX03 answers with `kind`; a flush of it, with
/// the time it took.
async fn hostile_flush(kind: Fault, args: &[&str]) -> (TestLab, Run, Value) {
    let config = LabConfig {
        faults: vec![fault("EX03", kind)],
        ..fast_lab(4)
    };
    let lab = TestLab::start(config).await;
    let mut all = vec!["--output", "json", "--timeout", "60"];
    all.extend_from_slice(args);
    let started = Instant::now();
    let run = lab.flush(&all).memory_limit(MEMORY_LIMIT).run().await;
    let took = started.elapsed();
    let report = run.json();
    assert!(took < TIME_LIMIT, "the run took {took:?}: {report:#}");
    assert_eq!(report["summary"]["servers"], 4, "{report:#}");
    assert_nothing_mutating_twice(&lab);
    (lab, run, report)
}

/// No server ran the same recycle or iisreset twice.
#[track_caller]
fn assert_nothing_mutating_twice(lab: &TestLab) {
    for server in lab.servers() {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for entry in server.log.entries() {
            if is_mutating(&entry.command_line) {
                *seen.entry(entry.command_line).or_default() += 1;
            }
        }
        for (line, n) in seen {
            assert_eq!(n, 1, "{}: {line} ran {n} times", server.name);
        }
    }
}

#[track_caller]
fn assert_failed_with(entry: &Value, text: &str) {
    assert_eq!(entry["status"], "failed", "{entry:#}");
    let error = entry["error"].as_str().unwrap_or_default();
    assert!(error.contains(text), "error {error:?} lacks {text:?}");
}

/// Nothing that changes a server was sent to it.
#[track_caller]
fn assert_untouched(lab: &TestLab, name: &str) {
    let log = lab.server(name).log.entries();
    assert!(
        !log.iter().any(|e| is_mutating(&e.command_line)),
        "{name}: {log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_response_is_refused_without_reading_it() {
    let (lab, run, report) = hostile_flush(Fault::HugeResponse, &[]).await;
    run.assert_code(2);
    lab.assert_others_recycled(&report, &["EX03"]);
    let entry = lab.report_of(&report, lab.server("EX03"));
    assert_failed_with(entry, "the server's answer is larger than 155648 bytes");
    assert_untouched(&lab, "EX03");
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_output_is_cut_at_the_cap_and_the_command_ended() {
    let (lab, run, report) = hostile_flush(Fault::EndlessOutput, &[]).await;
    run.assert_code(2);
    lab.assert_others_recycled(&report, &["EX03"]);
    let entry = lab.report_of(&report, lab.server("EX03"));
    assert_failed_with(entry, "the command printed more than 4 MiB");
    assert_untouched(&lab, "EX03");
    // Once, not retried: a cut-off command is not a transient failure.
    let survey: Vec<_> = lab
        .server("EX03")
        .log
        .entries()
        .into_iter()
        .filter(|e| e.command_line.contains("hostname"))
        .collect();
    assert_eq!(survey.len(), 1, "{survey:#?}");
    assert_eq!(entry["attempts"], 1, "{entry:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_after_a_recycle_is_never_resent_and_reported_unknown() {
    let (lab, run, report) = hostile_flush(Fault::Reply401AfterCommand, &[]).await;
    run.assert_code(2);
    lab.assert_others_recycled(&report, &["EX03"]);
    let ex03 = lab.server("EX03");
    let entry = lab.report_of(&report, ex03);
    assert_failed_with(entry, "may have run");
    for pool in EXCHANGE_POOLS {
        let a = action(entry, pool);
        assert_eq!(a["status"], "unknown", "{a:#}");
        let message = a["message"].as_str().unwrap_or_default();
        assert!(message.contains("may have run"), "{message}");
        assert!(message.contains("HTTP 401"), "{message}");
    }
    // The command line did reach the server and run (the 401 came after;
    // the shell's Delete then ended what was left of it), and nothing of it
    // was sent again (hostile_flush checked that).
    let log = ex03.log.entries();
    assert!(
        log.iter()
            .any(|e| e.command_line == recycle_line(EXCHANGE_POOLS[0])),
        "{log:#?}"
    );
    assert_eq!(report["summary"]["pools_failed"], 5, "{report:#}");

    // The operator's table says so too.
    let config = LabConfig {
        faults: vec![fault("EX03", Fault::Reply401AfterCommand)],
        ..fast_lab(4)
    };
    let lab = TestLab::start(config).await;
    let human = lab.flush(&[] as &[&str]).run().await;
    human.assert_code(2);
    assert!(human.stdout.contains("UNKNOWN"), "{}", human.stdout);
    assert!(human.stdout.contains("may have run"), "{}", human.stdout);
    assert_nothing_mutating_twice(&lab);
}

/// The recycle line reaches the server and no answer ever comes: when the
/// server's `--timeout` ends the wait, its pools are `unknown` (they may
/// have been recycled), not silently left out, and nothing is sent again.
#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_after_a_recycle_was_sent_reports_its_pools_unknown() {
    let config = LabConfig {
        faults: vec![fault("EX03", Fault::SilentAfterCommand)],
        ..fast_lab(4)
    };
    let lab = TestLab::start(config).await;
    let run = lab
        .flush(&["--output", "json", "--timeout", "6"])
        .run()
        .await;
    run.assert_code(2);
    let report = run.json();
    lab.assert_others_recycled(&report, &["EX03"]);
    let ex03 = lab.report_of(&report, lab.server("EX03"));
    assert_eq!(ex03["status"], "timeout", "{ex03:#}");
    for pool in EXCHANGE_POOLS {
        let a = action(ex03, pool);
        assert_eq!(a["status"], "unknown", "{a:#}");
        let message = a["message"].as_str().unwrap_or_default();
        assert!(message.contains("may have run"), "{message}");
    }
    assert_nothing_mutating_twice(&lab);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_after_iisreset_is_never_resent_and_reported_unknown() {
    let (lab, run, report) = hostile_flush(
        Fault::Reply401AfterCommand,
        &["--method", "iisreset", "--max-unavailable", "4"],
    )
    .await;
    run.assert_code(2);
    let ex03 = lab.server("EX03");
    let entry = lab.report_of(&report, ex03);
    assert_failed_with(entry, "may have run");
    let reset = action(entry, "*");
    assert_eq!(reset["status"], "unknown", "{reset:#}");
    for server in lab.servers().iter().filter(|s| s.name != "EX03") {
        let other = lab.report_of(&report, server);
        assert_eq!(other["status"], "ok", "{other:#}");
    }
    let resets = ex03
        .log
        .entries()
        .iter()
        .filter(|e| e.command_line == "iisreset /noforce")
        .count();
    assert_eq!(resets, 1);
}

/// A CHALLENGE that does not grant sealing: over plain HTTP the client
/// refuses to go on (it would have to send commands unsealed), and sends
/// nothing to that server.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_does_not_grant_sealing_gets_nothing() {
    let (lab, run, report) = hostile_flush(Fault::WithholdSealing, &[]).await;
    run.assert_code(2);
    lab.assert_others_recycled(&report, &["EX03"]);
    let entry = lab.report_of(&report, lab.server("EX03"));
    assert_failed_with(entry, "did not grant");
    assert_untouched(&lab, "EX03");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsealed_200_on_a_sealed_session_is_refused() {
    let (lab, run, report) = hostile_flush(Fault::Unsealed200, &[]).await;
    run.assert_code(2);
    lab.assert_others_recycled(&report, &["EX03"]);
    let entry = lab.report_of(&report, lab.server("EX03"));
    assert_failed_with(
        entry,
        "answered HTTP 200 without sealing on a sealed session",
    );
    assert_untouched(&lab, "EX03");
}

/// A Signal's answer fails its check; the client must not send the recycle
/// over that connection (its keystream is gone) but over a new one.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_bad_signature_the_connection_is_dropped_and_the_next_one_works() {
    let (lab, run, report) = hostile_flush(Fault::BadSignature, &[]).await;
    run.assert_code(0);
    let ex03 = lab.server("EX03");
    assert_recycled(lab.report_of(&report, ex03), ex03);
    lab.assert_others_recycled(&report, &["EX03"]);
    let handshakes = ex03
        .requests
        .entries()
        .iter()
        .filter(|r| r.authorization.as_deref() == Some("Negotiate NEGOTIATE"))
        .count();
    assert_eq!(handshakes, 2, "a new connection after the bad signature");
}
