//! Read-only DCs in the convergence gate, on the Samba domain's RODC1
//! (127.0.0.3): Samba shows what matters (an RODC that caches a user's
//! password logs them on by itself until replication reaches it); the
//! embedded directory has no RODC.

use std::time::Duration;

use crate::common::dc_report;
use crate::samba::{Estate, SambaAd, domain};

#[tokio::test(flavor = "multi_thread")]
async fn an_rodc_that_caches_the_user_keeps_the_run_open_until_it_has_the_disable() {
    let d = domain();
    let estate = Estate::<SambaAd>::start(1).await;
    let rodc = d.dc_host(3).to_string();
    let user = d.new_user("rodc").await;
    d.cache_on_rodc(&[&user.sam]).await;
    d.bind(3, &user.upn, &user.password)
        .await
        .unwrap_or_else(|e| panic!("the RODC should log {} on by itself: {e}", user.sam));

    // The RODC cannot be made to replicate (Samba refuses
    // replicateSingleObject) and is never written: the gate runs out.
    let run = estate
        .revoke(
            "disable",
            &[
                &user.sam,
                "--yes",
                "--output",
                "json",
                "--replication-timeout",
                "4",
            ],
        )
        .run()
        .await;
    run.assert_code(2);
    let report = run.json();
    let rodc_report = dc_report(&report, &rodc);
    assert_eq!(
        rodc_report["status"], "rodc-not-converged",
        "{rodc_report:#}"
    );
    assert_eq!(rodc_report["read_only"], true);
    let message = rodc_report["message"].as_str().unwrap();
    assert!(message.contains(&user.sam), "{message}");
    assert!(
        message.contains("Allowed RODC Password Replication Group"),
        "says what the operator can do: {message}"
    );
    // Which is the truth: the RODC still lets the user in.
    d.bind(3, &user.upn, &user.password)
        .await
        .expect("the stale RODC still accepts the user");
    let human = estate
        .revoke(
            "disable",
            &[&user.sam, "--yes", "--replication-timeout", "2"],
        )
        .run()
        .await;
    human.assert_code(2);
    assert!(
        human.stdout.contains(&format!("{rodc} (read-only)"))
            && human.stdout.contains("rodc-not-converged"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("Exposure window NOT closed"),
        "{}",
        human.stdout
    );

    // Once the RODC has replicated, the gate sees it converge: the object
    // arrives while revoke waits.
    let waiting = estate
        .revoke(
            "disable",
            &[
                &user.sam,
                "--yes",
                "--output",
                "json",
                "--replication-timeout",
                "60",
            ],
        )
        .run();
    let sync = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        d.sync_to_rodc(&user.dn).await;
    };
    let (run, ()) = tokio::join!(waiting, sync);
    run.assert_code(0);
    let report = run.json();
    let rodc_report = dc_report(&report, &rodc);
    assert_eq!(rodc_report["status"], "replicated", "{rodc_report:#}");
    assert_eq!(
        rodc_report["decided_by"], "replPropertyMetaData",
        "{rodc_report:#}"
    );
    let refused = d.bind(3, &user.upn, &user.password).await.unwrap_err();
    assert!(
        refused.contains("data 533"),
        "the RODC has the disable: {refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_rodc_without_the_users_password_is_low_risk_and_not_waited_for() {
    let d = domain();
    let estate = Estate::<SambaAd>::start(1).await;
    let rodc = d.dc_host(3).to_string();
    let user = d.new_user("norodc").await;

    let run = estate.disable_json(&user.sam).run().await;
    run.assert_code(0);
    let report = run.json();
    let rodc_report = dc_report(&report, &rodc);
    assert_eq!(rodc_report["status"], "not-cached", "{rodc_report:#}");
    assert_eq!(rodc_report["read_only"], true);
    let message = rodc_report["message"].as_str().unwrap();
    assert!(message.starts_with("low risk"), "{message}");
    // It holds no password of the user, so it cannot log them on by itself.
    let refused = d.bind(3, &user.upn, &user.password).await.unwrap_err();
    assert!(!refused.contains("data 533"), "{refused}");

    // The dry run names the RODC and what the gate will do there.
    let user2 = d.new_user("norodc").await;
    d.cache_on_rodc(&[&user2.sam]).await;
    let dry = estate
        .revoke(
            "disable",
            &[user2.sam.as_str(), "--dry-run", "--output", "json"],
        )
        .run()
        .await;
    dry.assert_code(0);
    let report = dry.json();
    let planned = dc_report(&report, &rodc);
    assert_eq!(planned["read_only"], true);
    let message = planned["message"].as_str().unwrap();
    assert!(message.contains("never written"), "{message}");
    assert!(
        message.contains(&format!("{} enabled", user2.sam)),
        "{message}"
    );
    let dc2 = dc_report(&report, d.dc_host(2));
    let message = dc2["message"].as_str().unwrap();
    assert!(message.contains("--direct-write auto"), "{message}");
}
