//! Channel bindings (RFC 5929 tls-server-end-point, as SSPI hashes it into
//! MsvAvChannelBindings, MS-NLMP 2.2.2.1): they tie an NTLM exchange over
//! HTTPS to the server certificate the client saw, so a relay through
//! another TLS endpoint fails.

use aws_lc_rs::digest;
use x509_parser::certificate::X509CertificateParser;
use x509_parser::nom::Parser;
use x509_parser::oid_registry::{
    OID_NIST_HASH_SHA384, OID_NIST_HASH_SHA512, OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA384WITHRSA,
    OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ECDSA_WITH_SHA512,
};
use x509_parser::signature_algorithm::RsaSsaPssParams;

use super::crypto::md5;

/// MD5 of the gss_channel_bindings_struct for `tls-server-end-point` (RFC 5929),
/// given the server certificate in DER.
///
/// The certificate hash follows RFC 5929 4.1: the certificate's signature
/// hash, with MD5 and SHA-1 (and anything unrecognised) upgraded to SHA-256.
pub fn channel_bindings_hash(server_cert_der: &[u8]) -> [u8; 16] {
    channel_bindings_hash_from_cert_hash(&certificate_hash(server_cert_der))
}

/// The RFC 5929 `tls-server-end-point` hash of a certificate (DER): what
/// Kerberos puts after `tls-server-end-point:` in its channel bindings.
pub fn certificate_hash(server_cert_der: &[u8]) -> Vec<u8> {
    let algorithm = match cert_signature_hash(server_cert_der) {
        CertHash::Sha256 => &digest::SHA256,
        CertHash::Sha384 => &digest::SHA384,
        CertHash::Sha512 => &digest::SHA512,
    };
    digest::digest(algorithm, server_cert_der).as_ref().to_vec()
}

/// MD5 of the gss_channel_bindings_struct for an already computed
/// `tls-server-end-point` certificate hash: empty initiator and acceptor
/// addresses, application data `tls-server-end-point:` followed by the hash.
pub fn channel_bindings_hash_from_cert_hash(cert_hash: &[u8]) -> [u8; 16] {
    let mut app_data = b"tls-server-end-point:".to_vec();
    app_data.extend_from_slice(cert_hash);
    let app_len = u32::try_from(app_data.len()).unwrap_or(u32::MAX);
    // initiator addrtype + length, acceptor addrtype + length: all zero.
    md5(&[&[0u8; 16], &app_len.to_le_bytes(), &app_data])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CertHash {
    Sha256,
    Sha384,
    Sha512,
}

/// Which hash RFC 5929 asks for, from the certificate's signatureAlgorithm.
/// A certificate that does not parse gets SHA-256, like an unknown algorithm:
/// the bindings then simply do not match, which the server reports.
fn cert_signature_hash(cert_der: &[u8]) -> CertHash {
    // Extensions are left unread: only the signature algorithm matters, and an
    // extension the parser cannot interpret must not change the hash.
    let Ok((_, cert)) = X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(cert_der)
    else {
        return CertHash::Sha256;
    };
    let algorithm = &cert.signature_algorithm;
    let oid = &algorithm.algorithm;
    if *oid == OID_SIG_ECDSA_WITH_SHA384 || *oid == OID_PKCS1_SHA384WITHRSA {
        CertHash::Sha384
    } else if *oid == OID_SIG_ECDSA_WITH_SHA512 || *oid == OID_PKCS1_SHA512WITHRSA {
        CertHash::Sha512
    } else if *oid == OID_PKCS1_RSASSAPSS {
        // RSASSA-PSS names its hash in the parameters (RFC 4055 3.1; SHA-1 when absent).
        let params = algorithm
            .parameters
            .as_ref()
            .and_then(|p| RsaSsaPssParams::try_from(p).ok());
        match params.as_ref().map(RsaSsaPssParams::hash_algorithm_oid) {
            Some(hash) if *hash == OID_NIST_HASH_SHA384 => CertHash::Sha384,
            Some(hash) if *hash == OID_NIST_HASH_SHA512 => CertHash::Sha512,
            _ => CertHash::Sha256,
        }
    } else {
        CertHash::Sha256
    }
}

#[cfg(test)]
mod tests {
    use x509_parser::oid_registry::{
        OID_NIST_HASH_SHA256, OID_PKCS1_MD5WITHRSAENC, OID_PKCS1_SHA1WITHRSA, Oid,
    };

    use super::*;
    use crate::ntlm::testing::{garbage, hex};

    /// DER tag-length-value, for building test certificates.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let len = content.len();
        let mut out = vec![tag];
        match len {
            0..0x80 => out.push(len as u8),
            0x80..0x100 => out.extend([0x81, len as u8]),
            _ => {
                out.push(0x82);
                out.extend(u16::try_from(len).unwrap().to_be_bytes());
            }
        }
        out.extend_from_slice(content);
        out
    }

    /// AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY }
    fn algorithm_identifier(oid: &[u8], parameters: &[u8]) -> Vec<u8> {
        tlv(0x30, &[tlv(0x06, oid), parameters.to_vec()].concat())
    }

    const NULL: &[u8] = &[0x05, 0x00];

    fn certificate(algorithm: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(algorithm).unwrap();
        let params = rcgen::CertificateParams::new(vec!["exch01.corp.example".into()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    /// A real certificate whose signatureAlgorithm names `algorithm` (DER).
    /// The signature no longer verifies; reading the algorithm does not care.
    fn certificate_signed_with(algorithm: &[u8]) -> Vec<u8> {
        let der = certificate(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let signature = tlv(0x03, &[&[0][..], &cert.signature_value.data].concat());
        tlv(
            0x30,
            &[cert.tbs_certificate.as_ref(), algorithm, &signature].concat(),
        )
    }

    #[test]
    fn channel_bindings_struct_matches_pyspnego() {
        // md5(GssChannelBindings(application_data=b"tls-server-end-point:" + sha256(b"certificate")).pack())
        let sha256 = digest::digest(&digest::SHA256, b"certificate");
        assert_eq!(
            hex(&channel_bindings_hash_from_cert_hash(sha256.as_ref())),
            "a8398e96473163fef6cae76013e8ab5a"
        );
    }

    #[test]
    fn ecdsa_p256_certificate_binds_with_sha256() {
        let cert =
            rcgen::generate_simple_self_signed(vec!["exch01.corp.example".to_string()]).unwrap();
        let der = cert.cert.der().to_vec();
        assert_eq!(cert_signature_hash(&der), CertHash::Sha256);
        let sha256 = digest::digest(&digest::SHA256, &der);
        assert_eq!(
            channel_bindings_hash(&der),
            channel_bindings_hash_from_cert_hash(sha256.as_ref())
        );
    }

    #[test]
    fn ecdsa_certificates_bind_with_their_signature_hash() {
        let p384 = certificate(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert_eq!(cert_signature_hash(&p384), CertHash::Sha384);
        let sha384 = digest::digest(&digest::SHA384, &p384);
        assert_eq!(
            channel_bindings_hash(&p384),
            channel_bindings_hash_from_cert_hash(sha384.as_ref())
        );

        let p521 = certificate(&rcgen::PKCS_ECDSA_P521_SHA512);
        assert_eq!(cert_signature_hash(&p521), CertHash::Sha512);
        let sha512 = digest::digest(&digest::SHA512, &p521);
        assert_eq!(
            channel_bindings_hash(&p521),
            channel_bindings_hash_from_cert_hash(sha512.as_ref())
        );
    }

    #[test]
    fn certificate_signature_hash_is_read_from_der() {
        let rsa =
            |oid: &Oid<'_>| certificate_signed_with(&algorithm_identifier(oid.as_bytes(), NULL));
        assert_eq!(
            cert_signature_hash(&rsa(&OID_PKCS1_SHA384WITHRSA)),
            CertHash::Sha384
        );
        assert_eq!(
            cert_signature_hash(&rsa(&OID_PKCS1_SHA512WITHRSA)),
            CertHash::Sha512
        );
        // RFC 5929 4.1: MD5 and SHA-1 are upgraded to SHA-256.
        assert_eq!(
            cert_signature_hash(&rsa(&OID_PKCS1_SHA1WITHRSA)),
            CertHash::Sha256
        );
        assert_eq!(
            cert_signature_hash(&rsa(&OID_PKCS1_MD5WITHRSAENC)),
            CertHash::Sha256
        );
        assert_eq!(cert_signature_hash(b"not a certificate"), CertHash::Sha256);
    }

    #[test]
    fn rsassa_pss_hash_is_read_from_its_parameters() {
        let pss = |hash: Option<&Oid<'_>>| {
            // RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0] AlgorithmIdentifier, ... }
            let params = match hash {
                Some(oid) => tlv(
                    0x30,
                    &tlv(0xa0, &algorithm_identifier(oid.as_bytes(), NULL)),
                ),
                None => tlv(0x30, &[]),
            };
            certificate_signed_with(&algorithm_identifier(
                OID_PKCS1_RSASSAPSS.as_bytes(),
                &params,
            ))
        };
        assert_eq!(
            cert_signature_hash(&pss(Some(&OID_NIST_HASH_SHA384))),
            CertHash::Sha384
        );
        assert_eq!(
            cert_signature_hash(&pss(Some(&OID_NIST_HASH_SHA512))),
            CertHash::Sha512
        );
        assert_eq!(
            cert_signature_hash(&pss(Some(&OID_NIST_HASH_SHA256))),
            CertHash::Sha256
        );
        // Absent means SHA-1, which is upgraded.
        assert_eq!(cert_signature_hash(&pss(None)), CertHash::Sha256);
    }

    #[test]
    fn garbage_certificates_never_panic() {
        for msg in garbage() {
            let _ = channel_bindings_hash(&msg);
        }
    }
}
