//! Least privilege (issue 9 §10): the LDAP bind, WinRM and the BIG-IPs as
//! three accounts, each with its own password, from its own variable, from
//! one line of stdin per distinct account, or from `$REVOKE_PASSWORD` for
//! all. The real binary against the embedded directory, lab Exchange
//! servers whose WinRM accepts only its own account, and a lab BIG-IP that
//! records every login.

use revoke_core::iis::EXCHANGE_POOLS;
use revoke_lab::bigip::BigIpLogin;
use revoke_lab::{BigIpConfig, LabBigIp, LabConfig};

use crate::common::{Revoke, Run, TestLab, fast_lab, mutation_times};
use crate::samba::{Domain, TestUser, UAC_DISABLED, UAC_ENABLED, embedded_domain};

const WINRM_SAM: &str = "revoke-winrm";
const F5_USER: &str = "revoke-f5";

fn secret(prefix: &str) -> String {
    format!("{prefix}-{:08x}.Pw", getrandom::u32().expect("random"))
}

/// An estate whose three parts may log on as three accounts.
struct Estate {
    domain: &'static Domain,
    lab: TestLab,
    bigip: LabBigIp,
}

/// Who the lab's Exchange servers accept, and how revoke.toml names them.
struct Winrm<'a> {
    sam: &'a str,
    password: &'a str,
    /// `[winrm] user`; None: what the lab writes (`LAB\sam`).
    written: Option<&'a str>,
}

impl Estate {
    /// Two lab Exchange servers accepting `winrm`, one BIG-IP accepting
    /// `f5_user` / `f5_password`, and `[directory]` binding as the operator.
    async fn start(winrm: Winrm<'_>, f5_user: &str, f5_password: &str) -> Estate {
        let domain = embedded_domain();
        let lab = TestLab::start(LabConfig {
            admin_user: winrm.sam.to_string(),
            admin_password: winrm.password.to_string(),
            netbios_domain: domain.netbios_domain().to_string(),
            dns_domain: domain.dns_domain().to_string(),
            ..fast_lab(2)
        })
        .await;
        let bigip = lab
            .lab
            .start_bigip(BigIpConfig {
                admin_user: f5_user.into(),
                admin_password: f5_password.into(),
                ..BigIpConfig::default()
            })
            .await
            .expect("start a lab BIG-IP");
        let text = std::fs::read_to_string(&lab.config).expect("read revoke.toml");
        let mut config: toml::Table = text.parse().expect("the lab's revoke.toml");
        if let Some(user) = winrm.written {
            let section = config
                .get_mut("winrm")
                .and_then(toml::Value::as_table_mut)
                .expect("[winrm]");
            section.insert("user".into(), user.into());
        }
        let mut directory = toml::Table::new();
        directory.insert("url".into(), domain.dc_url(1).into());
        let ca = domain.ca_file().display().to_string();
        directory.insert("ca_file".into(), ca.into());
        directory.insert("bind_user".into(), domain.operator_upn().into());
        config.insert("directory".into(), directory.into());
        let mut f5 = toml::Table::new();
        f5.insert("devices".into(), vec![bigip.device()].into());
        f5.insert("user".into(), f5_user.into());
        f5.insert("ca_file".into(), "lab-ca.pem".into());
        f5.insert("timeout".into(), 10.into());
        config.insert("f5".into(), f5.into());
        std::fs::write(&lab.config, config.to_string()).expect("write revoke.toml");
        Estate { domain, lab, bigip }
    }

    /// `revoke SUBCOMMAND --config <revoke.toml> ARGS`, no password given.
    fn revoke(&self, subcommand: &str, args: &[&str]) -> Revoke {
        let config = self.lab.config.display().to_string();
        let mut all = vec![subcommand, "--config", &config];
        all.extend_from_slice(args);
        Revoke::new(&all)
    }

    fn disable(&self, user: &TestUser) -> Revoke {
        self.revoke("disable", &[&user.sam, "--yes", "--output", "json"])
    }

    fn logins(&self) -> Vec<BigIpLogin> {
        self.bigip.logins()
    }

    /// The BIG-IP was logged on to as `F5_USER` with `password`, and never
    /// offered the operator's (the domain) password.
    #[track_caller]
    fn assert_bigip_saw_only(&self, user: &str, password: &str) {
        let logins = self.logins();
        assert!(!logins.is_empty(), "revoke never logged on to the BIG-IP");
        for login in &logins {
            assert_eq!(login.user, user, "{logins:?}");
            assert!(login.accepted, "{logins:?}");
            assert!(login.password_was(password), "{logins:?}");
        }
    }

    #[track_caller]
    fn assert_every_server_flushed(&self) {
        for server in self.lab.servers() {
            assert_eq!(
                mutation_times(server).len(),
                EXCHANGE_POOLS.len(),
                "{}",
                server.name
            );
        }
    }

    /// Nothing was sent anywhere: no WinRM command, no BIG-IP request, the
    /// account unchanged.
    async fn assert_nothing_happened(&self, user: &TestUser) {
        assert!(self.lab.all_commands().is_empty(), "a server was contacted");
        assert!(self.bigip.requests().is_empty(), "the BIG-IP was contacted");
        assert_eq!(
            self.domain.user_account_control(1, &user.dn).await,
            UAC_ENABLED
        );
    }
}

#[track_caller]
fn assert_no_secrets(run: &Run, secrets: &[&str]) {
    for secret in secrets {
        assert!(!run.stdout.contains(secret), "a secret on stdout");
        assert!(!run.stderr.contains(secret), "a secret on stderr");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_accounts_with_three_passwords_from_their_own_variables() {
    let (winrm_password, f5_password) = (secret("Wr"), secret("F5"));
    let winrm = Winrm {
        sam: WINRM_SAM,
        password: &winrm_password,
        written: None,
    };
    let estate = Estate::start(winrm, F5_USER, &f5_password).await;
    let domain_password = estate.domain.operator_password();
    let user = estate.domain.new_user("three").await;
    let session = estate.bigip.add_session(&user.sam, "203.0.113.40");

    let run = estate
        .disable(&user)
        .env("REVOKE_DIRECTORY_PASSWORD", domain_password)
        .env("REVOKE_WINRM_PASSWORD", &winrm_password)
        .env("REVOKE_F5_PASSWORD", &f5_password)
        .run()
        .await;
    run.assert_code(0);
    assert_no_secrets(&run, &[domain_password, &winrm_password, &f5_password]);
    let report = run.json();
    assert_eq!(report["f5"][0]["killed"], 1, "{report:#}");
    assert!(!estate.bigip.has_session(&session));
    assert_eq!(
        estate.domain.user_account_control(1, &user.dn).await,
        UAC_DISABLED
    );
    estate.assert_every_server_flushed();
    estate.assert_bigip_saw_only(F5_USER, &f5_password);
}

/// `$REVOKE_PASSWORD` alone is still every account's password, as before.
#[tokio::test(flavor = "multi_thread")]
async fn revoke_password_alone_is_the_password_of_every_account() {
    let domain = embedded_domain();
    let shared = domain.operator_password();
    let winrm = Winrm {
        sam: WINRM_SAM,
        password: shared,
        written: None,
    };
    let estate = Estate::start(winrm, F5_USER, shared).await;
    let user = estate.domain.new_user("onepw").await;
    estate.bigip.add_session(&user.upn, "203.0.113.41");

    let run = estate.disable(&user).password(shared).run().await;
    run.assert_code(0);
    assert_no_secrets(&run, &[shared]);
    assert_eq!(run.json()["f5"][0]["killed"], 1);
    estate.assert_every_server_flushed();
    estate.assert_bigip_saw_only(F5_USER, shared);
}

/// `[directory] bind_user` and `[winrm] user` name one account (the same
/// UPN, in another case): one line for it, then one for the BIG-IPs' user;
/// a reset's new password is the line after them.
#[tokio::test(flavor = "multi_thread")]
async fn password_stdin_reads_one_line_per_distinct_account_in_order() {
    let domain = embedded_domain();
    let f5_password = secret("F5");
    let upn = domain.operator_upn().to_uppercase();
    let winrm = Winrm {
        sam: domain.operator_sam(),
        password: domain.operator_password(),
        written: Some(&upn),
    };
    let estate = Estate::start(winrm, F5_USER, &f5_password).await;
    let domain_password = domain.operator_password();
    let user = estate.domain.new_user("stdin").await;
    estate.bigip.add_session(&user.sam, "203.0.113.42");

    // The documented order: the directory's account first.
    let new = secret("Nw");
    let run = estate
        .revoke(
            "reset",
            &[&user.sam, "--yes", "--output", "json", "--password-stdin"],
        )
        .stdin(&format!("{domain_password}\n{f5_password}\n"))
        .run()
        .await;
    run.assert_code(0);
    assert_no_secrets(&run, &[domain_password, &f5_password]);
    assert_eq!(run.json()["f5"][0]["killed"], 1);
    estate.assert_every_server_flushed();
    estate.assert_bigip_saw_only(F5_USER, &f5_password);

    // With --new-password-stdin, the third line is the user's new password.
    let run = estate
        .revoke(
            "reset",
            &[
                &user.sam,
                "--yes",
                "-q",
                "--password-stdin",
                "--new-password-stdin",
            ],
        )
        .stdin(&format!("{domain_password}\n{f5_password}\n{new}\n"))
        .run()
        .await;
    run.assert_code(0);
    assert_no_secrets(&run, &[domain_password, &f5_password, &new]);
    estate.domain.bind(1, &user.upn, &new).await.unwrap();

    // The other way round the directory refuses the BIG-IPs' password, and
    // nothing is changed or sent anywhere else.
    let other = estate.domain.new_user("stdinrev").await;
    let before = estate.logins().len();
    let args = [other.sam.as_str(), "--yes", "--password-stdin"];
    let run = estate
        .revoke("disable", &args)
        .stdin(&format!("{f5_password}\n{domain_password}\n"))
        .run()
        .await;
    run.assert_code(1);
    assert!(run.stderr.contains("refused the bind"), "{}", run.stderr);
    assert_eq!(estate.logins().len(), before, "the BIG-IP was contacted");
    assert_eq!(
        estate.domain.user_account_control(1, &other.dn).await,
        UAC_ENABLED
    );
}

/// The domain password goes to a BIG-IP only when `[f5] user` names the
/// domain account; otherwise a missing F5 password stops the run first.
#[tokio::test(flavor = "multi_thread")]
async fn the_bigip_gets_the_domain_password_only_when_its_user_is_that_account() {
    let domain = embedded_domain();
    let domain_password = domain.operator_password();
    let (winrm_password, f5_password) = (secret("Wr"), secret("F5"));
    let winrm = Winrm {
        sam: WINRM_SAM,
        password: &winrm_password,
        written: None,
    };
    let estate = Estate::start(winrm, F5_USER, &f5_password).await;
    let user = estate.domain.new_user("nof5").await;

    // The directory's and WinRM's passwords, none for the BIG-IPs' user.
    let run = estate
        .disable(&user)
        .env("REVOKE_DIRECTORY_PASSWORD", domain_password)
        .env("REVOKE_WINRM_PASSWORD", &winrm_password)
        .run()
        .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "no password for {F5_USER} (BIG-IP): set REVOKE_F5_PASSWORD"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(estate.logins().is_empty(), "{:?}", estate.logins());
    estate.assert_nothing_happened(&user).await;

    // Piped: one line for the directory, one for WinRM, and no third line.
    let args = [user.sam.as_str(), "--yes", "--password-stdin"];
    let run = estate
        .revoke("disable", &args)
        .stdin(&format!("{domain_password}\n{winrm_password}\n"))
        .run()
        .await;
    run.assert_code(1);
    assert!(
        run.stderr
            .contains(&format!("line 3, for {F5_USER} (BIG-IP)")),
        "{}",
        run.stderr
    );
    estate.assert_nothing_happened(&user).await;

    // [f5] user = the domain account: then it is its password, by design.
    let upn = domain.operator_upn();
    let winrm = Winrm {
        sam: WINRM_SAM,
        password: &winrm_password,
        written: None,
    };
    let same = Estate::start(winrm, upn, domain_password).await;
    let run = same
        .disable(&user)
        .env("REVOKE_DIRECTORY_PASSWORD", domain_password)
        .env("REVOKE_WINRM_PASSWORD", &winrm_password)
        .run()
        .await;
    run.assert_code(0);
    same.assert_bigip_saw_only(upn, domain_password);
}

/// No source at all: every account is named with its variable, and nothing
/// is contacted.
#[tokio::test(flavor = "multi_thread")]
async fn without_any_password_each_account_and_its_variable_is_named() {
    let (winrm_password, f5_password) = (secret("Wr"), secret("F5"));
    let winrm = Winrm {
        sam: WINRM_SAM,
        password: &winrm_password,
        written: None,
    };
    let estate = Estate::start(winrm, F5_USER, &f5_password).await;
    let user = estate.domain.new_user("nopw").await;
    let run = estate.disable(&user).run().await;
    run.assert_code(1);
    let upn = estate.domain.operator_upn();
    for line in [
        format!("  - {upn} (LDAP bind): set REVOKE_DIRECTORY_PASSWORD"),
        format!("  - LAB\\{WINRM_SAM} (WinRM): set REVOKE_WINRM_PASSWORD"),
        format!("  - {F5_USER} (BIG-IP): set REVOKE_F5_PASSWORD"),
    ] {
        assert!(run.stderr.contains(&line), "{line}\n{}", run.stderr);
    }
    estate.assert_nothing_happened(&user).await;
}
