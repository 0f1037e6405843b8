//! A ticket and a reason on every change, on both directories: in the
//! JSON report, the human report's first lines and, with `[directory]
//! stamp = true`, one line appended to the account's `info`, written with
//! the change itself. `[policy] require_ticket` refuses a run without one.

use ldap3::Mod;

use super::backend::{AdEstate, UAC_DISABLED, UAC_ENABLED};
use crate::common::is_mutating;
use crate::samba::{Domain, values};

/// The operator's right to write `info` on users below OU=Staff. A fresh
/// domain gets it from scripts/samba-ad.sh and the embedded directory from
/// its seed; a Samba domain seeded before that line existed gets it here,
/// once (docs/permissions.md).
async fn let_the_operator_write_info(d: &'static Domain) {
    if !d.dir().join("env").exists() {
        return; // the embedded directory
    }
    const INFO: &str = "bf96793e-0de6-11d0-a285-00aa003049e2";
    const USER_CLASS: &str = "bf967aba-0de6-11d0-a285-00aa003049e2";
    const UAC: &str = "bf967a68-0de6-11d0-a285-00aa003049e2";
    tokio::task::spawn_blocking(move || {
        let (_, password) = d.admin();
        let staff = d.staff_dn();
        let dsacl = |more: &[&str]| {
            let out = std::process::Command::new("samba-tool")
                .args(["dsacl"])
                .args(more)
                .args([
                    "-H",
                    "ldap://127.0.0.1",
                    "-U",
                    "Administrator",
                    "--use-kerberos=off",
                    &format!("--objectdn={staff}"),
                ])
                .env("PASSWD", password)
                .output()
                .expect("samba-tool");
            assert!(
                out.status.success(),
                "samba-tool dsacl {more:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        let acl = dsacl(&["get"]);
        if acl.contains(INFO) {
            return;
        }
        // The operator's SID, from its delegation on userAccountControl.
        let marker = format!("(OA;CIIO;WP;{UAC};{USER_CLASS};");
        let start = acl.find(&marker).expect("the operator's delegation") + marker.len();
        let sid = &acl[start..start + acl[start..].find(')').unwrap()];
        dsacl(&[
            "set",
            &format!("--sddl=(OA;CIIO;WP;{INFO};{USER_CLASS};{sid})"),
        ]);
    })
    .await
    .unwrap();
}

/// Adds a top-level `[section]` key to the estate's revoke.toml.
fn set_config(estate: &AdEstate, section: &str, key: &str, value: impl Into<toml::Value>) {
    let path = estate.config();
    let mut config: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    let table = config
        .entry(section)
        .or_insert_with(|| toml::Table::new().into())
        .as_table_mut()
        .unwrap();
    table.insert(key.into(), value.into());
    std::fs::write(path, config.to_string()).unwrap();
}

async fn info(d: &Domain, dn: &str) -> String {
    d.read(1, dn, &["info"])
        .await
        .remove("info")
        .and_then(|v| v.into_iter().next())
        .unwrap_or_default()
}

/// `disabled 2026-12-02T03:00Z by LAB\revoke-op via revoke, INC123 — why`:
/// the parts after the time, and a time of the form the line promises.
#[track_caller]
fn assert_stamp(line: &str, done: &str, ticket: &str, reason: &str, d: &Domain) {
    let rest = line
        .strip_prefix(&format!("{done} "))
        .unwrap_or_else(|| panic!("{line:?} does not start with {done:?}"));
    let (when, rest) = rest.split_once(' ').unwrap();
    assert_eq!(when.len(), "2026-12-02T03:00Z".len(), "{line}");
    assert!(when.ends_with('Z') && when.as_bytes()[10] == b'T', "{line}");
    let by = format!("{}\\{}", d.netbios_domain(), d.operator_sam());
    assert_eq!(
        rest,
        format!("by {by} via revoke, {ticket} — {reason}"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ticket_and_reason_go_into_the_report_and_the_accounts_info() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let_the_operator_write_info(d).await;
    estate.set_directory("stamp", true);
    let user = d.new_user("ticket").await;
    // Earlier notes stay: the stamp is appended.
    let mut admin = d.admin_connection(1).await;
    admin
        .modify(
            &user.dn,
            vec![Mod::Replace(
                "info".into(),
                values(["HR: leaver, last day Friday"]),
            )],
        )
        .await
        .unwrap()
        .success()
        .unwrap();

    let run = estate
        .revoke(
            "disable",
            &[
                user.sam.as_str(),
                "--ticket",
                "INC123",
                "--reason",
                "left the company",
                "--yes",
                "--output",
                "json",
            ],
        )
        .run()
        .await;
    run.assert_code(0);
    let report = run.json();
    assert_eq!(report["ticket"], "INC123");
    assert_eq!(report["reason"], "left the company");
    assert_eq!(d.user_account_control(1, &user.dn).await, UAC_DISABLED);
    let text = info(d, &user.dn).await;
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert_eq!(lines[0], "HR: leaver, last day Friday");
    assert_stamp(lines[1], "disabled", "INC123", "left the company", d);

    // The human report says it first; a reset is stamped too (in the
    // modify of its first rotation), and its password still binds.
    let other = d.new_user("ticket").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.pw");
    let run = estate
        .revoke(
            "reset",
            &[
                other.sam.as_str(),
                "--ticket",
                "CHG-77",
                "--reason",
                "phone stolen",
                "--yes",
                "--password-file",
                file.to_str().unwrap(),
            ],
        )
        .run()
        .await;
    run.assert_code(0);
    let second = run.stdout.lines().nth(1).unwrap_or_default();
    assert_eq!(second, "Ticket: CHG-77 — phone stolen", "{}", run.stdout);
    let text = info(d, &other.dn).await;
    assert_stamp(&text, "password reset", "CHG-77", "phone stolen", d);
    let password = std::fs::read_to_string(&file).unwrap();
    d.bind(1, &other.upn, password.trim_end()).await.unwrap();
    assert!(d.bind(1, &other.upn, &other.password).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn require_ticket_refuses_a_run_without_one_before_anything() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    set_config(&estate, "policy", "require_ticket", true);
    let user = d.new_user("noticket").await;

    let run = estate
        .revoke("disable", &[user.sam.as_str(), "--yes"])
        .run()
        .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("require_ticket") && run.stderr.contains("--ticket ID"),
        "{}",
        run.stderr
    );
    // A ticket that is not one line of text is refused the same way.
    let run = estate
        .revoke(
            "disable",
            &[user.sam.as_str(), "--ticket", "INC1\nINC2", "--yes"],
        )
        .run()
        .await;
    run.assert_code(1);
    assert!(run.stderr.contains("must be one line"), "{}", run.stderr);
    assert_eq!(d.user_account_control(1, &user.dn).await, UAC_ENABLED);
    assert!(
        !estate
            .lab()
            .all_commands()
            .iter()
            .any(|(_, c)| is_mutating(c))
    );

    let run = estate
        .revoke(
            "disable",
            &[
                user.sam.as_str(),
                "--ticket",
                "INC9",
                "--yes",
                "--output",
                "json",
            ],
        )
        .run()
        .await;
    run.assert_code(0);
    assert_eq!(run.json()["ticket"], "INC9");
    assert!(run.json()["reason"].is_null());
    assert_eq!(d.user_account_control(1, &user.dn).await, UAC_DISABLED);
}
