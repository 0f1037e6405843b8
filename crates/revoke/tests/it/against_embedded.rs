//! The directory tests of account.rs, apm.rs and exposure.rs, unchanged, against the lab's embedded
//! directory (src/lab/directory): it must not drift from Samba AD.

mod backend {
    pub use crate::samba::{TestUser, UAC_DISABLED, UAC_ENABLED, unique_name};
    pub type AdEstate = crate::samba::Estate<crate::samba::Embedded>;
    pub use crate::samba::embedded_domain as domain;
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
