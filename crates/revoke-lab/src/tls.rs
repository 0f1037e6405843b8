//! The lab's certificate authority and the servers' HTTPS certificates.
//! Made fresh at every start, like an enterprise CA whose root the operator
//! has to trust explicitly (the `ca_file` of revoke.toml).

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct LabCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A server's TLS identity.
pub struct ServerCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pkcs8: Vec<u8>,
}

impl ServerCert {
    /// The leaf, whose hash is what NTLM channel bindings cover.
    pub fn leaf_der(&self) -> &[u8] {
        self.chain[0].as_ref()
    }

    /// rustls server configuration, with the aws-lc-rs provider named
    /// explicitly (never the process default, which winrm-rs sets to ring).
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .context("server certificate")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl LabCa {
    pub fn new() -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "revoke lab CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "revoke lab");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2099, 12, 31);
        // ECDSA P-256 (rcgen's default algorithm).
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(LabCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A certificate for `name` valid for every way a test reaches it:
    /// localhost, 127.0.0.1, the listen address and `exNN.<dns_domain>`.
    pub fn issue_server(
        &self,
        name: &str,
        dns_domain: &str,
        listen: IpAddr,
    ) -> anyhow::Result<ServerCert> {
        let fqdn = format!("{}.{}", name.to_lowercase(), dns_domain.to_lowercase());
        let mut sans = vec![
            fqdn.clone(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ];
        let listen = listen.to_string();
        if !sans.contains(&listen) {
            sans.push(listen);
        }
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(DnType::CommonName, fqdn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2099, 12, 31);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerCert {
            chain: vec![cert.der().clone(), self.cert_der.clone()],
            key_pkcs8: key.serialize_der(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_config_builds_with_issued_cert() {
        let ca = LabCa::new().unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let cert = ca
            .issue_server("EX01", "lab.example.test", "127.0.0.1".parse().unwrap())
            .unwrap();
        assert_eq!(cert.chain.len(), 2);
        cert.server_config().unwrap();
    }
}
