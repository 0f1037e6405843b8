//! `revoke disable`, `revoke reset` and `revoke servers` against the real
//! two-DC Samba AD domain and a lab of Exchange servers. DC2 lags behind DC1
//! (no automatic replication), so every change meets a stale DC.

use std::time::Duration;

use serde_json::Value;

use super::backend::{AdEstate, TestUser, UAC_DISABLED, UAC_ENABLED, unique_name};
use crate::common::{Run, dc_report, is_mutating, mutation_times};

const EXCHANGE_POOL_COUNT: usize = revoke_core::iis::EXCHANGE_POOLS.len();

/// The lab ran nothing that changes anything.
#[track_caller]
fn assert_nothing_flushed(estate: &AdEstate) {
    let commands = estate.lab().all_commands();
    assert!(
        !commands.iter().any(|(_, c)| is_mutating(c)),
        "something was flushed: {commands:#?}"
    );
}

/// Neither the operator's password nor `extra` secrets in anything revoke printed.
#[track_caller]
fn assert_no_secrets(run: &Run, estate: &AdEstate, extra: &[&str]) {
    for secret in [estate.domain.operator_password()].iter().chain(extra) {
        assert!(!run.stdout.contains(secret), "a secret on stdout");
        assert!(!run.stderr.contains(secret), "a secret on stderr");
    }
}

fn user_report(report: &Value) -> &Value {
    let users = report["directory"]["users"].as_array().expect("users[]");
    assert_eq!(users.len(), 1, "{users:#?}");
    &users[0]
}

/// The user is refused on both DCs because the account is disabled.
async fn assert_disabled_everywhere(estate: &AdEstate, user: &TestUser) {
    let d = estate.domain;
    for dc in [1, 2] {
        let refused = d.bind(dc, &user.upn, &user.password).await.unwrap_err();
        assert!(refused.contains("data 533"), "dc{dc}: {refused}");
        assert_eq!(d.user_account_control(dc, &user.dn).await, UAC_DISABLED);
    }
}

// ------------------------------------------------------------ disable

#[tokio::test(flavor = "multi_thread")]
async fn disable_reaches_both_dcs_before_any_server_is_flushed() {
    let estate = AdEstate::start(3).await;
    let d = estate.domain;
    let user = d.new_user("dis").await;
    for dc in [1, 2] {
        d.bind(dc, &user.upn, &user.password)
            .await
            .unwrap_or_else(|e| panic!("before: dc{dc} refuses {}: {e}", user.sam));
    }

    let run = estate.disable_json(&user.sam).run().await;
    run.assert_code(0);
    assert_no_secrets(&run, &estate, &[&user.password]);
    assert_disabled_everywhere(&estate, &user).await;

    let report = run.json();
    assert_eq!(report["action"], "disable");
    let u = user_report(&report);
    assert_eq!(u["status"], "disabled");
    assert_eq!(u["dn"], user.dn.as_str());
    assert_eq!(u["user_account_control_before"], UAC_ENABLED);
    assert_eq!(u["user_account_control_after"], UAC_DISABLED);
    assert_eq!(
        u["flags_after"],
        serde_json::json!(["ACCOUNTDISABLE", "NORMAL_ACCOUNT"])
    );
    assert_eq!(dc_report(&report, d.dc_host(1))["status"], "written");
    // DC2 never replicates by itself here: revoke had to write it there.
    let dc2 = dc_report(&report, d.dc_host(2));
    assert_eq!(dc2["status"], "direct-write", "{dc2:#}");

    // Every DC had the change before the first recycle was sent.
    let last_dc = [d.dc_host(1), d.dc_host(2)]
        .into_iter()
        .map(|host| {
            let at = dc_report(&report, host)["confirmed_at"]
                .as_str()
                .expect("confirmed_at");
            humantime::parse_rfc3339(at).expect("RFC 3339")
        })
        .max()
        .unwrap();
    let first_recycle = estate
        .lab()
        .servers()
        .iter()
        .flat_map(mutation_times)
        .min()
        .expect("servers were flushed");
    assert!(
        last_dc <= first_recycle,
        "a server was flushed before every DC had the change"
    );

    assert_eq!(report["summary"]["ok"], 3, "{:#}", report["summary"]);
    // The headline: closed once every DC had it and every old worker was gone.
    let exposure = &report["exposure"];
    assert_eq!(exposure["closed"], true, "{exposure:#}");
    let closed_at = humantime::parse_rfc3339(exposure["closed_at"].as_str().unwrap()).unwrap();
    assert!(closed_at >= last_dc && closed_at >= first_recycle);
    assert_eq!(report["summary"]["pools_recycled"], 3 * EXCHANGE_POOL_COUNT);
}

#[tokio::test(flavor = "multi_thread")]
async fn disabling_again_reports_already_disabled_and_still_flushes() {
    let estate = AdEstate::start(1).await;
    let user = estate.domain.new_user("again").await;
    estate
        .revoke("disable", &[&user.sam, "--yes", "-q"])
        .run()
        .await
        .assert_code(0);
    let recycles = || {
        let all = estate.lab().all_commands();
        all.iter().filter(|(_, c)| is_mutating(c)).count()
    };
    let after_first = recycles();

    let run = estate.disable_json(&user.sam).run().await;
    run.assert_code(0);
    let report = run.json();
    let u = user_report(&report);
    assert_eq!(u["status"], "already-disabled");
    assert_eq!(u["user_account_control_after"], UAC_DISABLED);
    assert_eq!(recycles(), 2 * after_first, "the second run flushed again");
    assert_disabled_everywhere(&estate, &user).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn several_users_share_one_flush() {
    let estate = AdEstate::start(2).await;
    let a = estate.domain.new_user("pair").await;
    let b = estate.domain.new_user("pair").await;
    let run = estate
        .revoke("disable", &[&a.sam, &b.upn, "--yes", "--output", "json"])
        .run()
        .await;
    run.assert_code(0);
    let report = run.json();
    let users = report["directory"]["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert!(
        users.iter().all(|u| u["status"] == "disabled"),
        "{users:#?}"
    );
    for server in estate.lab().servers() {
        let recycles = mutation_times(server).len();
        assert_eq!(
            recycles, EXCHANGE_POOL_COUNT,
            "{}: one flush for both",
            server.name
        );
    }
    assert_disabled_everywhere(&estate, &a).await;
    assert_disabled_everywhere(&estate, &b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_change_is_not_overwritten_and_other_bits_are_kept() {
    use revoke_core::directory::change::{AccountState, disable};
    use revoke_core::directory::{Connection, DirectorySettings, Security};

    let d = super::backend::domain();
    let user = d.new_user("race").await;
    let settings = DirectorySettings {
        host: d.dc_host(1).to_string(),
        port: 636,
        security: Security::Ldaps,
        ca_file: Some(d.ca_file().to_path_buf()),
        bind_user: d.operator_upn().to_string(),
        domain_controllers: None,
        operation_timeout: Duration::from_secs(15),
        global_catalog: None,
        auth: Default::default(),
    };
    let password = revoke_core::Password::new(d.operator_password().into());
    let mut conn = Connection::open(&settings, &password)
        .await
        .expect("operator bind");
    let seen = AccountState::read(&mut conn, &user.dn).await.unwrap();
    assert_eq!(seen.user_account_control, UAC_ENABLED);
    // Someone else sets DONT_EXPIRE_PASSWORD after revoke read the account.
    d.set_user_account_control(1, &user.dn, 0x10200).await;

    let applied = disable(&mut conn, &user.dn, Some(seen))
        .await
        .expect("disable");
    // The write from the stale read failed; revoke read again and kept the new bit.
    assert_eq!(applied.before.user_account_control, 0x10200);
    assert_eq!(applied.after.user_account_control, 0x10202);
    assert_eq!(d.user_account_control(1, &user.dn).await, 0x10202);
}

// ------------------------------------------------------------ reset

#[tokio::test(flavor = "multi_thread")]
async fn reset_leaves_neither_previous_password_working_on_any_dc() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let user = d.new_user("reset").await;
    let first = user.password.clone();
    let second = format!("{first}-2nd");
    // A helpdesk reset by hand, pulled into DC2 like a normal replication.
    d.set_password(1, &user.dn, &second).await;
    d.sync_to_dc2(Some(&user.dn)).await;
    // The trap revoke avoids: after ONE reset the previous password still works.
    d.bind(1, &user.upn, &first)
        .await
        .expect("Samba's old-password window: the previous password still binds");

    let (run, new, dir) = estate.reset_to_file(&user.sam).await;
    let file = dir.path().join("new.pw");
    assert!(new.len() >= 24, "generated password too short");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_no_secrets(&run, &estate, &[&new, &first, &second]);

    for dc in [1, 2] {
        for old in [&first, &second] {
            let refused = d.bind(dc, &user.upn, old).await.unwrap_err();
            assert!(
                refused.contains("data 52e"),
                "dc{dc}: old password: {refused}"
            );
        }
        d.bind(dc, &user.upn, &new)
            .await
            .unwrap_or_else(|e| panic!("dc{dc}: new password refused: {e}"));
    }
    let report = run.json();
    assert_eq!(report["action"], "reset");
    assert_eq!(user_report(&report)["status"], "reset");
    assert_eq!(dc_report(&report, d.dc_host(2))["status"], "direct-write");
    assert_eq!(report["summary"]["ok"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_with_a_given_password_and_must_change() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let user = d.new_user("given").await;
    let new = format!("Gv{}.9x", unique_name("pw"));
    let run = estate
        .revoke(
            "reset",
            &[
                &user.sam,
                "--yes",
                "--new-password-stdin",
                "--must-change",
                "-q",
            ],
        )
        .stdin(&format!("{new}\n"))
        .run()
        .await;
    run.assert_code(0);
    assert_no_secrets(&run, &estate, &[&new]);
    for dc in [1, 2] {
        let attrs = d.read(dc, &user.dn, &["pwdLastSet"]).await;
        assert_eq!(attrs["pwdLastSet"], ["0"], "dc{dc}");
        // The new password is right, but must be changed first.
        let refused = d.bind(dc, &user.upn, &new).await.unwrap_err();
        assert!(refused.contains("data 773"), "dc{dc}: {refused}");
        let old = d.bind(dc, &user.upn, &user.password).await.unwrap_err();
        assert!(old.contains("data 52e"), "dc{dc}: {old}");
    }
}

// ------------------------------------------------------------ identity

#[tokio::test(flavor = "multi_thread")]
async fn every_identity_form_names_the_one_user() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let mail = format!("{}@mail.example.test", unique_name("mail"));
    let user = d.user("forms").mail(&mail).create().await;
    let domain_sam = format!("LAB\\{}", user.sam);
    let dns_sam = format!("lab.example.test\\{}", user.sam);
    let upper = user.sam.to_uppercase();
    for input in [
        &user.sam,
        &upper,
        &domain_sam,
        &dns_sam,
        &user.upn,
        &mail,
        &user.dn,
    ] {
        let run = estate
            .revoke(
                "disable",
                &[input.as_str(), "--dry-run", "--output", "json"],
            )
            .run()
            .await;
        run.assert_code(0);
        let report = run.json();
        let u = user_report(&report);
        assert_eq!(u["dn"], user.dn.as_str(), "{input}");
        assert_eq!(u["input"], input.as_str());
        assert_eq!(u["status"], "planned");
    }
    let run = estate
        .revoke("disable", &[&format!("OTHER\\{}", user.sam), "--dry-run"])
        .run()
        .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("not the directory's domain"),
        "{}",
        run.stderr
    );
    assert_nothing_flushed(&estate);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_user_is_reported_with_the_search_and_nothing_happens() {
    let estate = AdEstate::start(1).await;
    let name = unique_name("ghost");
    let run = estate.revoke("disable", &[&name, "--yes"]).run().await;
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!("no such user: {name}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("(sAMAccountName={name})")),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    assert_nothing_flushed(&estate);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ambiguous_name_lists_the_candidates_and_changes_nothing() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let mail = format!("{}@shared.example.test", unique_name("amb"));
    let a = d.user("amb").mail(&mail).create().await;
    let b = d.user("amb").mail(&mail).create().await;
    let run = estate.revoke("disable", &[&mail, "--yes"]).run().await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("matches 2 user objects"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&a.dn) && run.stderr.contains(&b.dn),
        "{}",
        run.stderr
    );
    for u in [&a, &b] {
        assert_eq!(d.user_account_control(1, &u.dn).await, UAC_ENABLED);
    }
    assert_nothing_flushed(&estate);
}

/// 1,005 users share a mail address: more than AD's MaxPageSize (1,000),
/// which Windows and the embedded directory enforce on a search without
/// paging (Samba does not, docs/windows-behaviour.md §2.20). revoke pages,
/// finds every one and lists them all.
#[tokio::test(flavor = "multi_thread")]
async fn an_ambiguous_name_past_a_page_lists_every_candidate() {
    let estate = AdEstate::start(1).await;
    let (mail, dns) = estate.domain.paging_users(1005).await;
    let run = estate.revoke("disable", &[&mail, "--yes"]).run().await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("matches 1005 user objects"),
        "{}",
        &run.stderr[..run.stderr.len().min(2000)]
    );
    for dn in [&dns[0], &dns[999], &dns[1004]] {
        assert!(run.stderr.contains(dn.as_str()), "{dn} not listed");
    }
    assert_nothing_flushed(&estate);
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_metacharacters_match_only_themselves() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let canary = d.new_user("canary").await;
    let star_dn = format!("CN=*,{}", d.staff_dn());
    let inputs = [
        "*",
        "a*",
        "*)(sAMAccountName=*",
        "*)(|(objectClass=*)",
        "(",
        ")",
        "\\",
        "\\2a",
        "*@*",
        star_dn.as_str(),
    ];
    for input in inputs {
        let run = estate.revoke("disable", &[input, "--yes"]).run().await;
        run.assert_code(1);
        let clear = run.stderr.contains("no such user") || run.stderr.contains("not a valid");
        assert!(clear, "{input:?}: {}", run.stderr);
    }
    assert_eq!(d.user_account_control(1, &canary.dn).await, UAC_ENABLED);
    assert_nothing_flushed(&estate);
}

#[tokio::test(flavor = "multi_thread")]
async fn computers_groups_and_contacts_are_not_users() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let user = d.new_user("look").await;
    let look = d.lookalikes(&user).await;
    // Same mail on a computer, a group and a contact: still exactly the user.
    let run = estate
        .revoke("disable", &[&user.mail, "--dry-run", "--output", "json"])
        .run()
        .await;
    run.assert_code(0);
    assert_eq!(user_report(&run.json())["dn"], user.dn.as_str());
    let computer_sam = format!("{}$", user.sam);
    for other in [&computer_sam, &look.computer, &look.group, &look.contact] {
        let run = estate
            .revoke("disable", &[other.as_str(), "--yes"])
            .run()
            .await;
        run.assert_code(1);
        assert!(
            run.stderr.contains("no such user"),
            "{other}: {}",
            run.stderr
        );
    }
    assert_nothing_flushed(&estate);
}

// ------------------------------------------------------------ guards

#[tokio::test(flavor = "multi_thread")]
async fn guards_refuse_with_the_rule_and_change_nothing() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let flagged = d.user("adm").admin_count().create().await;
    let tier0 = d.new_group("tier0").await;
    d.add_member(&d.domain_admins_dn(), &tier0.dn).await;
    let nested = d.user("nested").member_of(&tier0.dn).create().await;
    let backup = d
        .user("backup")
        .member_of(&d.backup_operators_dn())
        .create()
        .await;
    let operator = d.operator_sam().to_string();
    let cases = [
        ("Administrator", "RID 500"),
        ("krbtgt", "RID 502"),
        (operator.as_str(), "the account revoke is running as"),
        (flagged.sam.as_str(), "adminCount=1"),
        (nested.sam.as_str(), "Domain Admins"),
        (backup.sam.as_str(), "Backup Operators"),
    ];
    for (who, rule) in cases {
        for extra in [&["--yes"][..], &["--dry-run"][..]] {
            let mut args = vec![who];
            args.extend_from_slice(extra);
            let run = estate.revoke("disable", &args).run().await;
            run.assert_code(3);
            assert!(run.stderr.contains(rule), "{who}: {}", run.stderr);
            assert!(run.stdout.is_empty());
        }
    }
    for u in [&flagged, &nested, &backup] {
        assert_eq!(
            d.user_account_control(1, &u.dn).await,
            UAC_ENABLED,
            "{}",
            u.sam
        );
    }
    assert_nothing_flushed(&estate);

    // One refused account stops the others too.
    let fine = d.new_user("fine").await;
    let run = estate
        .revoke("disable", &[&fine.sam, "krbtgt", "--yes"])
        .run()
        .await;
    run.assert_code(3);
    assert_eq!(d.user_account_control(1, &fine.dn).await, UAC_ENABLED);

    // --allow-privileged lifts the privilege rules, never the fixed ones.
    let run = estate
        .revoke(
            "disable",
            &[&nested.sam, "--allow-privileged", "--dry-run", "-q"],
        )
        .run()
        .await;
    run.assert_code(0);
    let run = estate
        .revoke(
            "disable",
            &["Administrator", "--allow-privileged", "--dry-run"],
        )
        .run()
        .await;
    run.assert_code(3);
}

/// Protected membership comes from the user's logon token (tokenGroups):
/// through a primary group nested in Domain Admins (no `member` value
/// anywhere names the user) and through a group nested in Replicator.
/// Service accounts are refused even with --allow-privileged; Cert
/// Publishers is not a protected group.
#[tokio::test(flavor = "multi_thread")]
async fn guards_read_the_logon_token_and_never_touch_service_accounts() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let tier0 = d.new_group("tier0").await;
    d.add_member(&d.domain_admins_dn(), &tier0.dn).await;
    let primary = d.user("primary").member_of(&tier0.dn).create().await;
    d.set_primary_group(&primary.dn, &tier0.dn).await;
    let repl_group = d.new_group("repl").await;
    d.add_member(&d.builtin_group_dn("Replicator"), &repl_group.dn)
        .await;
    let replicator = d.user("repl").member_of(&repl_group.dn).create().await;
    let suffix = &unique_name("s")[2..];
    let sync = d.user("sync").sam(&format!("MSOL_{suffix}")).create().await;
    let digits = format!("{:05}", getrandom::u32().unwrap() % 100_000);
    let rodc_krbtgt = d
        .user("krb")
        .sam(&format!("krbtgt_{digits}"))
        .create()
        .await;
    let cert_publishers = format!("CN=Cert Publishers,CN=Users,{}", d.base_dn());
    let publisher = d.user("certpub").member_of(&cert_publishers).create().await;

    let cases = [
        (primary.sam.as_str(), "Domain Admins", true),
        (replicator.sam.as_str(), "Replicator", true),
        (
            sync.sam.as_str(),
            "directory synchronisation account",
            false,
        ),
        (
            rodc_krbtgt.sam.as_str(),
            "read-only DC's Kerberos account",
            false,
        ),
    ];
    for (who, rule, overridable) in cases {
        let run = estate.revoke("disable", &[who, "--yes"]).run().await;
        run.assert_code(3);
        assert!(run.stderr.contains(rule), "{who}: {}", run.stderr);
        let run = estate
            .revoke("disable", &[who, "--allow-privileged", "--dry-run", "-q"])
            .run()
            .await;
        run.assert_code(if overridable { 0 } else { 3 });
        if !overridable {
            assert!(run.stderr.contains("no flag overrides"), "{}", run.stderr);
        }
    }
    for u in [&primary, &replicator, &sync, &rodc_krbtgt] {
        assert_eq!(d.user_account_control(1, &u.dn).await, UAC_ENABLED);
    }
    assert_nothing_flushed(&estate);
    let run = estate
        .revoke("disable", &[&publisher.sam, "--dry-run", "-q"])
        .run()
        .await;
    run.assert_code(0);
}

// ------------------------------------------------------------ operator

/// The operator binds by its implicit UPN (`sam@<DNS domain>`) while its
/// userPrincipalName and mail say something else: revoke still knows who
/// it is — from "Who am I?" where the DC answers it (the embedded
/// directory, like Windows), else by resolving the bind name as AD does
/// (Samba) — and refuses to act on it.
#[tokio::test(flavor = "multi_thread")]
async fn an_operator_bound_by_its_implicit_upn_is_still_known() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let elsewhere = format!("{}@alt.example.test", unique_name("alt"));
    let op = d
        .user("implop")
        .upn(&elsewhere)
        .mail(&elsewhere)
        .create()
        .await;
    let implicit = format!("{}@{}", op.sam, d.dns_domain());
    d.bind(1, &implicit, &op.password)
        .await
        .expect("the implicit UPN binds");
    estate.set_directory("bind_user", implicit.as_str());
    for mode in ["--dry-run", "--yes"] {
        let run = estate
            .revoke("disable", &[op.sam.as_str(), mode])
            .password(&op.password)
            .run()
            .await;
        run.assert_code(3);
        assert!(
            run.stderr.contains("the account revoke is running as"),
            "{mode}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("cannot look up"), "{}", run.stderr);
    }
    assert_eq!(d.user_account_control(1, &op.dn).await, UAC_ENABLED);
    assert_nothing_flushed(&estate);
}

/// `revoke-op@LAB` (the NetBIOS name as a UPN suffix) binds on both
/// directories, but it is neither a userPrincipalName nor the implicit UPN.
/// Where the DC answers "Who am I?" revoke learns the account from it; where
/// it does not (Samba), revoke does not guess: exit 3, nothing changed.
#[tokio::test(flavor = "multi_thread")]
async fn an_operator_revoke_cannot_identify_changes_nothing() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let bind = format!("{}@{}", d.operator_sam(), d.netbios_domain());
    d.bind(1, &bind, d.operator_password())
        .await
        .expect("the DC accepts the bind name");
    estate.set_directory("bind_user", bind.as_str());
    let target = d.new_user("victim").await;
    let run = estate.disable_json(&target.sam).run().await;
    if d.answers_who_am_i() {
        run.assert_code(0);
        assert_disabled_everywhere(&estate, &target).await;
        let me = estate
            .revoke("disable", &[d.operator_sam(), "--dry-run"])
            .run()
            .await;
        me.assert_code(3);
        assert!(
            me.stderr.contains("the account revoke is running as"),
            "{}",
            me.stderr
        );
    } else {
        run.assert_code(3);
        assert!(
            run.stderr.contains(&format!(
                "cannot tell which account it is bound as ({bind})"
            )),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("changes nothing"), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert_eq!(d.user_account_control(1, &target.dn).await, UAC_ENABLED);
        assert_nothing_flushed(&estate);
    }
}

// ------------------------------------------------------------ dry run

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_changes_nothing_anywhere() {
    let estate = AdEstate::start(2).await;
    let d = estate.domain;
    let user = d.new_user("dry").await;
    let mut before = Vec::new();
    for dc in [1, 2] {
        before.push((
            d.usn_changed(dc, &user.dn).await,
            d.when_changed(dc, &user.dn).await,
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("never.pw");
    for (command, extra) in [("disable", None), ("reset", Some(file.to_str().unwrap()))] {
        let mut args = vec![user.sam.as_str(), "--dry-run", "--output", "json"];
        if let Some(path) = extra {
            args.extend(["--password-file", path]);
        }
        let run = estate.revoke(command, &args).run().await;
        run.assert_code(0);
        let report = run.json();
        assert_eq!(report["dry_run"], true);
        let u = user_report(&report);
        assert_eq!(u["status"], "planned");
        assert_eq!(u["user_account_control_before"], UAC_ENABLED);
        if command == "disable" {
            assert_eq!(u["user_account_control_after"], UAC_DISABLED);
        }
        for dc in [1, 2] {
            let view = dc_report(&report, d.dc_host(dc));
            assert_eq!(view["status"], "planned");
            let message = view["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("{} enabled (512)", user.sam)),
                "{message}"
            );
        }
        assert_eq!(report["summary"]["planned"], 2);
    }
    for (dc, was) in [1, 2].into_iter().zip(before) {
        let now = (
            d.usn_changed(dc, &user.dn).await,
            d.when_changed(dc, &user.dn).await,
        );
        assert_eq!(now, was, "dc{dc} changed");
    }
    assert!(!file.exists(), "a dry run created the password file");
    assert_nothing_flushed(&estate);
}

// ------------------------------------------------------------ failures

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_directory_is_exit_1_and_nothing_is_flushed() {
    let estate = AdEstate::start(1).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    estate.set_directory("url", format!("ldaps://127.0.0.1:{port}"));
    let run = estate.revoke("disable", &["anyone", "--yes"]).run().await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("cannot reach the directory"),
        "{}",
        run.stderr
    );
    assert_nothing_flushed(&estate);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_operator_password_is_exit_1() {
    let estate = AdEstate::start(1).await;
    let user = estate.domain.new_user("wrongpw").await;
    let run = estate
        .revoke("disable", &[&user.sam, "--yes"])
        .password("not-the-password")
        .run()
        .await;
    run.assert_code(1);
    assert!(run.stderr.contains("refused the bind"), "{}", run.stderr);
    assert!(run.stderr.contains("wrong password"), "{}", run.stderr);
    assert_eq!(
        estate.domain.user_account_control(1, &user.dn).await,
        UAC_ENABLED
    );
    assert_nothing_flushed(&estate);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_ad_refuses_flushes_nothing_and_says_so() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    // CN=Users: the operator has no delegated rights there.
    let users = format!("CN=Users,{}", d.base_dn());
    let user = d.user("norights").under(&users).create().await;
    let run = estate.disable_json(&user.sam).run().await;
    run.assert_code(1);
    let report = run.json();
    let u = user_report(&report);
    assert_eq!(u["status"], "failed");
    assert!(
        u["message"]
            .as_str()
            .unwrap()
            .contains("insufficient access"),
        "{u:#}"
    );
    assert!(report["flush_skipped"].is_string());
    assert_eq!(report["servers"], serde_json::json!([]));
    assert_eq!(d.user_account_control(1, &user.dn).await, UAC_ENABLED);
    assert_nothing_flushed(&estate);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_terminal_and_without_yes_nothing_is_changed() {
    let estate = AdEstate::start(1).await;
    let user = estate.domain.new_user("noyes").await;
    let run = estate.revoke("disable", &[&user.sam]).run().await;
    run.assert_code(1);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert_eq!(
        estate.domain.user_account_control(1, &user.dn).await,
        UAC_ENABLED
    );
    assert_nothing_flushed(&estate);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dc_that_cannot_be_confirmed_is_reported_and_the_run_ends_2() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let user = d.new_user("stuck").await;
    // A third "DC" on a loopback address where nothing listens (the Samba
    // DCs bind 127.0.0.1 and 127.0.0.2 only).
    let dead = "127.0.0.3".to_string();
    let dcs = vec![
        d.dc_host(1).to_string(),
        d.dc_host(2).to_string(),
        dead.clone(),
    ];
    estate.set_directory("domain_controllers", dcs);
    estate.set_directory("replication_timeout", 3);
    let run = estate.disable_json(&user.sam).run().await;
    run.assert_code(2);
    let report = run.json();
    let stuck = dc_report(&report, &dead);
    assert_eq!(stuck["status"], "not-converged", "{stuck:#}");
    assert!(stuck["confirmed_at"].is_null());
    assert_eq!(dc_report(&report, d.dc_host(2))["status"], "direct-write");
    // The flush still ran: the DCs that have the change must not wait for it.
    assert_eq!(report["summary"]["ok"], 1);
    assert_disabled_everywhere(&estate, &user).await;

    let table = estate.revoke("disable", &[&user.sam, "--yes"]).run().await;
    table.assert_code(2);
    assert!(table.stdout.contains("Still open:"), "{}", table.stdout);
    assert!(
        table.stdout.contains(&format!("domain controller {dead}")),
        "{}",
        table.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_waiting_for_replication_dc2_is_left_unchecked_and_open() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let user = d.new_user("nowait").await;
    let run = estate
        .revoke(
            "disable",
            &[
                &user.sam,
                "--yes",
                "--no-wait-replication",
                "--output",
                "json",
            ],
        )
        .run()
        .await;
    run.assert_code(0);
    let report = run.json();
    assert_eq!(dc_report(&report, d.dc_host(2))["status"], "unchecked");
    // What the gate exists for: DC2 still lets the user in.
    d.bind(2, &user.upn, &user.password)
        .await
        .expect("DC2 has not seen the disable");
}

// ------------------------------------------------------------ discovery

#[tokio::test(flavor = "multi_thread")]
async fn servers_lists_every_exchange_server_in_ad_but_edge() {
    let estate = AdEstate::start_without_servers().await;
    let d = estate.domain;
    let run = estate.revoke("servers", &["--output", "json"]).run().await;
    run.assert_code(0);
    let report = run.json();
    let servers = report["servers"].as_array().expect("servers[]");
    let server = |host: &str| {
        servers
            .iter()
            .find(|s| s["host"] == host)
            .unwrap_or_else(|| panic!("{host} not listed: {report:#}"))
    };
    // Version (major.minor, product, build as AD writes it) and roles.
    let expected = [
        (
            "ex01",
            "15.1",
            "Exchange 2016",
            "30225.42",
            &["mailbox", "client-access"][..],
            6,
        ),
        (
            "ex02",
            "15.2",
            "Exchange 2019",
            "1118.7",
            &["client-access"][..],
            4,
        ),
        // Exchange 2013 stand-alone Client Access (roles 16385): it holds caches too.
        (
            "ex03",
            "15.0",
            "Exchange 2013",
            "1497.2",
            &["client-access"][..],
            16385,
        ),
    ];
    for (name, version, product, build, roles, mask) in expected {
        let s = server(&format!("{name}.{}", d.dns_domain()));
        assert_eq!(s["version"], version, "{s:#}");
        assert_eq!(s["product"], product, "{s:#}");
        assert_eq!(s["build"], build, "{s:#}");
        assert_eq!(s["roles"], serde_json::json!(roles), "{s:#}");
        assert_eq!(s["roles_mask"], mask, "{s:#}");
        // The AD site where the directory has one; null (never a guess) where not.
        if d.has_exchange_sites() {
            assert_eq!(s["site"], "Default-First-Site-Name", "{s:#}");
        } else {
            assert!(s["site"].is_null(), "{s:#}");
        }
    }
    assert_eq!(servers.len(), 3, "{report:#}");
    assert!(
        !servers
            .iter()
            .any(|s| s["host"].as_str().unwrap().starts_with("edge")),
        "Edge listed: {report:#}"
    );

    let table = estate.revoke("servers", &[] as &[&str]).run().await;
    table.assert_code(0);
    let line = |host: &str| {
        table
            .stdout
            .lines()
            .find(|l| l.starts_with(host))
            .unwrap_or_else(|| panic!("no line for {host}: {}", table.stdout))
            .to_string()
    };
    let ex01 = line("ex01.");
    assert!(
        ex01.contains("Exchange 2016 (15.1, build 30225.42)"),
        "{ex01}"
    );
    assert!(ex01.contains("Mailbox, Client Access"), "{ex01}");
    let ex03 = line("ex03.");
    assert!(ex03.contains("Exchange 2013"), "{ex03}");
    assert!(
        ex03.contains("Client Access (Exchange 2013 stand-alone)"),
        "{ex03}"
    );
    if d.has_exchange_sites() {
        assert!(ex01.ends_with("Default-First-Site-Name"), "{ex01}");
        assert!(!table.stdout.contains("site unknown"), "{}", table.stdout);
    } else {
        // Said, with why: Samba's stand-in schema has no msExchServerSite.
        assert!(ex01.ends_with("site unknown"), "{ex01}");
        assert!(
            table.stdout.contains("has no msExchServerSite"),
            "{}",
            table.stdout
        );
    }
}

// ------------------------------------------------------------ transport

#[tokio::test(flavor = "multi_thread")]
async fn the_directory_connection_is_encrypted_and_verified() {
    let estate = AdEstate::start(1).await;
    let d = estate.domain;
    let user = d.new_user("tls").await;
    let dry = ["--dry-run", "-q"];
    let args: Vec<&str> = [user.sam.as_str()].into_iter().chain(dry).collect();

    // Plain LDAP is refused before anything is sent.
    estate.set_directory("url", format!("ldap://{}", d.dc_host(1)));
    let run = estate.revoke("disable", &args).run().await;
    run.assert_code(1);
    assert!(run.stderr.contains("clear text"), "{}", run.stderr);

    // StartTLS on 389 works.
    estate.set_directory("starttls", true);
    estate.revoke("disable", &args).run().await.assert_code(0);

    // A CA that did not sign the DC's certificate: refused.
    estate.set_directory("starttls", false);
    estate.set_directory("url", d.dc_url(1));
    let other_ca = estate.config().with_file_name("lab-ca.pem");
    estate.set_directory("ca_file", other_ca.display().to_string());
    let run = estate.revoke("disable", &args).run().await;
    run.assert_code(1);
    // It did reach the DC: the message says the certificate is the problem,
    // and how to give the right CA.
    assert!(run.stderr.contains("answered, but"), "{}", run.stderr);
    assert!(run.stderr.contains("not signed by a CA"), "{}", run.stderr);
    assert!(run.stderr.contains("--directory-ca-file"), "{}", run.stderr);
    assert!(!run.stderr.contains("cannot reach"), "{}", run.stderr);
    assert_nothing_flushed(&estate);
}
