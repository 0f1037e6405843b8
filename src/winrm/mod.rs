//! The WS-Management client `revoke` uses to run commands on Exchange servers.
pub mod ntlm;
pub mod sealing;
pub mod soap;
