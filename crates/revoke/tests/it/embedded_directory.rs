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
    lab.use_directory(
        &directory,
        "revoke-op@lab.example.test",
        &[("replication_timeout", 20.into())],
    );

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

/// OpenLDAP's `ldapwhoami` and `ldapsearch` (ldap-utils, which
/// scripts/test.sh installs) against the embedded directory: "Who am I?"
/// answers as Windows does (`u:DOMAIN\sam`), tokenGroups is served on a
/// base search, and a paged search (`-E pr=2`) gets every entry.
#[tokio::test(flavor = "multi_thread")]
async fn independent_ldap_clients_see_who_am_i_token_groups_and_pages() {
    let d = crate::samba::embedded_domain();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("pw");
    // -y reads the whole file: no newline, and never on the command line.
    std::fs::write(&password_file, d.operator_password()).unwrap();
    let tool = |name: &str, args: &[&str]| {
        let out = std::process::Command::new(name)
            .args(["-x", "-H", &d.dc_url(1), "-D", d.operator_upn(), "-y"])
            .arg(&password_file)
            .args(args)
            .env("LDAPTLS_CACERT", d.ca_file())
            .env("LDAPTLS_REQCERT", "demand")
            .output()
            .unwrap_or_else(|e| {
                panic!("{name} is needed (Debian: apt-get install ldap-utils; scripts/test.sh installs it): {e}")
            });
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{name} {args:?}: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let me = tool("ldapwhoami", &[]);
    assert_eq!(
        me.trim(),
        format!("u:{}\\{}", d.netbios_domain(), d.operator_sam())
    );

    let user = d
        .user("tokgrp")
        .member_of(&d.backup_operators_dn())
        .create()
        .await;
    let token = tool(
        "ldapsearch",
        &["-LLL", "-b", &user.dn, "-s", "base", "tokenGroups"],
    );
    // Domain Users (its primary group) and Backup Operators (S-1-5-32-551,
    // binary: 01 02 00 00 00 00 00 05 20 00 00 00 27 02 00 00).
    let values: Vec<&str> = token
        .lines()
        .filter_map(|l| l.strip_prefix("tokenGroups:: "))
        .collect();
    assert!(values.contains(&"AQIAAAAAAAUgAAAAJwIAAA=="), "{token}");
    assert!(values.len() >= 2, "{token}");

    let base = d.staff_dn();
    let count = |out: &str| out.lines().filter(|l| l.starts_with("dn: ")).count();
    let all = count(&tool(
        "ldapsearch",
        &["-LLL", "-b", &base, "(objectClass=user)", "1.1"],
    ));
    let paged = tool(
        "ldapsearch",
        &[
            "-LLL",
            "-E",
            "pr=2/noprompt",
            "-b",
            &base,
            "(objectClass=user)",
            "1.1",
        ],
    );
    assert!(all > 4, "{all} users in {base}");
    assert_eq!(count(&paged), all, "{paged}");
}

/// A directory whose MaxPageSize is 3 (AD's is 1,000): a search that
/// matches more must still find every entry — the ambiguous name lists all
/// seven users, `revoke servers` lists all five Exchange servers.
#[tokio::test(flavor = "multi_thread")]
async fn searches_page_past_the_directory_page_size() {
    use revoke_lab::directory::SeedExchangeServer;
    let password = "Op-Passw0rd-page";
    let shared = "shared@page.example.test";
    let config = DirectoryConfig {
        dcs: vec![DcConfig {
            address: Ipv4Addr::new(127, 0, 0, 1),
            replication_delay: None,
        }],
        ldap_port: None,
        operator: Some(("revoke-op".into(), password.into())),
        users: (1..=7)
            .map(|n| SeedUser {
                mail: Some(shared.into()),
                ..SeedUser::new(&format!("page{n}"), "Page-Passw0rd")
            })
            .collect(),
        exchange_servers: (1..=5)
            .map(|n| SeedExchangeServer {
                name: format!("EX{n:02}"),
                fqdn: format!("ex{n:02}.lab.example.test"),
                roles: 6,
                version: "Version 15.2 (Build 1118.7)".into(),
            })
            .collect(),
        ..DirectoryConfig::default()
    };
    let directory = Directory::start(config).await.expect("directory");
    directory.set_max_page_size(3);
    let lab = lab_for(&directory, password, false).await;
    let config_path = lab.config.to_str().unwrap();

    let run = Revoke::new(&["disable", shared, "--dry-run", "--config", config_path])
        .password(password)
        .run()
        .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("matches 7 user objects"),
        "{}",
        run.stderr
    );
    for n in 1..=7 {
        let dn = format!("CN=page{n},OU=Staff,{}", directory.base_dn());
        assert!(run.stderr.contains(&dn), "{dn}: {}", run.stderr);
    }

    let run = Revoke::new(&["servers", "--output", "json", "--config", config_path])
        .password(password)
        .run()
        .await;
    run.assert_code(0);
    let servers = run.json()["servers"].as_array().unwrap().len();
    assert_eq!(servers, 5, "{}", run.stdout);
}

/// A lab of one server whose revoke.toml points at `directory` (DC1) and
/// binds as revoke-op; `list_servers: false` leaves discovery to AD.
async fn lab_for(directory: &Directory, password: &str, list_servers: bool) -> TestLab {
    let lab = TestLab::start(LabConfig {
        admin_user: "revoke-op".into(),
        admin_password: password.into(),
        ..fast_lab(1)
    })
    .await;
    if !list_servers {
        lab.edit_config(|config| {
            config.remove("servers");
        });
    }
    lab.use_directory(directory, "revoke-op@lab.example.test", &[]);
    lab
}

/// The forest has a child domain (a crossRef; its DCs are elsewhere): a
/// search of the root domain comes back with a continuation reference to
/// it. `jsmith` (or a UPN or mail address) might be the child's jsmith too,
/// so revoke refuses instead of silently taking the root's; `LAB\jsmith`
/// and the DN name the root's account; a DN in the child domain gets the
/// DC's referral and what to do. Nothing is changed.
#[tokio::test(flavor = "multi_thread")]
async fn a_name_the_dc_refers_to_another_domain_is_not_guessed() {
    let password = "Op-Passw0rd-refer";
    let config = DirectoryConfig {
        dcs: vec![DcConfig {
            address: Ipv4Addr::new(127, 0, 0, 1),
            replication_delay: None,
        }],
        ldap_port: None,
        operator: Some(("revoke-op".into(), password.into())),
        users: vec![SeedUser::new("jsmith", "Jsmith-Passw0rd")],
        ..DirectoryConfig::default()
    };
    let directory = Directory::start(config).await.expect("directory");
    let child_nc = format!("DC=child,{}", directory.base_dn());
    let cross_ref = format!("CN=CHILD,CN=Partitions,{}", directory.config_dn());
    directory
        .add(
            1,
            &cross_ref,
            &[
                ("objectClass", &[b"crossRef"]),
                ("nCName", &[child_nc.as_bytes()]),
                ("dnsRoot", &[b"child.lab.example.test"]),
                ("nETBIOSName", &[b"CHILD"]),
                ("systemFlags", &[b"3"]),
            ],
        )
        .unwrap();
    let lab = lab_for(&directory, password, true).await;
    let config_path = lab.config.to_str().unwrap();
    let revoke = |args: &[&str]| {
        let mut all = vec!["disable", "--config", config_path];
        all.extend_from_slice(args);
        Revoke::new(&all).password(password)
    };
    let dn = format!("CN=jsmith,OU=Staff,{}", directory.base_dn());
    let child_url = format!("ldaps://child.lab.example.test/{child_nc}");
    for name in ["jsmith", "jsmith@lab.example.test"] {
        let run = revoke(&[name, "--yes"]).run().await;
        run.assert_code(1);
        assert!(run.stderr.contains("referred the search"), "{}", run.stderr);
        assert!(run.stderr.contains(&child_url), "{}", run.stderr);
        assert!(run.stderr.contains(&dn), "{}", run.stderr);
    }
    for name in ["LAB\\jsmith", dn.as_str()] {
        revoke(&[name, "--dry-run", "-q"])
            .run()
            .await
            .assert_code(0);
    }
    let in_child = format!("CN=jsmith,CN=Users,{child_nc}");
    let run = revoke(&[&in_child, "--yes"]).run().await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("is not in this DC's domain"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("child.lab.example.test"),
        "{}",
        run.stderr
    );
    assert_eq!(
        directory.read(1, &dn).unwrap()["userAccountControl"],
        ["512"]
    );
    let commands = lab.all_commands();
    assert!(
        !commands.iter().any(|(_, c)| crate::common::is_mutating(c)),
        "{commands:?}"
    );
}
