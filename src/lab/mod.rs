//! The lab: a simulated Exchange estate that speaks real WinRM on loopback.
//! Used by `revoke lab`, `revoke demo` and the tests; production code never
//! depends on anything in here.
//! STUB: interface only; the implementation replaces this file.
pub mod iis;
