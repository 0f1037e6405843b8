//! Integration tests: one binary so it links once. Each module starts what it
//! needs (a lab in-process, the real `revoke` binary) on loopback only.
mod common;
mod credentials;
mod demo;
mod doctor;
mod embedded_directory;
mod f5;
mod flush;
mod forced_replication;
mod forest;
mod generated;
mod hostile;
mod journal;
mod kerberos;
mod kerberos_ldap;
mod lab_estate;
mod lab_fidelity;
mod messages;
mod reset_policy;
mod rodc;
mod samba;
mod samba_fixture;

// The directory suites, run unchanged against both directories so the
// embedded one cannot drift from Samba AD: account.rs (resolve, guard,
// change, gate), apm.rs (F5 APM sessions), exposure.rs (the stale-token bug
// end to end), gate.rs (the convergence gate's rules), bulk.rs (many
// accounts in one run), tickets.rs (--ticket/--reason, the info stamp), journal_ad.rs (the
// journal after SIGKILL, history, retry, enable). Each backend module says which domain `backend` is.

/// Against the real two-DC Samba AD domain (scripts/samba-ad.sh; started by
/// scripts/test.sh; without it these tests fail and say what to run).
#[allow(clippy::duplicate_mod)]
#[path = "."]
mod against_samba {
    mod backend {
        pub use crate::samba::{TestUser, UAC_DISABLED, UAC_ENABLED, domain, unique_name};
        pub type AdEstate = crate::samba::Estate<crate::samba::SambaAd>;
        /// Samba serves only the stored blob.
        pub const METADATA_SOURCE: &str = "replPropertyMetaData";
    }
    #[path = "account.rs"]
    mod account;
    #[path = "apm.rs"]
    mod apm;
    #[path = "bulk.rs"]
    mod bulk;
    #[path = "exposure.rs"]
    mod exposure;
    #[path = "gate.rs"]
    mod gate;
    #[path = "journal_ad.rs"]
    mod journal_ad;
    #[path = "tickets.rs"]
    mod tickets;
}

/// Against the lab's embedded directory (crates/revoke-lab/src/directory).
#[allow(clippy::duplicate_mod)]
#[path = "."]
mod against_embedded {
    mod backend {
        pub use crate::samba::{TestUser, UAC_DISABLED, UAC_ENABLED, unique_name};
        pub type AdEstate = crate::samba::Estate<crate::samba::Embedded>;
        pub use crate::samba::embedded_domain as domain;
        /// The embedded directory constructs it, as Windows does.
        pub const METADATA_SOURCE: &str = "msDS-ReplAttributeMetaData";
    }
    #[path = "account.rs"]
    mod account;
    #[path = "apm.rs"]
    mod apm;
    #[path = "bulk.rs"]
    mod bulk;
    #[path = "exposure.rs"]
    mod exposure;
    #[path = "gate.rs"]
    mod gate;
    #[path = "journal_ad.rs"]
    mod journal_ad;
    #[path = "tickets.rs"]
    mod tickets;
}
