//! What revoke says when something is wrong: what was wrong, and what to do.
//! (Certificates refused by the DC: account.rs, against both directories;
//! AD's data codes: the directory's unit tests and demo.rs.)

use revoke_lab::{Fault, LAB_DEFAULT_PASSWORD, LabConfig};

use crate::common::{Revoke, TestLab, fast_lab, fault};

/// A name that does not resolve is said once, in those words; nothing is
/// sent anywhere (revoke runs with only loopback, so DNS stays on the machine).
#[tokio::test(flavor = "multi_thread")]
async fn a_name_that_does_not_resolve_is_said_plainly() {
    let run = Revoke::new(&[
        "flush",
        "--servers",
        "nosuchhost.invalid",
        "--user",
        "LAB\\revoke-admin",
        "--output",
        "json",
        "--timeout",
        "10",
    ])
    .password(LAB_DEFAULT_PASSWORD)
    .without_network()
    .run()
    .await;
    run.assert_code(2);
    let report = run.json();
    let server = &report["servers"][0];
    assert_eq!(server["status"], "unreachable", "{server:#}");
    let error = server["error"].as_str().unwrap();
    assert!(
        error.contains("the name nosuchhost.invalid does not resolve"),
        "{error}"
    );
    assert!(!error.contains("unreachable"), "{error}");
}

/// A refused logon names the account that was tried and how to give another.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_logon_names_the_account_and_what_to_do() {
    let config = LabConfig {
        faults: vec![fault("EX01", Fault::RejectCredentials)],
        ..fast_lab(1)
    };
    let lab = TestLab::start(config).await;
    let (run, report) = lab.flush_json(&[]).await;
    run.assert_code(2);
    let error = report["servers"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("authentication refused (HTTP 401)"),
        "{error}"
    );
    assert!(error.contains("for LAB\\revoke-admin"), "{error}");
    assert!(error.contains("--user"), "{error}");
}

/// Every missing setting in one run, and where the config file was looked for.
#[tokio::test(flavor = "multi_thread")]
async fn every_missing_setting_is_said_at_once() {
    let flush = Revoke::new(&["flush"]).password("x").run().await;
    flush.assert_code(1);
    let text = &flush.stderr;
    assert!(text.contains("2 problems"), "{text}");
    assert!(text.contains("no servers to flush"), "{text}");
    assert!(text.contains("no WinRM user"), "{text}");
    assert!(text.contains("no config file was read: none at"), "{text}");
    assert!(text.contains("revoke/revoke.toml"), "{text}");

    let disable = Revoke::new(&["disable", "alice", "--yes"])
        .password("x")
        .run()
        .await;
    disable.assert_code(1);
    let text = &disable.stderr;
    assert!(
        text.contains("no directory to change the account in"),
        "{text}"
    );
    assert!(text.contains("no WinRM user"), "{text}");
    assert!(text.contains("--config"), "{text}");
}
