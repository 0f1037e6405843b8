//! Kerberos for WinRM against lab servers that take tickets from the Samba
//! test domain's KDC (`revoke lab --keytab`, the keys of
//! HTTP/exNN.lab.example.test exported by scripts/samba-ad.sh): pywinrm's
//! Kerberos transport as an independent client, revoke with a `kinit` ticket
//! and no password against servers that refuse NTLM, and each way Kerberos
//! fails, in plain words.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

use crate::common::{LabProcess, Revoke, path_str, workspace_root};
use crate::samba::{Domain, domain};

/// A `revoke lab` whose servers are exNN.<domain> and take tickets with the
/// keys in `keytab`; its revoke.toml and a ticket cache for the operator.
struct KerberosLab {
    _process: LabProcess,
    dir: TempDir,
}

impl KerberosLab {
    async fn start(d: &Domain, servers: usize, keytab: &Path, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("revoke.toml");
        let servers = servers.to_string();
        let keytab = path_str(keytab);
        let config_arg = path_str(&config);
        let mut args = vec![
            "lab",
            "--servers",
            &servers,
            "--keytab",
            &keytab,
            "--host-suffix",
            d.dns_domain(),
            "--admin-user",
            d.operator_sam(),
            "--write-config",
            &config_arg,
        ];
        args.extend_from_slice(extra);
        let krb5_conf = path_str(&d.krb5_conf());
        let mut process = LabProcess::start_with_env(&args, &[("KRB5_CONFIG", &krb5_conf)]);
        process.wait_running().await;
        KerberosLab {
            _process: process,
            dir,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("revoke.toml")
    }

    /// `HOST:PORT` of each server, as the written revoke.toml names them.
    fn servers(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.config()).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        table["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    }

    /// A ticket cache holding the operator's TGT (as after `kinit`).
    fn kinit_operator(&self, d: &Domain) -> PathBuf {
        let ccache = self.dir.path().join("operator.ccache");
        let principal = format!("{}@{}", d.operator_sam(), d.realm());
        d.kinit(&principal, d.operator_password(), &ccache)
            .unwrap_or_else(|e| panic!("{e}"));
        ccache
    }

    /// `revoke flush --output json` with this ticket cache and krb5.conf.
    fn flush(&self, krb5_conf: &Path, ccache: &Path, extra: &[&str]) -> Revoke {
        let config = path_str(&self.config());
        let mut args = vec!["flush", "--config", &config, "--output", "json"];
        args.extend_from_slice(extra);
        Revoke::new(&args)
            .env("KRB5_CONFIG", &path_str(krb5_conf))
            .env("KRB5CCNAME", &format!("FILE:{}", ccache.display()))
    }
}

fn servers_of(report: &Value) -> &Vec<Value> {
    report["servers"].as_array().expect("servers[]")
}

#[tokio::test(flavor = "multi_thread")]
async fn pywinrm_with_kerberos_runs_a_command_on_a_lab_server() {
    let d = domain();
    let lab = KerberosLab::start(d, 1, &d.lab_keytab(), &["--refuse-ntlm"]).await;
    let ccache = lab.kinit_operator(d);
    let python = std::env::var("REVOKE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let endpoint = format!("http://{}/wsman", lab.servers()[0]);
    let out = Command::new(python)
        .arg(workspace_root().join("crates/revoke/tests/it/kerberos_peer.py"))
        .arg(&endpoint)
        .env("KRB5_CONFIG", d.krb5_conf())
        .env("KRB5CCNAME", format!("FILE:{}", ccache.display()))
        .output()
        .expect("run the pywinrm Kerberos client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pywinrm (Kerberos, sealed) against {endpoint} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("APPPOOL \"MSExchangeOWAAppPool\""),
        "appcmd list apppool output:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_and_no_password_flush_servers_that_refuse_ntlm() {
    let d = domain();
    let lab = KerberosLab::start(d, 2, &d.lab_keytab(), &["--refuse-ntlm"]).await;
    let ccache = lab.kinit_operator(d);

    let run = lab.flush(&d.krb5_conf(), &ccache, &[]).run().await;
    run.assert_code(0);
    let report = run.json();
    let servers = servers_of(&report);
    assert_eq!(servers.len(), 2, "{report:#}");
    for server in servers {
        assert_eq!(server["status"], "ok", "{server:#}");
        assert_eq!(server["auth"], "kerberos", "{server:#}");
    }

    // The same servers refuse NTLM: the run above did not get in with it.
    let ntlm = lab
        .flush(&d.krb5_conf(), &ccache, &["--auth", "ntlm"])
        .password(d.operator_password())
        .run()
        .await;
    assert_ne!(ntlm.code, 0, "NTLM should be refused:\n{}", ntlm.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn kerberos_over_https_validates_the_certificate_by_the_servers_name() {
    let d = domain();
    let lab = KerberosLab::start(
        d,
        1,
        &d.lab_keytab(),
        &["--refuse-ntlm", "--transport", "https-negotiate"],
    )
    .await;
    let ccache = lab.kinit_operator(d);
    let run = lab.flush(&d.krb5_conf(), &ccache, &[]).run().await;
    run.assert_code(0);
    let report = run.json();
    let server = &servers_of(&report)[0];
    assert_eq!(server["status"], "ok", "{server:#}");
    assert_eq!(server["auth"], "kerberos", "{server:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_ticket_the_password_gets_one_and_ntlm_is_still_not_needed() {
    let d = domain();
    let lab = KerberosLab::start(d, 1, &d.lab_keytab(), &["--refuse-ntlm"]).await;
    let empty = lab.dir.path().join("empty.ccache");
    // An AS exchange with the operator's password (kept in memory), then
    // the ticket for HTTP/ex01: the server refuses NTLM, so only that works.
    let run = lab
        .flush(&d.krb5_conf(), &empty, &[])
        .env("REVOKE_WINRM_PASSWORD", d.operator_password())
        .run()
        .await;
    run.assert_code(0);
    let report = run.json();
    assert_eq!(servers_of(&report)[0]["auth"], "kerberos", "{report:#}");
    assert!(
        !empty.exists(),
        "the ticket must stay in memory, not in a cache file"
    );
    // A wrong password is the KDC's refusal, in words.
    let wrong = lab
        .flush(&d.krb5_conf(), &empty, &[])
        .env("REVOKE_WINRM_PASSWORD", "not-the-password")
        .run()
        .await;
    wrong.assert_code(2);
    let report = wrong.json();
    let error = servers_of(&report)[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("refused the password"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_ticket_and_no_password_names_the_missing_credential() {
    let d = domain();
    let lab = KerberosLab::start(d, 1, &d.lab_keytab(), &["--refuse-ntlm"]).await;
    let empty = lab.dir.path().join("empty.ccache");
    let run = lab.flush(&d.krb5_conf(), &empty, &[]).run().await;
    assert_ne!(run.code, 0, "{}", run.stdout);
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(
        text.contains("kinit") && text.to_lowercase().contains("no kerberos ticket"),
        "the message should say there is no ticket and how to get one:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_whose_key_does_not_match_refuses_the_ticket() {
    let d = domain();
    let lab = KerberosLab::start(d, 1, &d.wrong_keytab(), &["--refuse-ntlm"]).await;
    let ccache = lab.kinit_operator(d);
    let run = lab.flush(&d.krb5_conf(), &ccache, &[]).run().await;
    run.assert_code(2);
    let report = run.json();
    let error = servers_of(&report)[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("refused the Kerberos ticket") && error.contains("key"),
        "the server's error should say it refused the ticket and why it may have: {error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_does_not_prove_itself_fails_and_ntlm_is_not_tried() {
    let d = domain();
    let dir = tempfile::tempdir().unwrap();
    let lab_toml = dir.path().join("lab.toml");
    // The server takes tickets (and NTLM), but its 200 has no AP-REP.
    std::fs::write(
        &lab_toml,
        "[[fault]]\nserver = \"EX01\"\nkind = \"withhold-ap-rep\"\n",
    )
    .unwrap();
    let lab_toml = path_str(&lab_toml);
    let lab = KerberosLab::start(d, 2, &d.lab_keytab(), &["--config", &lab_toml]).await;
    let ccache = lab.kinit_operator(d);
    // negotiate with a password: NTLM would get in, and must not be tried.
    let run = lab
        .flush(&d.krb5_conf(), &ccache, &["--auth", "negotiate"])
        .password(d.operator_password())
        .run()
        .await;
    run.assert_code(2);
    let report = run.json();
    let servers = servers_of(&report);
    let ex01 = servers
        .iter()
        .find(|s| s["host"].as_str().unwrap().starts_with("ex01."))
        .unwrap();
    assert_eq!(ex01["status"], "failed", "{ex01:#}");
    assert!(
        ex01["error"]
            .as_str()
            .unwrap_or_default()
            .contains("did not prove"),
        "{ex01:#}"
    );
    let ex02 = servers
        .iter()
        .find(|s| s["host"].as_str().unwrap().starts_with("ex02."))
        .unwrap();
    assert_eq!(ex02["status"], "ok", "{ex02:#}");
    assert_eq!(ex02["auth"], "kerberos", "{ex02:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_for_another_realm_is_named() {
    let d = domain();
    let lab = KerberosLab::start(d, 1, &d.lab_keytab(), &["--refuse-ntlm"]).await;
    let ccache = lab.kinit_operator(d);
    // This machine's krb5.conf maps the servers to a realm the ticket is not for.
    let other = lab.dir.path().join("other-realm.conf");
    let text = std::fs::read_to_string(d.krb5_conf()).unwrap();
    let text = text.replace(
        &format!(".{} = {}", d.dns_domain(), d.realm()),
        &format!(".{} = OTHER.EXAMPLE.TEST", d.dns_domain()),
    );
    assert!(text.contains("OTHER.EXAMPLE.TEST"), "{text}");
    std::fs::write(
        &other,
        format!("{text}\n[realms]\n    OTHER.EXAMPLE.TEST = {{\n        kdc = 127.0.0.1\n    }}\n"),
    )
    .unwrap();
    let run = lab.flush(&other, &ccache, &[]).run().await;
    assert_ne!(run.code, 0, "{}", run.stdout);
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(
        text.contains("realm"),
        "the error should point at the realm:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clock_skew_beyond_five_minutes_is_named() {
    let d = domain();
    let Some(libfaketime) = libfaketime() else {
        panic!("libfaketime is missing: scripts/setup-test-deps.sh installs it (Debian faketime)");
    };
    let lab = KerberosLab::start(d, 1, &d.lab_keytab(), &["--refuse-ntlm"]).await;
    let ccache = lab.kinit_operator(d);
    // revoke's clock runs 10 minutes ahead of the KDC's and the server's.
    let run = lab
        .flush(&d.krb5_conf(), &ccache, &[])
        .env("LD_PRELOAD", &path_str(&libfaketime))
        .env("FAKETIME", "+10m")
        .run()
        .await;
    assert_ne!(run.code, 0, "{}", run.stdout);
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(
        text.contains("fix the time"),
        "the error should say the clocks differ:\n{text}"
    );
}

fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime",
        "/usr/lib/aarch64-linux-gnu/faketime",
        "/usr/lib/faketime",
    ]
    .iter()
    .map(|dir| Path::new(dir).join("libfaketime.so.1"))
    .find(|p| p.exists())
}

/// The "done when": after `kinit`, `disable` and `reset` with
/// Kerberos for LDAP (plain ldap://…:389, sealed SASL, no DC certificate)
/// and for WinRM (servers that refuse NTLM) ask for no password and close
/// the exposure window, every DC of the domain gated (DC2 by direct write,
/// RODC1 over Kerberos too).
#[tokio::test(flavor = "multi_thread")]
async fn disable_and_reset_with_kerberos_everywhere_and_no_password() {
    let d = domain();
    let lab = KerberosLab::start(d, 2, &d.lab_keytab(), &["--refuse-ntlm"]).await;
    let ccache = lab.kinit_operator(d);
    let mut config: toml::Table = std::fs::read_to_string(lab.config())
        .unwrap()
        .parse()
        .unwrap();
    let mut directory = toml::Table::new();
    directory.insert("url".into(), format!("ldap://{}", d.dc_host(1)).into());
    directory.insert("auth".into(), "kerberos".into());
    directory.insert("bind_user".into(), d.operator_upn().into());
    directory.insert("replication_timeout".into(), 30.into());
    config.insert("directory".into(), directory.into());
    std::fs::write(lab.config(), config.to_string()).unwrap();

    for change in ["disable", "reset"] {
        let user = d
            .new_user(if change == "disable" {
                "krbdis"
            } else {
                "krbrst"
            })
            .await;
        let new_password = lab.dir.path().join(format!("{}.pw", user.sam));
        let mut args = vec![change, user.sam.as_str(), "--yes", "--no-journal"];
        let file = path_str(&new_password);
        if change == "reset" {
            args.extend(["--password-file", file.as_str()]);
        }
        let config = path_str(&lab.config());
        let run = Revoke::new(&[&args[..], &["--config", &config, "--output", "json"]].concat())
            .env("KRB5_CONFIG", &path_str(&d.krb5_conf()))
            .env("KRB5CCNAME", &format!("FILE:{}", ccache.display()))
            .run()
            .await;
        run.assert_code(0);
        let report = run.json();
        assert_eq!(report["exposure"]["closed"], true, "{change}: {report:#}");
        let users = report["directory"]["users"].as_array().unwrap();
        let expected = if change == "disable" {
            "disabled"
        } else {
            "reset"
        };
        assert_eq!(users[0]["status"], expected, "{report:#}");
        let dcs = report["directory"]["domain_controllers"]
            .as_array()
            .unwrap();
        assert!(dcs.len() >= 3, "DC1, DC2 and RODC1 gated: {report:#}");
        for server in servers_of(&report) {
            assert_eq!(server["status"], "ok", "{server:#}");
            assert_eq!(server["auth"], "kerberos", "{server:#}");
        }
        // What the directory says, read apart from revoke.
        if change == "disable" {
            let uac = d.user_account_control(1, &user.dn).await;
            assert_eq!(uac & crate::samba::UAC_DISABLED, crate::samba::UAC_DISABLED);
        } else {
            assert!(
                d.bind(1, &user.upn, &user.password).await.is_err(),
                "old password binds"
            );
            let new = std::fs::read_to_string(&new_password).unwrap();
            d.bind(1, &user.upn, new.trim_end())
                .await
                .expect("the new password binds on DC1");
        }
    }
}
