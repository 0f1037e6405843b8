//! The human report, verdict first: one summary line; for `disable` /
//! `reset` the accounts, the domain controllers and the BIG-IPs; one line
//! per server, with its pools beneath it only when it did not end ok (every
//! server's with `--detail`); then warnings, what is still open and, last,
//! the exposure line. A dry run ends with what a real run would do instead.

use std::fmt::Write;

use revoke_core::events::status_word as word;
use revoke_core::events::{ActionOutcome, ActionStatus, DcStatus, ServerStatus, UserStatus};
use revoke_core::f5::{F5Outcome, F5Status};
use revoke_core::plan::Method;
use revoke_core::report::{DirectoryReport, Exposure, RunReport, ServerReport};
use revoke_core::residual::{KerberosPolicy, PolicySource, Residual, ResidualKind};

/// The report as text. `detail`: every pool of every server, not only of
/// the servers that did not end ok.
pub fn render(report: &RunReport, detail: bool) -> String {
    let mut out = summary_line(report);
    if let Some(labels) = labels_line(report) {
        out.push('\n');
        out.push_str(&labels);
    }
    out.push_str("\n\n");
    if let Some(directory) = &report.directory {
        directory_block(&mut out, directory);
        f5_block(&mut out, &report.f5);
    }
    if !report.servers.is_empty() {
        servers_block(&mut out, report, detail);
    }
    finish(&mut out, report);
    out
}

/// `Ticket: INC123 — reason`: under the verdict, so whoever reads the
/// report sees first what the change was for; None without either.
fn labels_line(report: &RunReport) -> Option<String> {
    match (&report.ticket, &report.reason) {
        (Some(ticket), Some(reason)) => Some(format!("Ticket: {ticket} — {reason}")),
        (Some(ticket), None) => Some(format!("Ticket: {ticket}")),
        (None, Some(reason)) => Some(format!("Reason: {reason}")),
        (None, None) => None,
    }
}

/// The waves, warnings, what is still open and the exposure line; in a dry
/// run, what it found and what a real run would do.
fn finish(out: &mut String, report: &RunReport) {
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
    if report.dry_run {
        // A dry run opens and closes nothing: nothing is "still open".
        dry_run_end(out, report);
        return;
    }
    let open = report.open_items();
    if !open.is_empty() {
        out.push_str("Still open:\n");
        for item in &open {
            let _ = writeln!(out, "  {item}");
        }
    }
    residual_block(out, report);
    if let Some(exposure) = &report.exposure {
        out.push_str(&exposure_line(report, exposure, !open.is_empty()));
        out.push('\n');
    }
}

// ------------------------------------------------------------ residual

/// What no flush closes, with until when (docs/directory.md, "What a flush
/// cannot close"), and which Kerberos policy dated it.
fn residual_block(out: &mut String, report: &RunReport) {
    if report.residual.is_empty() {
        return;
    }
    let policy = report
        .kerberos_policy
        .as_ref()
        .map(|p| format!(" ({})", policy_words(p)))
        .unwrap_or_default();
    let _ = writeln!(out, "Not closed by revoke{policy}:");
    for item in &report.residual {
        let until = match item.until {
            Some(at) => format!("until {}", moment_up(at, report.started_at)),
            None => "no end by itself".to_string(),
        };
        let _ = writeln!(
            out,
            "  {} of {} ({until}): {}",
            item.kind,
            join_and(&item.accounts),
            item.why
        );
    }
}

/// `Windows' default Kerberos policy (600 min service tickets, ...): LDAP
/// cannot read the domain's; set [kerberos_policy] if yours differs`.
fn policy_words(policy: &KerberosPolicy) -> String {
    match policy.source {
        PolicySource::Defaults => format!(
            "times from Windows' default Kerberos policy, {}: revoke cannot read the domain's \
             over LDAP; set [kerberos_policy] if yours differs",
            policy.describe()
        ),
        PolicySource::Config => format!(
            "times from the Kerberos policy in [kerberos_policy], {}",
            policy.describe()
        ),
    }
}

/// [`moment`] rounded up to the second: an "until" or an "issued before"
/// is never said earlier than it is.
fn moment_up(at: std::time::SystemTime, reference: std::time::SystemTime) -> String {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let whole = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    moment(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(whole),
        reference,
    )
}

/// `Kerberos tickets issued before 10:00:00 UTC may be used until 20:00:00
/// UTC.`: the ticket doors of `residual`, in one sentence; None without any.
fn kerberos_sentence(report: &RunReport) -> Option<String> {
    let tickets: Vec<&Residual> = report
        .residual
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                ResidualKind::KerberosTgt | ResidualKind::KerberosServiceTicket
            )
        })
        .collect();
    let tgt = tickets
        .iter()
        .find(|r| r.kind == ResidualKind::KerberosTgt)?;
    let until = tickets.iter().filter_map(|r| r.until).max();
    let new_tickets = match (report.action.as_str(), tgt.until) {
        ("disable", Some(at)) => format!(
            " (and service tickets obtained with them until {})",
            moment_up(at, report.started_at)
        ),
        _ => String::new(),
    };
    Some(match (tgt.issued_before, until) {
        (Some(before), Some(until)) => format!(
            "Kerberos tickets issued before {}{new_tickets} may be used until {}.",
            moment_up(before, report.started_at),
            moment_up(until, report.started_at)
        ),
        _ => "Kerberos tickets issued before every domain controller had the change may be \
              used for their whole lifetime after it: revoke did not see every DC with it."
            .to_string(),
    })
}

/// `10:00:02 UTC` on the run's day, `2026-11-30 10:00:00 UTC` on another.
fn moment(at: std::time::SystemTime, reference: std::time::SystemTime) -> String {
    let text = revoke_core::timestamp::rfc3339(at);
    let day = revoke_core::timestamp::rfc3339(reference);
    let (date, time) = (&text[..10], &text[11..19]);
    if date == &day[..10] {
        format!("{time} UTC")
    } else {
        format!("{date} {time} UTC")
    }
}

// ------------------------------------------------------------ the verdict

/// The first line: how every part of the run ended, in counts.
fn summary_line(report: &RunReport) -> String {
    let mut parts = Vec::new();
    if let Some(directory) = &report.directory {
        if !directory.users.is_empty() {
            parts.push(accounts_summary(report, directory));
        }
        if !directory.domain_controllers.is_empty() {
            parts.push(dcs_summary(directory));
        }
    }
    if !report.f5.is_empty() {
        parts.push(f5_summary(&report.f5));
    }
    if report.servers.is_empty() {
        parts.push("flush not run".to_string());
    } else {
        parts.push(servers_summary(report));
    }
    let dry = if report.dry_run {
        "Dry run (nothing changed): "
    } else {
        ""
    };
    format!("{dry}{}", parts.join("; "))
}

/// `alice disabled, bob NOT changed`.
fn accounts_summary(report: &RunReport, directory: &DirectoryReport) -> String {
    directory
        .users
        .iter()
        .map(|user| {
            let name = &user.sam_account_name;
            match user.status {
                UserStatus::Disabled => format!("{name} disabled"),
                UserStatus::AlreadyDisabled => format!("{name} already disabled"),
                UserStatus::Reset => format!("password of {name} reset"),
                UserStatus::Enabled => format!("{name} enabled"),
                UserStatus::AlreadyEnabled => format!("{name} already enabled"),
                UserStatus::Planned if report.action == "reset" => {
                    format!("password of {name} to reset")
                }
                UserStatus::Planned
                    if user.user_account_control_before == user.user_account_control_after =>
                {
                    match report.action.as_str() {
                        "enable" => format!("{name} already enabled"),
                        _ => format!("{name} already disabled"),
                    }
                }
                UserStatus::Planned if report.action == "enable" => format!("{name} to enable"),
                UserStatus::Planned => format!("{name} to disable"),
                UserStatus::Failed => format!("{name} NOT changed"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `2 of 3 domain controllers have the change, 1 not-converged`.
fn dcs_summary(directory: &DirectoryReport) -> String {
    let dcs = &directory.domain_controllers;
    let count = |wanted: &[DcStatus]| dcs.iter().filter(|d| wanted.contains(&d.status)).count();
    let n = dcs.len();
    if count(&[DcStatus::Planned]) == n {
        return format!("{n} domain controller{} checked", plural(n));
    }
    let have = dcs.iter().filter(|d| d.status.has_change()).count();
    let checked = n - count(&[DcStatus::NotCached]);
    let mut text = format!(
        "{have} of {checked} domain controller{} {} the change",
        plural(checked),
        if have == 1 { "has" } else { "have" }
    );
    for status in [
        DcStatus::NotConverged,
        DcStatus::RodcNotConverged,
        DcStatus::Unchecked,
    ] {
        let k = count(&[status]);
        if k > 0 {
            let _ = write!(text, ", {k} {}", word(&status));
        }
    }
    let not_cached = count(&[DcStatus::NotCached]);
    if not_cached > 0 {
        let _ = write!(
            text,
            "; {not_cached} read-only DC{} without the password (low risk)",
            plural(not_cached)
        );
    }
    text
}

/// `APM: 2 sessions killed on 1 of 2 BIG-IPs, 1 failed`.
fn f5_summary(devices: &[F5Outcome]) -> String {
    let n = devices.len();
    let count = |status: F5Status| devices.iter().filter(|d| d.status == status).count();
    if count(F5Status::Planned) == n {
        let sessions: usize = devices.iter().map(|d| d.sessions.len()).sum();
        return format!(
            "APM: {sessions} session{} to kill on {n} BIG-IP{}",
            plural(sessions),
            plural(n)
        );
    }
    let killed: usize = devices.iter().map(|d| d.killed).sum();
    let mut text = format!(
        "APM: {killed} session{} killed on {}",
        plural(killed),
        some_of(count(F5Status::Ok), n, "BIG-IP")
    );
    for status in [F5Status::Failed, F5Status::Interrupted] {
        let k = count(status);
        if k > 0 {
            let _ = write!(text, ", {k} {}", word(&status));
        }
    }
    text
}

/// `20 servers: 14 ok, 1 partial, ... (73 pools recycled, 1 absent, 1 failed)`.
fn servers_summary(report: &RunReport) -> String {
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
    let planned = report
        .servers
        .iter()
        .flat_map(|s| &s.actions)
        .filter(|a| a.status == ActionStatus::Planned)
        .count();
    let pools = if report.method == Method::Iisreset {
        let mut parts = Vec::new();
        for (n, what) in [
            (s.pools_recycled, "IIS reset on"),
            (planned, "iisreset to run on"),
            (s.pools_failed, "iisreset failed on"),
        ] {
            if n > 0 {
                parts.push(format!("{what} {n}"));
            }
        }
        parts.join(", ")
    } else {
        pool_counts(&[
            (s.pools_recycled, "recycled"),
            (planned, "to recycle"),
            (s.pools_absent, "absent"),
            (s.pools_stopped, "stopped"),
            (s.pools_failed, "failed"),
        ])
    };
    let pools = if pools.is_empty() {
        String::new()
    } else {
        format!(" ({pools})")
    };
    format!(
        "{} server{}: {}{pools}",
        s.servers,
        plural(s.servers),
        parts.join(", ")
    )
}

/// `5 pools recycled, 1 absent`: the counts that are not zero, the first
/// one with its noun.
fn pool_counts(counts: &[(usize, &str)]) -> String {
    counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .enumerate()
        .map(|(i, (n, what))| match i {
            0 => format!("{n} pool{} {what}", plural(*n)),
            _ => format!("{n} {what}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The last line of a real run: closed (when, and what that means for this
/// run), or not.
fn exposure_line(report: &RunReport, exposure: &Exposure, open_items: bool) -> String {
    let kerberos = kerberos_sentence(report)
        .map(|k| format!(" {k}"))
        .unwrap_or_default();
    match (&exposure.closed_at, exposure.window_ms) {
        // Never a bare "closed": what closed, and what did not.
        (Some(at), Some(ms)) if exposure.closed => format!(
            "{} closed at {} ({:.1} s after the start): {}.{kerberos}",
            if report.f5.is_empty() {
                "IIS token caches"
            } else {
                "IIS token caches and APM sessions"
            },
            moment(*at, report.started_at),
            ms as f64 / 1000.0,
            closing_conditions(report)
        ),
        _ if open_items => "Exposure window NOT closed: see what is still open above.".to_string(),
        _ if has_dc(report, DcStatus::Unchecked) => {
            "Exposure window not confirmed closed: domain controllers were not checked \
             (--no-wait-replication)."
                .to_string()
        }
        _ => format!(
            "Exposure window not confirmed closed: revoke did not see that {}.",
            closing_conditions(report)
        ),
    }
}

/// What closes the exposure window of this run: a flush touches no DC and
/// no BIG-IP, so only its workers count.
fn closing_conditions(report: &RunReport) -> String {
    let mut conditions = Vec::new();
    if report.directory.is_some() {
        conditions.push("every domain controller has the change".to_string());
    }
    if !report.f5.is_empty() {
        conditions.push(format!(
            "no APM session of {} is left on any BIG-IP",
            account_names(report)
        ));
    }
    conditions
        .push("no worker process from before the flush is left on any Exchange server".to_string());
    join_and(&conditions)
}

fn has_dc(report: &RunReport, status: DcStatus) -> bool {
    report
        .directory
        .iter()
        .flat_map(|d| &d.domain_controllers)
        .any(|dc| dc.status == status)
}

/// `alice and bob`; `the account` if there is none.
fn account_names(report: &RunReport) -> String {
    let names: Vec<String> = report
        .directory
        .iter()
        .flat_map(|d| &d.users)
        .map(|u| u.sam_account_name.clone())
        .collect();
    if names.is_empty() {
        "the account".to_string()
    } else {
        join_and(&names)
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

// ------------------------------------------------------------ dry run

/// A dry run's end: what it found that a real run would meet too, what a
/// real run would do and what it would check.
fn dry_run_end(out: &mut String, report: &RunReport) {
    let problems = dry_run_problems(report);
    if !problems.is_empty() {
        out.push_str("Problems found by the dry run (a real run would meet them too):\n");
        for problem in &problems {
            let _ = writeln!(out, "  {problem}");
        }
    }
    let mut steps = real_run_steps(report);
    if steps.is_empty() {
        steps.push("change nothing".to_string());
    }
    let _ = writeln!(out, "A real run would {}.", join_and(&steps));
    let _ = writeln!(
        out,
        "It would close the exposure window once it saw that {}.",
        closing_conditions(report)
    );
    if let Some(policy) = &report.kerberos_policy {
        let _ = writeln!(out, "{}", dry_run_residual(report, policy));
    }
}

/// What a real run would leave open, from the change and the policy.
fn dry_run_residual(report: &RunReport, policy: &KerberosPolicy) -> String {
    let hours = |d: std::time::Duration| {
        let minutes = d.as_secs() / 60;
        match (minutes / 60, minutes % 60) {
            (h, 0) => format!("{h} h"),
            (0, m) => format!("{m} min"),
            (h, m) => format!("{h} h {m} min"),
        }
    };
    let source = match policy.source {
        PolicySource::Defaults => "Windows' default Kerberos policy",
        PolicySource::Config => "[kerberos_policy]",
    };
    if report.action == "reset" {
        format!(
            "It cannot close: Kerberos tickets issued before the reset (usable for up to {} \
             days after it: {source}), cached logons, certificates and Windows Hello keys; \
             `revoke disable` stops new Kerberos tickets within 20 minutes.",
            policy.max_renewal.as_secs() / 86_400
        )
    } else {
        let last = (revoke_core::residual::ACCOUNT_CHECK_AFTER + policy.max_service_ticket)
            .min(policy.max_user_ticket);
        format!(
            "It cannot close: Kerberos tickets issued before the disable (usable for up to {} \
             after it: {source}) and cached logons on computers that cannot reach a DC.",
            hours(last)
        )
    }
}

/// Accounts, BIG-IPs and servers the dry run could not get through.
fn dry_run_problems(report: &RunReport) -> Vec<String> {
    let mut problems = Vec::new();
    for user in report
        .directory
        .iter()
        .flat_map(|d| &d.users)
        .filter(|u| u.status == UserStatus::Failed)
    {
        problems.push(format!(
            "account {}: {}",
            user.sam_account_name,
            user.message.as_deref().unwrap_or("failed")
        ));
    }
    for device in report.f5.iter().filter(|d| !d.status.is_success()) {
        problems.push(format!(
            "APM {} {}: {}",
            device.device,
            word(&device.status),
            device.message.as_deref().unwrap_or("failed")
        ));
    }
    problems.extend(report.servers.iter().filter_map(ServerReport::problem));
    problems
}

/// What a real run would do, from what the dry run saw: `disable alice`,
/// `kill 2 APM sessions on 1 BIG-IP`, `recycle 15 pools on 3 servers`.
fn real_run_steps(report: &RunReport) -> Vec<String> {
    let mut steps = Vec::new();
    if let Some(directory) = &report.directory {
        let planned = directory
            .users
            .iter()
            .filter(|u| u.status == UserStatus::Planned);
        let names: Vec<String> = if report.action == "reset" {
            planned.map(|u| u.sam_account_name.clone()).collect()
        } else {
            // Already disabled: nothing to write.
            planned
                .filter(|u| u.user_account_control_before != u.user_account_control_after)
                .map(|u| u.sam_account_name.clone())
                .collect()
        };
        if !names.is_empty() {
            steps.push(match report.action.as_str() {
                "reset" => format!("reset the password of {}", join_and(&names)),
                _ => format!("disable {}", join_and(&names)),
            });
        }
    }
    if !report.f5.is_empty() {
        let ready: Vec<&F5Outcome> = report
            .f5
            .iter()
            .filter(|d| d.status == F5Status::Planned)
            .collect();
        let sessions: usize = ready.iter().map(|d| d.sessions.len()).sum();
        steps.push(format!(
            "kill {sessions} APM session{} on {}",
            plural(sessions),
            some_of(ready.len(), report.f5.len(), "BIG-IP")
        ));
    }
    let ready: Vec<&ServerReport> = report
        .servers
        .iter()
        .filter(|s| s.status == ServerStatus::Planned)
        .collect();
    let on = some_of(ready.len(), report.servers.len(), "server");
    if report.servers.is_empty() {
        // Not reached: the directory part failed.
    } else if report.method == Method::Iisreset {
        let waves = if report.waves.len() > 1 {
            format!(" in {} waves", report.waves.len())
        } else {
            String::new()
        };
        steps.push(format!("run iisreset /noforce on {on}{waves}"));
    } else {
        let pools = ready
            .iter()
            .flat_map(|s| &s.actions)
            .filter(|a| a.status == ActionStatus::Planned)
            .count();
        steps.push(format!("recycle {pools} pool{} on {on}", plural(pools)));
    }
    steps
}

/// `3 servers`, or `2 of 3 servers`.
fn some_of(k: usize, n: usize, noun: &str) -> String {
    if k == n {
        format!("{n} {noun}{}", plural(n))
    } else {
        format!("{k} of {n} {noun}{}", plural(n))
    }
}

// ------------------------------------------------------------ the blocks

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
        let label = |dc: &revoke_core::events::DcOutcome| {
            if dc.read_only {
                format!("{} (read-only)", dc.host)
            } else {
                dc.host.clone()
            }
        };
        let labels: Vec<String> = directory.domain_controllers.iter().map(label).collect();
        let dc_width = column_width("DOMAIN CONTROLLER", labels.iter().map(String::as_str));
        let _ = writeln!(
            out,
            "\n{:dc_width$}  {:18}  {:>8}  DETAIL",
            "DOMAIN CONTROLLER", "STATUS", "AFTER"
        );
        for (dc, label) in directory.domain_controllers.iter().zip(&labels) {
            let detail = match (&dc.message, dc.decided_by) {
                (Some(message), Some(evidence)) => format!("{message} ({})", evidence.describe()),
                (Some(message), None) => message.clone(),
                (None, Some(evidence)) => evidence.describe().to_string(),
                (None, None) => String::new(),
            };
            let line = format!(
                "{label:dc_width$}  {:18}  {:>8}  {detail}",
                word(&dc.status),
                format!("{:.1} s", dc.elapsed_ms as f64 / 1000.0),
            );
            let _ = writeln!(out, "{}", line.trim_end());
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
        let line = format!(
            "{:width$}  {:11}  {:>6}  {:>8}  {}",
            device.device,
            word(&device.status),
            device.killed,
            format!("{:.1} s", device.duration_ms as f64 / 1000.0),
            device.message.as_deref().unwrap_or("")
        );
        let _ = writeln!(out, "{}", line.trim_end());
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

/// One line per server; its pools beneath it when it did not end ok (or
/// `planned`), or with `detail`.
fn servers_block(out: &mut String, report: &RunReport, detail: bool) {
    let pools_shown = |s: &ServerReport| detail || !s.status.is_success();
    let host_width = column_width("SERVER", report.servers.iter().map(|s| s.host.as_str()));
    let computer_width = column_width(
        "COMPUTER",
        report
            .servers
            .iter()
            .map(|s| s.computer.as_deref().unwrap_or("-")),
    );
    let labels: Vec<String> = report
        .servers
        .iter()
        .filter(|s| pools_shown(s))
        .flat_map(|s| s.actions.iter().map(pool_label))
        .collect();
    let pool_width = column_width("POOL", labels.iter().map(String::as_str));
    let auth_of = |s: &ServerReport| s.auth.map_or("-", |m| m.name());
    let auth_width = column_width("AUTH", report.servers.iter().map(auth_of));
    let _ = writeln!(
        out,
        "{:host_width$}  {:11}  {:>8}  {:computer_width$}  {:auth_width$}  RESULT",
        "SERVER", "STATUS", "TIME", "COMPUTER", "AUTH"
    );
    for server in &report.servers {
        let line = format!(
            "{:host_width$}  {:11}  {:>8}  {:computer_width$}  {:auth_width$}  {}",
            server.host,
            server.status.to_string(),
            format!("{:.1} s", server.duration_ms as f64 / 1000.0),
            server.computer.as_deref().unwrap_or("-"),
            auth_of(server),
            server_result(server),
        );
        let _ = writeln!(out, "{}", line.trim_end());
        if pools_shown(server) {
            for action in &server.actions {
                let line = format!(
                    "  {:pool_width$}  {:9}  {}",
                    pool_label(action),
                    action_word(action.status),
                    action_detail(action)
                );
                let _ = writeln!(out, "{}", line.trim_end());
            }
        }
    }
    out.push('\n');
}

/// The last column of a server's line: why it is not ok, or what was done.
fn server_result(server: &ServerReport) -> String {
    let what = match &server.error {
        Some(error) => error.clone(),
        None => actions_result(&server.actions),
    };
    match server.wave {
        Some(wave) if what.is_empty() => format!("(wave {wave})"),
        Some(wave) => format!("{what} (wave {wave})"),
        None => what,
    }
}

/// `5 pools recycled`, `4 pools recycled, 1 absent`, `IIS reset`.
fn actions_result(actions: &[ActionOutcome]) -> String {
    if let [action] = actions
        && action.pool == "*"
    {
        return match action.status {
            ActionStatus::Reset => "IIS reset".to_string(),
            ActionStatus::Planned => "would run iisreset /noforce".to_string(),
            ActionStatus::Failed => "iisreset failed".to_string(),
            ActionStatus::Unknown => "iisreset may have run (unknown)".to_string(),
            other => word(&other),
        };
    }
    let count = |status: ActionStatus| actions.iter().filter(|a| a.status == status).count();
    pool_counts(&[
        (count(ActionStatus::Recycled), "recycled"),
        (count(ActionStatus::Planned), "to recycle"),
        (count(ActionStatus::Absent), "absent"),
        (count(ActionStatus::Stopped), "stopped"),
        (count(ActionStatus::Failed), "failed"),
        (count(ActionStatus::Unknown), "unknown (may have run)"),
    ])
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
        ActionStatus::Unknown => "UNKNOWN".into(),
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
        ActionStatus::Planned | ActionStatus::Failed | ActionStatus::Unknown => {
            format!("pid {}", pids(&action.old_pids))
        }
        ActionStatus::Absent | ActionStatus::Stopped => String::new(),
    };
    match (&action.message, workers.is_empty()) {
        (Some(m), true) => m.clone(),
        (Some(m), false) => format!("{workers}  {m}"),
        (None, _) => workers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revoke_core::events::{ApmSession, DcOutcome, SessionStatus, UserOutcome};
    use revoke_core::iis::EXCHANGE_POOLS;
    use revoke_core::report::Summary;
    use std::time::SystemTime;

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

    fn at(moment: &str) -> SystemTime {
        humantime::parse_rfc3339(moment).unwrap()
    }

    fn flush_report(servers: Vec<ServerReport>) -> RunReport {
        let mut report = RunReport {
            schema_version: 1,
            run_id: "00000000-0000-4000-8000-000000000000".into(),
            action: "flush".into(),
            ticket: None,
            reason: None,
            method: Method::Recycle,
            dry_run: false,
            started_at: at("2026-11-23T10:00:00.000Z"),
            finished_at: Some(at("2026-11-23T10:00:02.345Z")),
            waves: vec![],
            servers,
            summary: Summary::default(),
            warnings: Vec::new(),
            directory: None,
            flush_skipped: None,
            exposure: None,
            f5: Vec::new(),
            residual: Vec::new(),
            kerberos_policy: None,
            journal: None,
            no_journal: false,
            retry_of: None,
        };
        report.summarize();
        report
    }

    /// A fixed scenario: one ok server, one partial, one unreachable.
    fn scenario() -> RunReport {
        flush_report(vec![
            ServerReport {
                host: "ex01.corp.example.com".into(),
                computer: Some("EX01".into()),
                auth: Some(revoke_winrm::Mechanism::Kerberos),
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
                auth: Some(revoke_winrm::Mechanism::Ntlm),
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
                auth: None,
                wave: None,
                status: ServerStatus::Unreachable,
                duration_ms: 3,
                attempts: 1,
                error: Some("connection refused (nothing listens on port 5985)".into()),
                old_workers_exited_at: None,
                actions: vec![],
            },
        ])
    }

    /// Server `i` of a larger estate, every Exchange pool recycled.
    fn ok_server(i: u32) -> ServerReport {
        let base = 4000 + i * 16;
        ServerReport {
            host: format!("ex{i:02}.corp.example.com"),
            computer: Some(format!("EX{i:02}")),
            auth: Some(revoke_winrm::Mechanism::Kerberos),
            wave: None,
            status: ServerStatus::Ok,
            duration_ms: 1400 + u64::from(i * 137 % 900),
            attempts: 1,
            error: None,
            old_workers_exited_at: Some(at("2026-11-23T10:00:02.100Z")),
            actions: EXCHANGE_POOLS
                .iter()
                .zip(0..)
                .map(|(pool, k)| {
                    action(
                        pool,
                        ActionStatus::Recycled,
                        &[base + k],
                        &[base + k + 3000],
                        None,
                    )
                })
                .collect(),
        }
    }

    /// 20 servers: 14 ok (one with a pool absent, one with a pool
    /// stopped), one partial, one draining, one unreachable, two failed,
    /// one timeout.
    fn twenty_servers() -> RunReport {
        let mut servers: Vec<ServerReport> = (1..=20).map(ok_server).collect();
        let owa = 2;
        // ex04: OWA refused.
        let s = &mut servers[3];
        s.status = ServerStatus::Partial;
        s.error = Some(
            "not recycled: MSExchangeOWAAppPool: Command execution failed. Access is denied. \
             (hresult 80070005) (exit code 5)"
                .into(),
        );
        s.old_workers_exited_at = None;
        let a = &mut s.actions[owa];
        a.status = ActionStatus::Failed;
        a.new_pids.clear();
        a.message = Some(
            "Command execution failed. Access is denied. (hresult 80070005) (exit code 5)".into(),
        );
        // ex07: an ActiveSync long poll outlives the drain deadline.
        let s = &mut servers[6];
        s.status = ServerStatus::Draining;
        s.duration_ms = 91_204;
        s.old_workers_exited_at = None;
        let old = s.actions[0].old_pids.clone();
        s.error = Some(format!(
            "flushed, but old worker(s) still running after 90 s hold cached tokens: \
             MSExchangeSyncAppPool: pid {}",
            old[0]
        ));
        let a = &mut s.actions[0];
        a.draining_pids = old.clone();
        a.message = Some(format!(
            "old worker(s) {} still running at the drain deadline: they keep their cached \
             tokens until they exit",
            old[0]
        ));
        // ex09: nothing listens.
        servers[8] = ServerReport {
            computer: None,
            auth: None,
            status: ServerStatus::Unreachable,
            duration_ms: 3,
            error: Some("connection refused (nothing listens on port 5985)".into()),
            old_workers_exited_at: None,
            actions: vec![],
            ..servers[8].clone()
        };
        // ex12: the operator's account is refused.
        servers[11] = ServerReport {
            computer: None,
            auth: None,
            status: ServerStatus::Failed,
            duration_ms: 212,
            error: Some("authentication refused (HTTP 401)".into()),
            old_workers_exited_at: None,
            actions: vec![],
            ..servers[11].clone()
        };
        // ex15: two pools recycled, then no answer.
        let s = &mut servers[14];
        s.status = ServerStatus::Timeout;
        s.duration_ms = 120_000;
        s.error = Some("no answer within 120 s".into());
        s.old_workers_exited_at = None;
        s.actions.truncate(2);
        for a in &mut s.actions {
            a.new_pids.clear();
        }
        // ex17: no MAPI pool (Exchange 2013 CU without it).
        let a = &mut servers[16].actions[4];
        a.status = ActionStatus::Absent;
        a.old_pids.clear();
        a.new_pids.clear();
        a.message = Some("no such application pool on this server".into());
        // ex18: RPC proxy pool stopped.
        let a = &mut servers[17].actions[3];
        a.status = ActionStatus::Stopped;
        a.old_pids.clear();
        a.new_pids.clear();
        a.message = Some("pool is stopped: no worker process holds tokens; not recycled".into());
        // ex20: IIS management does not answer.
        servers[19] = ServerReport {
            status: ServerStatus::Failed,
            duration_ms: 845,
            error: Some(
                "appcmd list apppool failed (exit code 4312): The Windows Process Activation \
                 Service is not running"
                    .into(),
            ),
            old_workers_exited_at: None,
            actions: vec![],
            ..servers[19].clone()
        };
        flush_report(servers)
    }

    #[test]
    fn table_for_a_mixed_run() {
        insta::assert_snapshot!(render(&scenario(), false));
    }

    #[test]
    fn table_for_twenty_servers() {
        let table = render(&twenty_servers(), false);
        insta::assert_snapshot!(table);
    }

    #[test]
    fn table_for_twenty_servers_with_detail() {
        insta::assert_snapshot!(render(&twenty_servers(), true));
    }

    /// One line per ok server, its pools too for the others; --detail adds
    /// a line per pool of every ok server.
    #[test]
    fn only_servers_not_ok_show_their_pools() {
        let report = twenty_servers();
        let compact = render(&report, false);
        let detail = render(&report, true);
        let pool_lines = |table: &str| {
            table
                .lines()
                .filter(|l| l.starts_with("  MSExchange"))
                .count()
        };
        // ex04 (5), ex07 (5) and ex15 (2).
        assert_eq!(pool_lines(&compact), 12, "{compact}");
        let all: usize = report.servers.iter().map(|s| s.actions.len()).sum();
        assert_eq!(pool_lines(&detail), all, "{detail}");
        // The verdict first, the exposure line last, still open just before it.
        assert!(compact.starts_with("20 servers: 14 ok,"), "{compact}");
        let last = compact.lines().last().unwrap();
        assert!(last.starts_with("Exposure window NOT closed"), "{compact}");
        for table in [&compact, &detail] {
            let servers = table
                .lines()
                .filter(|l| l.starts_with("ex") && l.contains(".corp.example.com "))
                .count();
            assert_eq!(servers, 20, "{table}");
        }
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
            render(&report, false)
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

    /// A flush touches no DC: its exposure line speaks of workers only.
    #[test]
    fn a_closed_flush_speaks_of_workers_not_of_dcs() {
        let report = flush_report((1..=3).map(ok_server).collect());
        let table = render(&report, false);
        let last = table.lines().last().unwrap();
        assert_eq!(
            last,
            "IIS token caches closed at 10:00:02 UTC (2.1 s after the start): \
             no worker process from before the flush is left on any Exchange server."
        );
        // A flush changes no account: nothing of Kerberos to say.
        assert!(report.residual.is_empty());
        assert!(!table.contains("Not closed by revoke"), "{table}");
        assert!(!table.contains("Still open"), "{table}");
        assert!(!table.contains("domain controller"), "{table}");
    }

    /// `revoke disable` with a BIG-IP: accounts, DCs and APM, then the
    /// servers; the exposure line names all three.
    fn disable_with_f5() -> RunReport {
        let mut report = flush_report((1..=3).map(ok_server).collect());
        report.action = "disable".into();
        report.directory = Some(DirectoryReport {
            users: vec![UserOutcome {
                input: "alice".into(),
                dn: "CN=Alice Example,OU=Staff,DC=corp,DC=example,DC=com".into(),
                sam_account_name: "alice".into(),
                user_principal_name: Some("alice@corp.example.com".into()),
                display_name: Some("Alice Example".into()),
                status: UserStatus::Disabled,
                user_account_control_before: 512,
                user_account_control_after: 514,
                flags_before: vec!["NORMAL_ACCOUNT".into()],
                flags_after: vec!["ACCOUNTDISABLE".into(), "NORMAL_ACCOUNT".into()],
                message: None,
            }],
            domain_controllers: vec![
                DcOutcome {
                    host: "dc1.corp.example.com".into(),
                    read_only: false,
                    decided_by: None,
                    status: DcStatus::Written,
                    elapsed_ms: 0,
                    confirmed_at: Some(at("2026-11-23T10:00:00.412Z")),
                    message: None,
                },
                DcOutcome {
                    host: "dc2.corp.example.com".into(),
                    read_only: false,
                    decided_by: None,
                    status: DcStatus::Replicated,
                    elapsed_ms: 118,
                    confirmed_at: Some(at("2026-11-23T10:00:00.530Z")),
                    message: None,
                },
            ],
        });
        report.f5 = vec![F5Outcome {
            device: "bigip1.corp.example.com".into(),
            status: F5Status::Ok,
            killed: 1,
            sessions: vec![ApmSession {
                id: "5519d028".into(),
                user: "CORP\\alice".into(),
                client_ip: Some("203.0.113.10".into()),
                account: "alice".into(),
                status: SessionStatus::Killed,
                message: None,
            }],
            duration_ms: 412,
            confirmed_at: Some(at("2026-11-23T10:00:01.210Z")),
            message: None,
        }];
        // As the report builder sets it for disable/reset: the residual
        // (Kerberos tickets, cached logons) is dated with it.
        report.kerberos_policy = Some(revoke_core::residual::KerberosPolicy::default());
        report.summarize();
        report
    }

    #[test]
    fn table_for_a_disable_with_a_big_ip() {
        insta::assert_snapshot!(render(&disable_with_f5(), false));
    }

    /// The ticket and the reason come right under the verdict.
    #[test]
    fn the_ticket_and_reason_are_the_second_line() {
        let mut report = disable_with_f5();
        report.ticket = Some("INC123".into());
        report.reason = Some("left the company".into());
        let text = render(&report, false);
        let second = text.lines().nth(1).unwrap();
        assert_eq!(second, "Ticket: INC123 — left the company", "{text}");
        report.ticket = None;
        let text = render(&report, false);
        assert_eq!(text.lines().nth(1).unwrap(), "Reason: left the company");
        report.reason = None;
        assert_eq!(render(&report, false).lines().nth(1).unwrap(), "");
    }

    /// A reset leaves Kerberos TGTs renewable for days: the end is said
    /// with its date, and certificates are named as not stopped.
    #[test]
    fn a_reset_says_what_it_leaves_and_until_when() {
        let mut report = disable_with_f5();
        report.action = "reset".into();
        report.directory.as_mut().unwrap().users[0].status = UserStatus::Reset;
        report.summarize();
        let table = render(&report, false);
        let last = table.lines().last().unwrap();
        assert!(
            last.ends_with(
                "Kerberos tickets issued before 10:00:01 UTC may be used until \
                 2026-11-30 10:00:01 UTC."
            ),
            "{table}"
        );
        assert!(
            table.contains("  certificate-logon of alice (no end by itself): "),
            "{table}"
        );
        assert!(
            table.contains("Windows' default Kerberos policy"),
            "{table}"
        );
    }

    /// A DC not seen with the change: no end is promised for the tickets.
    #[test]
    fn an_unchecked_dc_gives_the_tickets_no_end() {
        let mut report = disable_with_f5();
        let dc2 = &mut report.directory.as_mut().unwrap().domain_controllers[1];
        dc2.status = DcStatus::Unchecked;
        dc2.confirmed_at = None;
        report.summarize();
        let table = render(&report, false);
        assert!(
            table.contains("kerberos-tgt of alice (no end by itself)"),
            "{table}"
        );
        assert!(table.contains("cannot say until when"), "{table}");
        assert!(!table.contains("may be used until"), "{table}");
    }

    /// A dry run lists nothing as still open: it says what a real run
    /// would do and check, and what it could not get through.
    #[test]
    fn table_for_a_dry_run() {
        let mut report = disable_with_f5();
        report.dry_run = true;
        let directory = report.directory.as_mut().unwrap();
        directory.users[0].status = UserStatus::Planned;
        directory.users[0].message = Some("would write userAccountControl".into());
        for dc in &mut directory.domain_controllers {
            dc.status = DcStatus::Planned;
            dc.confirmed_at = None;
            dc.message = Some("currently sees alice enabled (512)".into());
        }
        let device = &mut report.f5[0];
        device.status = F5Status::Planned;
        device.killed = 0;
        device.confirmed_at = None;
        device.sessions[0].status = SessionStatus::Planned;
        for server in &mut report.servers {
            server.status = ServerStatus::Planned;
            server.old_workers_exited_at = None;
            for a in &mut server.actions {
                a.status = ActionStatus::Planned;
                a.new_pids.clear();
                a.message = Some(format!(
                    "would run: appcmd recycle apppool /apppool.name:\"{}\"",
                    a.pool
                ));
            }
        }
        report.servers[2] = ServerReport {
            computer: None,
            auth: None,
            status: ServerStatus::Unreachable,
            duration_ms: 3,
            error: Some("connection refused (nothing listens on port 5985)".into()),
            actions: vec![],
            ..report.servers[2].clone()
        };
        report.summarize();
        let table = render(&report, false);
        assert!(!table.contains("Still open"), "{table}");
        assert!(!table.contains("Exposure window"), "{table}");
        insta::assert_snapshot!(table);
    }
}
