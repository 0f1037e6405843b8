//! What a `disable` / `reset` cannot close, and until when: the doors no
//! flush reaches (docs/directory.md, "What a flush cannot close").
//!
//! Kerberos does not revoke tickets: a ticket issued before every DC had the
//! change stays valid at the services until it expires
//! (docs/windows-behaviour.md §8.4, §8.6), and the KDC re-checks a disabled
//! account only for TGTs older than 20 minutes (§8.5), never for a new
//! password (§8.9). How long tickets live is the domain's Kerberos policy,
//! which lives in SYSVOL, not in LDAP (§8.10): revoke uses Windows' defaults
//! unless `[kerberos_policy]` says otherwise, and says which it used.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::events::{DcStatus, UserStatus};
use crate::report::RunReport;
use crate::timestamp;

/// How long the KDC re-accepts a TGT without checking the account
/// (docs/windows-behaviour.md §8.5).
pub const ACCOUNT_CHECK_AFTER: Duration = Duration::from_secs(20 * 60);

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// The domain's Kerberos policy, as far as revoke knows it
/// (docs/windows-behaviour.md §8.4, §8.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosPolicy {
    /// MaxServiceAge: "Maximum lifetime for service ticket".
    pub max_service_ticket: Duration,
    /// MaxTicketAge: "Maximum lifetime for user ticket" (the TGT).
    pub max_user_ticket: Duration,
    /// MaxRenewAge: "Maximum lifetime for user ticket renewal".
    pub max_renewal: Duration,
    pub source: PolicySource,
}

/// Where the policy's values came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicySource {
    /// Windows' defaults (600 minutes, 10 hours, 7 days): the domain's own
    /// policy is not readable over LDAP.
    Defaults,
    /// The `[kerberos_policy]` section of the config file.
    Config,
}

impl Default for KerberosPolicy {
    fn default() -> Self {
        KerberosPolicy {
            max_service_ticket: Duration::from_secs(600 * MINUTE),
            max_user_ticket: Duration::from_secs(10 * HOUR),
            max_renewal: Duration::from_secs(7 * DAY),
            source: PolicySource::Defaults,
        }
    }
}

impl KerberosPolicy {
    /// A policy from the config file; each value left out is Windows'
    /// default. Checked as [MS-GPSB] 2.2.2 bounds the settings.
    pub fn configured(
        max_service_ticket_minutes: Option<u64>,
        max_user_ticket_hours: Option<u64>,
        max_user_ticket_renewal_days: Option<u64>,
    ) -> Result<Self, String> {
        let defaults = KerberosPolicy::default();
        let service = max_service_ticket_minutes
            .map(|m| Duration::from_secs(m * MINUTE))
            .unwrap_or(defaults.max_service_ticket);
        let user = max_user_ticket_hours
            .map(|h| Duration::from_secs(h * HOUR))
            .unwrap_or(defaults.max_user_ticket);
        let renewal = max_user_ticket_renewal_days
            .map(|d| Duration::from_secs(d * DAY))
            .unwrap_or(defaults.max_renewal);
        if max_user_ticket_hours == Some(0) || max_user_ticket_renewal_days == Some(0) {
            return Err(
                "[kerberos_policy] values must be greater than 0: copy them from the \
                 Default Domain Policy (Computer Configuration > Policies > Windows Settings > \
                 Security Settings > Account Policies > Kerberos Policy)"
                    .into(),
            );
        }
        if service < Duration::from_secs(10 * MINUTE) || service > user {
            return Err(format!(
                "[kerberos_policy] max_service_ticket_minutes = {} must be at least 10 and at \
                 most max_user_ticket_hours ({} h) in minutes, as Windows requires; copy the \
                 values from the Default Domain Policy's Kerberos Policy",
                service.as_secs() / MINUTE,
                user.as_secs() / HOUR
            ));
        }
        Ok(KerberosPolicy {
            max_service_ticket: service,
            max_user_ticket: user,
            max_renewal: renewal,
            source: PolicySource::Config,
        })
    }

    /// `600 min service tickets, 10 h TGTs, 7-day renewal`.
    pub fn describe(&self) -> String {
        format!(
            "{} min service tickets, {} h TGTs, {}-day renewal",
            self.max_service_ticket.as_secs() / MINUTE,
            self.max_user_ticket.as_secs() / HOUR,
            self.max_renewal.as_secs() / DAY
        )
    }
}

impl Serialize for KerberosPolicy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("KerberosPolicy", 4)?;
        s.serialize_field("source", &self.source)?;
        s.serialize_field(
            "max_service_ticket_minutes",
            &(self.max_service_ticket.as_secs() / MINUTE),
        )?;
        s.serialize_field(
            "max_user_ticket_hours",
            &(self.max_user_ticket.as_secs() / HOUR),
        )?;
        s.serialize_field(
            "max_user_ticket_renewal_days",
            &(self.max_renewal.as_secs() / DAY),
        )?;
        s.end()
    }
}

/// One door that stays open after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Residual {
    pub kind: ResidualKind,
    /// The accounts it applies to (sAMAccountName).
    pub accounts: Vec<String>,
    /// Tickets issued before this moment are the ones still usable; null
    /// for what is not a ticket, or when no such moment is known.
    #[serde(serialize_with = "timestamp::serialize_opt")]
    pub issued_before: Option<SystemTime>,
    /// Until when it stays open at the latest; null when nothing ends it
    /// by itself (it needs an action: see `why`), or when revoke cannot tell
    /// (a DC not seen with the change).
    #[serde(serialize_with = "timestamp::serialize_opt")]
    pub until: Option<SystemTime>,
    /// Plain words: what it is, why revoke cannot close it, what can.
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResidualKind {
    /// TGTs issued before the change still get service tickets.
    KerberosTgt,
    /// Service tickets already issued are accepted by the services.
    KerberosServiceTicket,
    /// Computers log the user on with cached credentials while offline.
    CachedLogon,
    /// Smart cards, certificates and Windows Hello keys: no password.
    CertificateLogon,
}

impl std::fmt::Display for ResidualKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::events::status_word(self))
    }
}

/// When every DC had the change: tickets issued after it were refused. None
/// if a DC was not seen with it (not converged, or not checked).
pub fn cutoff(report: &RunReport) -> Option<SystemTime> {
    let dcs = &report.directory.as_ref()?.domain_controllers;
    if dcs
        .iter()
        .any(|dc| dc.status == DcStatus::Unchecked || dc.status.is_open())
    {
        return None;
    }
    dcs.iter().filter_map(|dc| dc.confirmed_at).max()
}

/// What the run cannot close, for the accounts it changed. Empty for a
/// flush, a dry run, or when no account was changed.
pub fn compute(report: &RunReport, policy: &KerberosPolicy) -> Vec<Residual> {
    let Some(directory) = &report.directory else {
        return Vec::new();
    };
    if report.dry_run {
        return Vec::new();
    }
    let changed = |wanted: &[UserStatus]| -> Vec<String> {
        directory
            .users
            .iter()
            .filter(|u| wanted.contains(&u.status))
            .map(|u| u.sam_account_name.clone())
            .collect()
    };
    let cutoff = cutoff(report);
    let after = |d: Duration| cutoff.map(|at| at + d);
    let source = match policy.source {
        PolicySource::Defaults => "Windows' default Kerberos policy",
        PolicySource::Config => "the Kerberos policy in [kerberos_policy]",
    };
    let unknown = if cutoff.is_none() {
        " Not every domain controller was seen with the change, so revoke cannot say \
         until when: a DC without it still issues new tickets."
    } else {
        ""
    };
    let mut residual = Vec::new();
    match report.action.as_str() {
        "disable" => {
            let accounts = changed(&[UserStatus::Disabled, UserStatus::AlreadyDisabled]);
            if accounts.is_empty() {
                return residual;
            }
            // A service ticket cannot outlive its TGT (MaxTicketAge), and the
            // last new one is issued 20 minutes after the cutoff.
            let last_ticket =
                (ACCOUNT_CHECK_AFTER + policy.max_service_ticket).min(policy.max_user_ticket);
            residual.push(Residual {
                kind: ResidualKind::KerberosTgt,
                accounts: accounts.clone(),
                issued_before: cutoff,
                until: after(ACCOUNT_CHECK_AFTER),
                why: format!(
                    "a TGT issued before every DC had the disable still gets new service \
                     tickets (and renewals) until it is 20 minutes old: the KDC re-checks the \
                     account only for older TGTs (MS-KILE 3.3.5.7.1).{unknown}"
                ),
            });
            residual.push(Residual {
                kind: ResidualKind::KerberosServiceTicket,
                accounts: accounts.clone(),
                issued_before: after(ACCOUNT_CHECK_AFTER),
                until: after(last_ticket),
                why: format!(
                    "a Kerberos service ticket is checked by the service alone: Exchange (and \
                     every Kerberos service) accepts one issued before the disable until it \
                     expires, {} min after issue at most ({source}).{unknown}",
                    policy.max_service_ticket.as_secs() / MINUTE
                ),
            });
            residual.push(Residual {
                kind: ResidualKind::CachedLogon,
                accounts,
                issued_before: None,
                until: None,
                why: "a computer that cannot reach a DC logs the user on with the credentials \
                      it cached at the last logon, and never sees the disable: that gives the \
                      computer and its local copies (e.g. an Outlook .ost), not the mailbox. \
                      It ends when the computer next reaches a DC; recover or wipe the device \
                      if it must end sooner."
                    .into(),
            });
        }
        "reset" => {
            let accounts = changed(&[UserStatus::Reset]);
            if accounts.is_empty() {
                return residual;
            }
            let smart_card: Vec<String> = directory
                .users
                .iter()
                .filter(|u| u.status == UserStatus::Reset)
                .filter(|u| u.flags_after.iter().any(|f| f == "SMARTCARD_REQUIRED"))
                .map(|u| u.sam_account_name.clone())
                .collect();
            residual.push(Residual {
                kind: ResidualKind::KerberosTgt,
                accounts: accounts.clone(),
                issued_before: cutoff,
                until: after(policy.max_renewal),
                why: format!(
                    "a new password does not revoke Kerberos tickets, and the KDC's account \
                     check (MS-KILE 3.3.5.7.1) looks for a disabled, expired or locked-out \
                     account, not for a new password: a TGT issued before the reset keeps \
                     getting service tickets, which Exchange (and every Kerberos service) \
                     accepts until they expire, and can be renewed for {} days after issue \
                     ({source}). `revoke disable` ends new tickets within 20 minutes.{unknown}",
                    policy.max_renewal.as_secs() / DAY
                ),
            });
            residual.push(Residual {
                kind: ResidualKind::CachedLogon,
                accounts: accounts.clone(),
                issued_before: None,
                until: None,
                why: "the old password still unlocks computers that cached it at the user's \
                      last logon while they cannot reach a DC; it ends when the user logs on \
                      there with the new password while a DC is reachable."
                    .into(),
            });
            let mut why = "smart-card and certificate logons (PKINIT) and Windows Hello for \
                           Business keys do not use the password, so a reset does not stop \
                           them: disable the account, or revoke the certificates and remove \
                           the keys (msDS-KeyCredentialLink)."
                .to_string();
            if !smart_card.is_empty() {
                why.push_str(&format!(
                    " {} must log on with a smart card (SMARTCARD_REQUIRED): the reset does \
                     not change how they log on at all.",
                    smart_card.join(", ")
                ));
            }
            residual.push(Residual {
                kind: ResidualKind::CertificateLogon,
                accounts,
                issued_before: None,
                until: None,
                why,
            });
        }
        _ => {}
    }
    residual
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::events::{DcOutcome, Event, UserOutcome};
    use crate::report::{ReportBuilder, Reporter};

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    /// A `change` run's report as the builder makes it from events: alice
    /// changed (status `user`), DC1 and DC2 with the change at 10:00:00
    /// and 10:00:05, or DC2 in `dc2` without it.
    fn run(
        change: &str,
        user: UserStatus,
        dc2: Option<DcStatus>,
        policy: KerberosPolicy,
    ) -> RunReport {
        let mut builder = ReportBuilder::with_kerberos_policy(policy);
        builder.handle(&Event::DirectoryStarted {
            run_id: "r".into(),
            change: change.into(),
            dry_run: false,
            users: vec!["alice".into()],
            started_at: at("2026-11-23T09:59:59Z"),
            ticket: None,
            reason: None,
        });
        builder.handle(&Event::UserFinished {
            user: UserOutcome {
                input: "alice".into(),
                dn: "CN=alice".into(),
                sam_account_name: "alice".into(),
                user_principal_name: None,
                display_name: None,
                status: user,
                user_account_control_before: 512,
                user_account_control_after: 514,
                flags_before: vec![],
                flags_after: vec!["SMARTCARD_REQUIRED".into()],
                message: None,
            },
        });
        let dc = |host: &str, status: DcStatus, confirmed: Option<&str>| {
            let mut dc = DcOutcome::now(host, status, Duration::ZERO, None);
            dc.confirmed_at = confirmed.map(at);
            Event::DomainControllerFinished { dc }
        };
        builder.handle(&dc("dc1", DcStatus::Written, Some("2026-11-23T10:00:00Z")));
        builder.handle(&match dc2 {
            None => dc("dc2", DcStatus::Replicated, Some("2026-11-23T10:00:05Z")),
            Some(status) => dc("dc2", status, None),
        });
        builder.finish().unwrap()
    }

    fn item(report: &RunReport, kind: ResidualKind) -> &Residual {
        report
            .residual
            .iter()
            .find(|r| r.kind == kind)
            .unwrap_or_else(|| panic!("no {kind}: {:#?}", report.residual))
    }

    #[test]
    fn a_disable_leaves_tickets_until_they_expire() {
        let report = run(
            "disable",
            UserStatus::Disabled,
            None,
            KerberosPolicy::default(),
        );
        // Tickets count from the moment the last DC had the change.
        let tgt = item(&report, ResidualKind::KerberosTgt);
        assert_eq!(tgt.issued_before, Some(at("2026-11-23T10:00:05Z")));
        assert_eq!(tgt.until, Some(at("2026-11-23T10:20:05Z")));
        assert_eq!(tgt.accounts, ["alice"]);
        // 20 minutes + 600 minutes, capped by the TGT's 10 hours.
        let service = item(&report, ResidualKind::KerberosServiceTicket);
        assert_eq!(service.until, Some(at("2026-11-23T20:00:05Z")));
        assert!(
            service.why.contains("Windows' default Kerberos policy"),
            "{}",
            service.why
        );
        assert_eq!(item(&report, ResidualKind::CachedLogon).until, None);
        // A disable stops certificate logons at the KDC.
        assert!(
            report
                .residual
                .iter()
                .all(|r| r.kind != ResidualKind::CertificateLogon)
        );
        // The report carries the policy it used.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["kerberos_policy"]["source"], "defaults");
        assert_eq!(json["residual"][1]["until"], "2026-11-23T20:00:05.000Z");
    }

    #[test]
    fn a_configured_policy_gives_other_times() {
        let policy = KerberosPolicy::configured(Some(60), Some(4), Some(1)).unwrap();
        let report = run("disable", UserStatus::Disabled, None, policy);
        let service = item(&report, ResidualKind::KerberosServiceTicket);
        assert_eq!(service.until, Some(at("2026-11-23T11:20:05Z")));
        assert!(service.why.contains("[kerberos_policy]"), "{}", service.why);
        let report = run(
            "reset",
            UserStatus::Reset,
            None,
            KerberosPolicy::configured(None, None, Some(1)).unwrap(),
        );
        assert_eq!(
            item(&report, ResidualKind::KerberosTgt).until,
            Some(at("2026-11-24T10:00:05Z"))
        );
    }

    #[test]
    fn a_reset_leaves_tickets_cached_logons_and_certificates() {
        let report = run("reset", UserStatus::Reset, None, KerberosPolicy::default());
        let tgt = item(&report, ResidualKind::KerberosTgt);
        // Renewable for 7 days: a reset is not checked by the KDC.
        assert_eq!(tgt.until, Some(at("2026-11-30T10:00:05Z")));
        let certificates = item(&report, ResidualKind::CertificateLogon);
        assert!(
            certificates
                .why
                .contains("alice must log on with a smart card"),
            "{}",
            certificates.why
        );
        assert_eq!(item(&report, ResidualKind::CachedLogon).until, None);
    }

    #[test]
    fn no_end_is_given_while_a_dc_lacks_the_change() {
        for dc2 in [DcStatus::NotConverged, DcStatus::Unchecked] {
            let report = run(
                "disable",
                UserStatus::Disabled,
                Some(dc2),
                KerberosPolicy::default(),
            );
            let tgt = item(&report, ResidualKind::KerberosTgt);
            assert_eq!((tgt.issued_before, tgt.until), (None, None), "{dc2:?}");
            assert!(tgt.why.contains("cannot say until when"), "{}", tgt.why);
        }
    }

    #[test]
    fn nothing_changed_leaves_nothing_listed() {
        let report = run(
            "disable",
            UserStatus::Failed,
            None,
            KerberosPolicy::default(),
        );
        assert!(report.residual.is_empty(), "{:#?}", report.residual);
    }

    #[test]
    fn defaults_are_windows_defaults() {
        let p = KerberosPolicy::default();
        assert_eq!(p.max_service_ticket, Duration::from_secs(600 * 60));
        assert_eq!(p.max_user_ticket, Duration::from_secs(10 * 3600));
        assert_eq!(p.max_renewal, Duration::from_secs(7 * 86400));
        assert_eq!(p.source, PolicySource::Defaults);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"source": "defaults", "max_service_ticket_minutes": 600,
                "max_user_ticket_hours": 10, "max_user_ticket_renewal_days": 7})
        );
    }

    #[test]
    fn a_configured_policy_is_checked_like_windows_checks_it() {
        let p = KerberosPolicy::configured(Some(240), Some(4), None).unwrap();
        assert_eq!(p.source, PolicySource::Config);
        assert_eq!(p.max_service_ticket, Duration::from_secs(4 * 3600));
        assert_eq!(p.max_renewal, Duration::from_secs(7 * 86400));
        // A service ticket may not outlive the TGT, nor be under 10 minutes.
        let error = KerberosPolicy::configured(Some(600), Some(4), None).unwrap_err();
        assert!(
            error.contains("max_service_ticket_minutes = 600"),
            "{error}"
        );
        assert!(KerberosPolicy::configured(Some(5), None, None).is_err());
        assert!(KerberosPolicy::configured(None, None, Some(0)).is_err());
    }
}
