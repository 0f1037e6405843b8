//! The journal on both directories: a `disable` killed with SIGKILL right
//! after the account change leaves a journal from which `revoke history`
//! tells what was done and `revoke retry` finishes the job without writing
//! the account again; the journal never holds a password; a journal that
//! cannot be written changes nothing; `revoke enable` undoes what revoke
//! disabled and refuses what it did not.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::backend::{AdEstate, UAC_DISABLED, UAC_ENABLED};
use crate::common::is_mutating;
use crate::journal::{of_type, records};

/// `revoke ARGS --config <estate>` started in the background, isolated like
/// [`crate::common::Revoke`] (stdout and stderr into files in `dir`).
fn spawn(estate: &AdEstate, dir: &Path, args: &[&str]) -> std::process::Child {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new(env!("CARGO_BIN_EXE_revoke"))
        .args(args)
        .arg("--config")
        .arg(estate.config())
        .env_remove("REVOKE_CONFIG")
        .env_remove("REVOKE_F5_PASSWORD")
        .env_remove("REVOKE_DIRECTORY_PASSWORD")
        .env_remove("REVOKE_WINRM_PASSWORD")
        .env("REVOKE_PASSWORD", estate.domain.operator_password())
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .expect("start revoke")
}

/// Waits until the journal holds a record of this type; panics after `limit`.
fn wait_for_record(journal: &Path, kind: &str, limit: Duration, dir: &Path) {
    let started = Instant::now();
    let needle = format!("\"type\":\"{kind}\"");
    loop {
        let text = std::fs::read_to_string(journal).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.contains(&needle) && l.ends_with('}'))
        {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "no {kind} record within {limit:?}; journal:\n{text}\nstderr:\n{}",
            std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// No journal record and no report holds any of these passwords.
fn assert_no_password(texts: &[&str], passwords: &[&str]) {
    for text in texts {
        for password in passwords {
            assert!(
                !text.contains(password),
                "a password is in the journal or the report:\n{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disable_killed_after_the_account_change_is_told_by_history_and_finished_by_retry() {
    let estate = AdEstate::start(2).await;
    let d = estate.domain;
    let user = d.new_user("killed").await;
    let (dc1, dc2) = (d.dc_host(1).to_string(), d.dc_host(2).to_string());
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let j = journal.display().to_string();

    // DC2 lags and may not be written (--direct-write never): the run waits
    // in the gate, after the account change and before any flush.
    let mut child = spawn(
        &estate,
        dir.path(),
        &[
            "disable",
            &user.sam,
            "--yes",
            "--direct-write",
            "never",
            "--replication-timeout",
            "110",
            "--journal",
            &j,
        ],
    );
    wait_for_record(
        &journal,
        "account-changed",
        Duration::from_secs(60),
        dir.path(),
    );
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status:?}"
    );
    assert_eq!(d.user_account_control(1, &user.dn).await, UAC_DISABLED);
    assert!(
        !estate
            .lab()
            .all_commands()
            .iter()
            .any(|(_, c)| is_mutating(c)),
        "the killed run flushed something"
    );

    let written = records(&journal);
    let run_id = of_type(&written, "run-started")[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(of_type(&written, "run-finished").is_empty());
    let changing = written
        .iter()
        .position(|r| r["type"] == "account-changing")
        .expect("account-changing");
    let changed = written
        .iter()
        .position(|r| r["type"] == "account-changed")
        .unwrap();
    assert!(changing < changed, "announced before it was made");
    assert_eq!(written[changed]["user_account_control_before"], UAC_ENABLED);
    assert_eq!(written[changed]["user_account_control_after"], UAC_DISABLED);

    // history RUN_ID: what was done and what was not.
    let history = estate
        .revoke("history", &[run_id.as_str(), "--journal", &j])
        .run()
        .await;
    history.assert_code(0);
    let told = &history.stdout;
    for expected in [
        format!("{} disabled on {dc1}", user.sam),
        format!("{dc2} unconfirmed"),
        "0 of 2 servers flushed".to_string(),
        "the run did not finish".to_string(),
        format!("revoke retry {run_id}"),
    ] {
        assert!(told.contains(&expected), "no {expected:?} in:\n{told}");
    }
    let list = estate.revoke("history", &["--journal", &j]).run().await;
    let line = list
        .stdout
        .lines()
        .find(|l| l.contains(&run_id))
        .unwrap_or_else(|| panic!("{}", list.stdout));
    assert!(
        line.contains("DID NOT FINISH") && line.contains(&user.sam),
        "{line}"
    );

    // A dry run says what would be retried and does nothing.
    let dry = estate
        .revoke("retry", &[run_id.as_str(), "--journal", &j, "--dry-run"])
        .run()
        .await;
    dry.assert_code(0);
    assert!(dry.stdout.contains(&dc2), "{}", dry.stdout);
    assert!(dry.stdout.contains("flush 2 server(s)"), "{}", dry.stdout);

    // Changed back meanwhile (an admin re-enabled it): retry refuses, exit 3.
    d.set_user_account_control(1, &user.dn, UAC_ENABLED).await;
    let refused = estate
        .revoke("retry", &[run_id.as_str(), "--journal", &j])
        .run()
        .await;
    refused.assert_code(3);
    assert!(
        refused.stderr.contains("enabled again"),
        "{}",
        refused.stderr
    );
    assert_eq!(d.user_account_control(1, &user.dn).await, UAC_ENABLED);
    assert!(
        !estate
            .lab()
            .all_commands()
            .iter()
            .any(|(_, c)| is_mutating(c))
    );
    d.set_user_account_control(1, &user.dn, UAC_DISABLED).await;

    // The retry: DC2 replicates while revoke waits, then both servers are
    // flushed; the account is not written again (DC1's uSNChanged stays).
    let usn = d.usn_changed(1, &user.dn).await;
    let retry = estate
        .revoke(
            "retry",
            &[run_id.as_str(), "--journal", &j, "--output", "json"],
        )
        .run();
    let sync = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        d.sync_to_dc2(Some(&user.dn)).await;
    };
    let (retry, ()) = tokio::join!(retry, sync);
    retry.assert_code(0);
    let report = retry.json();
    assert_eq!(report["retry_of"], run_id.as_str(), "{report:#}");
    assert_eq!(report["summary"]["ok"], 2, "{report:#}");
    let dcs = report["directory"]["domain_controllers"]
        .as_array()
        .unwrap();
    assert_eq!(dcs.len(), 1, "only the open DC is checked: {report:#}");
    assert_eq!(dcs[0]["host"], dc2.as_str());
    assert_eq!(dcs[0]["status"], "replicated", "{report:#}");
    assert_eq!(
        d.usn_changed(1, &user.dn).await,
        usn,
        "the account was written again"
    );
    assert_eq!(d.user_account_control(2, &user.dn).await, UAC_DISABLED);
    let recycles = estate
        .lab()
        .all_commands()
        .into_iter()
        .filter(|(_, c)| is_mutating(c))
        .map(|(server, _)| server)
        .collect::<std::collections::HashSet<_>>();
    assert_eq!(recycles.len(), 2, "every server flushed once by the retry");

    let after = records(&journal);
    let retry_id = report["run_id"].as_str().unwrap();
    let mine: Vec<&Value> = after.iter().filter(|r| r["run_id"] == retry_id).collect();
    assert_eq!(mine[0]["type"], "run-started");
    assert_eq!(mine[0]["retry_of"], run_id.as_str());
    assert!(!mine.iter().any(|r| r["type"] == "account-changing"));
    assert_eq!(mine.last().unwrap()["type"], "run-finished");
    assert_eq!(mine.last().unwrap()["exit_code"], 0);

    let journal_text = std::fs::read_to_string(&journal).unwrap();
    assert_no_password(
        &[&journal_text, &retry.stdout],
        &[&user.password, d.operator_password()],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_journals_the_change_and_never_a_password() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let user = d.new_user("jreset").await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let file = dir.path().join("new.pw");
    let run = estate
        .revoke(
            "reset",
            &[
                user.sam.as_str(),
                "--yes",
                "--output",
                "json",
                "--password-file",
                file.to_str().unwrap(),
                "--journal",
                journal.to_str().unwrap(),
            ],
        )
        .run()
        .await;
    run.assert_code(0);
    let new_password = std::fs::read_to_string(&file).unwrap();
    let new_password = new_password.trim_end();
    let written = records(&journal);
    let changed = of_type(&written, "account-changed");
    assert_eq!(changed.len(), 1, "{written:#?}");
    assert_eq!(changed[0]["status"], "reset");
    let journal_text = std::fs::read_to_string(&journal).unwrap();
    assert_no_password(
        &[&journal_text, &run.stdout, &run.stderr],
        &[new_password, &user.password, d.operator_password()],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_journal_that_cannot_be_written_stops_the_run_before_anything_changes() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let user = d.new_user("nojrnl").await;
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let mut unwritable = vec![not_a_dir.join("journal.jsonl")];
    // A full disk: opening works, every write fails.
    if Path::new("/dev/full").exists() {
        unwritable.push("/dev/full".into());
    }
    for journal in &unwritable {
        let path = journal.display().to_string();
        let run = estate
            .revoke("disable", &[user.sam.as_str(), "--yes", "--journal", &path])
            .run()
            .await;
        run.assert_code(1);
        // Stopped before the run began: no report at all.
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert!(
            run.stderr
                .contains(&format!("cannot write the journal {path}"))
                && run.stderr.contains("--no-journal"),
            "{}",
            run.stderr
        );
        assert_eq!(d.user_account_control(1, &user.dn).await, UAC_ENABLED);
        assert!(
            estate.lab().all_commands().is_empty(),
            "a server was contacted"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn enable_restores_what_revoke_disabled_on_both_dcs_and_refuses_what_it_did_not() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let mistake = d.new_user("mistake").await;
    let by_hr = d.new_user("byhr").await;
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("journal.jsonl").display().to_string();

    let disable = estate
        .revoke("disable", &[mistake.sam.as_str(), "--yes", "--journal", &j])
        .run()
        .await;
    disable.assert_code(0);
    assert_eq!(d.user_account_control(2, &mistake.dn).await, UAC_DISABLED);
    let sent_to_servers = estate.lab().all_commands().len();

    let enable = estate
        .revoke(
            "enable",
            &[
                mistake.sam.as_str(),
                "--yes",
                "--journal",
                &j,
                "--output",
                "json",
            ],
        )
        .run()
        .await;
    enable.assert_code(0);
    let report = enable.json();
    assert_eq!(report["action"], "enable", "{report:#}");
    assert_eq!(report["directory"]["users"][0]["status"], "enabled");
    assert!(report["servers"].as_array().unwrap().is_empty(), "no flush");
    for dc in [1, 2] {
        assert_eq!(
            d.user_account_control(dc, &mistake.dn).await,
            UAC_ENABLED,
            "DC{dc}"
        );
    }
    // The enable sent nothing to the servers.
    assert_eq!(estate.lab().all_commands().len(), sent_to_servers);

    // Disabled by someone else: refused, exit 3, nothing written.
    d.set_user_account_control(1, &by_hr.dn, UAC_DISABLED).await;
    let usn = d.usn_changed(1, &by_hr.dn).await;
    let refused = estate
        .revoke("enable", &[by_hr.sam.as_str(), "--yes", "--journal", &j])
        .run()
        .await;
    refused.assert_code(3);
    assert!(
        refused
            .stderr
            .contains("revoke did not disable this account")
            && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    assert_eq!(d.usn_changed(1, &by_hr.dn).await, usn);
    // --force: the operator takes the responsibility.
    let forced = estate
        .revoke(
            "enable",
            &[by_hr.sam.as_str(), "--yes", "--journal", &j, "--force"],
        )
        .run()
        .await;
    forced.assert_code(0);
    assert_eq!(d.user_account_control(1, &by_hr.dn).await, UAC_ENABLED);

    // Without a journal, revoke's stamp in the account's info says it
    // disabled it ([directory] stamp = true).
    let stamped = d.new_user("stamped").await;
    estate.set_directory("stamp", true);
    let disable = estate
        .revoke("disable", &[stamped.sam.as_str(), "--yes", "--no-journal"])
        .run()
        .await;
    disable.assert_code(0);
    let enable = estate
        .revoke("enable", &[stamped.sam.as_str(), "--yes", "--no-journal"])
        .run()
        .await;
    enable.assert_code(0);
    assert_eq!(d.user_account_control(1, &stamped.dn).await, UAC_ENABLED);
}
