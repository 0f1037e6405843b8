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
            if self.named_servers {
                let name = format!("{}.{}", s.name.to_lowercase(), self.dns_domain);
                out.push_str(&format!("  \"{name}:{}\",\n", addr.port()));
            } else {
                out.push_str(&format!("  \"{addr}\",\n"));
            }
        }
        out.push_str("]\n\n[winrm]\n");
        out.push_str(if https {
            "scheme = \"https\"\n"
        } else {
            "scheme = \"http\"\n"
        });
        out.push_str(if transport == LabTransport::HttpsBasic {
            "auth = \"basic\"\n"
        } else if self.kerberos_only {
            "auth = \"kerberos\"\n"
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

/// The directory and BIG-IP of a whole lab estate (`revoke lab
/// --embedded-directory`), for [`Lab::estate_toml`]. Names, never passwords.
#[derive(Debug, Clone)]
pub struct EstateToml {
    /// `ldaps://127.0.0.1:PORT`: the DC a run writes on.
    pub directory_url: String,
    /// PEM of the CA that signed the DCs' certificates.
    pub directory_ca: PathBuf,
    /// The operator's UPN.
    pub bind_user: String,
    /// Seconds the gate waits for every DC.
    pub replication_timeout: u64,
    /// `127.0.0.1:PORT` of the lab BIG-IP's iControl REST.
    pub f5_device: String,
    pub f5_user: String,
}

impl Lab {
    /// A complete revoke.toml for a lab estate: the servers and `[winrm]` as
    /// [`Lab::revoke_toml`] writes them, then `[directory]` and `[f5]`
    /// (the BIG-IP's certificate comes from the lab CA, `ca_file`).
    pub fn estate_toml(
        &self,
        transport: LabTransport,
        ca_file: &Path,
        estate: &EstateToml,
    ) -> String {
        let mut out = self.revoke_toml(transport, Some(ca_file));
        let path = |p: &Path| toml_string(&p.display().to_string());
        out.push_str(&format!(
            "\n[directory]\nurl = {}\nca_file = {}\nbind_user = {}\nreplication_timeout = {}\n",
            toml_string(&estate.directory_url),
            path(&estate.directory_ca),
            toml_string(&estate.bind_user),
            estate.replication_timeout,
        ));
        out.push_str(&format!(
            "\n[f5]\ndevices = [{}]\nuser = {}\nca_file = {}\n",
            toml_string(&estate.f5_device),
            toml_string(&estate.f5_user),
            path(ca_file),
        ));
        out
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
