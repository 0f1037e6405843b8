//! `revoke demo`: the whole story on an in-process lab — an AD with two
//! domain controllers, Exchange servers that cache logon tokens like IIS, a
//! BIG-IP APM, and a phone that keeps syncing. The account is disabled by
//! hand and the phone does not notice; then `revoke disable` runs (its real
//! progress and report) and the phone is refused. Nothing to set up.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::{DemoArgs, OutputFormat, RunArgs};
use crate::config::{
    DEFAULT_DRAIN_TIMEOUT_SECS, DEFAULT_PARALLEL, DEFAULT_RETRIES, DEFAULT_TIMEOUT_SECS,
};
use crate::run::{self, Ended};
use revoke_core::Password;
use revoke_core::directory::change::Change;
use revoke_core::directory::{DirectorySettings, Security};
use revoke_core::f5::{F5Device, F5Settings};
use revoke_core::plan::{FlushPlan, Method, PoolSelection, Target};
use revoke_core::revocation::RevocationPlan;
use revoke_core::secrets::Secrets;
use revoke_lab::directory::{DcConfig, Directory, DirectoryConfig, SeedUser};
use revoke_lab::{
    BigIpConfig, ENDPOINTS, FrontEndConfig, Lab, LabBigIp, LabConfig, VirtualServerConfig,
};
use revoke_winrm::{Auth, ClientSettings, Scheme};

/// The user whose access the demo revokes, and her phone's password.
const USER: &str = "alice";
const USER_PASSWORD: &str = "Alice-Phone-2026!";
/// How often the phone syncs.
const SYNC_EVERY: Duration = Duration::from_millis(700);

pub async fn run(args: DemoArgs) -> anyhow::Result<Ended> {
    let human = args.output == OutputFormat::Human;
    // A closed pipe (`revoke demo | head`) must not panic the demo.
    let say = |text: &str| {
        if human {
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "{text}");
        }
    };
    let work = tempfile_dir()?;

    // The directory: two writable DCs; DC2 replicates only every 30 s.
    let directory = Directory::start(DirectoryConfig {
        dcs: vec![
            DcConfig {
                address: [127, 0, 0, 1].into(),
                replication_delay: Some(Duration::from_secs(30)),
            },
            DcConfig {
                address: [127, 0, 0, 2].into(),
                replication_delay: Some(Duration::from_secs(30)),
            },
        ],
        users: vec![SeedUser {
            display_name: Some("Alice Example".into()),
            mail: Some("alice@lab.example.test".into()),
            ..SeedUser::new(USER, USER_PASSWORD)
        }],
        ..DirectoryConfig::default()
    })
    .await
    .context("starting the demo directory")?;
    let directory_ca = work.join("directory-ca.pem");
    std::fs::write(&directory_ca, directory.ca_pem())?;
    let (operator, operator_password) = directory
        .operator()
        .map(|(upn, pw)| (upn, pw.to_string()))
        .context("the demo directory has an operator")?;

    // The Exchange servers: WinRM for revoke, a client front end for the phone.
    let lab = Lab::start(LabConfig {
        servers: args.servers,
        latency: Duration::from_millis(10),
        recycle_time: Duration::from_millis(300),
        admin_user: "revoke-op".into(),
        admin_password: operator_password.clone(),
        front_end: Some(FrontEndConfig::new(
            (1..=directory.dc_count())
                .map(|dc| directory.ldaps_url(dc))
                .collect(),
            directory.ca_pem().to_string(),
        )),
        ..LabConfig::default()
    })
    .await
    .context("starting the demo lab")?;
    let lab_ca = work.join("lab-ca.pem");
    std::fs::write(&lab_ca, lab.ca_pem())?;
    // The BIG-IP: iControl REST for revoke, an APM virtual server in front
    // of the Exchange servers for the phone (it logs users on against AD).
    let bigip = lab
        .start_bigip(BigIpConfig {
            admin_user: "revoke-f5".into(),
            admin_password: operator_password.clone(),
            virtual_server: lab
                .config_front_end()
                .map(VirtualServerConfig::for_front_end),
            ..BigIpConfig::default()
        })
        .await?;

    say(&format!(
        "revoke demo: an AD with {} domain controllers ({}), {} Exchange servers and a BIG-IP APM, \
         all simulated on loopback.\n",
        directory.dc_count(),
        (1..=directory.dc_count())
            .map(|dc| directory.host(dc).to_string())
            .collect::<Vec<_>>()
            .join(", "),
        lab.servers().len()
    ));

    // 1. The phone logs on through the BIG-IP and syncs via every server.
    let phone = Phone::new(&bigip, &lab_ca)?;
    say(
        "1. Alice's phone syncs her mailbox over ActiveSync, through the BIG-IP: APM checks her \
         password with AD once and gives the phone a session cookie.",
    );
    for _ in 0..lab.servers().len() {
        phone.sync(&say, false).await;
    }
    say(&format!(
        "   ... through all {} servers: each IIS worker now caches her logon token (15 minutes, sliding), \
         and APM holds her session (up to 7 days while the phone keeps it active).\n",
        lab.servers().len()
    ));

    // 2. The helpdesk disables her by hand, as usual.
    let dn = format!("CN={USER},OU=Staff,{}", directory.base_dn());
    directory
        .set_user_account_control(1, &dn, 0x202)
        .map_err(|e| anyhow::anyhow!("disabling by hand: {e}"))?;
    let disabled_at = Instant::now();
    say("2. The helpdesk disables alice in Active Directory (on DC1), the usual way.");
    match directory.bind(1, &format!("{USER}@lab.example.test"), USER_PASSWORD) {
        Err(e) => say(&format!(
            "   DC1 now refuses her: {}",
            revoke_core::directory::describe_result(e.code, &e.message)
        )),
        Ok(()) => say("   (DC1 still accepts her?)"),
    }
    say("   Her phone does not notice:");
    let mut still_in = 0;
    for _ in 0..4 {
        if phone.sync(&say, true).await {
            still_in += 1;
        }
        tokio::time::sleep(SYNC_EVERY).await;
    }
    say(&format!(
        "   {still_in} of 4 syncs still succeed {:.0} s after the disable: IIS does not ask AD again \
         while the cached token is fresh, APM does not while her session lives, and a phone that \
         syncs every few minutes keeps both fresh.\n",
        disabled_at.elapsed().as_secs_f64()
    ));

    // 3. revoke.
    say(
        "3. The operator runs revoke. It finds alice disabled on DC1 — but DC2 has not heard of it \
         yet (it replicates every 30 s), every Exchange server still holds her token, and the \
         BIG-IP still has her APM session.\n\n   revoke disable alice --yes\n",
    );
    let plan = RevocationPlan {
        change: Change::Disable,
        users: vec![USER.into()],
        directory: DirectorySettings {
            host: directory.host(1).to_string(),
            port: directory.ldaps_port(),
            security: Security::Ldaps,
            ca_file: Some(directory_ca.clone()),
            bind_user: operator.clone(),
            domain_controllers: None,
            operation_timeout: Duration::from_secs(15),
            global_catalog: None,
            auth: Default::default(),
        },
        replication_timeout: Some(Duration::from_secs(60)),
        direct_write: Default::default(),
        allow_privileged: false,
        flush: flush_plan(&lab),
        f5: Some(F5Settings {
            devices: vec![F5Device {
                host: bigip.addr().ip().to_string(),
                port: bigip.addr().port(),
                label: bigip.addr().to_string(),
            }],
            user: "revoke-f5".into(),
            ca_file: Some(lab_ca.clone()),
            accept_invalid_certs: false,
            timeout: Duration::from_secs(30),
        }),
        ticket: None,
        reason: None,
        stamp: false,
        enable_guard: None,
    };
    let revoke_started = Instant::now();
    let secrets = Secrets::operator(Password::new(operator_password.clone()));
    let run_args = RunArgs {
        config: None,
        password_stdin: false,
        output: args.output,
        quiet: args.quiet,
        detail: false,
    };
    let ended = run::revocation(
        plan,
        secrets,
        true,
        &run_args,
        Default::default(),
        // The demo's run changes only its own in-process directory.
        Default::default(),
    )
    .await?;
    run::print_report(&ended, &run_args);

    // 4. The phone again.
    say("\n4. Alice's phone, again:");
    let mut refused = 0;
    for _ in 0..3 {
        if !phone.sync(&say, true).await {
            refused += 1;
        }
        tokio::time::sleep(SYNC_EVERY).await;
    }
    if let Ended::Ran(finished) = &ended
        && let Some(exposure) = &finished.report.exposure
        && let Some(ms) = exposure.window_ms
    {
        say(&format!(
            "\n{refused} of 3 syncs refused. Measured here: the helpdesk's disable left the phone \
             in for {:.1} s, until revoke ran; left alone it stays in for as long as it keeps \
             syncing (IIS: until 15 minutes after the last sync; APM: up to 7 days). revoke closed \
             the window {:.1} s after it started.",
            revoke_started.duration_since(disabled_at).as_secs_f64(),
            ms as f64 / 1000.0
        ));
    }
    say(
        "\nOn a real estate:  revoke disable alice --config /etc/revoke/revoke.toml --dry-run\n\
         (then without --dry-run; see README.md and docs/directory.md)",
    );
    lab.shutdown().await;
    drop(directory);
    let _ = std::fs::remove_dir_all(&work);
    Ok(ended)
}

/// The lab's servers over WinRM as the directory's operator.
fn flush_plan(lab: &Lab) -> FlushPlan {
    FlushPlan {
        targets: lab
            .servers()
            .iter()
            .map(|s| Target {
                host: s.http_addr.ip().to_string(),
                port: s.http_addr.port(),
                version: None,
                label: format!("{} ({})", s.name, s.http_addr),
            })
            .collect(),
        default_port: 5985,
        method: Method::Recycle,
        pools: PoolSelection::ExchangeDefaults,
        parallel: DEFAULT_PARALLEL,
        timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        max_unavailable: 1,
        retries: DEFAULT_RETRIES,
        drain_timeout: Duration::from_secs(DEFAULT_DRAIN_TIMEOUT_SECS),
        dry_run: false,
        connection: ClientSettings {
            scheme: Scheme::Http,
            // The lab's servers are addresses, not Kerberos names.
            auth: Auth::Ntlm,
            user: "LAB\\revoke-op".into(),
            ca_file: None,
            accept_invalid_certs: false,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(20),
            allow_ntlm: true,
            kerberos_realm: None,
        },
    }
}

/// A phone that reaches Exchange through the BIG-IP's APM virtual server:
/// its first sync logs on to APM (which asks AD) and gets a session cookie;
/// later syncs carry the cookie, and the BIG-IP spreads them round-robin
/// over the servers without asking AD again. When its APM session is killed
/// the cookie is worthless and APM asks AD again.
struct Phone<'a> {
    bigip: &'a LabBigIp,
    url: String,
    /// The `MRHSession` cookie APM gave the phone.
    session: std::sync::Mutex<Option<String>>,
    http: reqwest::Client,
}

impl<'a> Phone<'a> {
    fn new(bigip: &'a LabBigIp, ca: &Path) -> anyhow::Result<Self> {
        let tls =
            revoke_core::tls::client_config(Some(ca), false).map_err(|e| anyhow::anyhow!(e.0))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        let endpoint = ENDPOINTS
            .iter()
            .find(|e| e.name == "ActiveSync")
            .expect("ActiveSync");
        let url = bigip
            .virtual_server_url(endpoint)
            .context("the demo BIG-IP has a virtual server")?;
        Ok(Phone {
            bigip,
            url,
            session: std::sync::Mutex::new(None),
            http,
        })
    }

    fn cookie(&self) -> Option<String> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One sync; true if it got the mail.
    async fn sync(&self, say: &impl Fn(&str), show: bool) -> bool {
        let cookie = self.cookie();
        // APM's session id is the end of the cookie.
        let apm = match &cookie {
            Some(c) if self.bigip.has_session(&c[c.len().saturating_sub(8)..]) => {
                "APM session alive"
            }
            Some(_) => "APM session gone",
            None => "no APM session yet",
        };
        let mut request = self
            .http
            .post(format!("{}?Cmd=Sync&User={USER}&DeviceId=PHONE1", self.url))
            .basic_auth(format!("LAB\\{USER}"), Some(USER_PASSWORD));
        if let Some(cookie) = &cookie {
            request = request.header(reqwest::header::COOKIE, format!("MRHSession={cookie}"));
        }
        let (ok, via, what) = match request.send().await {
            Ok(r) => {
                let header = |name: &str| {
                    r.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                if let Some(new) = r
                    .headers()
                    .get_all(reqwest::header::SET_COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(|v| v.strip_prefix("MRHSession="))
                {
                    let value = new.split(';').next().unwrap_or_default().to_string();
                    *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
                }
                // X-FEServer: the Exchange server that answered; none when
                // the BIG-IP refused the phone itself.
                let via = header("x-feserver").unwrap_or_else(|| "the BIG-IP".into());
                if r.status().is_success() {
                    let cache = header("x-lab-token-cache").unwrap_or_else(|| "?".into());
                    (true, via, format!("{} (token cache {cache})", r.status()))
                } else {
                    (false, via, r.status().to_string())
                }
            }
            Err(e) => (false, "the BIG-IP".into(), format!("no answer: {e}")),
        };
        if show {
            say(&format!("   sync via {via}: {what}; {apm}"));
        }
        ok
    }
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("revoke-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
