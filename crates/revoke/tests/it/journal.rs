//! The journal with the lab alone (no directory): every `flush` run is
//! recorded, two runs at once append whole lines, a line cut short by a
//! crash is reported and skipped, and `revoke history` lists what ran.
//! The directory side (SIGKILL, retry, enable) is in journal_ad.rs.

use std::path::Path;

use serde_json::Value;

use crate::common::{TestLab, fast_lab};

/// Every line of the journal as JSON; panics on a line that is not.
pub fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a whole JSON record ({e}): {line:?}"))
        })
        .collect()
}

/// The records of one type.
pub fn of_type<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flush_is_journaled_before_and_after_each_server_with_the_report_naming_the_journal() {
    let lab = TestLab::start(fast_lab(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("state").join("journal.jsonl");
    let journal_arg = journal.display().to_string();
    // As from cron or `env -i`: no variable names the local user.
    let run = lab
        .flush(&["--output", "json", "--journal", journal_arg.as_str()])
        .env("USER", "")
        .env("LOGNAME", "")
        .env("USERNAME", "")
        .run()
        .await;
    run.assert_code(0);
    let report = run.json();
    assert_eq!(report["journal"], journal_arg.as_str(), "{report:#}");
    assert_eq!(report["no_journal"], false);
    let records = records(&journal);
    let run_id = report["run_id"].as_str().unwrap();
    assert!(records.iter().all(|r| r["run_id"] == run_id && r["v"] == 1));
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"run-started"), "{kinds:?}");
    // Who ran it is still known: the process's own account.
    let who = records[0]["operator"]["local_user"].as_str().unwrap_or("");
    assert!(!who.is_empty(), "{:#}", records[0]);
    assert_eq!(kinds.last(), Some(&"run-finished"), "{kinds:?}");
    assert_eq!(of_type(&records, "server-mutating").len(), 2, "{kinds:?}");
    let done = of_type(&records, "server-done");
    assert_eq!(done.len(), 2, "{kinds:?}");
    for server in &done {
        assert_eq!(server["status"], "ok", "{server:#}");
        assert!(
            !server["pools"].as_array().unwrap().is_empty(),
            "{server:#}"
        );
    }
    // Each server's mutating record comes before its result.
    for server in &done {
        let at = |kind: &str| {
            records
                .iter()
                .position(|r| r["type"] == kind && r["server"] == server["server"])
                .unwrap()
        };
        assert!(at("server-mutating") < at("server-done"));
    }
    let finished = of_type(&records, "run-finished")[0];
    assert_eq!(finished["exit_code"], 0);
    assert_eq!(finished["exposure_closed"], true, "{finished:#}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&journal).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "journal mode {mode:o}");
    }

    // --no-journal: nothing written, and the report says so.
    let (run, report) = lab.flush_json(&["--no-journal"]).await;
    run.assert_code(0);
    assert_eq!(report["no_journal"], true, "{report:#}");
    assert!(report["journal"].is_null());
    assert_eq!(crate::journal::records(&journal).len(), records.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_at_once_append_whole_records_to_one_journal() {
    let lab = TestLab::start(fast_lab(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let journal_arg = journal.display().to_string();
    let args = ["--journal", journal_arg.as_str(), "--output", "json"];
    let (a, b) = tokio::join!(lab.flush(&args).run(), lab.flush(&args).run());
    a.assert_code(0);
    b.assert_code(0);
    // Every line parses: no two records were interleaved.
    let records = records(&journal);
    for report in [a.json(), b.json()] {
        let run_id = report["run_id"].as_str().unwrap();
        let mine: Vec<&Value> = records.iter().filter(|r| r["run_id"] == run_id).collect();
        assert_eq!(of_type_in(&mine, "run-started"), 1, "{mine:#?}");
        assert_eq!(of_type_in(&mine, "server-done"), 3, "{mine:#?}");
        assert_eq!(of_type_in(&mine, "run-finished"), 1, "{mine:#?}");
    }
}

fn of_type_in(records: &[&Value], kind: &str) -> usize {
    records.iter().filter(|r| r["type"] == kind).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_cut_short_by_a_crash_is_reported_and_skipped_and_history_goes_on() {
    let lab = TestLab::start(fast_lab(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let journal_arg = journal.display().to_string();
    let (first, first_report) = lab.flush_json(&["--journal", journal_arg.as_str()]).await;
    first.assert_code(0);
    // A crash in the middle of writing a record.
    let mut text = std::fs::read_to_string(&journal).unwrap();
    let lines = text.lines().count();
    text.push_str("{\"v\":1,\"at\":\"2026-12-02T03:00:00.000Z\",\"run_id\":\"cut");
    std::fs::write(&journal, text).unwrap();

    let history = crate::common::Revoke::new(&["history", "--journal", journal_arg.as_str()])
        .run()
        .await;
    history.assert_code(0);
    assert!(
        history.stderr.contains(&format!("line {}", lines + 1))
            && history.stderr.contains("skipped"),
        "{}",
        history.stderr
    );
    let first_id = first_report["run_id"].as_str().unwrap();
    assert!(history.stdout.contains(first_id), "{}", history.stdout);
    assert!(history.stdout.contains("flush"), "{}", history.stdout);
    assert!(history.stdout.contains("ok (exit 0)"), "{}", history.stdout);

    // The next run starts on a line of its own: both runs are readable.
    let (second, second_report) = lab.flush_json(&["--journal", journal_arg.as_str()]).await;
    second.assert_code(0);
    let history = crate::common::Revoke::new(&[
        "history",
        "--journal",
        journal_arg.as_str(),
        "--output",
        "json",
    ])
    .run()
    .await;
    history.assert_code(0);
    assert_eq!(
        history.stderr.matches("skipped").count(),
        1,
        "only the cut line is skipped: {}",
        history.stderr
    );
    let list: Value = serde_json::from_str(&history.stdout).unwrap();
    for run in list.as_array().unwrap() {
        assert_eq!(run["command"], "flush", "{list:#}");
    }
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [first_id, second_report["run_id"].as_str().unwrap()],
        "{list:#}"
    );
    // --last 1: only the latest.
    let last =
        crate::common::Revoke::new(&["history", "--journal", journal_arg.as_str(), "--last", "1"])
            .run()
            .await;
    assert!(!last.stdout.contains(first_id), "{}", last.stdout);
}
