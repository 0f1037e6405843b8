//! `revoke demo`: an in-process lab of Exchange servers, flushed the way
//! `revoke flush` flushes a real estate — progress, report and all.

use std::time::Duration;

use anyhow::Context;

use crate::cli::{DemoArgs, OutputFormat};
use crate::config::{DEFAULT_PARALLEL, DEFAULT_RETRIES, DEFAULT_TIMEOUT_SECS};
use crate::lab::{Lab, LabConfig};
use crate::plan::{FlushPlan, Method, PoolSelection, Target};
use crate::run;
use crate::winrm::{Auth, ClientSettings, Password, Scheme};

pub async fn run(args: DemoArgs) -> anyhow::Result<u8> {
    let config = LabConfig {
        servers: args.servers,
        latency: Duration::from_millis(15),
        recycle_time: Duration::from_millis(400),
        ..LabConfig::default()
    };
    config.validate()?;
    let user = format!("{}\\{}", config.netbios_domain, config.admin_user);
    let password = config.admin_password.clone();
    let lab = Lab::start(config).await.context("starting the demo lab")?;
    let human = args.output == OutputFormat::Human;
    if human {
        println!(
            "Demo: {} simulated Exchange servers on loopback, each a real WinRM endpoint \
             (HTTP, NTLM, sealed messages). Flushing their token caches:\n",
            lab.servers().len()
        );
    }

    let plan = FlushPlan {
        default_port: 5985,
        drain_timeout: Duration::from_secs(crate::config::DEFAULT_DRAIN_TIMEOUT_SECS),
        targets: lab
            .servers()
            .iter()
            .map(|s| Target {
                host: s.http_addr.ip().to_string(),
                port: s.http_addr.port(),
                version: None,
                label: s.http_addr.to_string(),
            })
            .collect(),
        method: Method::Recycle,
        pools: PoolSelection::ExchangeDefaults,
        parallel: DEFAULT_PARALLEL,
        timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        max_unavailable: 1,
        retries: DEFAULT_RETRIES,
        dry_run: false,
        connection: ClientSettings {
            scheme: Scheme::Http,
            auth: Auth::Negotiate,
            user,
            password: Password::new(password),
            ca_file: None,
            accept_invalid_certs: false,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(20),
        },
    };
    let code = run::execute(plan, args.output, args.quiet).await?;
    if human {
        println!(
            "\nOn a real estate:  revoke flush --servers ex01.corp.example.com,ex02.corp.example.com \
             --user 'CORP\\svc-revoke' --dry-run\n(then without --dry-run; see README.md)"
        );
    }
    lab.shutdown().await;
    Ok(code)
}
