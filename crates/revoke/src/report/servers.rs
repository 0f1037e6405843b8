//! `revoke servers`: the Exchange servers found in AD, as a table or JSON.

use std::fmt::Write;

use serde::Serialize;

use revoke_core::plan::Target;

#[derive(Serialize)]
struct ServerLine<'a> {
    host: &'a str,
    port: u16,
    /// major.minor, from AD's serialNumber; null if unknown.
    version: Option<String>,
}

pub fn render_json(targets: &[Target]) -> String {
    let servers: Vec<ServerLine> = targets
        .iter()
        .map(|t| ServerLine {
            host: &t.host,
            port: t.port,
            version: t.version.map(|v| v.to_string()),
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "servers": servers })).expect("serializable")
}

pub fn render_table(targets: &[Target]) -> String {
    if targets.is_empty() {
        return "No Exchange servers with the Mailbox or Client Access role found in AD.\n".into();
    }
    let width = targets
        .iter()
        .map(|t| t.host.len())
        .chain([6])
        .max()
        .unwrap_or(6);
    let mut out = format!("{:width$}  {:>5}  VERSION\n", "SERVER", "PORT");
    for t in targets {
        let version = t
            .version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".into());
        let _ = writeln!(out, "{:width$}  {:>5}  {version}", t.host, t.port);
    }
    let _ = writeln!(out, "\n{} server(s)", targets.len());
    out
}
