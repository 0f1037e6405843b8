//! The records of one run folded into what it did and what it left open:
//! what `revoke history` tells and what `revoke retry` takes up again.

use serde::Serialize;

use super::records::{
    AccountChanged, AccountChanging, ApmKilled, DcConfirmed, DcRef, Entry, Record, RunFinished,
    RunStarted, ServerDone, ServerMutating,
};

/// One run as its records tell it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunHistory {
    pub run_id: String,
    /// When its first record was written.
    pub first_at: String,
    /// When its last record was written.
    pub last_at: String,
    pub started: Option<RunStarted>,
    pub changing: Vec<AccountChanging>,
    /// The last `account-changed` per account.
    pub changed: Vec<AccountChanged>,
    /// The last `dc-confirmed` per DC.
    pub domain_controllers: Vec<DcConfirmed>,
    pub mutating: Vec<ServerMutating>,
    /// The last `server-done` per server.
    pub servers: Vec<ServerDone>,
    /// The last `apm-killed` per device.
    pub apm: Vec<ApmKilled>,
    pub finished: Option<RunFinished>,
}

/// What a run left open, to be taken up by `revoke retry`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OpenItems {
    /// Accounts whose change failed or was never made (retry does not
    /// change accounts: these need the command again).
    pub accounts: Vec<String>,
    /// DCs not confirmed to have the change.
    pub domain_controllers: Vec<DcRef>,
    /// Servers (labels) not flushed `ok`.
    pub servers: Vec<String>,
    /// BIG-IPs not seen clean.
    pub f5_devices: Vec<String>,
}

impl OpenItems {
    /// Anything `revoke retry` can do.
    pub fn retryable(&self) -> bool {
        !(self.domain_controllers.is_empty()
            && self.servers.is_empty()
            && self.f5_devices.is_empty())
    }
}

/// Every run in the journal, in the order they started.
pub fn runs(entries: &[Entry]) -> Vec<RunHistory> {
    let mut runs: Vec<RunHistory> = Vec::new();
    for entry in entries {
        let index = match runs.iter().position(|r| r.run_id == entry.run_id) {
            Some(index) => index,
            None => {
                runs.push(RunHistory {
                    run_id: entry.run_id.clone(),
                    first_at: entry.at.clone(),
                    ..RunHistory::default()
                });
                runs.len() - 1
            }
        };
        runs[index].add(entry);
    }
    runs
}

/// Replaces the element `same` finds, or appends.
fn upsert<T>(items: &mut Vec<T>, item: T, same: impl Fn(&T, &T) -> bool) {
    match items.iter().position(|x| same(x, &item)) {
        Some(i) => items[i] = item,
        None => items.push(item),
    }
}

impl RunHistory {
    fn add(&mut self, entry: &Entry) {
        self.last_at = entry.at.clone();
        match &entry.record {
            Record::RunStarted(r) => self.started = Some(RunStarted::clone(r)),
            Record::AccountChanging(r) => self.changing.push(r.clone()),
            Record::AccountChanged(r) => upsert(&mut self.changed, r.clone(), |a, b| {
                a.dn.eq_ignore_ascii_case(&b.dn)
            }),
            Record::DcConfirmed(r) => upsert(&mut self.domain_controllers, r.clone(), |a, b| {
                a.host.eq_ignore_ascii_case(&b.host)
            }),
            Record::ServerMutating(r) => self.mutating.push(r.clone()),
            Record::ServerDone(r) => {
                upsert(&mut self.servers, r.clone(), |a, b| a.server == b.server)
            }
            Record::ApmKilled(r) => upsert(&mut self.apm, r.clone(), |a, b| a.device == b.device),
            Record::RunFinished(r) => self.finished = Some(r.clone()),
        }
    }

    /// `disable`, `reset`, `enable`, `flush`, `retry` (or `?` without its start).
    pub fn command(&self) -> &str {
        self.started.as_ref().map_or("?", |s| s.command.as_str())
    }

    /// The accounts' sAMAccountNames.
    pub fn accounts(&self) -> Vec<&str> {
        self.started.as_ref().map_or_else(Vec::new, |s| {
            s.accounts
                .iter()
                .map(|a| a.sam_account_name.as_str())
                .collect()
        })
    }

    /// Whether the run names this account (sAMAccountName, UPN, DN or as typed).
    pub fn concerns(&self, name: &str) -> bool {
        self.started.as_ref().is_some_and(|s| {
            s.accounts.iter().any(|a| {
                a.sam_account_name.eq_ignore_ascii_case(name)
                    || a.dn.eq_ignore_ascii_case(name)
                    || a.input.eq_ignore_ascii_case(name)
                    || a.user_principal_name
                        .as_deref()
                        .is_some_and(|u| u.eq_ignore_ascii_case(name))
            })
        })
    }

    /// What the run left open.
    pub fn open(&self) -> OpenItems {
        let mut open = OpenItems::default();
        let Some(started) = &self.started else {
            return open;
        };
        // A retry's accounts were changed by the run it retried.
        let retry = started.retry_of.is_some();
        for account in started.accounts.iter().filter(|_| !retry) {
            if self.written_on(&account.dn).is_none() {
                open.accounts.push(account.sam_account_name.clone());
            }
        }
        // Only once an account was changed is there anything for a DC to have.
        if retry || self.changed.iter().any(|c| c.status != "failed") {
            for dc in &started.domain_controllers {
                // The DC written on has the change once account-changed says
                // so, even if the run stopped before its dc-confirmed.
                let written_here = !self.changed.is_empty()
                    && self
                        .changed
                        .iter()
                        .all(|c| c.status != "failed" && c.dc.eq_ignore_ascii_case(&dc.host));
                let confirmed = written_here
                    || self
                        .domain_controllers
                        .iter()
                        .find(|d| d.host.eq_ignore_ascii_case(&dc.host))
                        .is_some_and(|d| d.has_change || d.status == "not-cached");
                if !confirmed {
                    open.domain_controllers.push(dc.clone());
                }
            }
        }
        for target in &started.targets {
            let ok = self
                .servers
                .iter()
                .any(|s| s.server == target.label && s.ok);
            if !ok {
                open.servers.push(target.label.clone());
            }
        }
        for device in &started.f5_devices {
            if !self.apm.iter().any(|a| &a.device == device && a.ok) {
                open.f5_devices.push(device.clone());
            }
        }
        open
    }

    /// The last `account-changed` record of the account `dn`.
    pub fn changed_record(&self, dn: &str) -> Option<&AccountChanged> {
        self.changed.iter().find(|c| c.dn.eq_ignore_ascii_case(dn))
    }

    /// The `account-changing` record of the account `dn`: its change was
    /// announced (and may have been made).
    pub fn changing_record(&self, dn: &str) -> Option<&AccountChanging> {
        self.changing.iter().find(|c| c.dn.eq_ignore_ascii_case(dn))
    }

    /// The DC an account was written on, if it was.
    pub fn written_on(&self, dn: &str) -> Option<&str> {
        self.changed_record(dn)
            .filter(|c| c.status != "failed")
            .map(|c| c.dc.as_str())
    }
}
