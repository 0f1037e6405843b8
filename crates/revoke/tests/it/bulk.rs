//! Bulk offboarding on both directories: many accounts from a file (or
//! several on the command line) are resolved and guarded first, then all
//! changed, gated once and flushed once; one refusal changes nothing; a
//! bulk reset hands each account its own password in --password-dir.

use std::collections::HashMap;

use serde_json::Value;

use super::backend::{AdEstate, TestUser, UAC_DISABLED, UAC_ENABLED};
use crate::common::is_mutating;

/// `count` new users, made concurrently (each is pulled into DC2).
async fn users(estate: &AdEstate, prefix: &'static str, count: usize) -> Vec<TestUser> {
    let d = estate.domain;
    let mut made = tokio::task::JoinSet::new();
    for i in 0..count {
        made.spawn(async move { (i, d.new_user(prefix).await) });
    }
    let mut all: Vec<(usize, TestUser)> = made.join_all().await;
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, u)| u).collect()
}

/// The report's entry of each account, by sAMAccountName.
fn by_sam(report: &Value) -> HashMap<String, Value> {
    report["directory"]["users"]
        .as_array()
        .expect("directory.users[]")
        .iter()
        .map(|u| {
            (
                u["sam_account_name"].as_str().unwrap().to_string(),
                u.clone(),
            )
        })
        .collect()
}

/// Per lab server: how many WinRM command lines changed something (one
/// line recycles every pool), and whether any pool was recycled twice.
fn flushes_per_server(estate: &AdEstate) -> HashMap<String, (usize, bool)> {
    estate
        .lab()
        .servers()
        .iter()
        .map(|server| {
            let mutating: Vec<_> = server
                .log
                .entries()
                .into_iter()
                .filter(|e| is_mutating(&e.command_line))
                .collect();
            let mut lines: Vec<usize> = mutating.iter().map(|e| e.shell_command).collect();
            lines.dedup();
            let mut commands: Vec<&str> =
                mutating.iter().map(|e| e.command_line.as_str()).collect();
            commands.sort();
            let repeated = commands.windows(2).any(|w| w[0] == w[1]);
            (server.name.clone(), (lines.len(), repeated))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_five_accounts_from_a_file_are_changed_gated_once_and_flushed_once() {
    let estate = AdEstate::start(3).await;
    let d = estate.domain;
    let all = users(&estate, "bulk", 25).await;
    // The file the way a runbook writes it: comments, blank lines, and the
    // names in the forms an HR export has them.
    let mut text = String::from("# leavers, December\n\n");
    for (i, user) in all.iter().enumerate() {
        let line = match i % 3 {
            0 => user.sam.clone(),
            1 => user.upn.clone(),
            _ => format!("{}\\{}", d.netbios_domain(), user.sam),
        };
        text.push_str(&format!("  {line}  \n"));
        if i == 10 {
            text.push_str("# the rest from the second list\n\n");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("leavers.txt");
    std::fs::write(&list, text).unwrap();

    let run = estate
        .revoke(
            "disable",
            &[
                "--from-file",
                list.to_str().unwrap(),
                "--yes",
                "--output",
                "json",
            ],
        )
        .run()
        .await;
    run.assert_code(0);
    let report = run.json();
    let results = by_sam(&report);
    assert_eq!(results.len(), 25, "{:#}", report["directory"]["users"]);
    for user in &all {
        let result = &results[&user.sam];
        assert_eq!(result["status"], "disabled", "{result:#}");
        for dc in [1, 2] {
            assert_eq!(
                d.user_account_control(dc, &user.dn).await,
                UAC_DISABLED,
                "{} on dc{dc}",
                user.sam
            );
        }
    }
    // One gate: each DC appears once, for all 25 accounts together.
    let dcs: Vec<&str> = report["directory"]["domain_controllers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|dc| dc["host"].as_str().unwrap())
        .collect();
    let distinct: std::collections::HashSet<&&str> = dcs.iter().collect();
    assert_eq!(distinct.len(), dcs.len(), "a DC checked twice: {dcs:?}");
    assert!(
        dcs.contains(&d.dc_host(1)) && dcs.contains(&d.dc_host(2)),
        "{dcs:?}"
    );
    // One flush: every server got one command line that recycled each pool
    // once, not one per account.
    let flushes = flushes_per_server(&estate);
    assert!(
        flushes
            .values()
            .all(|(lines, repeated)| *lines == 1 && !repeated),
        "{flushes:?}"
    );
    assert_eq!(report["summary"]["ok"], 3, "{:#}", report["summary"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_refused_account_in_a_bulk_run_changes_none_and_every_refusal_is_listed() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let mut all = users(&estate, "bulkno", 23).await;
    let protected = d.user("bulkadm").admin_count().create().await;
    let second = d.user("bulkadm").admin_count().create().await;
    all.insert(7, protected.clone());
    all.push(second.clone());
    assert_eq!(all.len(), 25);
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("leavers.txt");
    let names: Vec<&str> = all.iter().map(|u| u.sam.as_str()).collect();
    std::fs::write(&list, names.join("\n")).unwrap();

    let run = estate
        .revoke("disable", &["--from-file", list.to_str().unwrap(), "--yes"])
        .run()
        .await;
    run.assert_code(3);
    // Both refusals at once, each naming its account and rule.
    for refused in [&protected, &second] {
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains(&refused.sam))
            .unwrap_or_else(|| panic!("{} not listed:\n{}", refused.sam, run.stderr));
        assert!(line.contains("adminCount=1"), "{line}");
    }
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    for user in &all {
        assert_eq!(
            d.user_account_control(1, &user.dn).await,
            UAC_ENABLED,
            "{} was changed",
            user.sam
        );
    }
    assert!(
        !estate
            .lab()
            .all_commands()
            .iter()
            .any(|(_, c)| is_mutating(c)),
        "a server was flushed"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_reset_gives_each_account_its_own_password_in_a_private_directory() {
    use std::os::unix::fs::PermissionsExt;
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let all = users(&estate, "bulkpw", 3).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("passwords");
    let run = estate
        .revoke(
            "reset",
            &[
                all[0].sam.as_str(),
                all[1].upn.as_str(),
                all[2].sam.as_str(),
                "--password-dir",
                out.to_str().unwrap(),
                "--yes",
                "--output",
                "json",
            ],
        )
        .run()
        .await;
    run.assert_code(0);
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the directory is created private");
    let report = run.json();
    let results = by_sam(&report);
    let mut seen = Vec::new();
    for user in &all {
        assert_eq!(results[&user.sam]["status"], "reset");
        let file = out.join(&user.sam);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
        let password = std::fs::read_to_string(&file)
            .unwrap()
            .trim_end()
            .to_string();
        // Its own password binds for its account, on both DCs...
        for dc in [1, 2] {
            d.bind(dc, &user.upn, &password)
                .await
                .unwrap_or_else(|e| panic!("dc{dc}: {}'s new password: {e}", user.sam));
            assert!(d.bind(dc, &user.upn, &user.password).await.is_err());
        }
        // ...and is nobody else's, and in no report.
        assert!(!seen.contains(&password), "two accounts share a password");
        assert!(!run.stdout.contains(&password) && !run.stderr.contains(&password));
        seen.push(password);
    }
    // The files are never overwritten: the same directory again is refused
    // before anything is changed.
    let again = estate
        .revoke(
            "reset",
            &[
                all[0].sam.as_str(),
                all[2].sam.as_str(),
                "--password-dir",
                out.to_str().unwrap(),
                "--yes",
            ],
        )
        .run()
        .await;
    again.assert_code(1);
    assert!(
        again.stderr.contains("already holds a file for"),
        "{}",
        again.stderr
    );
    d.bind(1, &all[0].upn, &seen[0]).await.unwrap();
}

/// Stdin serves one purpose; one stdin password is never given to several
/// accounts; several accounts need --password-dir, not --password-file.
/// All refused before anything is contacted.
#[tokio::test(flavor = "multi_thread")]
async fn stdin_and_single_password_options_are_refused_for_several_accounts() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let user = d.new_user("bulkuse").await;
    let cases: [(&str, Vec<&str>, &str); 4] = [
        (
            "disable",
            vec!["--from-file", "-", "--password-stdin"],
            "stdin can serve only one of them",
        ),
        (
            "reset",
            vec!["--from-file", "-", "--new-password-stdin"],
            "stdin can serve only one of them",
        ),
        (
            "reset",
            vec![user.sam.as_str(), "bob", "--new-password-stdin"],
            "revoke does not give several accounts the same password",
        ),
        (
            "reset",
            vec![user.sam.as_str(), "bob", "--password-file", "/tmp/x.pw"],
            "give --password-dir DIR instead",
        ),
    ];
    for (command, mut args, expected) in cases {
        args.push("--yes");
        let run = estate
            .revoke(command, &args)
            .stdin(&format!("{}\n", user.sam))
            .run()
            .await;
        run.assert_code(1);
        assert!(
            run.stderr.contains(expected),
            "{command} {args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(d.user_account_control(1, &user.dn).await, UAC_ENABLED);
    assert!(
        !estate
            .lab()
            .all_commands()
            .iter()
            .any(|(_, c)| is_mutating(c))
    );

    // The list on stdin, the password from the environment: that works.
    let run = estate
        .revoke("disable", &["--from-file", "-", "--yes", "-q"])
        .stdin(&format!("# one\n{}\n", user.sam))
        .run()
        .await;
    run.assert_code(0);
    assert_eq!(d.user_account_control(1, &user.dn).await, UAC_DISABLED);
}
