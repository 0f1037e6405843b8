//! `revoke doctor`: reads the config and the passwords as a run would, then
//! runs the core's checks (revoke_core::doctor) on the directory, the
//! Exchange servers and the BIG-IPs at once, changing nothing, and prints one
//! row per check with its fix. Exit 0 when every check is ok, else 2.

use crate::cli::{DoctorArgs, FlushOptions, OutputFormat};
use crate::config::{self, Loaded};
use crate::credentials::{self, Accounts, CredentialError, Environment};
use crate::run::Ended;
use revoke_core::doctor::{self, Check, CheckResult};
use revoke_core::revocation;
use revoke_core::secrets::Secrets;

pub async fn run(args: DoctorArgs, environment: &Environment) -> anyhow::Result<Ended> {
    let results = check(&args, environment).await;
    let text = match args.output {
        OutputFormat::Human => crate::report::doctor::render_table(&results),
        OutputFormat::Json => crate::report::doctor::render_json(&results),
    };
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    Ok(match doctor::all_ok(&results) {
        true => Ended::Done,
        false => Ended::Problems,
    })
}

async fn check(args: &DoctorArgs, environment: &Environment) -> Vec<CheckResult> {
    let mut rows = Vec::new();

    // The config: a file that cannot be read or parsed ends the checks.
    let path = config::locate(args.config.as_deref())
        .map(|(p, _)| p.display().to_string())
        .unwrap_or_else(|| "revoke.toml".into());
    let loaded = match Loaded::load(args.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(error) => {
            rows.push(CheckResult::problem(
                Check::Config,
                &path,
                error.to_string(),
                "fix the file (every key: docs/configuration.md)",
            ));
            return rows;
        }
    };
    rows.push(match &loaded.looked_for {
        Some(_) => CheckResult::problem(
            Check::Config,
            &path,
            "no config file there",
            "give --config FILE or set REVOKE_CONFIG (`revoke lab --embedded-directory` writes \
             one for a lab to try)",
        ),
        None => CheckResult::ok(Check::Config, &path, "read and parsed"),
    });
    let directory = setting(&mut rows, "[directory]", || {
        config::directory_settings(&args.directory, &loaded)
    })
    .flatten();
    let flush = setting(&mut rows, "servers and [winrm]", || {
        config::flush_plan(
            &FlushOptions::default(),
            &args.winrm,
            &loaded,
            directory.is_some(),
        )
    });
    let f5 = setting(&mut rows, "[f5]", || config::f5_settings(&loaded)).flatten();
    if directory.is_none() && !rows.iter().any(|r| r.target == "[directory]") {
        rows.push(CheckResult::skipped(
            Check::DcReachable,
            "[directory]",
            "no [directory]: disable and reset need it; flush of listed servers does not",
        ));
    }
    if f5.is_none() && !rows.iter().any(|r| r.target == "[f5]") {
        rows.push(CheckResult::skipped(
            Check::F5Login,
            "[f5]",
            "no [f5]: no BIG-IP sessions to kill",
        ));
    }

    // The passwords, as a run gathers them; never shown.
    let accounts = Accounts {
        directory: directory.as_ref().map(|d| d.bind_user.as_str()),
        winrm: flush.as_ref().map(|f| f.connection.user.as_str()),
        f5: f5.as_ref().map(|f| f.user.as_str()),
    };
    let secrets = match credentials::gather(&accounts, environment, args.password_stdin, None) {
        Ok(secrets) => secrets,
        Err(error) => {
            rows.extend(missing_secrets(error));
            rows.push(CheckResult::skipped(
                Check::Secrets,
                "directory, servers, BIG-IPs",
                "not contacted: a password is missing (see above)",
            ));
            return rows;
        }
    };
    let roles = [
        ("LDAP bind", accounts.directory),
        ("WinRM", accounts.winrm),
        ("BIG-IP", accounts.f5),
    ];
    for (role, account) in roles {
        if let Some(account) = account {
            rows.push(CheckResult::ok(
                Check::Secrets,
                format!("{account} ({role})"),
                "a password is given (not shown)",
            ));
        }
    }

    let f5_checks = async {
        match &f5 {
            Some(settings) => doctor::f5(settings, secrets.f5.clone()).await,
            None => Vec::new(),
        }
    };
    let (directory_rows, f5_rows) = tokio::join!(
        directory_and_servers(directory.as_ref(), flush, &secrets),
        f5_checks
    );
    rows.extend(directory_rows);
    rows.extend(f5_rows);
    rows
}

/// A setting that does not build is a config problem (and its part is not
/// checked further).
fn setting<T>(
    rows: &mut Vec<CheckResult>,
    target: &str,
    build: impl FnOnce() -> Result<T, config::ConfigError>,
) -> Option<T> {
    match build() {
        Ok(value) => Some(value),
        Err(error) => {
            rows.push(CheckResult::problem(
                Check::Config,
                target,
                error.to_string(),
                "fix the setting (docs/configuration.md)",
            ));
            None
        }
    }
}

fn missing_secrets(error: CredentialError) -> Vec<CheckResult> {
    match error {
        CredentialError::Missing(missing) => missing
            .into_iter()
            .map(|m| {
                CheckResult::problem(
                    Check::Secrets,
                    m.account,
                    "no password given",
                    format!(
                        "set {} (or REVOKE_PASSWORD), pipe it with --password-stdin, or run on a \
                         terminal to be asked",
                        m.variables.join(" or ")
                    ),
                )
            })
            .collect(),
        other => vec![CheckResult::problem(
            Check::Secrets,
            "passwords",
            other.to_string(),
            "give each account's password as docs/configuration.md describes",
        )],
    }
}

/// The directory first (the servers may come from it), then the servers.
async fn directory_and_servers(
    directory: Option<&revoke_core::directory::DirectorySettings>,
    flush: Option<revoke_core::plan::FlushPlan>,
    secrets: &Secrets,
) -> Vec<CheckResult> {
    let mut rows = Vec::new();
    let mut connection = None;
    if let Some(settings) = directory {
        let found = doctor::directory(settings, &secrets.operator).await;
        rows.extend(found.results);
        connection = found.connection;
    }
    let Some(mut plan) = flush else {
        return rows;
    };
    if plan.targets.is_empty() {
        // None listed: found in AD, as a run would.
        let Some(conn) = connection.as_mut() else {
            rows.push(CheckResult::skipped(
                Check::Discovery,
                "Exchange servers",
                "not looked for: the directory could not be read (see above)",
            ));
            return rows;
        };
        match revocation::discover_targets(conn, plan.default_port).await {
            Ok(targets) if targets.is_empty() => {
                rows.push(CheckResult::problem(
                    Check::Discovery,
                    "Exchange servers",
                    "none found in AD (Edge Transport servers are left out)",
                    "list the servers in revoke.toml (servers = [\"ex01.corp.example.com\"])",
                ));
                return rows;
            }
            Ok(targets) => {
                rows.push(CheckResult::ok(
                    Check::Discovery,
                    "Exchange servers",
                    format!(
                        "{} found in AD: {}",
                        targets.len(),
                        targets
                            .iter()
                            .map(|t| t.label.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                plan.targets = targets;
            }
            Err(error) => {
                rows.push(CheckResult::problem(
                    Check::Discovery,
                    "Exchange servers",
                    error.to_string(),
                    "let the operator read the configuration partition, or list the servers in \
                     revoke.toml",
                ));
                return rows;
            }
        }
    }
    if let Some(conn) = connection {
        conn.close().await;
    }
    rows.extend(doctor::servers(&plan, secrets.winrm.clone()).await);
    rows
}
