//! The revoke.toml a running lab writes for its client: the servers'
//! addresses on the chosen listener ([`LabTransport`]), the scheme and
//! authentication, the admin's logon name and the lab CA; never a password.

use std::path::{Path, PathBuf};

use super::Lab;

/// Which listener and authentication a generated revoke.toml uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabTransport {
    /// Windows' default: HTTP, Negotiate (NTLM), sealed messages.
    Http,
    HttpsBasic,
    HttpsNegotiate,
}

impl LabTransport {
    pub const ALL: [LabTransport; 3] = [
        LabTransport::Http,
        LabTransport::HttpsBasic,
        LabTransport::HttpsNegotiate,
    ];

    /// As `revoke lab --transport` spells it.
    pub fn name(self) -> &'static str {
        match self {
            LabTransport::Http => "http",
            LabTransport::HttpsBasic => "https-basic",
            LabTransport::HttpsNegotiate => "https-negotiate",
        }
    }
}

impl Lab {
    /// Text of a revoke.toml pointing at the lab. Never contains the password.
    pub fn revoke_toml(&self, transport: LabTransport, ca_file: Option<&Path>) -> String {
        let https = !matches!(transport, LabTransport::Http);
        let mut out = format!(
            "# Written by `revoke lab`: {} simulated Exchange servers on loopback.\nservers = [\n",
            self.servers.len()
        );
        for s in &self.servers {
            let addr = if https { s.https_addr } else { s.http_addr };
            out.push_str(&format!("  \"{addr}\",\n"));
        }
        out.push_str("]\n\n[winrm]\n");
        out.push_str(if https {
            "scheme = \"https\"\n"
        } else {
            "scheme = \"http\"\n"
        });
        out.push_str(if transport == LabTransport::HttpsBasic {
            "auth = \"basic\"\n"
        } else {
            "auth = \"negotiate\"\n"
        });
        out.push_str(&format!("user = {}\n", toml_string(&self.admin_logon)));
        if https && let Some(ca) = ca_file {
            out.push_str(&format!(
                "ca_file = {}\n",
                toml_string(&ca.display().to_string())
            ));
        }
        out
    }

    /// Writes `revoke.toml` and `lab-ca.pem` into `dir`; returns the revoke.toml path.
    pub fn write_config(&self, dir: &Path, transport: LabTransport) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let dir = std::path::absolute(dir)?;
        let ca_path = dir.join("lab-ca.pem");
        std::fs::write(&ca_path, &self.ca_pem)?;
        let toml_path = dir.join("revoke.toml");
        std::fs::write(&toml_path, self.revoke_toml(transport, Some(&ca_path)))?;
        Ok(toml_path)
    }
}

/// A TOML basic string (quotes and backslashes escaped).
pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_escape_backslashes() {
        assert_eq!(toml_string("LAB\\revoke-admin"), "\"LAB\\\\revoke-admin\"");
    }
}
