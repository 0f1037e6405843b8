//! The Samba AD fixture (samba.rs) gives later tests what they rely on: users
//! that bind on both DCs, a DC2 that really lags, Exchange server objects and
//! delegated rights the operator can use, protected-group nesting, objects
//! that look like users but are not.

use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapResult, Mod, Scope};

use crate::samba::{AdEstate, UAC_DISABLED, UAC_ENABLED, domain, search, values};

/// Generous for two local round trips; a bind that takes seconds would make
/// every convergence check slow.
const BIND_LIMIT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread")]
async fn new_user_binds_on_both_dcs() {
    let d = domain();
    let started = Instant::now();
    let u = d.new_user("binds").await;
    eprintln!("new_user (with pull into DC2): {:?}", started.elapsed());
    assert!(u.sam.len() <= 20, "{}", u.sam);
    for dc in [1, 2] {
        let started = Instant::now();
        d.bind(dc, &u.upn, &u.password)
            .await
            .unwrap_or_else(|e| panic!("dc{dc}: {e}"));
        let took = started.elapsed();
        eprintln!("bind on dc{dc}: {took:?}");
        assert!(took < BIND_LIMIT, "bind on dc{dc} took {took:?}");

        let attrs = d
            .read(dc, &u.dn, &["mail", "userPrincipalName", "displayName"])
            .await;
        assert_eq!(attrs["mail"], [u.mail.as_str()], "dc{dc}");
        assert_eq!(attrs["userPrincipalName"], [u.upn.as_str()], "dc{dc}");
        assert_eq!(attrs["displayName"], [u.display_name.as_str()], "dc{dc}");
        assert_eq!(d.user_account_control(dc, &u.dn).await, UAC_ENABLED);

        let wrong = d.bind(dc, &u.upn, "not-the-password").await.unwrap_err();
        assert!(wrong.contains("data 52e"), "dc{dc}: {wrong}");
    }
    // The users the script seeds are on both DCs.
    for dc in [1, 2] {
        d.bind(dc, "alice@lab.example.test", d.seed_password())
            .await
            .unwrap_or_else(|e| panic!("alice on dc{dc}: {e}"));
    }
    assert!(d.ca_file().starts_with(d.dir()), "{:?}", d.ca_file());
    // The sAMAccountName works as a bind name too (DOMAIN\sam).
    d.bind(1, &format!("LAB\\{}", u.sam), &u.password)
        .await
        .unwrap();
}

/// The situation the convergence gate exists for: disabled on DC1, DC2 has
/// not heard of it and still lets the user in, until the change is pulled.
#[tokio::test(flavor = "multi_thread")]
async fn disabled_on_dc1_is_still_accepted_by_lagging_dc2() {
    let d = domain();
    let u = d.new_user("lag").await;
    // A first logon on DC2 sets lastLogonTimestamp there (a change of its
    // own); later binds change nothing.
    d.bind(2, &u.upn, &u.password).await.unwrap();
    let usn2 = d.usn_changed(2, &u.dn).await;
    let when2 = d.when_changed(2, &u.dn).await;

    d.set_user_account_control(1, &u.dn, UAC_DISABLED).await;
    let refused = d.bind(1, &u.upn, &u.password).await.unwrap_err();
    assert!(refused.contains("data 533"), "dc1: {refused}");
    assert!(refused.contains("result 49"), "dc1: {refused}");
    d.bind(2, &u.upn, &u.password)
        .await
        .unwrap_or_else(|e| panic!("DC2 should still accept the user: {e}"));
    assert_eq!(d.user_account_control(2, &u.dn).await, UAC_ENABLED);
    assert_eq!(d.usn_changed(2, &u.dn).await, usn2, "DC2 saw a change");
    assert_eq!(d.when_changed(2, &u.dn).await, when2, "DC2 saw a change");

    d.sync_to_dc2(Some(&u.dn)).await;
    assert_eq!(d.user_account_control(2, &u.dn).await, UAC_DISABLED);
    let refused = d.bind(2, &u.upn, &u.password).await.unwrap_err();
    assert!(
        refused.contains("data 533"),
        "dc2 after the pull: {refused}"
    );
    assert!(d.usn_changed(2, &u.dn).await > usn2);
}

#[tokio::test(flavor = "multi_thread")]
async fn not_replicated_user_exists_on_dc1_only() {
    let d = domain();
    let u = d.user("dc1only").not_replicated().create().await;
    assert!(d.exists(1, &u.dn).await);
    assert!(!d.exists(2, &u.dn).await);
    d.bind(1, &u.upn, &u.password).await.unwrap();
    let unknown = d.bind(2, &u.upn, &u.password).await.unwrap_err();
    assert!(unknown.contains("result 49"), "{unknown}");
}

/// Discovery reads these as the operator, not as an administrator.
#[tokio::test(flavor = "multi_thread")]
async fn exchange_servers_are_readable_by_the_operator() {
    let d = domain();
    for dc in [1, 2] {
        let mut ldap = d
            .connect(dc, d.operator_upn(), d.operator_password())
            .await
            .unwrap();
        let attrs = ["msExchCurrentServerRoles", "networkAddress", "serialNumber"];
        let mut all = search(
            &mut ldap,
            d.config_dn(),
            Scope::Subtree,
            "(objectCategory=msExchExchangeServer)",
            &attrs,
        )
        .await
        .unwrap();
        all.sort_by(|a, b| a.dn.cmp(&b.dn));
        let names: Vec<&str> = all
            .iter()
            .map(|e| e.dn.split(',').next().unwrap())
            .collect();
        assert_eq!(
            names,
            ["CN=EDGE01", "CN=EX01", "CN=EX02", "CN=EX03"],
            "dc{dc}"
        );
        let ex01 = &all[1];
        assert_eq!(ex01.attrs["msExchCurrentServerRoles"], ["6"]);
        assert_eq!(
            ex01.attrs["serialNumber"],
            ["Version 15.1 (Build 30225.42)"]
        );
        assert!(
            ex01.attrs["networkAddress"]
                .iter()
                .any(|a| a == "ncacn_ip_tcp:ex01.lab.example.test"),
            "{:?}",
            ex01.attrs
        );
        // Client Access role (bit 4): EX01 and EX02, not the Edge server.
        let cas = search(
            &mut ldap,
            d.config_dn(),
            Scope::Subtree,
            "(&(objectCategory=msExchExchangeServer)(msExchCurrentServerRoles:1.2.840.113556.1.4.803:=4))",
            &["cn"],
        )
        .await
        .unwrap();
        let mut cas: Vec<String> = cas.into_iter().map(|e| e.attrs["cn"][0].clone()).collect();
        cas.sort();
        assert_eq!(cas, ["EX01", "EX02"], "dc{dc}");
        let _ = ldap.unbind().await;
    }
}

/// The delegation on OU=Staff: userAccountControl (with the delete-old /
/// add-new form that fails on a concurrent change), nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn operator_may_write_user_account_control_on_staff_users_only() {
    let d = domain();
    let u = d.user("opwrite").not_replicated().create().await;
    let mut op = d
        .connect(1, d.operator_upn(), d.operator_password())
        .await
        .unwrap();
    let done = swap_uac(&mut op, &u.dn, UAC_ENABLED, UAC_DISABLED).await;
    assert_eq!(done.rc, 0, "{}", done.text);
    assert_eq!(d.user_account_control(1, &u.dn).await, UAC_DISABLED);
    // Someone else changed it since it was read: the delete of the value
    // read fails (16 noSuchAttribute) instead of overwriting their change.
    // (Samba accepts the swap as a no-op when the new value is already
    // there, whatever the deleted value: see docs/samba-ad.md.)
    let theirs = UAC_DISABLED | 0x10000; // DONT_EXPIRE_PASSWORD
    d.set_user_account_control(1, &u.dn, theirs).await;
    let stale = swap_uac(&mut op, &u.dn, UAC_DISABLED, UAC_ENABLED).await;
    assert_eq!(stale.rc, 16, "a stale delete/add must fail: {}", stale.text);
    assert_eq!(d.user_account_control(1, &u.dn).await, theirs);

    let description = vec![Mod::Replace("description".into(), values(["x"]))];
    let refused = op.modify(&u.dn, description).await.unwrap();
    assert_eq!(
        refused.rc, 50,
        "description is not delegated: {}",
        refused.text
    );
    let admin_dn = format!("CN=Administrator,CN=Users,{}", d.base_dn());
    let outside = swap_uac(&mut op, &admin_dn, 512, 514).await;
    assert_eq!(outside.rc, 50, "outside OU=Staff: {}", outside.text);
    let _ = op.unbind().await;
}

/// userAccountControl written the way `revoke` does: delete the value read,
/// add the new one, in one modify.
async fn swap_uac(op: &mut Ldap, dn: &str, old: u32, new: u32) -> LdapResult {
    let mods = vec![
        Mod::Delete("userAccountControl".into(), values([old.to_string()])),
        Mod::Add("userAccountControl".into(), values([new.to_string()])),
    ];
    op.modify(dn, mods).await.expect("modify")
}

/// Protected accounts: a user two groups deep in Domain Admins (or Backup
/// Operators) shows up with LDAP_MATCHING_RULE_IN_CHAIN, queried as the
/// operator; adminCount is only there when the test asks for it.
#[tokio::test(flavor = "multi_thread")]
async fn nested_protected_membership_shows_in_chain_for_the_operator() {
    let d = domain();
    let mut op = d
        .connect(1, d.operator_upn(), d.operator_password())
        .await
        .unwrap();
    for protected in [d.domain_admins_dn(), d.backup_operators_dn()] {
        let outer = d.new_group("outer").await;
        let inner = d.new_group("inner").await;
        d.add_member(&protected, &outer.dn).await;
        d.add_member(&outer.dn, &inner.dn).await;
        let nested = d
            .user("nested")
            .member_of(&inner.dn)
            .not_replicated()
            .create()
            .await;
        let plain = d.user("plain").not_replicated().create().await;
        for (sam, expected) in [(&nested.sam, 1), (&inner.sam, 1), (&plain.sam, 0)] {
            let filter =
                format!("(&(sAMAccountName={sam})(memberOf:1.2.840.113556.1.4.1941:={protected}))");
            let found = search(&mut op, d.base_dn(), Scope::Subtree, &filter, &["cn"])
                .await
                .unwrap();
            assert_eq!(found.len(), expected, "{sam} in {protected}");
        }
        assert!(
            !d.read(1, &nested.dn, &["adminCount"])
                .await
                .contains_key("adminCount"),
            "Samba has no SDProp: adminCount stays unset"
        );
    }
    let marked = d
        .user("marked")
        .admin_count()
        .not_replicated()
        .create()
        .await;
    assert_eq!(
        d.read(1, &marked.dn, &["adminCount"]).await["adminCount"],
        ["1"]
    );
    let _ = op.unbind().await;
}

/// A lookup by mail meets the user, a second user with the same mail, and a
/// computer, a group and a contact that share its name and mail.
#[tokio::test(flavor = "multi_thread")]
async fn lookalikes_and_a_shared_mail() {
    let d = domain();
    let u = d.user("real").not_replicated().create().await;
    let twin = d.user("twin").mail(&u.mail).not_replicated().create().await;
    let look = d.lookalikes(&u).await;
    let mut op = d
        .connect(1, d.operator_upn(), d.operator_password())
        .await
        .unwrap();
    let mut all = vec![
        u.dn.clone(),
        twin.dn.clone(),
        look.computer.clone(),
        look.group.clone(),
        look.contact.clone(),
    ];
    all.sort();
    assert_eq!(found(&mut op, &format!("(mail={})", u.mail)).await, all);
    // The computer is objectClass user too; objectCategory=person tells.
    let mut users = vec![u.dn.clone(), twin.dn.clone()];
    users.sort();
    let people = format!(
        "(&(objectCategory=person)(objectClass=user)(mail={}))",
        u.mail
    );
    assert_eq!(found(&mut op, &people).await, users);
    let with_computer = format!("(&(objectClass=user)(mail={}))", u.mail);
    assert!(
        found(&mut op, &with_computer)
            .await
            .contains(&look.computer)
    );
    let _ = op.unbind().await;
}

/// DNs of what the operator finds in the whole domain, sorted.
async fn found(op: &mut Ldap, filter: &str) -> Vec<String> {
    let base = domain().base_dn();
    let entries = search(op, base, Scope::Subtree, filter, &["cn"])
        .await
        .unwrap();
    let mut dns: Vec<String> = entries.into_iter().map(|e| e.dn).collect();
    dns.sort();
    dns
}

#[tokio::test(flavor = "multi_thread")]
async fn ad_estate_writes_directory_and_winrm_settings() {
    let estate = AdEstate::start(2).await;
    let d = estate.domain;
    estate.set_directory("replication_timeout", 5);
    let text = std::fs::read_to_string(estate.config()).unwrap();
    let config: toml::Table = text.parse().unwrap();
    assert_eq!(config["servers"].as_array().unwrap().len(), 2);
    assert_eq!(config["winrm"]["user"].as_str(), Some("LAB\\revoke-op"));
    let directory = config["directory"].as_table().unwrap();
    assert_eq!(
        directory["url"].as_str(),
        Some("ldaps://dc1.lab.example.test")
    );
    assert_eq!(
        directory["ca_file"].as_str(),
        Some(d.ca_file().to_str().unwrap())
    );
    assert_eq!(
        directory["bind_user"].as_str(),
        Some("revoke-op@lab.example.test")
    );
    assert_eq!(directory["replication_timeout"].as_integer(), Some(5));
    assert!(
        !text.contains(d.operator_password()),
        "password in revoke.toml"
    );
    assert_eq!(estate.lab().servers().len(), 2);

    // The lab's WinRM accepts LAB\revoke-op with the operator's AD password.
    let run = estate.revoke("flush", &["--output", "json"]).run().await;
    run.assert_code(0);
    for server in estate.lab().servers() {
        let log = server.log.entries();
        assert!(!log.is_empty(), "{}: nothing ran", server.name);
        assert!(log.iter().all(|e| e.user == "LAB\\revoke-op"), "{log:#?}");
    }

    let bare = AdEstate::start_without_servers().await;
    let config: toml::Table = std::fs::read_to_string(bare.config())
        .unwrap()
        .parse()
        .unwrap();
    assert!(!config.contains_key("servers"), "{config}");
    assert!(config.contains_key("winrm") && config.contains_key("directory"));
}

/// The Kerberos pieces `up` makes (docs/samba-ad.md "Kerberos"): the
/// operator gets AES tickets for the lab's SPNs, lab.keytab decrypts them
/// and wrong.keytab, same names and kvnos, does not; a wrong password is
/// refused; the keytabs are root's alone; the lab names resolve to loopback.
#[test]
fn operator_gets_aes_tickets_that_only_lab_keytab_decrypts() {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    let d = domain();
    let tmp = tempfile::tempdir().unwrap();
    let ccache = tmp.path().join("cc");
    let principal = format!("{}@{}", d.operator_sam(), d.realm());
    let wrong = d
        .kinit(&principal, "not-the-password", &ccache)
        .unwrap_err();
    assert!(wrong.contains("Password incorrect"), "{wrong}");
    d.kinit(&principal, d.operator_password(), &ccache)
        .unwrap_or_else(|e| panic!("{e}"));

    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .env("KRB5_CONFIG", d.krb5_conf())
            .env("KRB5CCNAME", format!("FILE:{}", ccache.display()))
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (lab, wrong) = (d.lab_keytab(), d.wrong_keytab());
    for keytab in [&lab, &wrong] {
        let mode = std::fs::metadata(keytab).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", keytab.display());
    }
    // Same principals, kvnos and enctypes in both keytabs: a refusal with
    // wrong.keytab is about the key alone.
    let entries = |keytab: &std::path::Path| {
        let (ok, text) = run("klist", &["-ke", keytab.to_str().unwrap()]);
        assert!(ok, "{text}");
        text.lines().skip(3).map(str::to_string).collect::<Vec<_>>()
    };
    let lab_entries = entries(&lab);
    assert_eq!(lab_entries, entries(&wrong));
    assert_eq!(lab_entries.len(), 2 * usize::from(d.kerberos_hosts()));

    for n in [1, d.kerberos_hosts()] {
        let spn = d.http_principal(n);
        let host = d.kerberos_host(n);
        let resolved: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 5985))
            .unwrap_or_else(|e| panic!("{host}: {e}"))
            .collect();
        assert!(
            resolved.iter().all(|a| a.ip().is_loopback()),
            "{host}: {resolved:?}"
        );

        let (ok, text) = run("kvno", &["-k", lab.to_str().unwrap(), &spn]);
        assert!(ok && text.contains("keytab entry valid"), "{text}");
        let (ok, text) = run("kvno", &["-k", wrong.to_str().unwrap(), &spn]);
        assert!(!ok && text.contains("keytab entry invalid"), "{text}");

        let (_, tickets) = run("klist", &["-e"]);
        let line = tickets
            .lines()
            .skip_while(|l| !l.contains(&spn))
            .nth(1)
            .unwrap_or_else(|| panic!("no ticket for {spn}: {tickets}"));
        assert!(
            line.contains("Etype (skey, tkt): aes256-cts-hmac-sha1-96, aes256-cts-hmac-sha1-96"),
            "{spn}: {line}"
        );
    }
}
