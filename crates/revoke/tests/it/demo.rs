//! `revoke demo`, the README's first command: the real binary, nothing set up.

use crate::common::Revoke;

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_shows_the_bug_and_revoke_closing_it() {
    let run = Revoke::new(&["demo"]).run().await;
    run.assert_code(0);
    let out = &run.stdout;
    // The bug: disabled in AD by hand, and the phone still syncs.
    assert!(out.contains("data 533"), "{out}");
    // AD's code comes with its meaning.
    assert!(out.contains("refuses her: account disabled"), "{out}");
    assert!(out.contains("4 of 4 syncs still succeed"), "{out}");
    // The fix: revoke's report, then the phone is refused everywhere.
    assert!(
        out.contains("IIS token caches and APM sessions closed at"),
        "{out}"
    );
    // And what it cannot close: Kerberos tickets, until when.
    assert!(out.contains("may be used until"), "{out}");
    assert!(out.contains("3 of 3 syncs refused"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_report_is_revokes_json_report() {
    let run = Revoke::new(&["demo", "--output", "json", "--servers", "3"])
        .run()
        .await;
    run.assert_code(0);
    let report = run.json();
    assert_eq!(report["action"], "disable");
    let user = &report["directory"]["users"][0];
    // The helpdesk had disabled her on DC1 already; DC2 had not heard of it.
    assert_eq!(user["status"], "already-disabled");
    let dcs = report["directory"]["domain_controllers"]
        .as_array()
        .unwrap();
    assert_eq!(dcs.len(), 2);
    assert_eq!(dcs[1]["status"], "direct-write", "{dcs:#?}");
    assert_eq!(report["f5"][0]["killed"], 1, "{:#}", report["f5"]);
    assert_eq!(report["summary"]["ok"], 3);
    assert_eq!(report["exposure"]["closed"], true);
}
