//! `revoke servers`: the Exchange servers found in AD, as a table or JSON:
//! each with its version, roles and AD site.

use std::fmt::Write;

use serde::Serialize;

use revoke_core::directory::discovery::ExchangeServer;

#[derive(Serialize)]
struct ServerLine<'a> {
    host: &'a str,
    port: u16,
    /// The server object's name (CN).
    name: &'a str,
    /// major.minor, from AD's serialNumber (else versionNumber); null if unknown.
    version: Option<String>,
    /// "Exchange 2016"; null if the version is unknown or not one revoke knows.
    product: Option<&'static str>,
    /// "30225.42", as AD's serialNumber writes it; null if absent.
    build: Option<&'a str>,
    /// serialNumber and versionNumber as AD has them.
    serial_number: Option<&'a str>,
    version_number: Option<u32>,
    /// ["mailbox", "client-access"].
    roles: &'a [&'static str],
    /// msExchCurrentServerRoles.
    roles_mask: u32,
    /// The CN of msExchServerSite; null if AD has no site for it.
    site: Option<&'a str>,
    site_dn: Option<&'a str>,
}

pub fn render_json(servers: &[ExchangeServer], port: u16) -> String {
    let lines: Vec<ServerLine> = servers
        .iter()
        .map(|s| ServerLine {
            host: &s.fqdn,
            port,
            name: &s.name,
            version: s.version.map(|v| v.to_string()),
            product: s.product(),
            build: s.build.as_deref(),
            serial_number: s.version_text.as_deref(),
            version_number: s.version_number,
            roles: &s.roles,
            roles_mask: s.roles_mask,
            site: s.site.as_deref(),
            site_dn: s.site_dn.as_deref(),
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "servers": lines })).expect("serializable")
}

pub fn render_table(servers: &[ExchangeServer], port: u16) -> String {
    if servers.is_empty() {
        return "No Exchange servers found in AD (Edge Transport servers are left out).\n".into();
    }
    let rows: Vec<[String; 5]> = servers
        .iter()
        .map(|s| {
            [
                s.fqdn.clone(),
                port.to_string(),
                s.version_words(),
                s.role_words(),
                s.site.clone().unwrap_or_else(|| "site unknown".into()),
            ]
        })
        .collect();
    let header = ["SERVER", "PORT", "VERSION", "ROLES", "SITE"];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 5]| {
        let text = format!(
            "{:w0$}  {:>w1$}  {:w2$}  {:w3$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
        text.trim_end().to_string()
    };
    let mut out = line(header) + "\n";
    for r in &rows {
        let _ = writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    let _ = writeln!(out, "\n{} server(s)", servers.len());
    if servers.iter().any(|s| s.site.is_none()) {
        // Said, not guessed: without msExchServerSite revoke cannot tell.
        out.push_str(
            "site unknown: the server object has no msExchServerSite (AD's Exchange schema \
             sets it on every server; the Samba test domain's stand-in schema does not have it).\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use revoke_core::iis::ExchangeVersion;

    fn server(
        name: &str,
        roles: (&[&'static str], u32),
        version: Option<(u32, u32, &str)>,
        site: Option<&str>,
    ) -> ExchangeServer {
        ExchangeServer {
            name: name.to_uppercase(),
            fqdn: format!("{name}.corp.example.com"),
            version_text: version.map(|(a, b, build)| format!("Version {a}.{b} (Build {build})")),
            version: version.map(|(major, minor, _)| ExchangeVersion { major, minor }),
            build: version.map(|(_, _, b)| b.to_string()),
            version_number: None,
            roles: roles.0.to_vec(),
            roles_mask: roles.1,
            site: site.map(String::from),
            site_dn: site
                .map(|s| format!("CN={s},CN=Sites,CN=Configuration,DC=corp,DC=example,DC=com")),
        }
    }

    fn estate() -> Vec<ExchangeServer> {
        vec![
            server(
                "ex01",
                (&["mailbox", "client-access"], 6),
                Some((15, 1, "30225.42")),
                Some("Paris"),
            ),
            server(
                "ex02",
                (&["client-access"], 4),
                Some((15, 2, "1118.7")),
                Some("London"),
            ),
            server(
                "ex03",
                (&["client-access"], 16385),
                Some((15, 0, "1497.2")),
                None,
            ),
            server("ex04", (&[], 0), None, Some("Paris")),
        ]
    }

    #[test]
    fn table_for_revoke_servers() {
        insta::assert_snapshot!(render_table(&estate(), 5985));
    }

    #[test]
    fn json_for_revoke_servers() {
        let doc: serde_json::Value = serde_json::from_str(&render_json(&estate(), 5985)).unwrap();
        let ex01 = &doc["servers"][0];
        assert_eq!(ex01["host"], "ex01.corp.example.com");
        assert_eq!(ex01["version"], "15.1");
        assert_eq!(ex01["product"], "Exchange 2016");
        assert_eq!(ex01["build"], "30225.42");
        assert_eq!(
            ex01["roles"],
            serde_json::json!(["mailbox", "client-access"])
        );
        assert_eq!(ex01["site"], "Paris");
        assert!(doc["servers"][2]["site"].is_null());
        assert!(doc["servers"][3]["version"].is_null());
    }
}
