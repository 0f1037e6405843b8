//! `revoke lab`: run a lab in the foreground until Ctrl-C.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::cli::LabArgs;
use crate::run::Ended;
use revoke_lab::{ENDPOINTS, FrontEndConfig, Lab, LabConfig, LabTransport};

pub async fn run(args: LabArgs) -> anyhow::Result<Ended> {
    let config = config_from(&args)?;
    let transport = args.transport;
    let password = config.admin_password.clone();
    let user = format!("{}\\{}", config.netbios_domain, config.admin_user);
    let lab = Lab::start(config).await.context("starting the lab")?;

    println!(
        "{:<6}  {:<22}  {:<22}  COMPUTER",
        "SERVER", "HTTP (negotiate)", "HTTPS (basic/negotiate)"
    );
    for server in lab.servers() {
        println!(
            "{:<6}  {:<22}  {:<22}  {}",
            server.name,
            server.http_addr.to_string(),
            server.https_addr.to_string(),
            server.iis.hostname()
        );
    }
    println!();
    println!("Accepts: user {user}  password {password}  (lab credentials, not a secret)");
    if let Some(fe) = lab.config_front_end() {
        print_front_end(&lab, fe);
    }
    if let Some(path) = &args.write_config {
        write_config(&lab, path, transport)?;
        println!("Wrote {} (and lab-ca.pem beside it). Try:", path.display());
        println!(
            "  REVOKE_PASSWORD='{password}' revoke flush --config {}",
            path.display()
        );
    }
    println!("Running until Ctrl-C.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    lab.shutdown().await;
    Ok(Ended::Done)
}

fn config_from(args: &LabArgs) -> anyhow::Result<LabConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read lab config {}", path.display()))?;
            LabConfig::from_toml(&text)
                .with_context(|| format!("lab config {} is not valid", path.display()))?
        }
        None => LabConfig::default(),
    };
    if let Some(n) = args.servers {
        config.servers = n;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(port) = args.base_port {
        config.base_port = port;
    }
    if let Some(user) = &args.admin_user {
        config.admin_user = user.clone();
    }
    if let Some(password) = &args.admin_password {
        config.admin_password = password.clone();
    }
    if let Some(ms) = args.latency_ms {
        config.latency = Duration::from_millis(ms);
    }
    if let Some(ms) = args.recycle_ms {
        config.recycle_time = Duration::from_millis(ms);
    }
    if let Some(ca) = &args.directory_ca {
        let pem = std::fs::read_to_string(ca)
            .with_context(|| format!("cannot read the directory CA {}", ca.display()))?;
        // Flags replace a [front_end] of the lab config, keeping its timings.
        let mut front_end = FrontEndConfig::new(args.directory.clone(), pem);
        if let Some(from_file) = &config.front_end {
            front_end.token_cache_ttl = from_file.token_cache_ttl;
            front_end.ping_heartbeat = from_file.ping_heartbeat;
        }
        config.front_end = Some(front_end);
    }
    config.validate()?;
    Ok(config)
}

fn print_front_end(lab: &Lab, fe: &FrontEndConfig) {
    println!();
    println!(
        "Client front end (HTTPS, lab CA; Basic logons checked against {}; \
         tokens cached {} s per worker, sliding):",
        fe.directory_urls.join(", "),
        fe.token_cache_ttl.as_secs()
    );
    for server in lab.servers() {
        if let Some(addr) = server.front_end_addr {
            println!(
                "  {:<6}  {}",
                server.name,
                revoke_lab::frontend::base_url(addr)
            );
        }
    }
    println!("  Endpoints on each:");
    for endpoint in &ENDPOINTS {
        println!(
            "    {:<10}  {:<30}  {}",
            endpoint.name, endpoint.path, endpoint.pool
        );
    }
    if let Some(first) = lab.servers().first()
        && let Some(url) = first.front_end_url(&ENDPOINTS[0])
    {
        println!("  Try: curl --cacert lab-ca.pem -u 'DOMAIN\\user:password' {url}");
    }
}

/// The config file plus the lab CA beside it, referenced by absolute path.
fn write_config(lab: &Lab, path: &Path, transport: LabTransport) -> anyhow::Result<()> {
    let path = std::path::absolute(path)?;
    let dir = path.parent().context("config path has no directory")?;
    std::fs::create_dir_all(dir)?;
    let ca = dir.join("lab-ca.pem");
    std::fs::write(&ca, lab.ca_pem()).with_context(|| format!("writing {}", ca.display()))?;
    std::fs::write(&path, lab.revoke_toml(transport, Some(&ca)))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn example_lab_config_parses() {
        let config =
            revoke_lab::LabConfig::from_toml(include_str!("../../../../examples/lab.toml"))
                .expect("examples/lab.toml");
        assert_eq!(config.servers, 6);
        assert_eq!(config.faults.len(), 3);
        config.validate().unwrap();
    }
}
