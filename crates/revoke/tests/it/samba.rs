//! The test domain for the directory tests: either a real Samba AD domain
//! (two writable DCs on loopback made by `scripts/samba-ad.sh`, see
//! docs/samba-ad.md) or the lab's embedded directory seeded the same way
//! ([`embedded_domain()`], docs/lab.md). Every fixture operation is LDAP,
//! except bring-up and [`Domain::sync_to_dc2`], so both backends run the
//! same tests ([`Estate`] picks one through a [`Backend`]).
//!
//! [`domain()`] brings the Samba domain up once per test process, or finds it
//! running; [`embedded_domain()`] starts the embedded one once per process. Tests run in parallel threads and share it, so everything a test
//! creates gets a unique name ([`Domain::new_user`], [`Domain::user`],
//! [`Domain::new_group`]) and nothing is deleted afterwards.
//!
//! DC2 lags behind DC1: it sees a change only once someone pulls it
//! ([`Domain::sync_to_dc2`]). Users made here are pulled one object at a time
//! so they can bind on both DCs; a change a test writes afterwards stays on
//! DC1, which is the stale-DC situation `revoke` must handle. Never pull whole
//! naming contexts in a test: that would also end the lag other tests rely on.
//!
//! [`Estate`] (on Samba: [`AdEstate`]) adds a lab of simulated Exchange servers that accept the
//! operator account, and a revoke.toml with a `[directory]` section.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use revoke_lab::directory::{DcConfig, Directory, DirectoryConfig, SeedExchangeServer, SeedUser};
use revoke_lab::{FrontEndConfig, LabConfig};

use crate::common::{Revoke, TestLab, fast_lab, tls_trusting};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/samba-ad.sh");

/// userAccountControl of an enabled user (NORMAL_ACCOUNT) and with ACCOUNTDISABLE.
pub const UAC_ENABLED: u32 = 0x200;
pub const UAC_DISABLED: u32 = 0x202;

/// The shared test domain, up and running. Panics, saying what to run, when
/// it cannot be had: a test that needs AD fails without it, never skips.
pub fn domain() -> &'static Domain {
    static DOMAIN: OnceLock<Result<Domain, String>> = OnceLock::new();
    // A failure is remembered: every test reports it without retrying.
    match DOMAIN.get_or_init(Domain::up) {
        Ok(domain) => domain,
        Err(message) => panic!("{message}"),
    }
}

/// `$REVOKE_TEST_SAMBA_DIR`, else `<target dir>/samba-ad`; scripts/test.sh
/// uses the same rule.
fn domain_dir() -> PathBuf {
    // Relative paths are taken from the workspace root, as cargo does.
    // Canonical, as scripts/samba-ad.sh makes it: paths it writes into the
    // domain's env file are compared with this one.
    let root = crate::common::workspace_root();
    let root = root.canonicalize().unwrap_or(root);
    if let Some(dir) = std::env::var_os("REVOKE_TEST_SAMBA_DIR") {
        return root.join(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    root.join(target).join("samba-ad")
}

/// `bash scripts/samba-ad.sh ARGS...`; Err carries its log (never secrets).
fn script(args: &[&str]) -> Result<(), String> {
    let out = Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run bash {SCRIPT}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`bash scripts/samba-ad.sh {}` failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

/// The directory of a samba-ad.sh domain running somewhere else, if any
/// (its DCs run with DIR/dc1 as working directory).
fn domain_running_elsewhere(ours: &Path) -> Option<PathBuf> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|p| {
        let comm = std::fs::read_to_string(p.path().join("comm")).ok()?;
        let cwd = std::fs::read_link(p.path().join("cwd")).ok()?;
        let dir = cwd.parent()?;
        (comm.trim() == "samba" && cwd.ends_with("dc1") && dir != ours && dir.join("env").exists())
            .then(|| dir.to_path_buf())
    })
}

/// The running test domain: where its DCs are, who may bind, and a TLS
/// configuration that trusts only the domain CA.
pub struct Domain {
    backend: DomainBackend,
    dir: PathBuf,
    env: HashMap<String, String>,
    tls: Arc<rustls::ClientConfig>,
}

enum DomainBackend {
    /// Samba: everything comes from `DIR/env`.
    Samba,
    /// The lab's embedded directory; `env` holds the same keys samba-ad.sh writes.
    Embedded(Directory),
}

/// Which domain an [`Estate`] (and the tests instantiated with it) runs against.
pub trait Backend: 'static {
    fn domain() -> &'static Domain;
}

/// The real two-DC Samba AD domain.
pub struct SambaAd;

impl Backend for SambaAd {
    fn domain() -> &'static Domain {
        domain()
    }
}

/// The lab's embedded directory, two DCs, seeded like the Samba domain.
pub struct Embedded;

impl Backend for Embedded {
    fn domain() -> &'static Domain {
        embedded_domain()
    }
}

/// The embedded test domain, started once per test process on its own
/// runtime thread: DCs on 127.0.1.1 and 127.0.1.2 (or the next free
/// 127.0.N.x pair) on the standard ports 636/389 when run as root, so
/// `ldaps://HOST` and `ldap://HOST` mean what they mean for Samba; DC2 never
/// replicates by itself, as in the Samba domain.
pub fn embedded_domain() -> &'static Domain {
    static DOMAIN: OnceLock<Result<Domain, String>> = OnceLock::new();
    match DOMAIN.get_or_init(Domain::up_embedded) {
        Ok(domain) => domain,
        Err(message) => panic!("{message}"),
    }
}

impl Domain {
    fn up_embedded() -> Result<Domain, String> {
        let password = new_password();
        let (tx, rx) = std::sync::mpsc::channel();
        let seed_password = password.clone();
        std::thread::Builder::new()
            .name("embedded-directory".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let mut last = String::new();
                    for block in 1..=20u8 {
                        let config = embedded_config(block, &seed_password);
                        match Directory::start(config).await {
                            Ok(directory) => {
                                let _ = tx.send(Ok(directory));
                                return std::future::pending::<()>().await;
                            }
                            Err(e) => last = format!("{e:#}"),
                        }
                    }
                    let _ = tx.send(Err(format!("the embedded directory did not start: {last}")));
                })
            })
            .map_err(|e| e.to_string())?;
        let directory = rx.recv().map_err(|e| e.to_string())??;
        let dir = std::env::temp_dir().join(format!("revoke-embedded-ad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, directory.ca_pem()).map_err(|e| e.to_string())?;
        let (admin, admin_password) = directory.admin();
        let (operator, _) = directory.operator().expect("an operator");
        let env: HashMap<String, String> = [
            ("SAMBA_DC1_HOST", directory.host(1).to_string()),
            ("SAMBA_DC2_HOST", directory.host(2).to_string()),
            ("SAMBA_LDAPS_PORT", directory.ldaps_port().to_string()),
            ("SAMBA_CA", ca.display().to_string()),
            ("SAMBA_BASE_DN", directory.base_dn().to_string()),
            ("SAMBA_CONFIG_DN", directory.config_dn().to_string()),
            ("SAMBA_DNS_DOMAIN", directory.dns_domain().to_string()),
            ("SAMBA_DOMAIN", directory.netbios_domain().to_string()),
            ("SAMBA_OPERATOR_USER", operator),
            ("SAMBA_USER_PASSWORD", password),
            ("SAMBA_ADMIN_USER", admin),
            ("SAMBA_ADMIN_PASSWORD", admin_password.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(Domain {
            tls: tls_trusting(directory.ca_pem().as_bytes()),
            backend: DomainBackend::Embedded(directory),
            dir,
            env,
        })
    }

    fn up() -> Result<Domain, String> {
        let dir = domain_dir();
        let dir_str = dir.display().to_string();
        // Idempotent: "already running" returns at once.
        if let Err(log) = script(&["up", &dir_str]) {
            let what_to_do = match domain_running_elsewhere(&dir) {
                Some(other) => format!(
                    "A test domain from {0} is running (one per machine): use it with \
                     REVOKE_TEST_SAMBA_DIR={0}, or stop it with `bash scripts/samba-ad.sh down {0}`.",
                    other.display()
                ),
                None => format!(
                    "Run the tests as root (the script installs Debian packages, adds 127.0.0.2 \
                     to lo and two /etc/hosts lines), e.g. `bash scripts/test.sh`; or start the \
                     domain with `bash scripts/samba-ad.sh up {dir_str}`, or set \
                     REVOKE_TEST_SAMBA_DIR to the directory of a running one."
                ),
            };
            return Err(format!(
                "The Samba AD test domain is not available, and this test needs it: the Samba \
                 suites (against_samba::*, samba_fixture::*, the Samba half of f5::*) run \
                 against a real domain that `bash scripts/test.sh` installs and starts \
                 (docs/samba-ad.md); the embedded-directory suites do not need it.\n\
                 {what_to_do}\n\nWhat samba-ad.sh said:\n{log}"
            ));
        }
        // Tests rely on DC2 lagging: no automatic replication.
        script(&["autorepl", &dir_str, "off"])?;
        let env_path = dir.join("env");
        let text = std::fs::read_to_string(&env_path)
            .map_err(|e| format!("cannot read {}: {e}", env_path.display()))?;
        let env: HashMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ca = env.get("SAMBA_CA").ok_or("env has no SAMBA_CA")?;
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read the domain CA {ca}: {e}"))?;
        Ok(Domain {
            backend: DomainBackend::Samba,
            dir,
            tls: tls_trusting(&pem),
            env,
        })
    }

    fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{}/env has no {key}", self.dir.display()))
    }

    /// Where the domain lives (`DIR` of samba-ad.sh; for the embedded
    /// directory, the temporary directory holding its CA).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// "dc1.lab.example.test" for `n` = 1, "dc2..." for 2, and the
    /// read-only "rodc1..." for 3 (Samba only).
    pub fn dc_host(&self, n: u8) -> &str {
        match n {
            3 => self.var("SAMBA_RODC_HOST"),
            n => self.var(&format!("SAMBA_DC{n}_HOST")),
        }
    }

    /// "ldaps://dc1.lab.example.test": the name the certificates carry
    /// (with the port when it is not 636).
    pub fn dc_url(&self, n: u8) -> String {
        match self.env.get("SAMBA_LDAPS_PORT").map(String::as_str) {
            None | Some("636") => format!("ldaps://{}", self.dc_host(n)),
            Some(port) => format!("ldaps://{}:{port}", self.dc_host(n)),
        }
    }

    /// The NetBIOS domain name, "LAB": users log on as `LAB\\sam`.
    pub fn netbios_domain(&self) -> &str {
        self.var("SAMBA_DOMAIN")
    }

    /// PEM of the CA that signed both DCs' certificates.
    pub fn ca_file(&self) -> &Path {
        Path::new(self.var("SAMBA_CA"))
    }

    /// DC=lab,DC=example,DC=test
    pub fn base_dn(&self) -> &str {
        self.var("SAMBA_BASE_DN")
    }

    /// CN=Configuration,DC=lab,DC=example,DC=test
    pub fn config_dn(&self) -> &str {
        self.var("SAMBA_CONFIG_DN")
    }

    /// OU=Staff,<base>: where test users live and the operator has delegated rights.
    pub fn staff_dn(&self) -> String {
        format!("OU=Staff,{}", self.base_dn())
    }

    pub fn dns_domain(&self) -> &str {
        self.var("SAMBA_DNS_DOMAIN")
    }

    /// "revoke-op@lab.example.test": the account `revoke` binds as.
    pub fn operator_upn(&self) -> &str {
        self.var("SAMBA_OPERATOR_USER")
    }

    /// "revoke-op"
    pub fn operator_sam(&self) -> &str {
        let upn = self.operator_upn();
        upn.split_once('@').map_or(upn, |(sam, _)| sam)
    }

    pub fn operator_password(&self) -> &str {
        self.var("SAMBA_USER_PASSWORD")
    }

    /// Password of the users the script seeds (alice, bob, carol1, carol2,
    /// admin-alice, nested-admin; revoke-op too).
    pub fn seed_password(&self) -> &str {
        self.var("SAMBA_USER_PASSWORD")
    }

    /// Administrator's UPN and password: for the fixture's own writes and for
    /// reading what `revoke` did. Not for the code under test.
    pub fn admin(&self) -> (&str, &str) {
        (
            self.var("SAMBA_ADMIN_USER"),
            self.var("SAMBA_ADMIN_PASSWORD"),
        )
    }

    /// CN=Domain Admins,CN=Users,<base>
    pub fn domain_admins_dn(&self) -> String {
        format!("CN=Domain Admins,CN=Users,{}", self.base_dn())
    }

    /// CN=Backup Operators,CN=Builtin,<base>
    pub fn backup_operators_dn(&self) -> String {
        format!("CN=Backup Operators,CN=Builtin,{}", self.base_dn())
    }

    /// Does the directory answer LDAP "Who am I?" (the embedded one does,
    /// like Windows; Samba does not: docs/windows-behaviour.md §7.7)?
    pub fn answers_who_am_i(&self) -> bool {
        matches!(self.backend, DomainBackend::Embedded(_))
    }

    /// Do the Exchange server objects carry `msExchServerSite`? The
    /// embedded directory seeds it; the Samba domain's stand-in Exchange
    /// schema (scripts/samba-ad.sh) has no such attribute.
    pub fn has_exchange_sites(&self) -> bool {
        matches!(self.backend, DomainBackend::Embedded(_))
    }

    /// CN=<name>,CN=Builtin,<base>, e.g. "Replicator".
    pub fn builtin_group_dn(&self, name: &str) -> String {
        format!("CN={name},CN=Builtin,{}", self.base_dn())
    }

    // ------------------------------------------------------------ Kerberos
    // Samba only: its KDC (DC1, 127.0.0.1:88) issues the tickets; the
    // embedded directory has no KDC, and these panic there.

    /// Does this domain have a KDC (Samba does, the embedded directory not)?
    pub fn has_kerberos(&self) -> bool {
        matches!(self.backend, DomainBackend::Samba)
    }

    fn kerberos_var(&self, key: &str) -> &str {
        assert!(
            self.has_kerberos(),
            "the embedded directory has no KDC: Kerberos tests run against the Samba domain \
             (samba::domain())"
        );
        self.var(key)
    }

    /// "LAB.EXAMPLE.TEST"
    pub fn realm(&self) -> &str {
        self.kerberos_var("SAMBA_REALM")
    }

    /// DIR/krb5.conf: the realm with DC1 as its KDC, no DNS lookups, no
    /// hostname canonicalisation. Give it to clients as `KRB5_CONFIG`.
    pub fn krb5_conf(&self) -> PathBuf {
        PathBuf::from(self.kerberos_var("SAMBA_KRB5_CONF"))
    }

    /// DIR/lab.keytab (0600): the keys of HTTP/ex01..ex16.lab.example.test
    /// (account `exsvc`, AES), as the KDC has them.
    pub fn lab_keytab(&self) -> PathBuf {
        PathBuf::from(self.kerberos_var("SAMBA_LAB_KEYTAB"))
    }

    /// DIR/wrong.keytab (0600): the same principals, kvnos and enctypes with
    /// random keys; an acceptor using it cannot decrypt the tickets.
    pub fn wrong_keytab(&self) -> PathBuf {
        PathBuf::from(self.kerberos_var("SAMBA_WRONG_KEYTAB"))
    }

    /// How many lab host names have an SPN and a /etc/hosts line (16).
    pub fn kerberos_hosts(&self) -> u8 {
        self.kerberos_var("SAMBA_KRB_HOSTS")
            .parse()
            .expect("SAMBA_KRB_HOSTS")
    }

    /// "ex01.lab.example.test" for `n` = 1 (1 ..= kerberos_hosts()):
    /// resolves to 127.0.0.1 and has the SPN HTTP/<it>.
    pub fn kerberos_host(&self, n: u8) -> String {
        assert!(
            (1..=self.kerberos_hosts()).contains(&n),
            "no lab host ex{n:02}"
        );
        format!("ex{n:02}.{}", self.dns_domain())
    }

    /// "HTTP/ex01.lab.example.test@LAB.EXAMPLE.TEST" for `n` = 1.
    pub fn http_principal(&self, n: u8) -> String {
        format!("HTTP/{}@{}", self.kerberos_host(n), self.realm())
    }

    /// `kinit principal` against the domain's KDC into the FILE ccache at
    /// `ccache` (created or replaced). The password goes to kinit's stdin,
    /// never its argv; Err holds kinit's message (e.g. "Password incorrect
    /// while getting initial credentials").
    pub fn kinit(&self, principal: &str, password: &str, ccache: &Path) -> Result<(), String> {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = Command::new("kinit")
            .arg("-c")
            .arg(format!("FILE:{}", ccache.display()))
            .arg(principal)
            .env("KRB5_CONFIG", self.krb5_conf())
            .env_remove("KRB5CCNAME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!("cannot run kinit (krb5-user, scripts/setup-test-deps.sh): {e}")
            })?;
        // kinit reads one line; it may exit before reading (unknown principal).
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes());
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "kinit {principal} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The RID of `dn` (the last part of its objectSid), read on DC1.
    pub async fn rid(&self, dn: &str) -> u32 {
        let mut ldap = self.admin_connection(1).await;
        let found = search(
            &mut ldap,
            dn,
            Scope::Base,
            "(objectClass=*)",
            &["objectSid"],
        )
        .await
        .unwrap_or_else(|e| panic!("reading objectSid of {dn}: {e}"));
        let _ = ldap.unbind().await;
        let sid = found
            .first()
            .and_then(revoke_core::directory::account::object_sid)
            .unwrap_or_else(|| panic!("{dn} has no objectSid"));
        sid.rsplit('-').next().unwrap().parse().unwrap()
    }

    /// `count` disabled users (no password) in OU=Paging sharing the mail
    /// address returned: more than a page (AD's MaxPageSize is 1,000). Made
    /// once per domain (about 40 s on Samba), kept for later runs.
    pub async fn paging_users(&self, count: usize) -> (String, Vec<String>) {
        let mail = "paging@page.example.test".to_string();
        let ou = format!("OU=Paging,{}", self.base_dn());
        let ou_attrs = vec![("objectClass", values(["organizationalUnit"]))];
        self.admin_add(&ou, ou_attrs, true).await;
        let dns: Vec<String> = (1..=count).map(|i| format!("CN=pg{i},{ou}")).collect();
        let mut ldap = self.admin_connection(1).await;
        let adapters: Vec<Box<dyn ldap3::adapters::Adapter<_, _>>> =
            vec![Box::new(ldap3::adapters::PagedResults::new(500))];
        let mut stream = ldap
            .streaming_search_with(
                adapters,
                &ou,
                Scope::OneLevel,
                "(objectClass=user)",
                vec!["1.1"],
            )
            .await
            .expect("listing OU=Paging");
        let mut have = HashSet::new();
        while let Some(entry) = stream.next().await.expect("listing OU=Paging") {
            have.insert(SearchEntry::construct(entry).dn.to_ascii_lowercase());
        }
        let _ = stream.finish().await;
        for (i, dn) in dns.iter().enumerate() {
            if have.contains(&dn.to_ascii_lowercase()) {
                continue;
            }
            let attrs = vec![
                ("objectClass", values(["user"])),
                ("sAMAccountName", values([format!("pg-{}", i + 1)])),
                ("mail", values([&mail])),
            ];
            let result = ldap
                .add(
                    dn,
                    attrs
                        .into_iter()
                        .map(|(k, v)| (k.as_bytes().to_vec(), v))
                        .collect(),
                )
                .await
                .unwrap_or_else(|e| panic!("adding {dn}: {e}"));
            assert!(
                result.rc == 0 || result.rc == 68,
                "adding {dn}: result {}: {}",
                result.rc,
                result.text
            );
        }
        let _ = ldap.unbind().await;
        (mail, dns)
    }

    /// Makes `group_dn` (a global group the user is a member of) the
    /// user's primary group on DC1: primaryGroupID, and no `member` value
    /// left (AD moves the membership there; delete it if the DC did not).
    pub async fn set_primary_group(&self, user_dn: &str, group_dn: &str) {
        let rid = self.rid(group_dn).await;
        self.admin_modify(
            1,
            user_dn,
            vec![Mod::Replace(
                "primaryGroupID".into(),
                values([rid.to_string()]),
            )],
        )
        .await;
        let mut ldap = self.admin_connection(1).await;
        let result = ldap
            .modify(
                group_dn,
                vec![Mod::Delete("member".into(), values([user_dn]))],
            )
            .await
            .unwrap_or_else(|e| panic!("modifying {group_dn}: {e}"));
        // 16: no such value (already moved); 53: the DC refuses to drop a
        // primary group's member (Samba does, keeping it linked).
        assert!(
            [0, 16, 53].contains(&result.rc),
            "removing {user_dn} from {group_dn}: result {}: {}",
            result.rc,
            result.text
        );
        let _ = ldap.unbind().await;
    }

    // ------------------------------------------------------------ LDAP

    /// An LDAPS connection to DC `dc` (certificate checked against the domain
    /// CA), simple-bound as `who` (a UPN or a DN). Err carries the server's
    /// result code and diagnostic text, e.g. "data 533" for a disabled account.
    pub async fn connect(&self, dc: u8, who: &str, password: &str) -> Result<Ldap, String> {
        let url = self.dc_url(dc);
        let settings = LdapConnSettings::new()
            .set_config(self.tls.clone())
            .set_conn_timeout(Duration::from_secs(10));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &url)
            .await
            .map_err(|e| format!("connecting to {url}: {e}"))?;
        ldap3::drive!(conn);
        let result = ldap
            .simple_bind(who, password)
            .await
            .map_err(|e| format!("bind as {who} on {url}: {e}"))?;
        if result.rc != 0 {
            return Err(format!(
                "bind as {who} on {url}: result {}: {}",
                result.rc, result.text
            ));
        }
        Ok(ldap)
    }

    /// Does `who` authenticate on DC `dc`? One LDAPS simple bind.
    pub async fn bind(&self, dc: u8, who: &str, password: &str) -> Result<(), String> {
        let mut ldap = self.connect(dc, who, password).await?;
        let _ = ldap.unbind().await;
        Ok(())
    }

    /// A connection as Administrator.
    pub async fn admin_connection(&self, dc: u8) -> Ldap {
        let (user, password) = self.admin();
        self.connect(dc, user, password)
            .await
            .unwrap_or_else(|e| panic!("Administrator: {e}"))
    }

    /// Attributes of `dn` as DC `dc` has them, read as Administrator, keyed
    /// by the names asked for. Panics if the object does not exist there.
    pub async fn read(&self, dc: u8, dn: &str, attrs: &[&str]) -> HashMap<String, Vec<String>> {
        let mut ldap = self.admin_connection(dc).await;
        let found = search(&mut ldap, dn, Scope::Base, "(objectClass=*)", attrs)
            .await
            .unwrap_or_else(|e| panic!("reading {dn} on dc{dc}: {e}"));
        let _ = ldap.unbind().await;
        let entry = found.into_iter().next().expect("a base search finds one");
        entry
            .attrs
            .into_iter()
            .map(|(k, v)| {
                let asked = attrs.iter().find(|a| a.eq_ignore_ascii_case(&k));
                (asked.map_or(k, |a| a.to_string()), v)
            })
            .collect()
    }

    /// Does DC `dc` have an object `dn`?
    pub async fn exists(&self, dc: u8, dn: &str) -> bool {
        let mut ldap = self.admin_connection(dc).await;
        let result = ldap
            .search(dn, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await
            .unwrap_or_else(|e| panic!("searching {dn} on dc{dc}: {e}"));
        let _ = ldap.unbind().await;
        match result.1.rc {
            0 => true,
            32 => false, // noSuchObject
            rc => panic!("searching {dn} on dc{dc}: result {rc}: {}", result.1.text),
        }
    }

    /// One single-valued attribute, parsed.
    async fn read_one<T: std::str::FromStr>(&self, dc: u8, dn: &str, attr: &str) -> T {
        let values = self.read(dc, dn, &[attr]).await.remove(attr);
        let value = values
            .and_then(|v| v.into_iter().next())
            .unwrap_or_else(|| panic!("{dn} has no {attr} on dc{dc}"));
        value
            .parse()
            .unwrap_or_else(|_| panic!("{dn} on dc{dc}: {attr} {value:?} does not parse"))
    }

    pub async fn user_account_control(&self, dc: u8, dn: &str) -> u32 {
        self.read_one(dc, dn, "userAccountControl").await
    }

    /// uSNChanged: DC-local, grows with every change that DC applies.
    pub async fn usn_changed(&self, dc: u8, dn: &str) -> u64 {
        self.read_one(dc, dn, "uSNChanged").await
    }

    /// whenChanged as the DC has it, e.g. "20251123110500.0Z".
    pub async fn when_changed(&self, dc: u8, dn: &str) -> String {
        self.read_one(dc, dn, "whenChanged").await
    }

    /// Writes userAccountControl directly on DC `dc` as Administrator (an
    /// admin disabling by hand, or a change made on one DC only).
    pub async fn set_user_account_control(&self, dc: u8, dn: &str, value: u32) {
        self.admin_modify(
            dc,
            dn,
            vec![Mod::Replace(
                "userAccountControl".into(),
                values([value.to_string()]),
            )],
        )
        .await;
    }

    /// Sets pwdLastSet (0: must change at next logon) on DC `dc` as Administrator.
    pub async fn set_pwd_last_set(&self, dc: u8, dn: &str, value: i64) {
        self.admin_modify(
            dc,
            dn,
            vec![Mod::Replace(
                "pwdLastSet".into(),
                values([value.to_string()]),
            )],
        )
        .await;
    }

    /// Sets a user's password directly on DC `dc` as Administrator (a
    /// helpdesk reset by hand).
    pub async fn set_password(&self, dc: u8, dn: &str, password: &str) {
        let unicode_pwd = unicode_pwd(password);
        self.admin_modify(
            dc,
            dn,
            vec![Mod::Replace("unicodePwd".into(), values([unicode_pwd]))],
        )
        .await;
    }

    /// Adds `member_dn` to the group `group_dn` on DC1.
    pub async fn add_member(&self, group_dn: &str, member_dn: &str) {
        self.admin_modify(
            1,
            group_dn,
            vec![Mod::Add("member".into(), values([member_dn]))],
        )
        .await;
    }

    async fn admin_modify(&self, dc: u8, dn: &str, mods: Vec<Mod<Vec<u8>>>) {
        let mut ldap = self.admin_connection(dc).await;
        let result = ldap
            .modify(dn, mods)
            .await
            .unwrap_or_else(|e| panic!("modifying {dn} on dc{dc}: {e}"));
        assert_eq!(result.rc, 0, "modifying {dn} on dc{dc}: {}", result.text);
        let _ = ldap.unbind().await;
    }

    /// Creates `dn` on DC1 as Administrator; `exists_ok` tolerates result 68.
    async fn admin_add(&self, dn: &str, attrs: Vec<(&str, HashSet<Vec<u8>>)>, exists_ok: bool) {
        let mut ldap = self.admin_connection(1).await;
        let attrs = attrs
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect();
        let result = ldap
            .add(dn, attrs)
            .await
            .unwrap_or_else(|e| panic!("adding {dn}: {e}"));
        assert!(
            result.rc == 0 || (exists_ok && result.rc == 68),
            "adding {dn}: result {}: {}",
            result.rc,
            result.text
        );
        let _ = ldap.unbind().await;
    }

    /// Pulls DC1's changes into DC2 now: the one object `dn` (and nothing
    /// else), or with `None` the configuration and domain naming contexts
    /// entirely (ends the lag for every test: avoid in tests). ~1 s.
    pub async fn sync_to_dc2(&self, dn: Option<&str>) {
        if let DomainBackend::Embedded(directory) = &self.backend {
            directory.sync(1, 2, dn);
            return;
        }
        // One pull at a time: each opens DC2's database directly.
        static PULL: Mutex<()> = Mutex::new(());
        let dir = self.dir.display().to_string();
        let dn = dn.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let _one = PULL.lock().unwrap_or_else(|e| e.into_inner());
            let mut args = vec!["sync", dir.as_str()];
            args.extend(dn.as_deref());
            script(&args).unwrap_or_else(|e| panic!("{e}"))
        })
        .await
        .expect("sync task");
    }

    /// Lets the read-only DC (Samba only) hold these users' passwords and
    /// gives them to it now: it then logs them on by itself.
    pub async fn cache_on_rodc(&self, sams: &[&str]) {
        assert!(
            matches!(self.backend, DomainBackend::Samba),
            "only the Samba domain has a read-only DC"
        );
        let mut args = vec!["rodc-cache".to_string(), self.dir.display().to_string()];
        args.extend(sams.iter().map(|s| s.to_string()));
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            script(&args).unwrap_or_else(|e| panic!("{e}"))
        })
        .await
        .expect("rodc-cache task");
    }

    /// Pulls the one object `dn` from DC1 into the read-only DC now, as its
    /// inbound replication would (Samba only).
    pub async fn sync_to_rodc(&self, dn: &str) {
        let args = [
            "sync-rodc".to_string(),
            self.dir.display().to_string(),
            dn.to_string(),
        ];
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            script(&args).unwrap_or_else(|e| panic!("{e}"))
        })
        .await
        .expect("sync-rodc task");
    }

    // ------------------------------------------------------------ objects

    /// A new enabled user under OU=Staff, pulled into DC2: see [`UserSpec`].
    pub async fn new_user(&self, prefix: &str) -> TestUser {
        self.user(prefix).create().await
    }

    /// A user to be made with options:
    /// `domain.user("lag").not_replicated().admin_count().create().await`.
    pub fn user(&self, prefix: &str) -> UserSpec<'_> {
        UserSpec {
            domain: self,
            sam: unique_name(prefix),
            replicate: true,
            admin_count: false,
            member_of: Vec::new(),
            mail: None,
            parent: None,
            upn: None,
        }
    }

    /// A new global security group under OU=Staff, on DC1 only; nest it with
    /// [`Domain::add_member`], e.g. into [`Domain::domain_admins_dn`].
    pub async fn new_group(&self, prefix: &str) -> TestGroup {
        let sam = unique_name(prefix);
        let dn = format!("CN={sam},{}", self.staff_dn());
        self.admin_add(
            &dn,
            vec![
                ("objectClass", values(["group"])),
                ("sAMAccountName", values([&sam])),
            ],
            false,
        )
        .await;
        TestGroup { sam, dn }
    }

    /// Objects that are not users but look like `user`: same cn,
    /// displayName and mail (a computer also has objectClass user). They sit
    /// in CN=Computers, CN=Users and OU=Contacts, on DC1 only.
    pub async fn lookalikes(&self, user: &TestUser) -> Lookalikes {
        let base = self.base_dn();
        let shared = |class: &str| {
            vec![
                ("objectClass", values([class])),
                ("displayName", values([&user.display_name])),
                ("mail", values([&user.mail])),
            ]
        };
        let computer = format!("CN={},CN=Computers,{base}", user.cn);
        let mut attrs = shared("computer");
        attrs.push(("sAMAccountName", values([format!("{}$", user.sam)])));
        attrs.push(("userAccountControl", values(["4096"]))); // WORKSTATION_TRUST_ACCOUNT
        self.admin_add(&computer, attrs, false).await;

        let group = format!("CN={},CN=Users,{base}", user.cn);
        let mut attrs = shared("group");
        attrs.push(("sAMAccountName", values([unique_name("look")])));
        self.admin_add(&group, attrs, false).await;

        let contacts = format!("OU=Contacts,{base}");
        let ou = vec![("objectClass", values(["organizationalUnit"]))];
        self.admin_add(&contacts, ou, true).await;
        let contact = format!("CN={},{contacts}", user.cn);
        self.admin_add(&contact, shared("contact"), false).await;
        Lookalikes {
            computer,
            group,
            contact,
        }
    }
}

/// unicodePwd: the password in double quotes, UTF-16LE (revoke's own encoder).
fn unicode_pwd(password: &str) -> Vec<u8> {
    revoke_core::directory::password::unicode_pwd(&revoke_core::Password::new(password.into()))
}

/// An attribute's values for ldap3 (which wants a set of byte strings).
pub fn values<I: IntoIterator<Item = S>, S: AsRef<[u8]>>(items: I) -> HashSet<Vec<u8>> {
    items.into_iter().map(|s| s.as_ref().to_vec()).collect()
}

/// A search; Err carries the result code and text.
pub async fn search(
    ldap: &mut Ldap,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
) -> Result<Vec<SearchEntry>, String> {
    let (entries, result) = ldap
        .search(base, scope, filter, attrs.to_vec())
        .await
        .map_err(|e| e.to_string())?
        .success()
        .map_err(|e| e.to_string())?;
    debug_assert_eq!(result.rc, 0);
    Ok(entries.into_iter().map(SearchEntry::construct).collect())
}

/// `prefix-XXXXN`: XXXX is random per test process, N counts within it.
/// Fits sAMAccountName's 20 characters for a prefix of up to 8.
pub fn unique_name(prefix: &str) -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(1);
    assert!(
        (1..=8).contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "name prefix {prefix:?}: 1 to 8 of a-z, 0-9, '-'"
    );
    let run = RUN.get_or_init(|| {
        let r = getrandom::u32().expect("random");
        format!("{:04x}", r & 0xffff)
    });
    let name = format!("{prefix}-{run}{}", NEXT.fetch_add(1, Ordering::Relaxed));
    assert!(name.len() <= 20, "{name} is longer than 20");
    name
}

/// A fresh password that meets the domain's complexity rules.
fn new_password() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("Rt{hex}.T9")
}

/// A user made by [`Domain::new_user`] or [`UserSpec::create`].
#[derive(Debug, Clone)]
pub struct TestUser {
    pub sam: String,
    /// `<sam>@lab.example.test`
    pub upn: String,
    /// `<sam>@lab.example.test` unless [`UserSpec::mail`] said otherwise.
    pub mail: String,
    /// `CN=<sam>,OU=Staff,<base>`
    pub dn: String,
    pub cn: String,
    pub display_name: String,
    pub password: String,
}

/// Options for a new user; [`UserSpec::create`] makes it.
pub struct UserSpec<'d> {
    domain: &'d Domain,
    sam: String,
    replicate: bool,
    admin_count: bool,
    member_of: Vec<String>,
    mail: Option<String>,
    parent: Option<String>,
    upn: Option<String>,
}

impl UserSpec<'_> {
    /// This sAMAccountName (and cn) instead of a unique one made from the
    /// prefix: for names with a meaning (`MSOL_...`, `krbtgt_NNNNN`).
    pub fn sam(mut self, sam: &str) -> Self {
        assert!(sam.len() <= 20, "{sam} is longer than 20");
        self.sam = sam.to_string();
        self
    }

    /// This userPrincipalName instead of `<sam>@lab.example.test` (the
    /// implicit UPN still binds).
    pub fn upn(mut self, upn: &str) -> Self {
        self.upn = Some(upn.to_string());
        self
    }

    /// Leave the user on DC1 only (DC2 does not know it).
    pub fn not_replicated(mut self) -> Self {
        self.replicate = false;
        self
    }

    /// adminCount: 1, as AD's SDProp marks members of protected groups
    /// (Samba never sets it by itself).
    pub fn admin_count(mut self) -> Self {
        self.admin_count = true;
        self
    }

    /// Member of this group (on DC1: a membership lives on the group, which
    /// is not pulled into DC2).
    pub fn member_of(mut self, group_dn: &str) -> Self {
        self.member_of.push(group_dn.to_string());
        self
    }

    /// This `mail` instead of `<sam>@lab.example.test`: give two users the
    /// same one for an ambiguous lookup.
    pub fn mail(mut self, mail: &str) -> Self {
        self.mail = Some(mail.to_string());
        self
    }

    /// In this container instead of OU=Staff (where the operator has no
    /// delegated rights, e.g. CN=Users).
    pub fn under(mut self, parent_dn: &str) -> Self {
        self.parent = Some(parent_dn.to_string());
        self
    }

    /// Creates the user on DC1 as Administrator: enabled (512), with
    /// displayName, mail, UPN and a fresh password; then its groups; then
    /// pulls it into DC2 unless [`UserSpec::not_replicated`].
    pub async fn create(self) -> TestUser {
        let d = self.domain;
        let sam = self.sam;
        let upn = self
            .upn
            .unwrap_or_else(|| format!("{sam}@{}", d.dns_domain()));
        let user = TestUser {
            mail: self.mail.unwrap_or_else(|| upn.clone()),
            dn: format!("CN={sam},{}", self.parent.unwrap_or_else(|| d.staff_dn())),
            cn: sam.clone(),
            display_name: format!("Test User {sam}"),
            password: new_password(),
            upn,
            sam,
        };
        let unicode_pwd = unicode_pwd(&user.password);
        let mut attrs = vec![
            ("objectClass", values(["user"])),
            ("sAMAccountName", values([&user.sam])),
            ("userPrincipalName", values([&user.upn])),
            ("displayName", values([&user.display_name])),
            ("mail", values([&user.mail])),
            ("unicodePwd", values([unicode_pwd])),
            ("userAccountControl", values([UAC_ENABLED.to_string()])),
        ];
        if self.admin_count {
            attrs.push(("adminCount", values(["1"])));
        }
        d.admin_add(&user.dn, attrs, false).await;
        for group in &self.member_of {
            d.add_member(group, &user.dn).await;
        }
        if self.replicate {
            d.sync_to_dc2(Some(&user.dn)).await;
        }
        user
    }
}

/// A group made by [`Domain::new_group`].
#[derive(Debug, Clone)]
pub struct TestGroup {
    /// Also its cn.
    pub sam: String,
    pub dn: String,
}

/// DNs of the not-users made by [`Domain::lookalikes`].
#[derive(Debug, Clone)]
pub struct Lookalikes {
    pub computer: String,
    pub group: String,
    pub contact: String,
}

// ------------------------------------------------------------ estate

/// The domain plus a lab of simulated Exchange servers whose WinRM accepts
/// the operator (`LAB\revoke-op`, the operator's AD password), and a
/// revoke.toml with the lab's servers, `[winrm]` and `[directory]`.
pub struct Estate<B: Backend> {
    pub domain: &'static Domain,
    lab: TestLab,
    backend: std::marker::PhantomData<B>,
}

/// An estate on the Samba domain.
pub type AdEstate = Estate<SambaAd>;

impl<B: Backend> Estate<B> {
    /// `servers` lab servers (EX01...), listed in revoke.toml.
    pub async fn start(servers: usize) -> Self {
        Self::start_with(servers, true, |_| {}).await
    }

    /// Like [`AdEstate::start`], and the lab serves Exchange's client
    /// endpoints, validating logons against DC1 (LDAPS, the domain CA).
    /// `tweak` adjusts the lab (timings, the front end's cache and heartbeat).
    pub async fn start_with_front_end(servers: usize, tweak: impl FnOnce(&mut LabConfig)) -> Self {
        let domain = B::domain();
        let ca = std::fs::read_to_string(domain.ca_file()).expect("the domain CA");
        Self::start_with(servers, true, move |config| {
            config.front_end = Some(FrontEndConfig::new(vec![domain.dc_url(1)], ca));
            tweak(config);
        })
        .await
    }

    /// revoke.toml with `[winrm]` and `[directory]` but no `servers` key:
    /// `revoke` has to find the Exchange servers in AD. The lab (one server)
    /// is only there for the `[winrm]` section.
    pub async fn start_without_servers() -> Self {
        Self::start_with(1, false, |_| {}).await
    }

    async fn start_with(
        servers: usize,
        list_servers: bool,
        tweak: impl FnOnce(&mut LabConfig),
    ) -> Self {
        let domain = B::domain();
        let mut config = LabConfig {
            admin_user: domain.operator_sam().to_string(),
            admin_password: domain.operator_password().to_string(),
            netbios_domain: domain.netbios_domain().to_string(),
            dns_domain: domain.dns_domain().to_string(),
            ..fast_lab(servers)
        };
        tweak(&mut config);
        let lab = TestLab::start(config).await;
        let text = std::fs::read_to_string(&lab.config).expect("read revoke.toml");
        let mut config: toml::Table = text.parse().expect("the lab's revoke.toml");
        if !list_servers {
            config.remove("servers").expect("a servers key");
        }
        let mut directory = toml::Table::new();
        directory.insert("url".into(), domain.dc_url(1).into());
        let ca = domain.ca_file().display().to_string();
        directory.insert("ca_file".into(), ca.into());
        directory.insert("bind_user".into(), domain.operator_upn().into());
        config.insert("directory".into(), directory.into());
        std::fs::write(&lab.config, config.to_string()).expect("write revoke.toml");
        Estate {
            domain,
            lab,
            backend: std::marker::PhantomData,
        }
    }

    /// The revoke.toml.
    pub fn config(&self) -> &Path {
        &self.lab.config
    }

    /// The lab: servers, their IIS and command logs.
    pub fn lab(&self) -> &TestLab {
        &self.lab
    }

    /// Sets one more key of `[directory]` (replication_timeout,
    /// domain_controllers, starttls, insecure_plain_ldap, or `url` again).
    pub fn set_directory(&self, key: &str, value: impl Into<toml::Value>) {
        let path = self.config();
        let text = std::fs::read_to_string(path).expect("read revoke.toml");
        let mut config: toml::Table = text.parse().expect("revoke.toml");
        let directory = config
            .get_mut("directory")
            .and_then(toml::Value::as_table_mut)
            .expect("[directory]");
        directory.insert(key.to_string(), value.into());
        std::fs::write(path, config.to_string()).expect("write revoke.toml");
    }

    /// Adds (or replaces) the `[f5]` section of revoke.toml.
    pub fn set_f5(&self, section: toml::Table) {
        let path = self.config();
        let text = std::fs::read_to_string(path).expect("read revoke.toml");
        let mut config: toml::Table = text.parse().expect("revoke.toml");
        config.insert("f5".into(), section.into());
        std::fs::write(path, config.to_string()).expect("write revoke.toml");
    }

    /// `revoke SUBCOMMAND --config <revoke.toml> ARGS` with the operator's
    /// password in REVOKE_PASSWORD.
    pub fn revoke<S: AsRef<str>>(&self, subcommand: &str, args: &[S]) -> Revoke {
        let mut all = vec![
            subcommand.to_string(),
            "--config".to_string(),
            self.config().display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.as_ref().to_string()));
        Revoke::new(&all).password(self.domain.operator_password())
    }

    /// `revoke disable SAM --yes --output json`, ready to run.
    pub fn disable_json(&self, sam: &str) -> Revoke {
        self.revoke("disable", &[sam, "--yes", "--output", "json"])
    }

    /// `revoke reset SAM --yes --output json --password-file FILE`: the run,
    /// the new password it wrote, and the file (mode checks).
    pub async fn reset_to_file(
        &self,
        sam: &str,
    ) -> (crate::common::Run, String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("new.pw");
        let args = [
            sam,
            "--yes",
            "--output",
            "json",
            "--password-file",
            file.to_str().unwrap(),
        ];
        let run = self.revoke("reset", &args).run().await;
        run.assert_code(0);
        let new = std::fs::read_to_string(&file)
            .unwrap()
            .trim_end()
            .to_string();
        (run, new, dir)
    }
}

/// The embedded directory seeded like scripts/samba-ad.sh seeds Samba: the
/// same users, the operator with rights on OU=Staff, the Exchange servers.
/// Its DCs use 127.0.`block`.1 and .2.
fn embedded_config(block: u8, password: &str) -> DirectoryConfig {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let dc = |n: u8| DcConfig {
        address: std::net::Ipv4Addr::new(127, 0, block, n),
        replication_delay: None,
    };
    let dns = "lab.example.test";
    let user = |sam: &str, cn: &str, display: &str, mail: Option<&str>| SeedUser {
        cn: Some(cn.to_string()),
        display_name: Some(display.to_string()),
        mail: mail.map(str::to_string),
        ..SeedUser::new(sam, password)
    };
    let alice_mail = format!("alice@{dns}");
    let bob_mail = format!("bob@{dns}");
    let carol_mail = format!("carol@{dns}");
    let exchange = |name: &str, roles: u32, version: &str| SeedExchangeServer {
        name: name.to_string(),
        fqdn: format!("{}.{dns}", name.to_lowercase()),
        roles,
        version: version.to_string(),
    };
    DirectoryConfig {
        dns_domain: dns.into(),
        netbios_domain: "LAB".into(),
        dcs: vec![dc(1), dc(2)],
        ldaps_port: if root { 636 } else { 0 },
        ldap_port: Some(if root { 389 } else { 0 }),
        allow_plain_bind: false,
        admin_password: new_password(),
        operator: Some(("revoke-op".into(), password.to_string())),
        users: vec![
            user("alice", "Alice Example", "Alice Example", Some(&alice_mail)),
            user("bob", "Bob Example", "Bob Example", Some(&bob_mail)),
            user("carol1", "carol1", "Carol Example", Some(&carol_mail)),
            user("carol2", "carol2", "Carol Example", Some(&carol_mail)),
            SeedUser {
                admin_count: true,
                ..user("admin-alice", "admin-alice", "Alice Example (admin)", None)
            },
            user("nested-admin", "nested-admin", "Nested Admin", None),
        ],
        exchange_org: "Lab Org".into(),
        exchange_servers: vec![
            exchange("EX01", 6, "Version 15.1 (Build 30225.42)"),
            exchange("EX02", 4, "Version 15.2 (Build 1118.7)"),
            exchange("EX03", 16385, "Version 15.0 (Build 1497.2)"),
            exchange("EDGE01", 64, "Version 15.1 (Build 2507.6)"),
        ],
        child: None,
    }
}
