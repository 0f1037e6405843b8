//! The human report: one block per server, its pools beneath it, then the
//! summary and what is still open.

use std::fmt::Write;

use revoke_core::events::status_word as word;
use revoke_core::events::{ActionOutcome, ActionStatus};
use revoke_core::f5::F5Outcome;
use revoke_core::plan::Method;
use revoke_core::report::{DirectoryReport, Exposure, RunReport, ServerReport};

pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    if let Some(directory) = &report.directory {
        directory_block(&mut out, directory);
        f5_block(&mut out, &report.f5);
        if report.servers.is_empty() {
            // The flush did not run: "Still open" below says why.
            return finish(out, report);
        }
    }
    let host_width = column_width("SERVER", report.servers.iter().map(|s| s.host.as_str()));
    let labels: Vec<String> = report
        .servers
        .iter()
        .flat_map(|s| s.actions.iter().map(pool_label))
        .collect();
    let pool_width = column_width("POOL", labels.iter().map(String::as_str));
    let _ = writeln!(
        out,
        "{:host_width$}  {:11}  {:>8}  COMPUTER / ERROR",
        "SERVER", "STATUS", "TIME"
    );
    for server in &report.servers {
        server_block(&mut out, server, host_width, pool_width);
    }
    out.push('\n');
    out.push_str(&summary_line(report));
    out.push('\n');
    finish(out, report)
}

/// The exposure headline, the waves, warnings and what is still open.
fn finish(mut out: String, report: &RunReport) -> String {
    if let Some(exposure) = &report.exposure {
        out.push_str(&exposure_line(
            exposure,
            !report.open_items().is_empty(),
            !report.f5.is_empty(),
        ));
        out.push('\n');
    }
    if report.method == Method::Iisreset && report.waves.len() > 1 {
        let _ = writeln!(
            out,
            "iisreset waves: {}",
            report
                .waves
                .iter()
                .enumerate()
                .map(|(i, w)| format!("{}: {}", i + 1, w.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "Warning: {warning}");
    }
    let open = report.open_items();
    if !open.is_empty() {
        out.push_str("Still open:\n");
        for item in open {
            let _ = writeln!(out, "  {item}");
        }
    }
    out
}

fn directory_block(out: &mut String, directory: &DirectoryReport) {
    let user_width = column_width(
        "ACCOUNT",
        directory.users.iter().map(|u| u.sam_account_name.as_str()),
    );
    let _ = writeln!(
        out,
        "{:user_width$}  {:16}  USERACCOUNTCONTROL",
        "ACCOUNT", "STATUS"
    );
    for user in &directory.users {
        let uac = if user.user_account_control_before == user.user_account_control_after {
            format!(
                "{} ({})",
                user.user_account_control_after,
                user.flags_after.join(", ")
            )
        } else {
            format!(
                "{} -> {} ({})",
                user.user_account_control_before,
                user.user_account_control_after,
                user.flags_after.join(", ")
            )
        };
        let _ = writeln!(
            out,
            "{:user_width$}  {:16}  {uac}",
            user.sam_account_name,
            word(&user.status)
        );
        let _ = writeln!(out, "  {}", user.dn);
        if let Some(message) = &user.message {
            let _ = writeln!(out, "  {message}");
        }
    }
    if !directory.domain_controllers.is_empty() {
        let dc_width = column_width(
            "DOMAIN CONTROLLER",
            directory.domain_controllers.iter().map(|d| d.host.as_str()),
        );
        let _ = writeln!(
            out,
            "\n{:dc_width$}  {:14}  {:>8}  DETAIL",
            "DOMAIN CONTROLLER", "STATUS", "AFTER"
        );
        for dc in &directory.domain_controllers {
            let _ = writeln!(
                out,
                "{:dc_width$}  {:14}  {:>8}  {}",
                dc.host,
                word(&dc.status),
                format!("{:.1} s", dc.elapsed_ms as f64 / 1000.0),
                dc.message.as_deref().unwrap_or("")
            );
        }
    }
    out.push('\n');
}

/// The BIG-IPs: one line each, the account's sessions beneath it.
fn f5_block(out: &mut String, devices: &[F5Outcome]) {
    if devices.is_empty() {
        return;
    }
    let width = column_width("APM DEVICE", devices.iter().map(|d| d.device.as_str()));
    let user_width = devices
        .iter()
        .flat_map(|d| d.sessions.iter().map(|s| s.user.len()))
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "{:width$}  {:11}  {:>6}  {:>8}  DETAIL",
        "APM DEVICE", "STATUS", "KILLED", "TIME"
    );
    for device in devices {
        let _ = writeln!(
            out,
            "{:width$}  {:11}  {:>6}  {:>8}  {}",
            device.device,
            word(&device.status),
            device.killed,
            format!("{:.1} s", device.duration_ms as f64 / 1000.0),
            device.message.as_deref().unwrap_or("")
        );
        for session in &device.sessions {
            let _ = writeln!(
                out,
                "  {}  {:user_width$}  {:15}  {}{}",
                session.id,
                session.user,
                session.client_ip.as_deref().unwrap_or("-"),
                word(&session.status),
                session
                    .message
                    .as_deref()
                    .map(|m| format!("  {m}"))
                    .unwrap_or_default()
            );
        }
    }
    out.push('\n');
}

/// The widest of `values`, at least as wide as the column's header.
fn column_width<'a>(header: &str, values: impl IntoIterator<Item = &'a str>) -> usize {
    values
        .into_iter()
        .map(str::len)
        .chain([header.len()])
        .max()
        .unwrap_or(header.len())
}

fn exposure_line(exposure: &Exposure, open_items: bool, apm: bool) -> String {
    match (&exposure.closed_at, exposure.window_ms) {
        (Some(at), Some(ms)) if exposure.closed => format!(
            "Exposure window closed {:.1} s after the start ({}): every DC has the change{} \
             and no worker holding an older token is left.",
            ms as f64 / 1000.0,
            revoke_core::timestamp::rfc3339(*at),
            if apm {
                ", no APM session of the account is left"
            } else {
                ""
            }
        ),
        _ if open_items => "Exposure window NOT closed: see what is still open below.".to_string(),
        _ => "Exposure window not confirmed closed: domain controllers were not checked \
              (--no-wait-replication)."
            .to_string(),
    }
}

fn server_block(out: &mut String, server: &ServerReport, host_width: usize, pool_width: usize) {
    let detail = match (&server.error, &server.computer) {
        (Some(error), _) => error.clone(),
        (None, Some(computer)) => computer.clone(),
        (None, None) => String::new(),
    };
    let wave = server
        .wave
        .map(|w| format!(" (wave {w})"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{:host_width$}  {:11}  {:>8}  {detail}{wave}",
        server.host,
        server.status.to_string(),
        format!("{:.1} s", server.duration_ms as f64 / 1000.0),
    );
    for action in &server.actions {
        let _ = writeln!(
            out,
            "  {:pool_width$}  {:9}  {}",
            pool_label(action),
            action_word(action.status),
            action_detail(action)
        );
    }
}

fn pool_label(action: &ActionOutcome) -> String {
    if action.pool == "*" {
        "iisreset (all pools)".into()
    } else {
        action.pool.clone()
    }
}

/// A failed action stands out among the pools' lines.
fn action_word(status: ActionStatus) -> String {
    match status {
        ActionStatus::Failed => "FAILED".into(),
        other => word(&other),
    }
}

fn pids(list: &[u32]) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn action_detail(action: &ActionOutcome) -> String {
    let workers = match action.status {
        ActionStatus::Recycled | ActionStatus::Reset => {
            format!(
                "pid {} -> {}",
                pids(&action.old_pids),
                pids(&action.new_pids)
            )
        }
        ActionStatus::Planned | ActionStatus::Failed => format!("pid {}", pids(&action.old_pids)),
        ActionStatus::Absent | ActionStatus::Stopped => String::new(),
    };
    match (&action.message, workers.is_empty()) {
        (Some(m), true) => m.clone(),
        (Some(m), false) => format!("{workers}  {m}"),
        (None, _) => workers,
    }
}

fn summary_line(report: &RunReport) -> String {
    let s = &report.summary;
    let mut parts = Vec::new();
    for (n, word) in [
        (s.ok, "ok"),
        (s.planned, "planned"),
        (s.draining, "draining"),
        (s.partial, "partial"),
        (s.failed, "failed"),
        (s.timeout, "timeout"),
        (s.unreachable, "unreachable"),
        (s.interrupted, "interrupted"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    let mut pools = Vec::new();
    let done = if report.method == Method::Iisreset {
        "servers reset"
    } else {
        "pools recycled"
    };
    for (n, word) in [
        (s.pools_recycled, done),
        (s.pools_absent, "absent"),
        (s.pools_stopped, "stopped"),
        (s.pools_failed, "failed"),
    ] {
        if n > 0 {
            pools.push(format!("{n} {word}"));
        }
    }
    let what = if report.dry_run { "Dry run, " } else { "" };
    let pools = if pools.is_empty() {
        String::new()
    } else {
        format!("; {}", pools.join(", "))
    };
    format!(
        "{what}{} server{}: {}{pools}",
        s.servers,
        if s.servers == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use revoke_core::events::ServerStatus;
    use revoke_core::report::Summary;

    fn action(
        pool: &str,
        status: ActionStatus,
        old: &[u32],
        new: &[u32],
        msg: Option<&str>,
    ) -> ActionOutcome {
        ActionOutcome {
            pool: pool.into(),
            status,
            old_pids: old.to_vec(),
            new_pids: new.to_vec(),
            draining_pids: vec![],
            message: msg.map(String::from),
        }
    }

    /// A fixed scenario: one ok server, one partial, one unreachable.
    fn scenario() -> RunReport {
        let mut report = RunReport {
            schema_version: 1,
            run_id: "00000000-0000-4000-8000-000000000000".into(),
            action: "flush".into(),
            method: Method::Recycle,
            dry_run: false,
            started_at: humantime::parse_rfc3339("2026-11-23T10:00:00.000Z").unwrap(),
            finished_at: Some(humantime::parse_rfc3339("2026-11-23T10:00:02.345Z").unwrap()),
            waves: vec![],
            servers: vec![
                ServerReport {
                    host: "ex01.corp.example.com".into(),
                    computer: Some("EX01".into()),
                    wave: None,
                    status: ServerStatus::Ok,
                    duration_ms: 1834,
                    attempts: 1,
                    error: None,
                    old_workers_exited_at: None,
                    actions: vec![
                        action(
                            "MSExchangeSyncAppPool",
                            ActionStatus::Recycled,
                            &[4120],
                            &[7344],
                            None,
                        ),
                        action(
                            "MSExchangeOWAAppPool",
                            ActionStatus::Recycled,
                            &[4128],
                            &[7348],
                            None,
                        ),
                        action(
                            "MSExchangeMAPIFrontEndAppPool",
                            ActionStatus::Absent,
                            &[],
                            &[],
                            Some("no such application pool on this server"),
                        ),
                    ],
                },
                ServerReport {
                    host: "ex02.corp.example.com".into(),
                    computer: Some("EX02".into()),
                    wave: None,
                    status: ServerStatus::Partial,
                    duration_ms: 2210,
                    attempts: 1,
                    error: None,
                    old_workers_exited_at: None,
                    actions: vec![
                        action(
                            "MSExchangeSyncAppPool",
                            ActionStatus::Recycled,
                            &[5004],
                            &[8812],
                            None,
                        ),
                        action(
                            "MSExchangeMAPIFrontEndAppPool",
                            ActionStatus::Recycled,
                            &[5012],
                            &[8816],
                            None,
                        ),
                        action(
                            "MSExchangeOWAAppPool",
                            ActionStatus::Failed,
                            &[5008],
                            &[],
                            Some(
                                "Command execution failed. Access is denied. (hresult 80070005) (exit code 5)",
                            ),
                        ),
                    ],
                },
                ServerReport {
                    host: "ex03.corp.example.com".into(),
                    computer: None,
                    wave: None,
                    status: ServerStatus::Unreachable,
                    duration_ms: 3,
                    attempts: 1,
                    error: Some("connection refused (nothing listens on port 5985)".into()),
                    old_workers_exited_at: None,
                    actions: vec![],
                },
            ],
            summary: Summary::default(),
            warnings: Vec::new(),
            directory: None,
            flush_skipped: None,
            exposure: None,
            f5: Vec::new(),
        };
        report.summarize();
        report
    }

    #[test]
    fn table_for_a_mixed_run() {
        insta::assert_snapshot!(render(&scenario()));
    }

    /// The JSON document of the same run: a change to its schema is a
    /// reviewed diff (docs/report.md). Run id and moments are redacted.
    #[test]
    fn json_for_a_mixed_run() {
        let mut doc: serde_json::Value =
            serde_json::from_str(&revoke_core::report::render_json(&scenario())).unwrap();
        redact(&mut doc);
        insta::assert_snapshot!(serde_json::to_string_pretty(&doc).unwrap());
    }

    fn redact(value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    if key == "run_id" || (key.ends_with("_at") && !value.is_null()) {
                        *value = Value::String(format!("[{key}]"));
                    } else {
                        redact(value);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(redact),
            _ => {}
        }
    }

    #[test]
    fn a_pool_absent_everywhere_is_a_warning() {
        let mut report = scenario();
        assert!(report.warnings.is_empty());
        for server in &mut report.servers {
            server.actions.push(action(
                "MSExchangeOWAAppPol",
                ActionStatus::Absent,
                &[],
                &[],
                None,
            ));
        }
        report.summarize();
        assert_eq!(report.warnings.len(), 1);
        assert!(
            render(&report)
                .contains("Warning: application pool MSExchangeOWAAppPol exists on none")
        );
    }

    #[test]
    fn open_items_name_every_server_not_ok() {
        let open = scenario().open_items();
        assert_eq!(open.len(), 2);
        assert!(
            open[0]
                .starts_with("ex02.corp.example.com partial: not recycled: MSExchangeOWAAppPool")
        );
        assert!(open[1].contains("connection refused"));
    }
}
