//! The convergence gate's rules, on both directories: a DC has the change
//! when its replication metadata shows revoke's write (not when a value
//! happens to match), `--direct-write never` only waits, and one account's
//! refused change does not abandon the others.

use std::time::Duration;

use super::backend::{AdEstate, METADATA_SOURCE, UAC_DISABLED, UAC_ENABLED};
use crate::common::{dc_report, is_mutating};

/// A user who must already change their password (pwdLastSet = 0 on both
/// DCs, like a new hire) gets `reset --must-change`, which writes 0 again:
/// DC2, which has not replicated, must not pass for converged because its
/// value matches; only its metadata says whether it has the new password.
#[tokio::test(flavor = "multi_thread")]
async fn a_must_change_reset_is_not_confirmed_on_a_stale_dc_whose_pwd_last_set_matches() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let user = d.new_user("mustchg").await;
    d.set_pwd_last_set(1, &user.dn, 0).await;
    d.sync_to_dc2(Some(&user.dn)).await;
    let dc2 = d.dc_host(2).to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.pw");
    let reset = |timeout: &'static str, file: &std::path::Path| {
        estate.revoke(
            "reset",
            &[
                user.sam.as_str(),
                "--must-change",
                "--direct-write",
                "never",
                "--replication-timeout",
                timeout,
                "--yes",
                "--output",
                "json",
                "--password-file",
                file.to_str().unwrap(),
            ],
        )
    };

    let run = reset("3", &file).run().await;
    run.assert_code(2);
    let report = run.json();
    let stale = dc_report(&report, &dc2);
    assert_eq!(stale["status"], "not-converged", "{stale:#}");
    let message = stale["message"].as_str().unwrap();
    assert!(message.contains("--direct-write never"), "{message}");
    // The report is right: DC2 still takes the old password (`data 773`:
    // the password is right, it only must be changed, which the user can do
    // with it).
    let stale_answer = d.bind(2, &user.upn, &user.password).await.unwrap_err();
    assert!(stale_answer.contains("data 773"), "{stale_answer}");
    let new_password = std::fs::read_to_string(&file).unwrap();
    let new_password = new_password.trim_end();

    // Again, and DC2 replicates while revoke waits: now it is confirmed,
    // and by metadata.
    let file2 = dir.path().join("new2.pw");
    let waiting = reset("60", &file2).run();
    let sync = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        d.sync_to_dc2(Some(&user.dn)).await;
    };
    let (run, ()) = tokio::join!(waiting, sync);
    run.assert_code(0);
    let report = run.json();
    let synced = dc_report(&report, &dc2);
    assert_eq!(synced["status"], "replicated", "{synced:#}");
    assert_eq!(synced["decided_by"], METADATA_SOURCE, "{synced:#}");
    for old in [user.password.as_str(), new_password] {
        let answer = d.bind(2, &user.upn, old).await.unwrap_err();
        assert!(
            answer.contains("data 52e"),
            "DC2 still knows an old password: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_direct_writes_off_a_lagging_dc_is_waited_for_and_never_written() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let user = d.new_user("nowrite").await;
    let dc2 = d.dc_host(2).to_string();
    let dry = estate
        .revoke(
            "disable",
            &[
                user.sam.as_str(),
                "--dry-run",
                "--direct-write",
                "never",
                "--output",
                "json",
            ],
        )
        .run()
        .await;
    dry.assert_code(0);
    let message = dc_report(&dry.json(), &dc2)["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("waited for (--direct-write never)"),
        "{message}"
    );

    estate.set_directory("direct_write", "never");
    estate.set_directory("replication_timeout", 3);
    let run = estate.disable_json(&user.sam).run().await;
    run.assert_code(2);
    let report = run.json();
    assert_eq!(dc_report(&report, &dc2)["status"], "not-converged");
    // Never written there: DC2 still has the old state.
    assert_eq!(d.user_account_control(2, &user.dn).await, UAC_ENABLED);
    assert_eq!(d.user_account_control(1, &user.dn).await, UAC_DISABLED);

    estate.set_directory("direct_write", "sometimes");
    let bad = estate.disable_json(&user.sam).run().await;
    bad.assert_code(1);
    assert!(
        bad.stderr
            .contains("direct_write = \"sometimes\": use \"auto\" or \"never\""),
        "{}",
        bad.stderr
    );
}

/// The operator may change accounts under OU=Staff only: an account in
/// CN=Users is refused (result 50). The other account is still disabled,
/// gated and flushed; the refused one is reported, and the run ends 2.
#[tokio::test(flavor = "multi_thread")]
async fn one_accounts_refused_change_does_not_abandon_the_others() {
    let estate = AdEstate::start(2).await;
    let d = estate.domain;
    let ok = d.new_user("part").await;
    let users = format!("CN=Users,{}", d.base_dn());
    let outside = d.user("part").under(&users).create().await;
    let run = estate
        .revoke(
            "disable",
            &[
                ok.sam.as_str(),
                outside.sam.as_str(),
                "--yes",
                "--output",
                "json",
            ],
        )
        .run()
        .await;
    run.assert_code(2);
    let report = run.json();
    let users = report["directory"]["users"].as_array().unwrap();
    let status = |sam: &str| {
        users
            .iter()
            .find(|u| u["sam_account_name"] == sam)
            .unwrap_or_else(|| panic!("{sam} not in {users:#?}"))
    };
    assert_eq!(status(&ok.sam)["status"], "disabled");
    let failed = status(&outside.sam);
    assert_eq!(failed["status"], "failed");
    let why = failed["message"].as_str().unwrap();
    assert!(why.contains("insufficient access"), "{why}");
    // The changed account was gated and flushed all the same.
    for n in [1, 2] {
        assert_eq!(
            d.user_account_control(n, &ok.dn).await,
            UAC_DISABLED,
            "dc{n}"
        );
    }
    assert_eq!(d.user_account_control(1, &outside.dn).await, UAC_ENABLED);
    let flushed = estate
        .lab()
        .all_commands()
        .iter()
        .filter(|(_, c)| is_mutating(c))
        .count();
    assert!(flushed > 0, "nothing was flushed");
    assert!(
        report["flush_skipped"].is_null(),
        "{:#}",
        report["flush_skipped"]
    );
    assert_eq!(
        report["exposure"]["closed"], false,
        "{:#}",
        report["exposure"]
    );
}
