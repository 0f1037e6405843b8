//! Integration tests: one binary so it links once. Each module starts what it
//! needs (a lab in-process, the real `revoke` binary) on loopback only.
mod against_embedded;
mod against_samba;
mod common;
mod demo;
mod embedded_directory;
mod f5;
mod flush;
mod lab_fidelity;
mod samba;
mod samba_fixture;
