//! `revoke lab`: run a lab in the foreground until Ctrl-C: Exchange servers
//! only, or with `--embedded-directory` the whole estate (an AD, the
//! servers' client front ends, a BIG-IP) and a complete revoke.toml, so the
//! real commands run against it as against a real estate (docs/lab.md).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::cli::LabArgs;
use crate::run::Ended;
use revoke_lab::directory::{DcConfig, Directory, DirectoryConfig, SeedUser};
use revoke_lab::{
    BigIpConfig, ENDPOINTS, EstateToml, FrontEndConfig, Lab, LabConfig, LabTransport,
    VirtualServerConfig,
};

pub async fn run(args: LabArgs) -> anyhow::Result<Ended> {
    if args.embedded_directory {
        return estate(args).await;
    }
    let config = config_from(&args)?;
    let kerberos = config.keytab.as_ref().map(|keytab| {
        format!(
            "Kerberos: tickets for HTTP/exNN.{} (keys from {}){}",
            config.dns_domain,
            keytab.display(),
            if config.allow_ntlm {
                ""
            } else {
                "; NTLM refused"
            }
        )
    });
    let transport = args.transport;
    let password = config.admin_password.clone();
    let user = format!("{}\\{}", config.netbios_domain, config.admin_user);
    let lab = Lab::start(config).await.context("starting the lab")?;

    print_servers(&lab);
    println!();
    println!("Accepts: user {user}  password {password}  (lab credentials, not a secret)");
    if let Some(kerberos) = kerberos {
        println!("{kerberos}");
    }
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

fn print_servers(lab: &Lab) {
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
}

/// The users an estate's AD is created with: (sAMAccountName, display
/// name, password). Lab passwords, printed for the operator to try.
const SAMPLE_USERS: [(&str, &str, &str); 3] = [
    ("alice", "Alice Example", "Alice-Lab-Passw0rd!"),
    ("bob", "Bob Example", "Bob-Lab-Passw0rd!"),
    ("carol", "Carol Example", "Carol-Lab-Passw0rd!"),
];
/// A protected account (adminCount=1): revoke refuses it unless
/// --allow-privileged.
const PROTECTED_USER: (&str, &str, &str) = ("admin-ann", "Ann Admin", "Ann-Lab-Passw0rd!");
/// The account revoke binds as (delegated rights on OU=Staff and
/// Replication Synchronization, like a real operator account) and logs on
/// to the servers as.
const OPERATOR: &str = "revoke-op";
/// The BIG-IP's iControl REST user.
const F5_USER: &str = "revoke-f5";
/// How long a change made on one DC takes to reach the other by itself
/// (Windows' intra-site notification is about 15 s).
const REPLICATION_DELAY: Duration = Duration::from_secs(15);
/// Where the estate's revoke.toml goes without --write-config.
const DEFAULT_ESTATE_CONFIG: &str = "lab/revoke.toml";

/// `revoke lab --embedded-directory`: the whole estate on loopback.
async fn estate(args: LabArgs) -> anyhow::Result<Ended> {
    let mut config = config_from(&args)?;
    let password = config.admin_password.clone();
    let dns_domain = config.dns_domain.clone();
    let seed = |(sam, display, password): (&str, &str, &str)| SeedUser {
        display_name: Some(display.to_string()),
        mail: Some(format!("{sam}@{dns_domain}")),
        ..SeedUser::new(sam, password)
    };
    let mut users: Vec<SeedUser> = SAMPLE_USERS.into_iter().map(seed).collect();
    users.push(SeedUser {
        admin_count: true,
        ..seed(PROTECTED_USER)
    });
    // Two writable DCs on loopback addresses, each DC's ports picked free
    // (one port number shared by both addresses, as a domain's DCs share 636).
    let directory = Directory::start(DirectoryConfig {
        dns_domain: dns_domain.clone(),
        netbios_domain: config.netbios_domain.clone(),
        dcs: (1..=2)
            .map(|n| DcConfig {
                address: Ipv4Addr::new(127, 0, 0, n),
                replication_delay: Some(REPLICATION_DELAY),
            })
            .collect(),
        ldaps_port: 0,
        ldap_port: Some(0),
        admin_password: password.clone(),
        operator: Some((OPERATOR.into(), password.clone())),
        users,
        ..DirectoryConfig::default()
    })
    .await
    .context("starting the embedded directory")?;
    // As Windows: forced replication served, and the operator holds the right.
    directory.set_forced_replication(true);
    directory.grant_replication_sync(&format!("CN={OPERATOR},CN=Users,{}", directory.base_dn()));
    let urls: Vec<String> = (1..=directory.dc_count())
        .map(|dc| directory.ldaps_url(dc))
        .collect();

    config.admin_user = OPERATOR.into();
    let mut front_end = FrontEndConfig::new(urls.clone(), directory.ca_pem().to_string());
    if let Some(from_file) = &config.front_end {
        front_end.token_cache_ttl = from_file.token_cache_ttl;
        front_end.ping_heartbeat = from_file.ping_heartbeat;
    }
    config.front_end = Some(front_end);
    config.validate()?;
    let netbios = config.netbios_domain.clone();
    let lab = Lab::start(config).await.context("starting the lab")?;
    let bigip = lab
        .start_bigip(BigIpConfig {
            admin_user: F5_USER.into(),
            admin_password: password.clone(),
            virtual_server: lab
                .config_front_end()
                .map(VirtualServerConfig::for_front_end),
            ..BigIpConfig::default()
        })
        .await
        .context("starting the lab BIG-IP")?;

    let shown = args
        .write_config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ESTATE_CONFIG));
    let path = std::path::absolute(&shown)?;
    let dir = path.parent().context("config path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let lab_ca = dir.join("lab-ca.pem");
    let directory_ca = dir.join("directory-ca.pem");
    std::fs::write(&lab_ca, lab.ca_pem())
        .with_context(|| format!("writing {}", lab_ca.display()))?;
    std::fs::write(&directory_ca, directory.ca_pem())
        .with_context(|| format!("writing {}", directory_ca.display()))?;
    let estate = EstateToml {
        directory_url: urls[0].clone(),
        directory_ca,
        bind_user: format!("{OPERATOR}@{dns_domain}"),
        replication_timeout: 60,
        f5_device: bigip.device(),
        f5_user: F5_USER.into(),
    };
    // Written whole, then renamed: whoever waits for the file reads it complete.
    let partial = path.with_extension("toml.partial");
    std::fs::write(&partial, lab.estate_toml(args.transport, &lab_ca, &estate))
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;

    println!(
        "revoke lab: an AD ({netbios}, {dns_domain}) with {} domain controllers, {} Exchange \
         servers with their client front ends, and a BIG-IP APM, all on loopback.\n",
        directory.dc_count(),
        lab.servers().len()
    );
    println!(
        "DOMAIN CONTROLLERS (a change reaches the other DC after {} s, or when revoke forces it)",
        REPLICATION_DELAY.as_secs()
    );
    for dc in 1..=directory.dc_count() {
        println!(
            "  DC{dc}  {:<28}  {} (StartTLS)",
            directory.ldaps_url(dc),
            directory.ldap_url(dc).unwrap_or_default()
        );
    }
    println!();
    print_servers(&lab);
    println!();
    println!("BIG-IP  {} (iControl REST)", bigip.device());
    // What a phone syncs with: ActiveSync.
    let activesync = ENDPOINTS
        .iter()
        .find(|e| e.name == "ActiveSync")
        .unwrap_or(&ENDPOINTS[0]);
    let phone_url = bigip.virtual_server_url(activesync);
    if let Some(url) = &phone_url {
        println!("        {url} (APM virtual server in front of every front end)");
    }
    println!();
    println!("USERS to try (lab passwords, not secrets):");
    for (sam, display, user_password) in SAMPLE_USERS.into_iter().chain([PROTECTED_USER]) {
        let note = if sam == PROTECTED_USER.0 {
            "  adminCount=1: revoke refuses it unless --allow-privileged"
        } else {
            ""
        };
        println!("  {sam:<10}  {user_password:<22}  {display}{note}");
    }
    println!(
        "revoke's accounts, password {password}: {OPERATOR}@{dns_domain} (LDAP bind), \
         {netbios}\\{OPERATOR} (WinRM), {F5_USER} (BIG-IP)"
    );
    println!();
    let config_arg = shown.display();
    println!("Wrote {config_arg} (lab-ca.pem and directory-ca.pem beside it). Try:");
    println!("  export REVOKE_PASSWORD='{password}'");
    println!("  revoke doctor --config {config_arg}");
    if let Some(url) = &phone_url {
        let (sam, _, user_password) = SAMPLE_USERS[0];
        println!(
            "  curl --cacert {} -u '{netbios}\\{sam}:{user_password}' {url}    # alice's phone",
            lab_ca.display()
        );
    }
    println!("  revoke disable alice --config {config_arg}");
    println!("  revoke reset bob --config {config_arg}");
    println!("Running until Ctrl-C.");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    lab.shutdown().await;
    drop(bigip);
    directory.stop();
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
    if let Some(keytab) = &args.keytab {
        config.keytab = Some(keytab.clone());
    }
    if let Some(suffix) = &args.host_suffix {
        config.dns_domain = suffix.trim_start_matches('.').to_lowercase();
        config.named_servers = true;
    }
    if args.refuse_ntlm {
        config.allow_ntlm = false;
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
