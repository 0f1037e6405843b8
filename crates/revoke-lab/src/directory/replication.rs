//! Replication between the DCs' copies: each DC receives the others'
//! changes after its own delay, or never by itself (`None`), or when
//! [`Domain::pull`] copies them over. A rootDSE `replicateSingleObject` is
//! refused as Samba refuses it, unless forced replication is switched on:
//! then it is served as Windows serves it (MS-ADTS 3.1.1.3.3.18), to
//! administrators and to accounts granted Replication Synchronization.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::access::Bound;
use super::domain::{Domain, Modification, lock};
use super::store::*;

/// How changes travel between DCs.
pub struct Replication {
    /// Per DC: how long changes from other DCs take to arrive (None = never).
    delays: Mutex<Vec<Option<Duration>>>,
    /// Where delayed deliveries are scheduled; none before it is set.
    runtime: Mutex<Option<tokio::runtime::Handle>>,
    /// Serve `replicateSingleObject` like Windows (else refuse it like Samba).
    forced: AtomicBool,
    /// Normalised DNs of non-administrators granted Replication
    /// Synchronization (DS-Replication-Synchronize) on the domain.
    synchronizers: Mutex<Vec<String>>,
}

impl Replication {
    pub fn new(delays: Vec<Option<Duration>>) -> Self {
        Replication {
            delays: Mutex::new(delays),
            runtime: Mutex::new(None),
            forced: AtomicBool::new(false),
            synchronizers: Mutex::new(Vec::new()),
        }
    }
}

/// The answer to a modify of the rootDSE (`replicateSingleObject`, ...).
pub fn root_dse_modify_refused() -> LdapError {
    // Samba: rootDSE modifies (replicateSingleObject, ...) are refused.
    LdapError::new(UNWILLING, "rootdse_modify: unknown attribute to change!")
}

impl Domain {
    /// Serve `replicateSingleObject` (Windows) or refuse it (Samba).
    pub fn set_forced_replication(&self, on: bool) {
        self.replication.forced.store(on, Ordering::Relaxed);
    }

    /// Grants Replication Synchronization on the domain to the object `dn`.
    pub fn grant_replication_sync(&self, dn: &str) {
        lock(&self.replication.synchronizers).push(norm_dn(dn));
    }

    /// The DSA object of the DC with this invocation id ("" if none).
    pub fn dsa_of_invocation(&self, invocation_id: &str) -> String {
        self.invocation_ids
            .iter()
            .position(|id| id == invocation_id)
            .map(|i| self.dcs[i].dsa_dn.clone())
            .unwrap_or_default()
    }

    /// A modify of the rootDSE on DC `dc`: only `replicateSingleObject`
    /// = `<source DSA DN>:<object DN>[:SECRETS_ONLY]`, and only when forced
    /// replication is on; the object is pulled from the source at once.
    pub fn root_dse_modify(
        &self,
        dc: usize,
        who: &Bound,
        changes: &[Modification],
    ) -> LdapResult<()> {
        let [change] = changes else {
            return Err(root_dse_modify_refused());
        };
        if !self.replication.forced.load(Ordering::Relaxed)
            || !change.attr.eq_ignore_ascii_case("replicateSingleObject")
        {
            return Err(root_dse_modify_refused());
        }
        let allowed = who.admin
            || who
                .dn
                .as_deref()
                .is_some_and(|dn| lock(&self.replication.synchronizers).contains(&norm_dn(dn)));
        if !allowed {
            // Windows' answer when the right is missing on the NC head.
            return Err(LdapError::new(
                INSUFFICIENT_ACCESS,
                "00002098: SecErr: DSID-03150F94, problem 4003 (INSUFF_ACCESS_RIGHTS), data 0",
            ));
        }
        let value = change
            .values
            .first()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let value = value.strip_suffix(":SECRETS_ONLY").unwrap_or(&value);
        let unwilling = || {
            LdapError::new(
                UNWILLING,
                "0000209A: SvcErr: DSID-03152D2C, problem 5003 (WILL_NOT_PERFORM), data 0",
            )
        };
        // The source DSA's DN holds no ':'; the object's DN follows the first one.
        let (source_dsa, object) = value.split_once(':').ok_or_else(unwilling)?;
        let source = self
            .dcs
            .iter()
            .position(|d| d.dsa_dn.eq_ignore_ascii_case(source_dsa))
            .ok_or_else(unwilling)?;
        self.pull(source, dc, Some(object));
        Ok(())
    }

    pub fn set_runtime(&self, handle: tokio::runtime::Handle) {
        *lock(&self.replication.runtime) = Some(handle);
    }

    pub fn set_delay(&self, dc: usize, delay: Option<Duration>) {
        lock(&self.replication.delays)[dc] = delay;
    }

    /// Sends a change made on DC `from` to every other DC, each after its delay.
    pub fn replicate(self: &Arc<Self>, from: usize, replica: Replica) {
        let delays = lock(&self.replication.delays).clone();
        let runtime = lock(&self.replication.runtime).clone();
        for (to, delay) in delays.into_iter().enumerate() {
            if to == from {
                continue;
            }
            match delay {
                None => {}
                Some(d) if d.is_zero() => {
                    self.data(to).apply(&replica);
                }
                Some(d) => {
                    let Some(runtime) = runtime.clone() else {
                        continue;
                    };
                    let me = Arc::downgrade(self);
                    let replica = replica.clone();
                    runtime.spawn(async move {
                        tokio::time::sleep(d).await;
                        if let Some(domain) = me.upgrade() {
                            domain.data(to).apply(&replica);
                        }
                    });
                }
            }
        }
    }

    /// Copies what DC `from` has and DC `to` lacks (or has older),
    /// deletions included: one object, or everything. Returns how many
    /// objects changed on `to`.
    pub fn pull(&self, from: usize, to: usize, dn: Option<&str>) -> usize {
        if from == to {
            return 0;
        }
        let source: Vec<Replica> = {
            let data = self.data(from);
            let wanted = dn.map(norm_dn);
            let tombstones = data
                .deleted
                .iter()
                .filter(|(norm, _)| wanted.as_ref().is_none_or(|w| w == *norm))
                .map(|(norm, stamp)| Replica::Remove {
                    norm: norm.clone(),
                    stamp: *stamp,
                });
            let live = data
                .entries
                .iter()
                .filter(|(norm, _)| wanted.as_ref().is_none_or(|w| w == *norm))
                .map(|(_, e)| Replica::Put(e.clone()));
            tombstones.chain(live).collect()
        };
        let mut target = self.data(to);
        source.iter().filter(|r| target.apply(r)).count()
    }
}
