//! Integration tests: one binary so it links once. Each module starts what it
//! needs (a lab in-process, the real `revoke` binary) on loopback only.
mod common;
mod demo;
mod embedded_directory;
mod f5;
mod flush;
mod generated;
mod lab_fidelity;
mod messages;
mod samba;
mod samba_fixture;

// The directory suites, run unchanged against both directories so the
// embedded one cannot drift from Samba AD: account.rs (resolve, guard,
// change, gate), apm.rs (F5 APM sessions), exposure.rs (the stale-token bug
// end to end). Each backend module says which domain `backend` is.

/// Against the real two-DC Samba AD domain (scripts/samba-ad.sh; started by
/// scripts/test.sh; without it these tests fail and say what to run).
#[allow(clippy::duplicate_mod)]
#[path = "."]
mod against_samba {
    mod backend {
        pub use crate::samba::{TestUser, UAC_DISABLED, UAC_ENABLED, domain, unique_name};
        pub type AdEstate = crate::samba::Estate<crate::samba::SambaAd>;
    }
    #[path = "account.rs"]
    mod account;
    #[path = "apm.rs"]
    mod apm;
    #[path = "exposure.rs"]
    mod exposure;
}

/// Against the lab's embedded directory (crates/revoke-lab/src/directory).
#[allow(clippy::duplicate_mod)]
#[path = "."]
mod against_embedded {
    mod backend {
        pub use crate::samba::{TestUser, UAC_DISABLED, UAC_ENABLED, unique_name};
        pub type AdEstate = crate::samba::Estate<crate::samba::Embedded>;
        pub use crate::samba::embedded_domain as domain;
    }
    #[path = "account.rs"]
    mod account;
    #[path = "apm.rs"]
    mod apm;
    #[path = "exposure.rs"]
    mod exposure;
}
