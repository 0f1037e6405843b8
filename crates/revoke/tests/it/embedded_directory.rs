//! What only the embedded directory can show: the convergence gate at a
//! scale no test Samba domain has (five writable DCs with different
//! replication behaviour), on free ports.

use std::net::Ipv4Addr;
use std::time::Duration;

use revoke_lab::LabConfig;
use revoke_lab::directory::{DcConfig, Directory, DirectoryConfig, SeedUser};

use crate::common::{Revoke, TestLab, fast_lab};

#[tokio::test(flavor = "multi_thread")]
async fn the_gate_handles_five_dcs_that_replicate_differently() {
    let password = "Op-Passw0rd-5dc";
    let delays = [
        None,
        Some(Duration::ZERO), // replicates at once
        None,                 // never: needs a direct write
        Some(Duration::from_secs(600)),
        None,
    ];
    let config = DirectoryConfig {
        dcs: delays
            .iter()
            .enumerate()
            .map(|(i, delay)| DcConfig {
                address: Ipv4Addr::new(127, 0, 0, 1 + i as u8),
                replication_delay: *delay,
            })
            .collect(),
        ldap_port: None,
        operator: Some(("revoke-op".into(), password.into())),
        users: vec![SeedUser::new("five", "Five-Passw0rd")],
        ..DirectoryConfig::default()
    };
    let directory = Directory::start(config).await.expect("directory");
    let lab = TestLab::start(LabConfig {
        admin_user: "revoke-op".into(),
        admin_password: password.into(),
        ..fast_lab(2)
    })
    .await;
    let ca = lab.config.with_file_name("directory-ca.pem");
    std::fs::write(&ca, directory.ca_pem()).unwrap();
    let text = std::fs::read_to_string(&lab.config).unwrap();
    let mut config: toml::Table = text.parse().unwrap();
    let mut section = toml::Table::new();
    section.insert("url".into(), directory.ldaps_url(1).into());
    section.insert("ca_file".into(), ca.display().to_string().into());
    section.insert("bind_user".into(), "revoke-op@lab.example.test".into());
    section.insert("replication_timeout".into(), 20.into());
    config.insert("directory".into(), section.into());
    std::fs::write(&lab.config, config.to_string()).unwrap();

    let started = std::time::Instant::now();
    let run = Revoke::new(&[
        "disable",
        "five",
        "--yes",
        "--output",
        "json",
        "--config",
        lab.config.to_str().unwrap(),
    ])
    .password(password)
    .run()
    .await;
    eprintln!("revoke disable with five DCs: {:?}", started.elapsed());
    run.assert_code(0);
    let report = run.json();
    let statuses: Vec<(String, String)> = report["directory"]["domain_controllers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|dc| {
            (
                dc["host"].as_str().unwrap().to_string(),
                dc["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = |host: &str, status: &str| {
        assert!(
            statuses.contains(&(host.to_string(), status.to_string())),
            "{host} {status}: {statuses:?}"
        );
    };
    expect("127.0.0.1", "written");
    expect("127.0.0.2", "replicated");
    for host in ["127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        expect(host, "direct-write");
    }
    assert_eq!(
        report["exposure"]["closed"], true,
        "{:#}",
        report["exposure"]
    );
    let dn = format!("CN=five,OU=Staff,{}", directory.base_dn());
    for dc in 1..=5 {
        let err = directory
            .bind(dc, "five@lab.example.test", "Five-Passw0rd")
            .unwrap_err();
        assert!(err.message.contains("data 533"), "dc{dc}: {err}");
        assert_eq!(
            directory.read(dc, &dn).unwrap()["userAccountControl"],
            ["514"]
        );
    }
}
