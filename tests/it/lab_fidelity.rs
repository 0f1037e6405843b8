//! The lab speaks WinRM: proven by independent clients (pywinrm, winrm-rs).
