//! `revoke reset` and the password policy that applies to the account, on
//! the Samba domain (the embedded directory has no fine-grained password
//! policies): the policy's length is honoured before anything is written,
//! and the throwaway of the first rotation meets it too.

use std::process::Command;

use crate::samba::{Estate, SambaAd, UAC_ENABLED, domain, unique_name};

/// A fine-grained password policy requiring `length` characters, applied to
/// `sam`; with `readable`, Authenticated Users may read it (by default only
/// administrators may, as on Windows).
fn apply_pso(sam: &str, length: u32, readable: bool) {
    let d = domain();
    let (_, admin_password) = d.admin();
    let name = unique_name("pso");
    let run = |args: &[&str]| {
        let out = Command::new("samba-tool")
            .args(args)
            .args([
                "-H",
                "ldap://127.0.0.1",
                "-U",
                "Administrator",
                "--use-kerberos=off",
            ])
            // From the environment, not argv, as samba-ad.sh does.
            .env("PASSWD", admin_password)
            .output()
            .expect("samba-tool");
        assert!(
            out.status.success(),
            "samba-tool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let length = format!("--min-pwd-length={length}");
    run(&[
        "domain",
        "passwordsettings",
        "pso",
        "create",
        &name,
        "1",
        &length,
        "--complexity=on",
    ]);
    run(&["domain", "passwordsettings", "pso", "apply", &name, sam]);
    if readable {
        let dn = format!(
            "--objectdn=CN={name},CN=Password Settings Container,CN=System,{}",
            d.base_dn()
        );
        run(&["dsacl", "set", &dn, "--sddl=(A;;RPLCLORC;;;AU)"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_honours_the_accounts_password_policy_length() {
    let estate = Estate::<SambaAd>::start(1).await;
    let d = estate.domain;
    let user = d.new_user("pso").await;
    apply_pso(&user.sam, 40, true);
    let dir = tempfile::tempdir().unwrap();

    // revoke generates 28 characters: too short for this account. Nothing
    // is written, and the error names the policy and what to do.
    let file = dir.path().join("gen.pw");
    let run = estate
        .revoke(
            "reset",
            &[
                user.sam.as_str(),
                "--yes",
                "--password-file",
                file.to_str().unwrap(),
            ],
        )
        .run()
        .await;
    run.assert_code(1);
    for says in [
        "requires at least 40",
        "password settings object",
        "--new-password-stdin",
    ] {
        assert!(
            run.stdout.contains(says) || run.stderr.contains(says),
            "{says}: {}{}",
            run.stdout,
            run.stderr
        );
    }
    d.bind(1, &user.upn, &user.password)
        .await
        .expect("nothing was written: the old password still works");
    assert_eq!(d.user_account_control(1, &user.dn).await, UAC_ENABLED);

    // A long enough new password: both rotations pass, so the throwaway met
    // the 40 characters too.
    let long = format!("Long-{}-Passw0rd-with-more-than-forty", unique_name("x"));
    let run = estate
        .revoke(
            "reset",
            &[
                user.sam.as_str(),
                "--yes",
                "--new-password-stdin",
                "--output",
                "json",
            ],
        )
        .stdin(&format!("{long}\n"))
        .run()
        .await;
    run.assert_code(0);
    d.bind(1, &user.upn, &long)
        .await
        .expect("the new password works");
    assert!(d.bind(1, &user.upn, &user.password).await.is_err());
}

/// Where revoke cannot read the policy, AD's refusal (result 19) of the
/// throwaway gets one longer throwaway; a refused final password is said
/// for what it is: one rotation done, the old password's NTLM window open.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_policy_refusing_the_new_password_is_reported_truthfully() {
    let estate = Estate::<SambaAd>::start(1).await;
    let d = estate.domain;
    let user = d.new_user("psohide").await;
    apply_pso(&user.sam, 40, false);
    let run = estate
        .revoke("reset", &[user.sam.as_str(), "--yes", "--output", "json"])
        .run()
        .await;
    run.assert_code(1);
    let report = run.json();
    let message = report["directory"]["users"][0]["message"].as_str().unwrap();
    for says in [
        "second rotation",
        "constraint violation",
        "length or complexity",
        "may still work for NTLM network logons",
    ] {
        assert!(message.contains(says), "{says}: {message}");
    }
    assert!(!message.contains("history"), "{message}");
    // Which is why it must be said: after one rotation the password of
    // before still logs on (Samba's old password window covers LDAP binds).
    d.bind(1, &user.upn, &user.password)
        .await
        .expect("one rotation leaves the previous password working");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_says_what_the_accounts_flags_leave_open() {
    let estate = Estate::<SambaAd>::start(1).await;
    let d = estate.domain;
    let user = d.new_user("flags").await;
    // SMARTCARD_REQUIRED | DONT_EXPIRE_PASSWORD | NORMAL_ACCOUNT
    d.set_user_account_control(1, &user.dn, 0x4_0000 | 0x1_0000 | 0x200)
        .await;
    let run = estate
        .revoke(
            "reset",
            &[
                user.sam.as_str(),
                "--must-change",
                "--dry-run",
                "--output",
                "json",
            ],
        )
        .run()
        .await;
    run.assert_code(0);
    let report = run.json();
    let message = report["directory"]["users"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("does not stop smart-card logons"),
        "{message}"
    );
    assert!(message.contains("must-change-password moot"), "{message}");
}
