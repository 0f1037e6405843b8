//! Forced replication as Windows serves it, which only the embedded directory
//! can show (Samba refuses `replicateSingleObject` outright): it needs the
//! Replication Synchronization right, a refusal names the right and the
//! command that grants it, and a DC that pulled the object is reported
//! `forced`.

use std::net::Ipv4Addr;

use revoke_lab::LabConfig;
use revoke_lab::directory::{DcConfig, Directory, DirectoryConfig, SeedUser};
use serde_json::Value;

use crate::common::{Revoke, TestLab, fast_lab};

const OPERATOR_PASSWORD: &str = "Op-Passw0rd-forced";

/// Two DCs on 127.0.0.1 and .2 (DC2 never replicates by itself), forced
/// replication served, a lab of one server and its revoke.toml.
async fn windows_like_estate(users: &[&str]) -> (Directory, TestLab) {
    let config = DirectoryConfig {
        dcs: (1..=2)
            .map(|n| DcConfig {
                address: Ipv4Addr::new(127, 0, 0, n),
                replication_delay: None,
            })
            .collect(),
        ldap_port: None,
        operator: Some(("revoke-op".into(), OPERATOR_PASSWORD.into())),
        users: users
            .iter()
            .map(|sam| SeedUser::new(sam, "User-Passw0rd-1"))
            .collect(),
        ..DirectoryConfig::default()
    };
    let directory = Directory::start(config).await.expect("directory");
    directory.set_forced_replication(true);
    let lab = TestLab::start(LabConfig {
        admin_user: "revoke-op".into(),
        admin_password: OPERATOR_PASSWORD.into(),
        ..fast_lab(1)
    })
    .await;
    lab.use_directory(
        &directory,
        "revoke-op@lab.example.test",
        &[("replication_timeout", 3.into())],
    );
    (directory, lab)
}

async fn disable(lab: &TestLab, sam: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "disable",
        sam,
        "--yes",
        "--output",
        "json",
        "--config",
        lab.config.to_str().unwrap(),
    ];
    args.extend(extra);
    let run = Revoke::new(&args).password(OPERATOR_PASSWORD).run().await;
    (run.code, run.json())
}

fn dc2(report: &Value) -> &Value {
    report["directory"]["domain_controllers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|dc| dc["host"] == "127.0.0.2")
        .unwrap_or_else(|| panic!("no DC2 in {report:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn forced_replication_needs_its_right_and_a_refusal_names_it() {
    let (directory, lab) = windows_like_estate(&["force1", "force2", "force3"]).await;

    // Without the right: under auto the change is written on DC2 directly,
    // and the report says which right was missing and how to grant it.
    let (code, report) = disable(&lab, "force1", &[]).await;
    assert_eq!(code, 0, "{report:#}");
    let dc = dc2(&report);
    assert_eq!(dc["status"], "direct-write", "{dc:#}");
    let message = dc["message"].as_str().unwrap();
    for says in [
        "missing right \"Replication Synchronization\"",
        "dsacls \"DC=lab,DC=example,DC=test\" /G \"revoke-op@lab.example.test:CA;Replication Synchronization\"",
    ] {
        assert!(message.contains(says), "{message}");
    }

    // Under never, the same refusal leaves DC2 open, and says why.
    let (code, report) = disable(&lab, "force2", &["--direct-write", "never"]).await;
    assert_eq!(code, 2, "{report:#}");
    let dc = dc2(&report);
    assert_eq!(dc["status"], "not-converged", "{dc:#}");
    assert!(
        dc["message"].as_str().unwrap().contains("missing right"),
        "{dc:#}"
    );

    // With the right, DC2 pulls the object when asked: forced, decided by
    // the metadata Windows constructs.
    let operator = format!("CN=revoke-op,CN=Users,{}", directory.base_dn());
    directory.grant_replication_sync(&operator);
    let (code, report) = disable(&lab, "force3", &["--direct-write", "never"]).await;
    assert_eq!(code, 0, "{report:#}");
    let dc = dc2(&report);
    assert_eq!(dc["status"], "forced", "{dc:#}");
    assert_eq!(dc["decided_by"], "msDS-ReplAttributeMetaData", "{dc:#}");
    let dn = format!("CN=force3,OU=Staff,{}", directory.base_dn());
    assert_eq!(
        directory.read(2, &dn).unwrap()["userAccountControl"],
        ["514"]
    );
}
