//! Exit codes, as documented in the README.

/// Every server ended ok (or, in a dry run, was planned).
pub const OK: u8 = 0;
/// Nothing was attempted: bad usage, config or credentials.
pub const NOTHING_ATTEMPTED: u8 = 1;
/// The run happened but some server is not ok: read the report.
pub const SOME_NOT_OK: u8 = 2;
/// Interrupted (Ctrl-C); the report says what finished.
pub const INTERRUPTED: u8 = 130;
/// A guard refused an account (protected, privileged, or the operator's own): nothing was changed.
pub const REFUSED: u8 = 3;
