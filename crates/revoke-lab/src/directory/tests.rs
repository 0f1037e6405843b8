//! The embedded directory over the wire, with the same LDAP client revoke uses.

use std::collections::HashSet;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};

use super::*;

struct Fixture {
    directory: Directory,
    _dir: tempfile::TempDir,
    tls: Arc<rustls::ClientConfig>,
}

/// Two DCs on 127.0.0.1 and 127.0.0.2 (free ports), DC2 never replicating
/// by itself unless `delay` says otherwise.
async fn start(delay: Option<Duration>) -> Fixture {
    let config = DirectoryConfig {
        dcs: vec![
            DcConfig {
                address: Ipv4Addr::new(127, 0, 0, 1),
                replication_delay: None,
            },
            DcConfig {
                address: Ipv4Addr::new(127, 0, 0, 2),
                replication_delay: delay,
            },
        ],
        users: vec![SeedUser {
            mail: Some("alice@lab.example.test".into()),
            display_name: Some("Alice Example".into()),
            ..SeedUser::new("alice", "Alice-Passw0rd")
        }],
        exchange_servers: vec![SeedExchangeServer {
            name: "EX01".into(),
            fqdn: "ex01.lab.example.test".into(),
            roles: 6,
            version: "Version 15.1 (Build 30225.42)".into(),
        }],
        ..DirectoryConfig::default()
    };
    let directory = Directory::start(config).await.expect("directory starts");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, directory.ca_pem()).unwrap();
    let tls = revoke_core::tls::client_config(Some(&ca), false).unwrap();
    Fixture {
        directory,
        _dir: dir,
        tls,
    }
}

impl Fixture {
    fn staff(&self, cn: &str) -> String {
        format!("CN={cn},OU=Staff,{}", self.directory.base_dn())
    }

    async fn open(&self, url: &str, starttls: bool) -> Ldap {
        let settings = LdapConnSettings::new()
            .set_config(self.tls.clone())
            .set_starttls(starttls)
            .set_conn_timeout(Duration::from_secs(5));
        let (conn, ldap) = LdapConnAsync::with_settings(settings, url)
            .await
            .expect("connect");
        ldap3::drive!(conn);
        ldap
    }

    /// LDAPS to DC `dc`, bound as `who`; Err is (rc, text).
    async fn bind(&self, dc: usize, who: &str, password: &str) -> Result<Ldap, (u32, String)> {
        let mut ldap = self.open(&self.directory.ldaps_url(dc), false).await;
        let r = ldap.simple_bind(who, password).await.expect("bind");
        if r.rc == 0 {
            Ok(ldap)
        } else {
            Err((r.rc, r.text))
        }
    }

    async fn admin(&self, dc: usize) -> Ldap {
        let (user, password) = self.directory.admin();
        self.bind(dc, &user, password).await.expect("Administrator")
    }

    async fn operator(&self, dc: usize) -> Ldap {
        let (user, password) = self.directory.operator().unwrap();
        self.bind(dc, &user, password).await.expect("operator")
    }
}

fn data_code(err: Result<Ldap, (u32, String)>) -> String {
    let Err((rc, text)) = err else {
        panic!("the bind should fail");
    };
    assert_eq!(rc, 49, "{text}");
    assert!(
        text.starts_with("80090308: LdapErr: DSID-0C09041C"),
        "{text}"
    );
    text.split("data ").nth(1).unwrap()[..3].to_string()
}

async fn search(
    ldap: &mut Ldap,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
) -> Result<Vec<SearchEntry>, u32> {
    let (entries, result) = ldap
        .search(base, scope, filter, attrs.to_vec())
        .await
        .expect("search")
        .success()
        .map_err(|e| match e {
            ldap3::LdapError::LdapResult { result } => result.rc,
            other => panic!("{other}"),
        })?;
    assert_eq!(result.rc, 0);
    Ok(entries.into_iter().map(SearchEntry::construct).collect())
}

fn set<const N: usize>(values: [&str; N]) -> HashSet<Vec<u8>> {
    values.iter().map(|v| v.as_bytes().to_vec()).collect()
}

fn unicode_pwd(password: &str) -> HashSet<Vec<u8>> {
    let raw =
        revoke_core::directory::password::unicode_pwd(&revoke_core::Password::new(password.into()));
    HashSet::from([raw])
}

#[tokio::test(flavor = "multi_thread")]
async fn root_dse_and_no_replicate_single_object() {
    let f = start(None).await;
    for dc in [1, 2] {
        let mut ldap = f.open(&f.directory.ldaps_url(dc), false).await;
        // The rootDSE is readable before any bind, as on AD.
        let root = search(&mut ldap, "", Scope::Base, "(objectClass=*)", &[])
            .await
            .unwrap()
            .remove(0);
        let one = |a: &str| root.attrs[a][0].clone();
        assert_eq!(one("defaultNamingContext"), "DC=lab,DC=example,DC=test");
        assert_eq!(
            one("configurationNamingContext"),
            "CN=Configuration,DC=lab,DC=example,DC=test"
        );
        assert_eq!(one("dnsHostName"), f.directory.host(dc));
        assert_eq!(one("dsServiceName"), f.directory.dsa_dn(dc));
    }
    let mut ldap = f.admin(1).await;
    let value = format!("{}:{}", f.directory.dsa_dn(1), f.staff("alice"));
    let r = ldap
        .modify(
            "",
            vec![Mod::Replace(
                b"replicateSingleObject".to_vec(),
                HashSet::from([value.into_bytes()]),
            )],
        )
        .await
        .unwrap();
    assert_eq!(r.rc, 53);
    assert_eq!(r.text, "rootdse_modify: unknown attribute to change!");
}

#[tokio::test(flavor = "multi_thread")]
async fn binds_answer_like_ad() {
    let f = start(None).await;
    let d = &f.directory;
    let dn = f.staff("alice");
    for who in [
        "alice@lab.example.test",
        "LAB\\alice",
        "lab\\ALICE",
        dn.as_str(),
    ] {
        f.bind(1, who, "Alice-Passw0rd").await.unwrap();
    }
    assert_eq!(
        data_code(f.bind(1, "alice@lab.example.test", "nope").await),
        "52e"
    );
    assert_eq!(
        data_code(f.bind(1, "ghost@lab.example.test", "x").await),
        "525"
    );
    assert_eq!(
        data_code(f.bind(1, "OTHER\\alice", "Alice-Passw0rd").await),
        "525"
    );
    // An empty password is never an anonymous "success" for a named user.
    assert_eq!(data_code(f.bind(1, "LAB\\alice", "").await), "52e");

    d.set_user_account_control(1, &dn, 514).unwrap();
    assert_eq!(data_code(f.bind(1, &dn, "Alice-Passw0rd").await), "533");
    // DC2 never heard of it.
    f.bind(2, &dn, "Alice-Passw0rd").await.unwrap();
    assert_eq!(d.sync(1, 2, Some(&dn)), 1);
    assert_eq!(data_code(f.bind(2, &dn, "Alice-Passw0rd").await), "533");

    d.set_user_account_control(1, &dn, 512).unwrap();
    d.replace(1, &dn, "lockoutTime", &["133000000000000000"])
        .unwrap();
    assert_eq!(data_code(f.bind(1, &dn, "Alice-Passw0rd").await), "775");
    d.replace(1, &dn, "lockoutTime", &["0"]).unwrap();
    d.replace(1, &dn, "pwdLastSet", &["0"]).unwrap();
    assert_eq!(data_code(f.bind(1, &dn, "Alice-Passw0rd").await), "773");
    d.replace(1, &dn, "pwdLastSet", &["-1"]).unwrap();
    f.bind(1, &dn, "Alice-Passw0rd").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_ldap_needs_starttls_for_a_bind() {
    let f = start(None).await;
    let url = f.directory.ldap_url(1).expect("a plain listener");
    let mut plain = f.open(&url, false).await;
    let r = plain
        .simple_bind("alice@lab.example.test", "Alice-Passw0rd")
        .await
        .unwrap();
    assert_eq!(r.rc, 8, "{}", r.text);
    assert_eq!(r.text, "BindSimple: Transport encryption required.");
    let mut upgraded = f.open(&url, true).await;
    let r = upgraded
        .simple_bind("alice@lab.example.test", "Alice-Passw0rd")
        .await
        .unwrap();
    assert_eq!(r.rc, 0, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_resets_end_the_old_password_window() {
    let f = start(None).await;
    let dn = f.staff("alice");
    let mut op = f.operator(1).await;
    let reset = |pw: &str| vec![Mod::Replace(b"unicodePwd".to_vec(), unicode_pwd(pw))];
    assert_eq!(op.modify(&dn, reset("Second-Pw-123")).await.unwrap().rc, 0);
    f.bind(1, &dn, "Alice-Passw0rd")
        .await
        .expect("previous password still binds");
    f.bind(1, &dn, "Second-Pw-123").await.unwrap();
    assert_eq!(op.modify(&dn, reset("Third-Pw-1234")).await.unwrap().rc, 0);
    assert_eq!(data_code(f.bind(1, &dn, "Alice-Passw0rd").await), "52e");
    f.bind(1, &dn, "Second-Pw-123")
        .await
        .expect("the one before still binds");
    f.bind(1, &dn, "Third-Pw-1234").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn modify_semantics_and_access_control() {
    let f = start(None).await;
    let d = &f.directory;
    let dn = f.staff("alice");
    let mut op = f.operator(1).await;
    // The optimistic disable: delete the exact old value, add the new one.
    let swap = |old: &str, new: &str| {
        vec![
            Mod::Delete(b"userAccountControl".to_vec(), set([old])),
            Mod::Add(b"userAccountControl".to_vec(), set([new])),
        ]
    };
    assert_eq!(op.modify(&dn, swap("512", "514")).await.unwrap().rc, 0);
    // Someone else's change in between: the old value is gone, result 16.
    assert_eq!(op.modify(&dn, swap("512", "514")).await.unwrap().rc, 16);
    assert_eq!(d.read(1, &dn).unwrap()["userAccountControl"], ["514"]);
    let add_mail = vec![Mod::Add(b"mail".to_vec(), set(["ALICE@lab.example.test"]))];
    // Not delegated (and the value exists, case-insensitively).
    assert_eq!(op.modify(&dn, add_mail.clone()).await.unwrap().rc, 50);
    let mut admin = f.admin(1).await;
    assert_eq!(admin.modify(&dn, add_mail).await.unwrap().rc, 20);

    // Outside OU=Staff the operator may not touch anyone.
    let admin_dn = format!("CN=Administrator,CN=Users,{}", d.base_dn());
    assert_eq!(
        op.modify(&admin_dn, swap("66048", "66050"))
            .await
            .unwrap()
            .rc,
        50
    );
    let r = op
        .add(
            &f.staff("new"),
            vec![(b"objectClass".to_vec(), set(["user"]))],
        )
        .await
        .unwrap();
    assert_eq!(r.rc, 50);
    // A missing object.
    let r = admin
        .modify(&f.staff("ghost"), swap("1", "2"))
        .await
        .unwrap();
    assert_eq!(r.rc, 32);
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_need_tls_even_when_plain_binds_are_allowed() {
    let config = DirectoryConfig {
        dcs: vec![DcConfig {
            address: Ipv4Addr::new(127, 0, 0, 1),
            replication_delay: None,
        }],
        allow_plain_bind: true,
        ..DirectoryConfig::default()
    };
    let d = Directory::start(config).await.unwrap();
    let (conn, mut ldap) = LdapConnAsync::new(&d.ldap_url(1).unwrap()).await.unwrap();
    ldap3::drive!(conn);
    let (admin, password) = d.admin();
    assert_eq!(ldap.simple_bind(&admin, password).await.unwrap().rc, 0);
    let dn = format!("CN=revoke-op,CN=Users,{}", d.base_dn());
    let r = ldap
        .modify(
            &dn,
            vec![Mod::Replace(
                b"unicodePwd".to_vec(),
                unicode_pwd("Whatever-123"),
            )],
        )
        .await
        .unwrap();
    assert_eq!(r.rc, 53, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn searches_filter_like_ad() {
    let f = start(None).await;
    let d = &f.directory;
    let base = d.base_dn().to_string();
    let mut ldap = f.operator(1).await;
    let sams = |entries: &[SearchEntry]| {
        let mut v: Vec<String> = entries
            .iter()
            .map(|e| e.attrs["sAMAccountName"][0].clone())
            .collect();
        v.sort();
        v
    };
    let users = search(
        &mut ldap,
        &base,
        Scope::Subtree,
        "(&(sAMAccountType=805306368)(|(sAMAccountName=ALICE)(mail=nobody)))",
        &["sAMAccountName", "objectSid"],
    )
    .await
    .unwrap();
    assert_eq!(sams(&users), ["alice"]);
    let sid = revoke_core::directory::account::object_sid(&users[0]).unwrap();
    assert!(sid.starts_with(&format!("{}-", d.domain_sid())), "{sid}");
    // Computers are users too, but not of the user account type.
    let dcs = search(
        &mut ldap,
        &base,
        Scope::Subtree,
        "(&(objectClass=user)(sAMAccountType=805306369))",
        &["sAMAccountName"],
    )
    .await
    .unwrap();
    assert_eq!(sams(&dcs), ["DC1$", "DC2$"]);
    // An escaped star is a star, not a wildcard.
    let none = search(
        &mut ldap,
        &base,
        Scope::Subtree,
        "(sAMAccountName=\\2a)",
        &["cn"],
    )
    .await
    .unwrap();
    assert!(none.is_empty());
    let some = search(
        &mut ldap,
        &base,
        Scope::Subtree,
        "(sAMAccountName=ali*)",
        &["sAMAccountName"],
    )
    .await
    .unwrap();
    assert_eq!(sams(&some), ["alice"]);
    // Administrator is in Administrators through Domain Admins too.
    let admin_dn = format!("CN=Administrator,CN=Users,{base}");
    let groups = search(
        &mut ldap,
        &base,
        Scope::Subtree,
        &format!("(&(objectClass=group)(member:1.2.840.113556.1.4.1941:={admin_dn}))"),
        &["sAMAccountName"],
    )
    .await
    .unwrap();
    assert_eq!(
        sams(&groups),
        [
            "Administrators",
            "Domain Admins",
            "Enterprise Admins",
            "Schema Admins"
        ]
    );
    let disabled = search(
        &mut ldap,
        &base,
        Scope::Subtree,
        "(userAccountControl:1.2.840.113556.1.4.803:=2)",
        &["sAMAccountName"],
    )
    .await
    .unwrap();
    assert_eq!(sams(&disabled), ["Guest", "krbtgt"]);
    let one = search(
        &mut ldap,
        &base,
        Scope::OneLevel,
        "(objectClass=organizationalUnit)",
        &["ou"],
    )
    .await
    .unwrap();
    assert_eq!(one.len(), 2, "Domain Controllers and Staff");
    let missing = search(
        &mut ldap,
        &format!("OU=Nope,{base}"),
        Scope::Subtree,
        "(objectClass=*)",
        &[],
    )
    .await;
    assert_eq!(missing.unwrap_err(), 32);
    // Exchange discovery and the DCs in the configuration partition.
    let config = d.config_dn().to_string();
    let ex = search(
        &mut ldap,
        &config,
        Scope::Subtree,
        "(&(objectCategory=msExchExchangeServer)(msExchCurrentServerRoles:1.2.840.113556.1.4.803:=4))",
        &["cn", "networkAddress", "serialNumber"],
    )
    .await
    .unwrap();
    assert_eq!(ex.len(), 1);
    assert!(
        ex[0].attrs["networkAddress"].contains(&"ncacn_ip_tcp:ex01.lab.example.test".to_string())
    );
    let dsas = search(
        &mut ldap,
        &format!("CN=Sites,{config}"),
        Scope::Subtree,
        &format!("(&(objectClass=nTDSDSA)(hasMasterNCs={base}))"),
        &["distinguishedName"],
    )
    .await
    .unwrap();
    assert_eq!(dsas.len(), 2);
    // Anonymous: only the rootDSE.
    let mut anonymous = f.open(&d.ldaps_url(1), false).await;
    let r = anonymous
        .search(&base, Scope::Base, "(objectClass=*)", vec!["1.1"])
        .await
        .unwrap();
    assert_eq!(r.1.rc, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn replication_delay_brings_changes_later() {
    let f = start(Some(Duration::from_millis(300))).await;
    let d = &f.directory;
    let dn = d.add_user(1, None, "late", "Late-Passw0rd").unwrap();
    assert!(d.read(2, &dn).is_none(), "DC2 has it at once");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let seen = d.read(2, &dn).expect("replicated");
    assert_eq!(seen["userAccountControl"], ["512"]);
    f.bind(2, "late@lab.example.test", "Late-Passw0rd")
        .await
        .unwrap();
    // uSNChanged is each DC's own.
    d.set_replication_delay(2, None);
    d.set_user_account_control(1, &dn, 514).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.read(2, &dn).unwrap()["userAccountControl"], ["512"]);
    d.sync_all();
    assert_eq!(d.read(2, &dn).unwrap()["userAccountControl"], ["514"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn deletions_replicate_and_are_not_undone() {
    let f = start(Some(Duration::ZERO)).await;
    let d = &f.directory;
    let dn = d.add_user(1, None, "gone", "Gone-Passw0rd").unwrap();
    assert!(d.read(2, &dn).is_some(), "replicated at once");
    d.delete(1, &dn).unwrap();
    assert!(d.read(2, &dn).is_none(), "the deletion replicated");
    // DC2 never sends anything back (no delay set for DC1), and a pull
    // from DC2 does not bring the object back.
    d.sync(2, 1, None);
    assert!(d.read(1, &dn).is_none());
    let r = d
        .delete(1, &format!("OU=Staff,{}", d.base_dn()))
        .unwrap_err();
    assert_eq!(r.code, 66, "not on a non-leaf");

    // With no replication, a pull carries the tombstone.
    d.set_replication_delay(2, None);
    let dn = d.add_user(1, None, "gone2", "Gone-Passw0rd").unwrap();
    d.sync(1, 2, Some(&dn));
    d.delete(1, &dn).unwrap();
    assert!(d.read(2, &dn).is_some());
    assert_eq!(d.sync(1, 2, Some(&dn)), 1);
    assert!(d.read(2, &dn).is_none());
}

/// "Who am I?" as Windows words it, tokenGroups on base searches only, and
/// MaxPageSize: result 4 without paging, every entry with it.
#[tokio::test(flavor = "multi_thread")]
async fn who_am_i_token_groups_and_page_size_like_ad() {
    let f = start(None).await;
    let mut op = f.operator(1).await;
    let (exop, res) = op
        .extended(ldap3::exop::WhoAmI)
        .await
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(res.rc, 0);
    let who: ldap3::exop::WhoAmIResp = exop.parse();
    assert_eq!(who.authzid, "u:LAB\\revoke-op");

    let alice = f.staff("alice");
    let base = search(
        &mut op,
        &alice,
        Scope::Base,
        "(objectClass=*)",
        &["tokenGroups"],
    )
    .await
    .unwrap();
    let sids = revoke_core::directory::account::sids(&base[0], "tokenGroups");
    let domain_users = format!("{}-513", f.directory.domain_sid());
    assert_eq!(sids, [domain_users], "only her primary group");
    let subtree = search(
        &mut op,
        f.directory.base_dn(),
        Scope::Subtree,
        "(sAMAccountName=alice)",
        &["tokenGroups"],
    )
    .await;
    assert_eq!(subtree.unwrap_err(), 1);

    f.directory.set_max_page_size(2);
    let ldap3::SearchResult(_, done) = op
        .search(
            f.directory.base_dn(),
            Scope::Subtree,
            "(objectClass=group)",
            vec!["1.1"],
        )
        .await
        .unwrap();
    assert_eq!(done.rc, 4, "no paging: MaxPageSize, then sizeLimitExceeded");
    let adapters: Vec<Box<dyn ldap3::adapters::Adapter<_, _>>> =
        vec![Box::new(ldap3::adapters::PagedResults::new(100))];
    let mut stream = op
        .streaming_search_with(
            adapters,
            f.directory.base_dn(),
            Scope::Subtree,
            "(objectClass=group)",
            vec!["1.1"],
        )
        .await
        .unwrap();
    let mut groups = 0;
    let mut references = Vec::new();
    while let Some(entry) = stream.next().await.unwrap() {
        if entry.is_ref() {
            references.extend(ldap3::parse_refs(entry.0));
        } else {
            groups += 1;
        }
    }
    assert_eq!(stream.finish().await.rc, 0);
    assert!(groups > 10, "{groups} groups");
    // The configuration partition is referred to, not searched.
    assert_eq!(
        references,
        [format!(
            "ldaps://lab.example.test/{}",
            f.directory.config_dn()
        )]
    );
}

/// A two-domain forest as a client sees it: the child DC's rootDSE names
/// the root as forest root, each domain refers the other's DNs, the GC
/// finds both domains' users with the partial attribute set only, refuses
/// writes, and binds accounts of either domain; a child user's tokenGroups
/// (on a child DC) include the root's universal groups.
#[tokio::test(flavor = "multi_thread")]
async fn a_child_domain_and_a_global_catalog_behave_like_a_forest() {
    let config = DirectoryConfig {
        dcs: vec![DcConfig {
            address: Ipv4Addr::new(127, 0, 0, 1),
            replication_delay: None,
        }],
        users: vec![SeedUser::new("twin", "Root-Passw0rd")],
        child: Some(ChildDomainConfig {
            dcs: vec![DcConfig {
                address: Ipv4Addr::new(127, 0, 0, 11),
                replication_delay: None,
            }],
            users: vec![SeedUser::new("twin", "Child-Passw0rd")],
            ..ChildDomainConfig::default()
        }),
        ..DirectoryConfig::default()
    };
    let directory = Directory::start(config).await.expect("forest starts");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, directory.ca_pem()).unwrap();
    let f = Fixture {
        tls: revoke_core::tls::client_config(Some(&ca), false).unwrap(),
        directory,
        _dir: dir,
    };
    let child = f.directory.child().unwrap();
    let root_base = f.directory.base_dn().to_string();
    let child_base = child.base_dn().to_string();
    assert_eq!(child_base, format!("DC=child,{root_base}"));
    let root_twin = format!("CN=twin,OU=Staff,{root_base}");
    let child_twin = format!("CN=twin,OU=Staff,{child_base}");
    let ea = format!("CN=Enterprise Admins,CN=Users,{root_base}");
    f.directory.add_member(1, &ea, &child_twin).unwrap();
    let (admin, password) = f.directory.admin();
    let password = password.to_string();

    // The child's DC, bound as the root's Administrator.
    let child_url = format!("ldaps://{}:{}", child.host(1), f.directory.ldaps_port());
    let mut ldap = f.open(&child_url, false).await;
    assert_eq!(ldap.simple_bind(&admin, &password).await.unwrap().rc, 0);
    let (entries, _) = ldap
        .search("", Scope::Base, "(objectClass=*)", vec!["*"])
        .await
        .unwrap()
        .success()
        .unwrap();
    let root_dse = SearchEntry::construct(entries[0].clone());
    assert_eq!(root_dse.attrs["defaultNamingContext"][0], child_base);
    assert_eq!(root_dse.attrs["rootDomainNamingContext"][0], root_base);
    assert_eq!(
        root_dse.attrs["configurationNamingContext"],
        [format!("CN=Configuration,{root_base}")]
    );
    // The root's DNs are referred; the crossRefs of both domains are here.
    let referred = ldap
        .search(&root_twin, Scope::Base, "(objectClass=*)", vec!["cn"])
        .await
        .unwrap();
    assert_eq!(referred.1.rc, 10, "{:?}", referred.1);
    let (refs, _) = ldap
        .search(
            &format!("CN=Partitions,CN=Configuration,{root_base}"),
            Scope::Subtree,
            "(&(objectClass=crossRef)(systemFlags:1.2.840.113556.1.4.803:=2))",
            vec!["nETBIOSName"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    let names: HashSet<String> = refs
        .into_iter()
        .map(|e| SearchEntry::construct(e).attrs["nETBIOSName"][0].clone())
        .collect();
    assert_eq!(
        names,
        HashSet::from(["LAB".to_string(), "CHILD".to_string()])
    );
    // tokenGroups on the child's DC: the root's Enterprise Admins too.
    let (token, _) = ldap
        .search(
            &child_twin,
            Scope::Base,
            "(objectClass=*)",
            vec!["tokenGroups"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    let ea_sid = super::store::sid_bytes(&format!("{}-519", f.directory.domain_sid()));
    let token = ldap3::SearchEntry::construct(token[0].clone());
    assert!(
        token.bin_attrs["tokenGroups"].contains(&ea_sid),
        "{token:?}"
    );

    // The GC: both twins, partial attributes only, no writes.
    let gc_url = f.directory.global_catalog_url().unwrap();
    let mut gc = f.open(&gc_url, false).await;
    let bound = gc
        .simple_bind("twin@child.lab.example.test", "Child-Passw0rd")
        .await
        .unwrap();
    assert_eq!(bound.rc, 0, "a child account binds on the GC: {bound:?}");
    let (found, _) = gc
        .search("", Scope::Subtree, "(sAMAccountName=twin)", vec!["*"])
        .await
        .unwrap()
        .success()
        .unwrap();
    let found: Vec<SearchEntry> = found.into_iter().map(SearchEntry::construct).collect();
    let dns: HashSet<String> = found.iter().map(|e| e.dn.to_lowercase()).collect();
    assert_eq!(
        dns,
        HashSet::from([root_twin.to_lowercase(), child_twin.to_lowercase()])
    );
    for e in &found {
        assert!(e.attrs.contains_key("userPrincipalName"), "{e:?}");
        assert!(!e.attrs.contains_key("pwdLastSet"), "not in the GC: {e:?}");
    }
    let write = gc
        .modify(
            &child_twin,
            vec![Mod::Replace("description", HashSet::from(["x"]))],
        )
        .await
        .unwrap();
    assert_eq!(write.rc, 53, "{write:?}");
}
