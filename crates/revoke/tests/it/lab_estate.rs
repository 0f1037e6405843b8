//! The whole estate to try revoke on: `revoke lab --embedded-directory` run as
//! a user runs it, then the real commands against the revoke.toml it wrote,
//! with no other setup. And OpenLDAP's own clients (ldap-utils) against the
//! embedded directory, so it is known to speak LDAP to a client that is not
//! revoke's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use revoke_lab::LAB_DEFAULT_PASSWORD;
use revoke_lab::directory::{DcConfig, Directory, DirectoryConfig, SeedExchangeServer, SeedUser};

use crate::common::{LabProcess, Revoke, tls_trusting};

/// The `(APM virtual server ...)` URL the lab printed: alice's phone.
fn phone_url(stdout: &str) -> String {
    stdout
        .lines()
        .find(|l| l.contains("(APM virtual server"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no virtual server URL printed:\n{stdout}"))
        .to_string()
}

/// A status of one ActiveSync request through the BIG-IP as alice's phone.
async fn phone(url: &str, ca: &Path, password: &str) -> u16 {
    let tls = tls_trusting(&std::fs::read(ca).unwrap());
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    http.get(url)
        .basic_auth("LAB\\alice", Some(password))
        .send()
        .await
        .expect("the BIG-IP answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_lab_with_an_embedded_directory_is_an_estate_revoke_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab").join("revoke.toml");
    let mut lab = LabProcess::start(&[
        "lab",
        "--embedded-directory",
        "--servers",
        "2",
        "--write-config",
        config.to_str().unwrap(),
    ]);
    lab.wait_running().await;
    let stdout = lab.stdout();
    // It says what to try: the users and their passwords, and the commands.
    for says in [
        "alice",
        "Alice-Lab-Passw0rd!",
        "bob",
        "admin-ann",
        &format!("export REVOKE_PASSWORD='{LAB_DEFAULT_PASSWORD}'"),
        &format!("revoke disable alice --config {}", config.display()),
    ] {
        assert!(stdout.contains(says), "{says:?} not in:\n{stdout}");
    }
    let text = std::fs::read_to_string(&config).unwrap();
    for section in ["[winrm]", "[directory]", "[f5]"] {
        assert!(text.contains(section), "{section} not in:\n{text}");
    }
    assert!(!text.contains(LAB_DEFAULT_PASSWORD), "{text}");
    let config_arg = config.to_str().unwrap();
    let revoke = |args: &[&str]| Revoke::new(args).password(LAB_DEFAULT_PASSWORD);

    // Every check passes, the operator's replication right included.
    let run = revoke(&["doctor", "--output", "json", "--config", config_arg])
        .run()
        .await;
    run.assert_code(0);
    let report = run.json();
    assert_eq!(report["ok"], true, "{report:#}");
    let rows = report["checks"].as_array().unwrap();
    let sync = rows
        .iter()
        .find(|r| r["check"] == "replication-sync" && r["target"] == "127.0.0.2")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert!(
        sync["detail"]
            .as_str()
            .unwrap()
            .contains("has Replication Synchronization"),
        "{sync:#}"
    );
    for check in ["f5-sessions", "pools", "operator", "dc-bind"] {
        assert!(
            rows.iter().any(|r| r["check"] == check),
            "{check}: {report:#}"
        );
    }

    // Alice's phone is in, through the BIG-IP.
    let url = phone_url(&stdout);
    let lab_ca = config.with_file_name("lab-ca.pem");
    assert_eq!(phone(&url, &lab_ca, "Alice-Lab-Passw0rd!").await, 200);

    // disable: no other setup; every DC has it, the caches and the APM
    // session are gone, and the phone is refused.
    let run = revoke(&[
        "disable", "alice", "--yes", "--output", "json", "--config", config_arg,
    ])
    .run()
    .await;
    run.assert_code(0);
    let report = run.json();
    assert_eq!(report["exposure"]["closed"], true, "{report:#}");
    assert_eq!(
        report["directory"]["users"][0]["status"], "disabled",
        "{report:#}"
    );
    let dcs = report["directory"]["domain_controllers"]
        .as_array()
        .unwrap();
    assert_eq!(dcs.len(), 2, "{report:#}");
    assert_eq!(report["f5"][0]["status"], "ok", "{report:#}");
    assert_eq!(report["f5"][0]["killed"], 1, "{report:#}");
    assert_ne!(phone(&url, &lab_ca, "Alice-Lab-Passw0rd!").await, 200);

    // reset: bob's new password goes to a file, and the run is clean.
    let password_file = dir.path().join("bob.pw");
    let run = revoke(&[
        "reset",
        "bob",
        "--yes",
        "--output",
        "json",
        "--password-file",
        password_file.to_str().unwrap(),
        "--config",
        config_arg,
    ])
    .run()
    .await;
    run.assert_code(0);
    assert_eq!(run.json()["directory"]["users"][0]["status"], "reset");
    assert!(
        std::fs::read_to_string(&password_file)
            .unwrap()
            .trim()
            .len()
            >= 20
    );

    // The protected account is refused, as on a real domain.
    let run = revoke(&["disable", "admin-ann", "--yes", "--config", config_arg])
        .run()
        .await;
    run.assert_code(3);
    assert!(run.stderr.contains("adminCount=1"), "{}", run.stderr);
}

// ------------------------------------------------------------ OpenLDAP's clients

/// The embedded directory, its CA on disk, the operator's password in a
/// file for `-y` (never on a command line).
struct Ldap {
    directory: Directory,
    dir: tempfile::TempDir,
    ca: PathBuf,
    operator_pw: PathBuf,
}

const OPERATOR_PASSWORD: &str = "Op-Passw0rd-ldaputils";

async fn ldap_directory() -> Ldap {
    let directory = Directory::start(DirectoryConfig {
        dcs: (1..=2)
            .map(|n| DcConfig {
                address: std::net::Ipv4Addr::new(127, 0, 0, n),
                replication_delay: None,
            })
            .collect(),
        ldap_port: Some(0),
        operator: Some(("revoke-op".into(), OPERATOR_PASSWORD.into())),
        users: vec![SeedUser {
            mail: Some("alice.example@lab.example.test".into()),
            ..SeedUser::new("alice", "Alice-Passw0rd-1")
        }],
        exchange_servers: vec![
            SeedExchangeServer {
                name: "EX01".into(),
                fqdn: "ex01.lab.example.test".into(),
                roles: 6,
                version: "Version 15.1 (Build 30225.42)".into(),
            },
            SeedExchangeServer {
                name: "EDGE01".into(),
                fqdn: "edge01.lab.example.test".into(),
                roles: 64,
                version: "Version 15.1 (Build 2507.6)".into(),
            },
        ],
        ..DirectoryConfig::default()
    })
    .await
    .expect("directory");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, directory.ca_pem()).unwrap();
    // -y takes the whole file as the password: no newline.
    let operator_pw = dir.path().join("op.pw");
    std::fs::write(&operator_pw, OPERATOR_PASSWORD).unwrap();
    owner_only(&operator_pw);
    Ldap {
        directory,
        dir,
        ca,
        operator_pw,
    }
}

/// A password file as the tools want it (they warn about any other mode).
fn owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// What an OpenLDAP tool printed, and its exit code (the LDAP result code).
struct Tool {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ldap {
    /// `TOOL -H URL [-ZZ] -x -D revoke-op@... -y PWFILE ARGS`, trusting only
    /// the directory's CA (the variables override ldap.conf; HOME has no
    /// .ldaprc).
    fn run(&self, tool: &str, url: &str, args: &[&str], stdin: Option<&str>) -> Tool {
        let mut command = Command::new(tool);
        command
            .args(["-H", url])
            .args(if url.starts_with("ldap://") {
                &["-ZZ"][..]
            } else {
                &[][..]
            })
            .args(["-x", "-D", "revoke-op@lab.example.test", "-y"])
            .arg(&self.operator_pw)
            .args(args)
            .env("HOME", self.dir.path())
            .env("LDAPTLS_CACERT", &self.ca)
            .env("LDAPTLS_REQCERT", "demand")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {tool} ({e}): install OpenLDAP's clients, Debian's ldap-utils \
                 (bash scripts/setup-test-deps.sh does)"
            )
        });
        {
            use std::io::Write;
            let mut input = child.stdin.take().unwrap();
            if let Some(text) = stdin {
                input.write_all(text.as_bytes()).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        Tool {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn search(&self, url: &str, base: &str, scope: &str, filter: &str, attrs: &[&str]) -> Tool {
        let mut args = vec![
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-b",
            base,
            "-s",
            scope,
            filter,
        ];
        args.extend_from_slice(attrs);
        self.run("ldapsearch", url, &args, None)
    }

    fn modify(&self, url: &str, ldif: &str) -> Tool {
        self.run("ldapmodify", url, &[], Some(ldif))
    }
}

/// The `dn:` lines of an LDIF answer.
fn dns(ldif: &str) -> Vec<String> {
    ldif.lines()
        .filter_map(|l| l.strip_prefix("dn: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn openldap_clients_bind_search_and_are_refused_like_ad() {
    let ldap = ldap_directory().await;
    let d = &ldap.directory;
    let base = d.base_dn().to_string();
    let alice = format!("CN=alice,OU=Staff,{base}");
    let ldaps = d.ldaps_url(1);
    let starttls = d.ldap_url(1).expect("a StartTLS listener");

    for url in [&ldaps, &starttls] {
        // The rootDSE, as revoke reads it first.
        let root = ldap.search(
            url,
            "",
            "base",
            "(objectClass=*)",
            &["defaultNamingContext", "dsServiceName"],
        );
        assert_eq!(root.code, 0, "{url}: {}", root.stderr);
        assert!(
            root.stdout
                .contains(&format!("defaultNamingContext: {base}")),
            "{}",
            root.stdout
        );
        assert!(
            root.stdout
                .contains(&format!("dsServiceName: {}", d.dsa_dn(1))),
            "{}",
            root.stdout
        );

        // The filters revoke resolves an account with (identity.rs).
        for filter in [
            "(&(sAMAccountType=805306368)(sAMAccountName=alice))".to_string(),
            "(&(sAMAccountType=805306368)(|(userPrincipalName=alice.example@lab.example.test)(mail=alice.example@lab.example.test)))".to_string(),
            format!("(&(sAMAccountType=805306368)(userPrincipalName=alice@{}))", d.dns_domain()),
        ] {
            let found = ldap.search(url, &base, "sub", &filter, &["sAMAccountName", "userAccountControl"]);
            assert_eq!(found.code, 0, "{url} {filter}: {}", found.stderr);
            assert_eq!(dns(&found.stdout), std::slice::from_ref(&alice), "{url} {filter}: {}", found.stdout);
        }
        // The domain controllers (topology.rs) and the Exchange servers with
        // AD's bitwise matching rule, Edge left out (discovery.rs).
        let sites = format!("CN=Sites,{}", d.config_dn());
        let nc = base.clone();
        let filter = format!(
            "(&(objectClass=nTDSDSA)(|(msDS-hasMasterNCs={nc})(hasMasterNCs={nc})(msDS-hasFullReplicaNCs={nc})))"
        );
        let found = ldap.search(url, &sites, "sub", &filter, &["msDS-isRODC"]);
        assert_eq!(found.code, 0, "{}", found.stderr);
        let mut got = dns(&found.stdout);
        got.sort();
        assert_eq!(
            got,
            [d.dsa_dn(1).to_string(), d.dsa_dn(2).to_string()],
            "{}",
            found.stdout
        );
        let found = ldap.search(
            url,
            d.config_dn(),
            "sub",
            "(&(objectClass=msExchExchangeServer)(!(msExchCurrentServerRoles:1.2.840.113556.1.4.803:=64)))",
            &["networkAddress"],
        );
        assert_eq!(found.code, 0, "{}", found.stderr);
        let got = dns(&found.stdout);
        assert_eq!(got.len(), 1, "{}", found.stdout);
        assert!(got[0].starts_with("CN=EX01,"), "{got:?}");
    }

    // A wrong password: result 49 with AD's data 52e.
    let wrong = ldap.dir.path().join("wrong.pw");
    std::fs::write(&wrong, "not-the-password").unwrap();
    owner_only(&wrong);
    let refused = Command::new("ldapwhoami")
        .args(["-H", &ldaps, "-x", "-D", "revoke-op@lab.example.test", "-y"])
        .arg(&wrong)
        .env("HOME", ldap.dir.path())
        .env("LDAPTLS_CACERT", &ldap.ca)
        .env("LDAPTLS_REQCERT", "demand")
        .output()
        .expect("ldapwhoami");
    assert_eq!(refused.status.code(), Some(49));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("data 52e"),
        "{refused:?}"
    );
    // "Who am I?", answered as Windows answers it.
    let who = ldap.run("ldapwhoami", &ldaps, &[], None);
    assert_eq!(who.code, 0, "{}", who.stderr);
    assert_eq!(who.stdout.trim(), "u:LAB\\revoke-op");

    // The operator's delegated write: disabling alice on DC1 (over StartTLS).
    let disable = ldap.modify(
        &starttls,
        &format!("dn: {alice}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n-\n"),
    );
    assert_eq!(disable.code, 0, "{}", disable.stderr);
    let read = ldap.search(
        &ldaps,
        &alice,
        "base",
        "(objectClass=*)",
        &["userAccountControl"],
    );
    assert!(
        read.stdout.contains("userAccountControl: 514"),
        "{}",
        read.stdout
    );

    // What AD refuses, refused with AD's result code and text:
    // a write outside the operator's delegation (insufficientAccessRights, 50)...
    let admin = format!("CN=Administrator,CN=Users,{base}");
    let outside = ldap.modify(
        &ldaps,
        &format!("dn: {admin}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n-\n"),
    );
    assert_eq!(outside.code, 50, "{}", outside.stderr);
    assert!(
        outside.stderr.contains("Insufficient access"),
        "{}",
        outside.stderr
    );
    assert!(outside.stderr.contains("00002098"), "{}", outside.stderr);
    // ...and userAccountControl with two values (constraintViolation, 19).
    let two = ldap.modify(
        &ldaps,
        &format!("dn: {alice}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 512\nuserAccountControl: 514\n-\n"),
    );
    assert_eq!(two.code, 19, "{}", two.stderr);
    assert!(
        two.stderr.contains("Constraint violation"),
        "{}",
        two.stderr
    );
    assert!(
        two.stderr.contains("takes exactly one value"),
        "{}",
        two.stderr
    );
    // Forcing replication: refused as Samba refuses it (unwillingToPerform, 53).
    let force = ldap.modify(
        &ldaps,
        &format!(
            "dn:\nchangetype: modify\nreplace: replicateSingleObject\nreplicateSingleObject: {}:{alice}\n-\n",
            d.dsa_dn(1)
        ),
    );
    assert_eq!(force.code, 53, "{}", force.stderr);
    assert!(
        force
            .stderr
            .contains("rootdse_modify: unknown attribute to change!"),
        "{}",
        force.stderr
    );
    // Nothing of those reached alice.
    let read = ldap.search(
        &ldaps,
        &alice,
        "base",
        "(objectClass=*)",
        &["userAccountControl"],
    );
    assert!(
        read.stdout.contains("userAccountControl: 514"),
        "{}",
        read.stdout
    );
}
