//! A forest of two domains, which only the embedded directory can show
//! (Samba cannot host a child domain): lab.example.test (LAB) and its child
//! child.lab.example.test (CHILD), each with two DCs, and a Global Catalog.
//! revoke is pointed at the root's DC1 and its GC: names are looked up in the
//! GC, the change is made on a child DC and gated on the child's DCs only;
//! a name in both domains is ambiguous; a child user in the root's
//! Enterprise Admins is refused.

use std::net::Ipv4Addr;

use revoke_lab::LabConfig;
use revoke_lab::directory::{ChildDomainConfig, DcConfig, Directory, DirectoryConfig, SeedUser};
use serde_json::Value;

use crate::common::{Revoke, Run, TestLab, fast_lab};

const ADMIN_PASSWORD: &str = "Forest-Adm1n-Passw0rd";
const USER_PASSWORD: &str = "User-Passw0rd-1";
/// Loopback addresses of this module's DCs (ports are free ones).
const ROOT_DCS: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 77, 1), Ipv4Addr::new(127, 0, 77, 2)];
const CHILD_DCS: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 77, 11), Ipv4Addr::new(127, 0, 77, 12)];

fn dcs(addresses: &[Ipv4Addr]) -> Vec<DcConfig> {
    addresses
        .iter()
        .map(|address| DcConfig {
            address: *address,
            replication_delay: None,
        })
        .collect()
}

/// The forest, a lab of one server, and a revoke.toml that binds to the
/// root's DC1 as the root's Administrator (an Enterprise Admin, so it may
/// change accounts in both domains).
async fn forest(root_users: &[&str], child_users: &[&str]) -> (Directory, TestLab) {
    let users = |names: &[&str]| {
        names
            .iter()
            .map(|sam| SeedUser::new(sam, USER_PASSWORD))
            .collect::<Vec<_>>()
    };
    let config = DirectoryConfig {
        dcs: dcs(&ROOT_DCS),
        ldap_port: None,
        admin_password: ADMIN_PASSWORD.into(),
        users: users(root_users),
        child: Some(ChildDomainConfig {
            dcs: dcs(&CHILD_DCS),
            users: users(child_users),
            ..ChildDomainConfig::default()
        }),
        ..DirectoryConfig::default()
    };
    let directory = Directory::start(config).await.expect("directory");
    let lab = TestLab::start(LabConfig {
        admin_user: "Administrator".into(),
        admin_password: ADMIN_PASSWORD.into(),
        ..fast_lab(1)
    })
    .await;
    let gc = directory.global_catalog_url().expect("a GC");
    lab.use_directory(
        &directory,
        "Administrator@lab.example.test",
        &[
            ("global_catalog", gc.into()),
            ("replication_timeout", 5.into()),
        ],
    );
    (directory, lab)
}

async fn disable(lab: &TestLab, users: &[&str]) -> Run {
    let mut args = vec!["disable"];
    args.extend(users);
    args.extend([
        "--yes",
        "--output",
        "json",
        "--config",
        lab.config.to_str().unwrap(),
    ]);
    Revoke::new(&args).password(ADMIN_PASSWORD).run().await
}

fn dc_hosts(report: &Value) -> Vec<String> {
    let mut hosts: Vec<String> = report["directory"]["domain_controllers"]
        .as_array()
        .unwrap_or_else(|| panic!("no domain_controllers in {report:#}"))
        .iter()
        .map(|dc| dc["host"].as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    hosts
}

fn hosts(addresses: &[Ipv4Addr]) -> Vec<String> {
    addresses.iter().map(|a| a.to_string()).collect()
}

fn uac(entry: Option<std::collections::HashMap<String, Vec<String>>>) -> String {
    entry.expect("the account exists")["userAccountControl"][0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_user_is_found_through_the_global_catalog_and_gated_on_the_childs_dcs() {
    let (directory, lab) = forest(&[], &["cupn", "cnetbios", "cdn"]).await;
    let child = directory.child().unwrap();
    let dn = |sam: &str| format!("CN={sam},OU=Staff,{}", child.base_dn());

    for (sam, typed) in [
        ("cupn", "cupn@child.lab.example.test".to_string()),
        ("cnetbios", "CHILD\\cnetbios".to_string()),
        ("cdn", dn("cdn")),
    ] {
        let run = disable(&lab, &[&typed]).await;
        let report = run.json();
        assert_eq!(run.code, 0, "{typed}: {report:#}\n{}", run.stderr);
        let user = &report["directory"]["users"][0];
        assert_eq!(user["dn"], dn(sam), "{typed}: {user:#}");
        assert_eq!(user["status"], "disabled", "{typed}: {user:#}");
        // Written on a child DC and checked on the other: never the root's DCs.
        assert_eq!(dc_hosts(&report), hosts(&CHILD_DCS), "{typed}: {report:#}");
        for dc in 1..=2 {
            assert_eq!(
                uac(child.read(dc, &dn(sam))),
                "514",
                "{typed} on child DC{dc}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_in_both_domains_is_ambiguous_and_nothing_changes() {
    let (directory, lab) = forest(&["twin"], &["twin"]).await;
    let child = directory.child().unwrap();
    let root_dn = format!("CN=twin,OU=Staff,{}", directory.base_dn());
    let child_dn = format!("CN=twin,OU=Staff,{}", child.base_dn());

    let run = disable(&lab, &["twin"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("matches 2 user objects"),
        "{}",
        run.stderr
    );
    for dn in [&root_dn, &child_dn] {
        assert!(run.stderr.contains(dn.as_str()), "{dn}: {}", run.stderr);
    }
    assert_eq!(uac(directory.read(1, &root_dn)), "512");
    assert_eq!(uac(child.read(1, &child_dn)), "512");

    // Named with its domain, it is one account again.
    let run = disable(&lab, &["CHILD\\twin"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(uac(child.read(1, &child_dn)), "514");
    assert_eq!(uac(directory.read(1, &root_dn)), "512");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enterprise_admin_who_lives_in_the_child_is_refused() {
    let (directory, lab) = forest(&[], &["child-ea"]).await;
    let child = directory.child().unwrap();
    let user = format!("CN=child-ea,OU=Staff,{}", child.base_dn());
    let enterprise_admins = format!("CN=Enterprise Admins,CN=Users,{}", directory.base_dn());
    directory.add_member(1, &enterprise_admins, &user).unwrap();

    let run = disable(&lab, &["child-ea@child.lab.example.test"]).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("is a member of Enterprise Admins"),
        "{}",
        run.stderr
    );
    assert_eq!(uac(child.read(1, &user)), "512");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_root_user_is_changed_on_the_roots_dcs_as_before() {
    let (directory, lab) = forest(&["rootonly"], &[]).await;
    let dn = format!("CN=rootonly,OU=Staff,{}", directory.base_dn());
    let run = disable(&lab, &["rootonly"]).await;
    let report = run.json();
    assert_eq!(run.code, 0, "{report:#}\n{}", run.stderr);
    assert_eq!(report["directory"]["users"][0]["dn"], dn);
    assert_eq!(dc_hosts(&report), hosts(&ROOT_DCS), "{report:#}");
    assert_eq!(uac(directory.read(2, &dn)), "514");
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_of_two_domains_in_one_run_are_refused_naming_the_domains() {
    let (directory, lab) = forest(&["rooty"], &["childy"]).await;
    let child = directory.child().unwrap();
    let run = disable(&lab, &["rooty", "childy"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    for says in [
        "LAB (lab.example.test) (rooty)",
        "CHILD (child.lab.example.test) (childy)",
        "run it once per domain",
    ] {
        assert!(run.stderr.contains(says), "{says}: {}", run.stderr);
    }
    let root_dn = format!("CN=rooty,OU=Staff,{}", directory.base_dn());
    let child_dn = format!("CN=childy,OU=Staff,{}", child.base_dn());
    assert_eq!(uac(directory.read(1, &root_dn)), "512");
    assert_eq!(uac(child.read(1, &child_dn)), "512");
}
