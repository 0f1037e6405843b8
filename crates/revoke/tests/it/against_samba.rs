//! The directory tests of account.rs, apm.rs and exposure.rs against the two-DC Samba AD domain.

mod backend {
    pub use crate::samba::{TestUser, UAC_DISABLED, UAC_ENABLED, domain, unique_name};
    pub type AdEstate = crate::samba::Estate<crate::samba::SambaAd>;
}

// Included once per backend, on purpose.
#[allow(clippy::duplicate_mod)]
#[path = "account.rs"]
mod account;

#[allow(clippy::duplicate_mod)]
#[path = "apm.rs"]
mod apm;

#[allow(clippy::duplicate_mod)]
#[path = "exposure.rs"]
mod exposure;
