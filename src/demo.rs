//! `revoke demo`: the whole story on an in-process lab — an AD with two
//! domain controllers, Exchange servers that cache logon tokens like IIS, a
//! BIG-IP APM, and a phone that keeps syncing. The account is disabled by
//! hand and the phone does not notice; then `revoke disable` runs (its real
//! progress and report) and the phone is refused. Nothing to set up.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::{DemoArgs, OutputFormat};
use crate::config::{
    DEFAULT_DRAIN_TIMEOUT_SECS, DEFAULT_PARALLEL, DEFAULT_RETRIES, DEFAULT_TIMEOUT_SECS,
};
use crate::credentials::Password;
use crate::directory::change::Change;
use crate::directory::{DirectorySettings, Security};
use crate::f5::{F5Device, F5Settings};
use crate::lab::directory::{DcConfig, Directory, DirectoryConfig, SeedUser};
use crate::lab::{BigIpConfig, ENDPOINTS, FrontEndConfig, Lab, LabBigIp, LabConfig};
use crate::plan::{FlushPlan, Method, PoolSelection, Target};
use crate::revocation::RevocationPlan;
use crate::run::{self, Ended};
use crate::winrm::{Auth, ClientSettings, Scheme};

/// The user whose access the demo revokes, and her phone's password.
const USER: &str = "alice";
const USER_PASSWORD: &str = "Alice-Phone-2026!";
/// How often the phone syncs.
const SYNC_EVERY: Duration = Duration::from_millis(700);

pub async fn run(args: DemoArgs) -> anyhow::Result<u8> {
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
    let bigip = lab
        .start_bigip(BigIpConfig {
            admin_user: "revoke-f5".into(),
            admin_password: operator_password.clone(),
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
    let phone = Phone::new(&lab, &bigip, &lab_ca)?;
    say("1. Alice's phone syncs her mailbox over ActiveSync:");
    for _ in 0..lab.servers().len() {
        phone.sync(&say, false).await;
    }
    say(&format!(
        "   ... through all {} servers: each IIS worker now caches her logon token (15 minutes, sliding).\n",
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
        Err(e) => say(&format!("   DC1 now refuses her: {e}")),
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
         while the cached token is fresh, and a phone that syncs every few minutes keeps it fresh.\n",
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
            password: Password::new(operator_password.clone()),
            domain_controllers: None,
            operation_timeout: Duration::from_secs(15),
        },
        replication_timeout: Some(Duration::from_secs(60)),
        allow_privileged: false,
        flush: flush_plan(&lab, &operator_password),
        f5: Some(F5Settings {
            devices: vec![F5Device {
                host: bigip.addr().ip().to_string(),
                port: bigip.addr().port(),
                label: bigip.addr().to_string(),
            }],
            user: "revoke-f5".into(),
            password: Password::new(operator_password.clone()),
            ca_file: Some(lab_ca.clone()),
            accept_invalid_certs: false,
            timeout: Duration::from_secs(30),
        }),
    };
    let revoke_started = Instant::now();
    let ended = run::revocation(plan, true, args.output, args.quiet).await?;
    let code = match &ended {
        Ended::NotStarted(code) => *code,
        Ended::Ran(finished) => finished.exit_code(),
    };

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
    Ok(code)
}

/// The lab's servers over WinRM as the directory's operator.
fn flush_plan(lab: &Lab, password: &str) -> FlushPlan {
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
            auth: Auth::Negotiate,
            user: "LAB\\revoke-op".into(),
            password: Password::new(password.to_string()),
            ca_file: None,
            accept_invalid_certs: false,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(20),
        },
    }
}

/// A phone that reached Exchange through the BIG-IP: it has an APM session
/// and syncs ActiveSync round-robin over the servers (as a load balancer
/// spreads it). When its APM session is killed it must log on to APM again,
/// which asks AD.
struct Phone<'a> {
    lab: &'a Lab,
    bigip: &'a LabBigIp,
    session: String,
    http: reqwest::Client,
    next: std::sync::atomic::AtomicUsize,
}

impl<'a> Phone<'a> {
    fn new(lab: &'a Lab, bigip: &'a LabBigIp, ca: &Path) -> anyhow::Result<Self> {
        let tls = crate::tls::client_config(Some(ca), false).map_err(|e| anyhow::anyhow!(e.0))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Phone {
            lab,
            bigip,
            session: bigip.add_session(USER, "198.51.100.23"),
            http,
            next: 0.into(),
        })
    }

    /// One sync; true if it got the mail.
    async fn sync(&self, say: &impl Fn(&str), show: bool) -> bool {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let server = &self.lab.servers()[i % self.lab.servers().len()];
        let endpoint = ENDPOINTS
            .iter()
            .find(|e| e.name == "ActiveSync")
            .expect("ActiveSync");
        let url = server
            .front_end_url(endpoint)
            .expect("the demo lab has a front end");
        let apm = if self.bigip.has_session(&self.session) {
            "APM session alive"
        } else {
            "APM session gone"
        };
        let answer = self
            .http
            .post(format!("{url}?Cmd=Sync&User={USER}&DeviceId=PHONE1"))
            .basic_auth(format!("LAB\\{USER}"), Some(USER_PASSWORD))
            .send()
            .await;
        let (ok, what) = match answer {
            Ok(r) if r.status().is_success() => {
                let cache = r
                    .headers()
                    .get("x-lab-token-cache")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?")
                    .to_string();
                (true, format!("{} (token cache {cache})", r.status()))
            }
            Ok(r) => (false, r.status().to_string()),
            Err(e) => (false, format!("no answer: {e}")),
        };
        // Without an APM session the BIG-IP sends the phone to log on again,
        // and that logon asks AD: the phone is out either way.
        let ok = ok && apm == "APM session alive";
        if show {
            say(&format!("   sync via {}: {what}; {apm}", server.name));
        }
        ok
    }
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("revoke-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
