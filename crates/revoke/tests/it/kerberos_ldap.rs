//! Kerberos for the LDAP bind against the Samba test domain: `revoke
//! disable` and `reset` over plain `ldap://dc1…:389` with `[directory] auth
//! = "kerberos"`, a `kinit` ticket and no password anywhere. Samba refuses
//! password writes on a connection that is neither TLS nor sealed, so a
//! reset that works here shows the SASL confidentiality layer is on.

use std::path::Path;

use tempfile::TempDir;

use crate::common::{Revoke, Run, path_str};
use crate::samba::{Domain, TestUser, UAC_DISABLED, domain};

/// A private directory with a ticket cache holding the operator's TGT.
fn operator_ticket(d: &Domain) -> (TempDir, String) {
    let dir = TempDir::new().expect("temp dir");
    let ccache = dir.path().join("cc");
    let principal = format!("{}@{}", d.operator_sam(), d.realm());
    d.kinit(&principal, d.operator_password(), &ccache)
        .expect("kinit as the operator");
    let name = format!("FILE:{}", ccache.display());
    (dir, name)
}

/// revoke.toml: DC1 by its DNS name over plain LDAP, Kerberos, the gate on
/// DC1 (DC2 lags by design in this domain), WinRM listed on a closed port.
fn write_config(dir: &Path, d: &Domain, url: &str) -> String {
    let path = dir.join("revoke.toml");
    let text = format!(
        "[directory]\nurl = {url:?}\nauth = \"kerberos\"\nbind_user = {:?}\n\
         domain_controllers = [{:?}]\nreplication_timeout = 15\n\n\
         [winrm]\nuser = {:?}\n",
        d.operator_upn(),
        d.dc_host(1),
        format!("LAB\\{}", d.operator_sam()),
    );
    std::fs::write(&path, text).expect("write config");
    path_str(&path)
}

fn revoke(args: &[&str], ccache: &str, d: &Domain) -> Revoke {
    Revoke::new(args)
        .env("KRB5CCNAME", ccache)
        .env("KRB5_CONFIG", &path_str(&d.krb5_conf()))
}

/// `revoke CHANGE SAM --config CONFIG --yes --no-journal` with one server
/// on a closed port (the directory is what these tests are about), then `extra`.
fn change(
    d: &Domain,
    change: &str,
    sam: &str,
    config: &str,
    ccache: &str,
    extra: &[&str],
) -> Revoke {
    let mut args = vec![
        change,
        sam,
        "--config",
        config,
        "--yes",
        "--no-journal",
        "--servers",
        "127.0.0.1:1",
    ];
    args.extend_from_slice(extra);
    revoke(&args, ccache, d)
}

fn user_status(run: &Run, user: &TestUser) -> String {
    let report = run.json();
    let users = report["directory"]["users"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    users
        .iter()
        .find(|u| u["sam_account_name"] == user.sam.as_str())
        .map(|u| u["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("{} not in the report: {report:#}", user.sam))
}

#[tokio::test]
async fn disable_and_reset_over_sealed_plain_ldap_with_a_ticket_and_no_password() {
    let d = domain();
    let (dir, ccache) = operator_ticket(d);
    let url = format!("ldap://{}", d.dc_host(1));
    let config = write_config(dir.path(), d, &url);

    // disable: no REVOKE_*PASSWORD (the runner removes them), no stdin.
    let user = d.new_user("krbdis").await;
    let run = change(
        d,
        "disable",
        &user.sam,
        &config,
        &ccache,
        &["--output", "json"],
    )
    .run()
    .await;
    assert!(!run.stderr.contains("no password"), "{}", run.stderr);
    assert_eq!(user_status(&run, &user), "disabled", "{}", run.stderr);
    assert_eq!(
        d.user_account_control(1, &user.dn).await & UAC_DISABLED,
        UAC_DISABLED,
        "DC1 has the disable"
    );

    // reset: a unicodePwd write, which Samba takes only on a sealed (or TLS) connection.
    let user = d.new_user("krbreset").await;
    let new_password = dir.path().join("new.pw");
    let run = change(
        d,
        "reset",
        &user.sam,
        &config,
        &ccache,
        &[
            "--output",
            "json",
            "--password-file",
            &path_str(&new_password),
        ],
    )
    .run()
    .await;
    assert_eq!(user_status(&run, &user), "reset", "{}", run.stderr);
    let old = d.bind(1, &user.upn, &user.password).await;
    assert!(old.is_err(), "the old password still binds on DC1");
    let new = std::fs::read_to_string(&new_password).expect("the new password file");
    d.bind(1, &user.upn, new.trim_end())
        .await
        .expect("the new password binds on DC1");
}

#[tokio::test]
async fn no_ticket_and_no_password_names_the_missing_credential_and_changes_nothing() {
    let d = domain();
    let dir = TempDir::new().expect("temp dir");
    let config = write_config(dir.path(), d, &format!("ldap://{}", d.dc_host(1)));
    let empty = format!("FILE:{}", dir.path().join("no-such-cache").display());
    let user = d.new_user("krbnone").await;
    let before = d.user_account_control(1, &user.dn).await;
    let run = change(d, "disable", &user.sam, &config, &empty, &[])
        .run()
        .await;
    run.assert_code(1);
    assert!(
        run.stderr
            .contains(&format!("{} (LDAP bind)", d.operator_upn())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("run kinit"), "{}", run.stderr);
    assert!(
        run.stderr.contains("REVOKE_DIRECTORY_PASSWORD"),
        "{}",
        run.stderr
    );
    assert_eq!(d.user_account_control(1, &user.dn).await, before);
}

#[tokio::test]
async fn kerberos_with_an_ip_address_is_refused_before_anything() {
    let d = domain();
    let (dir, ccache) = operator_ticket(d);
    let config = write_config(dir.path(), d, "ldap://127.0.0.1");
    let user = d.new_user("krbip").await;
    let before = d.user_account_control(1, &user.dn).await;
    let run = change(d, "disable", &user.sam, &config, &ccache, &[])
        .run()
        .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("Kerberos needs the DC's DNS name"),
        "{}",
        run.stderr
    );
    assert_eq!(d.user_account_control(1, &user.dn).await, before);

    // An unknown value is refused by name.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("auth = \"kerberos\"", "auth = \"kerberoz\""),
    )
    .unwrap();
    let run = revoke(
        &["disable", &user.sam, "--config", &config, "--yes"],
        &ccache,
        d,
    )
    .run()
    .await;
    run.assert_code(1);
    assert!(run.stderr.contains("kerberoz"), "{}", run.stderr);
    assert!(run.stderr.contains("simple"), "{}", run.stderr);
}

/// Inside TLS (LDAPS, or StartTLS on 389) the bind is Kerberos with no
/// SASL layer on top (AD refuses one there; the test domain allows such
/// binds like AD, scripts/samba-ad.sh), and the DC's certificate is checked
/// as usual.
async fn disable_inside_tls(url: String, starttls: bool, prefix: &str) {
    let d = domain();
    let (dir, ccache) = operator_ticket(d);
    let config = write_config(dir.path(), d, &url);
    let mut table: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    let directory = table["directory"].as_table_mut().unwrap();
    directory.insert("ca_file".into(), path_str(d.ca_file()).into());
    if starttls {
        directory.insert("starttls".into(), true.into());
    }
    std::fs::write(&config, table.to_string()).unwrap();
    let user = d.new_user(prefix).await;
    let run = change(
        d,
        "disable",
        &user.sam,
        &config,
        &ccache,
        &["--output", "json"],
    )
    .run()
    .await;
    assert_eq!(user_status(&run, &user), "disabled", "{}", run.stderr);
    assert_eq!(
        d.user_account_control(1, &user.dn).await & UAC_DISABLED,
        UAC_DISABLED,
        "DC1 has the disable"
    );
}

#[tokio::test]
async fn disable_over_ldaps_with_a_ticket() {
    disable_inside_tls(format!("ldaps://{}", domain().dc_host(1)), false, "krbtls").await;
}

#[tokio::test]
async fn disable_over_starttls_with_a_ticket() {
    disable_inside_tls(format!("ldap://{}", domain().dc_host(1)), true, "krbstls").await;
}
