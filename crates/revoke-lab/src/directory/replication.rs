//! Replication between the DCs' copies: each DC receives the others'
//! changes after its own delay, or never by itself (`None`), or when
//! [`Domain::pull`] copies them over; and, like Samba, no DC accepts a
//! rootDSE `replicateSingleObject`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::domain::{Domain, lock};
use super::store::*;

/// How changes travel between DCs.
pub struct Replication {
    /// Per DC: how long changes from other DCs take to arrive (None = never).
    delays: Mutex<Vec<Option<Duration>>>,
    /// Where delayed deliveries are scheduled; none before it is set.
    runtime: Mutex<Option<tokio::runtime::Handle>>,
}

impl Replication {
    pub fn new(delays: Vec<Option<Duration>>) -> Self {
        Replication {
            delays: Mutex::new(delays),
            runtime: Mutex::new(None),
        }
    }
}

/// The answer to a modify of the rootDSE (`replicateSingleObject`, ...).
pub fn root_dse_modify_refused() -> LdapError {
    // Samba: rootDSE modifies (replicateSingleObject, ...) are refused.
    LdapError::new(UNWILLING, "rootdse_modify: unknown attribute to change!")
}

impl Domain {
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
