//! NTLMv2 (MS-NLMP) for both ends of a WinRM connection: the client side used
//! by [`crate::WinrmClient`], and the acceptor side used by the lab's WinRM server.
//!
//! Only NTLMv2 with extended session security is spoken, which is what every
//! supported Windows release negotiates. The three messages are raw NTLMSSP
//! tokens (no SPNEGO wrapping), as WinRM clients put them after `Negotiate `
//! or `NTLM ` in the HTTP `Authorization` header.
//!
//! After authentication both ends hold a [`SessionSecurity`] that seals and
//! unseals messages (MS-NLMP 3.4.3, with key exchange and 128-bit keys).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use md4::Md4;
use md5::{Digest, Md5};
use rc4::{Rc4, StreamCipher};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NtlmError {
    #[error("malformed NTLM message: {0}")]
    Malformed(String),
    #[error("logon failure: unknown user name or bad password")]
    LogonFailure,
    #[error("message integrity check failed")]
    BadMic,
    #[error("channel binding mismatch")]
    ChannelBindings,
    #[error("sealed message rejected: {0}")]
    BadSignature(String),
}

fn malformed(what: impl Into<String>) -> NtlmError {
    NtlmError::Malformed(what.into())
}

// ---------------------------------------------------------------------------
// Negotiate flags (MS-NLMP 2.2.2.5)
// ---------------------------------------------------------------------------

const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
const REQUEST_TARGET: u32 = 0x0000_0004;
const NEGOTIATE_SIGN: u32 = 0x0000_0010;
const NEGOTIATE_SEAL: u32 = 0x0000_0020;
const NEGOTIATE_NTLM: u32 = 0x0000_0200;
const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
const NEGOTIATE_VERSION: u32 = 0x0200_0000;
const NEGOTIATE_128: u32 = 0x2000_0000;
const NEGOTIATE_KEY_EXCH: u32 = 0x4000_0000;
const NEGOTIATE_56: u32 = 0x8000_0000;

/// What the client asks for in its NEGOTIATE.
const CLIENT_FLAGS: u32 = NEGOTIATE_UNICODE
    | REQUEST_TARGET
    | NEGOTIATE_SIGN
    | NEGOTIATE_SEAL
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_VERSION
    | NEGOTIATE_128
    | NEGOTIATE_KEY_EXCH
    | NEGOTIATE_56;

/// What the acceptor always sets in its CHALLENGE.
const SERVER_BASE_FLAGS: u32 = NEGOTIATE_UNICODE
    | REQUEST_TARGET
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | TARGET_TYPE_DOMAIN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_TARGET_INFO
    | NEGOTIATE_VERSION;

/// What the acceptor grants only when the client asked for it.
const SERVER_OPTIONAL_FLAGS: u32 =
    NEGOTIATE_SIGN | NEGOTIATE_SEAL | NEGOTIATE_128 | NEGOTIATE_KEY_EXCH | NEGOTIATE_56;

/// Both ends refuse a peer without these: this module only implements NTLMv2
/// with extended session security and UTF-16 strings.
const REQUIRED_FLAGS: u32 = NEGOTIATE_UNICODE | NEGOTIATE_EXTENDED_SESSIONSECURITY;

/// Sealing is only implemented with 128-bit keys; weaker keys are refused.
fn check_flags(flags: u32, peer: &str) -> Result<(), NtlmError> {
    if flags & REQUIRED_FLAGS != REQUIRED_FLAGS {
        return Err(malformed(format!(
            "{peer} does not support Unicode NTLMv2 with extended session security"
        )));
    }
    if flags & NEGOTIATE_SEAL != 0 && flags & NEGOTIATE_128 == 0 {
        return Err(malformed(format!(
            "{peer} offers sealing without 128-bit keys"
        )));
    }
    Ok(())
}

/// The VERSION structure we send (Windows 10 / Server 2019, NTLM revision 15).
/// It is informational only; peers do not act on it.
const VERSION: [u8; 8] = [10, 0, 0x63, 0x45, 0, 0, 0, 15];

// ---------------------------------------------------------------------------
// AV_PAIR ids (MS-NLMP 2.2.2.1) and MsvAvFlags bits
// ---------------------------------------------------------------------------

const AV_EOL: u16 = 0;
const AV_NB_COMPUTER_NAME: u16 = 1;
const AV_NB_DOMAIN_NAME: u16 = 2;
const AV_DNS_COMPUTER_NAME: u16 = 3;
const AV_DNS_DOMAIN_NAME: u16 = 4;
const AV_FLAGS: u16 = 6;
const AV_TIMESTAMP: u16 = 7;
const AV_CHANNEL_BINDINGS: u16 = 10;
const AV_FLAG_MIC_PRESENT: u32 = 0x2;

// ---------------------------------------------------------------------------
// Message layout (MS-NLMP 2.2.1)
// ---------------------------------------------------------------------------

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
const NEGOTIATE_TYPE: u32 = 1;
const CHALLENGE_TYPE: u32 = 2;
const AUTHENTICATE_TYPE: u32 = 3;

/// NEGOTIATE: signature, type, flags, domain and workstation fields, version.
const NEGOTIATE_HEADER_LEN: usize = 40;
/// CHALLENGE: ... target name at 12, flags at 20, challenge at 24, target info at 40, version at 48.
const CHALLENGE_HEADER_LEN: usize = 56;
/// AUTHENTICATE: six fields, flags at 60, version at 64, MIC at 72.
const AUTH_FLAGS_OFFSET: usize = 60;
const AUTH_MIC_OFFSET: usize = 72;
const AUTH_HEADER_LEN: usize = 88;
/// Where each AUTHENTICATE security buffer descriptor sits.
const AUTH_LM: usize = 12;
const AUTH_NT: usize = 20;
const AUTH_DOMAIN: usize = 28;
const AUTH_USER: usize = 36;
const AUTH_WORKSTATION: usize = 44;
const AUTH_SESSION_KEY: usize = 52;

/// The fixed part of an NTLMv2 client blob before its AV pairs: RespType,
/// HiRespType, 6 reserved bytes, timestamp, client challenge, 4 reserved bytes.
const BLOB_HEADER_LEN: usize = 28;

// ---------------------------------------------------------------------------
// Crypto primitives
// ---------------------------------------------------------------------------

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// RC4 with a fresh key over one buffer (the RC4K of MS-NLMP, for key exchange).
fn rc4k(key: &[u8; 16], data: &[u8; 16]) -> [u8; 16] {
    let mut out = *data;
    new_rc4(key).apply_keystream(&mut out);
    out
}

fn new_rc4(key: &[u8; 16]) -> Rc4 {
    <Rc4 as KeyInit>::new_from_slice(key).expect("RC4 accepts 16-byte keys")
}

/// Compare without an early exit, so timing does not reveal a partial match.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The OS generator failing is not a condition a caller could handle.
    getrandom::fill(&mut out).expect("the operating system's random number generator failed");
    out
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn from_utf16le(bytes: &[u8], what: &str) -> Result<String, NtlmError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(malformed(format!("{what} has an odd UTF-16 length")));
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| malformed(format!("{what} is not valid UTF-16")))
}

/// Upper-case like Windows does for NTOWFv2: one character at a time, never
/// changing the length (Rust's full mapping turns `ß` into `SS`; Windows does not).
fn windows_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// NT one-way function (MD4 of the UTF-16LE password).
pub fn nt_hash(password: &str) -> [u8; 16] {
    Md4::digest(utf16le(password)).into()
}

/// NTOWFv2: the NTLMv2 response key, from the NT hash and the names as sent.
fn ntowfv2(nt_hash: &[u8; 16], user: &str, domain: &str) -> [u8; 16] {
    let identity = utf16le(&format!("{}{}", windows_upper(user), domain));
    hmac_md5(nt_hash, &[&identity])
}

/// The current time as a Windows FILETIME (100 ns ticks since 1601-01-01).
fn filetime_now() -> u64 {
    const UNIX_EPOCH_AS_FILETIME: u64 = 116_444_736_000_000_000;
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UNIX_EPOCH_AS_FILETIME
        + since_unix.as_secs() * 10_000_000
        + u64::from(since_unix.subsec_nanos()) / 100
}

/// The NTLMv2 client blob (MS-NLMP 2.2.2.7 NTLMv2_CLIENT_CHALLENGE).
fn ntlmv2_blob(timestamp: &[u8; 8], client_challenge: &[u8; 8], target_info: &[u8]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(BLOB_HEADER_LEN + target_info.len() + 4);
    blob.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    blob.extend_from_slice(timestamp);
    blob.extend_from_slice(client_challenge);
    blob.extend_from_slice(&[0; 4]);
    blob.extend_from_slice(target_info);
    blob.extend_from_slice(&[0; 4]);
    blob
}

/// NTProofStr over the server challenge and the client blob.
fn nt_proof_str(response_key: &[u8; 16], server_challenge: &[u8; 8], blob: &[u8]) -> [u8; 16] {
    hmac_md5(response_key, &[server_challenge, blob])
}

/// SessionBaseKey; with NTLMv2 it is also the KeyExchangeKey.
fn session_base_key(response_key: &[u8; 16], nt_proof: &[u8; 16]) -> [u8; 16] {
    hmac_md5(response_key, &[nt_proof])
}

/// The LMv2 response, sent only when no MIC is (MS-NLMP 3.3.2).
fn lmv2_response(
    response_key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
) -> Vec<u8> {
    let mut out = hmac_md5(response_key, &[server_challenge, client_challenge]).to_vec();
    out.extend_from_slice(client_challenge);
    out
}

/// MIC over the three handshake messages (the AUTHENTICATE with a zero MIC).
fn compute_mic(
    exported_key: &[u8; 16],
    negotiate: &[u8],
    challenge: &[u8],
    authenticate: &[u8],
) -> [u8; 16] {
    hmac_md5(exported_key, &[negotiate, challenge, authenticate])
}

// ---------------------------------------------------------------------------
// Channel bindings (RFC 5929 tls-server-end-point, as SSPI hashes it)
// ---------------------------------------------------------------------------

/// MD5 of the gss_channel_bindings_struct for `tls-server-end-point` (RFC 5929),
/// given the server certificate in DER.
///
/// The certificate hash follows RFC 5929 4.1: the certificate's signature
/// hash, with MD5 and SHA-1 (and anything unrecognised) upgraded to SHA-256.
pub fn channel_bindings_hash(server_cert_der: &[u8]) -> [u8; 16] {
    let cert_hash = match cert_signature_hash(server_cert_der) {
        CertHash::Sha384 => rustls_hash(
            &rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
            server_cert_der,
        ),
        CertHash::Sha512 => sha512(server_cert_der).to_vec(),
        CertHash::Sha256 => rustls_hash(
            &rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
            server_cert_der,
        ),
    };
    channel_bindings_hash_from_cert_hash(&cert_hash)
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

/// SHA-256 and SHA-384 come from rustls' aws-lc-rs provider, reached through
/// the hash of a TLS 1.3 cipher suite (the only public door to it).
fn rustls_hash(suite: &rustls::SupportedCipherSuite, data: &[u8]) -> Vec<u8> {
    let tls13 = suite.tls13().expect("a TLS 1.3 suite");
    tls13.common.hash_provider.hash(data).as_ref().to_vec()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CertHash {
    Sha256,
    Sha384,
    Sha512,
}

/// Which hash RFC 5929 asks for, from the certificate's signatureAlgorithm.
fn cert_signature_hash(cert_der: &[u8]) -> CertHash {
    const SHA384_SIGS: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
    ];
    const SHA512_SIGS: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
    ];
    const RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
    const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

    let Some((oid, params)) = signature_algorithm(cert_der) else {
        return CertHash::Sha256;
    };
    if SHA384_SIGS.contains(&oid) {
        CertHash::Sha384
    } else if SHA512_SIGS.contains(&oid) {
        CertHash::Sha512
    } else if oid == RSA_PSS && contains(params, SHA384) {
        // RSASSA-PSS names its hash in the parameters.
        CertHash::Sha384
    } else if oid == RSA_PSS && contains(params, SHA512) {
        CertHash::Sha512
    } else {
        CertHash::Sha256
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The signatureAlgorithm OID and parameters of an X.509 certificate:
/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }.
fn signature_algorithm(cert_der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, cert, _) = der_tlv(cert_der)? else {
        return None;
    };
    let (0x30, _tbs, rest) = der_tlv(cert)? else {
        return None;
    };
    let (0x30, algorithm, _) = der_tlv(rest)? else {
        return None;
    };
    let (0x06, oid, params) = der_tlv(algorithm)? else {
        return None;
    };
    Some((oid, params))
}

/// One DER tag-length-value: (tag, contents, what follows).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// SHA-512 round constants (FIPS 180-4 4.2.3).
#[rustfmt::skip]
const SHA512_K: [u64; 80] = [
    0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
    0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
    0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
    0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
    0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
    0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
    0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
    0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
    0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
    0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
    0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
    0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
    0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
    0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
];

/// SHA-512 initial hash value (FIPS 180-4 5.3.5).
#[rustfmt::skip]
const SHA512_IV: [u64; 8] = [
    0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
    0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
];

/// SHA-512 (FIPS 180-4), for the rare SHA-512-signed certificate: neither
/// rustls nor any other direct dependency exposes it.
fn sha512(data: &[u8]) -> [u8; 64] {
    // Padding: 0x80, zeros, then the bit length as a 128-bit big-endian number.
    let mut padded = data.to_vec();
    padded.push(0x80);
    while padded.len() % 128 != 112 {
        padded.push(0);
    }
    padded.extend_from_slice(&((data.len() as u128) * 8).to_be_bytes());

    let mut state = SHA512_IV;
    for block in padded.chunks_exact(128) {
        sha512_compress(&mut state, block);
    }
    let mut out = [0u8; 64];
    for (chunk, word) in out.chunks_exact_mut(8).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// One SHA-512 compression round over a 128-byte block.
fn sha512_compress(state: &mut [u64; 8], block: &[u8]) {
    let mut w = [0u64; 80];
    for (i, word) in block.chunks_exact(8).enumerate() {
        w[i] = u64::from_be_bytes(word.try_into().expect("8 bytes"));
    }
    for i in 16..80 {
        let s0 = w[i - 15].rotate_right(1) ^ w[i - 15].rotate_right(8) ^ (w[i - 15] >> 7);
        let s1 = w[i - 2].rotate_right(19) ^ w[i - 2].rotate_right(61) ^ (w[i - 2] >> 6);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for (k, w) in SHA512_K.iter().zip(w) {
        let s1 = e.rotate_right(14) ^ e.rotate_right(18) ^ e.rotate_right(41);
        let ch = (e & f) ^ (!e & g);
        let t1 = h
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(*k)
            .wrapping_add(w);
        let s0 = a.rotate_right(28) ^ a.rotate_right(34) ^ a.rotate_right(39);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        (h, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
    }
    for (word, value) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *word = word.wrapping_add(value);
    }
}

// ---------------------------------------------------------------------------
// Session security (MS-NLMP 3.4.3, 3.4.4.2, 3.4.5)
// ---------------------------------------------------------------------------

const CLIENT_SIGN_MAGIC: &[u8] = b"session key to client-to-server signing key magic constant\0";
const CLIENT_SEAL_MAGIC: &[u8] = b"session key to client-to-server sealing key magic constant\0";
const SERVER_SIGN_MAGIC: &[u8] = b"session key to server-to-client signing key magic constant\0";
const SERVER_SEAL_MAGIC: &[u8] = b"session key to server-to-client sealing key magic constant\0";

/// Which side of the connection a [`SessionSecurity`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// Keys and state for one direction of traffic.
struct Direction {
    sign_key: [u8; 16],
    /// One RC4 keystream for the whole connection: messages and checksums
    /// consume it in turn.
    rc4: Rc4,
    seq: u32,
}

impl Direction {
    fn new(exported_key: &[u8; 16], sign_magic: &[u8], seal_magic: &[u8]) -> Self {
        Direction {
            sign_key: md5(&[exported_key, sign_magic]),
            rc4: new_rc4(&md5(&[exported_key, seal_magic])),
            seq: 0,
        }
    }

    /// The first 8 bytes of HMAC_MD5(SignKey, seq || message), not yet encrypted.
    fn checksum(&self, message: &[u8]) -> [u8; 8] {
        let mac = hmac_md5(&self.sign_key, &[&self.seq.to_le_bytes(), message]);
        mac[..8].try_into().expect("8 of 16 bytes")
    }
}

/// Signing and sealing state after authentication (one per connection).
///
/// Messages must be unsealed in the order they were sealed. After a message
/// fails its checksum the keystream is lost, so every later [`unseal`]
/// fails too: the connection must be dropped (a replayed or reordered
/// message is caught by its sequence number before that happens).
///
/// [`unseal`]: SessionSecurity::unseal
pub struct SessionSecurity {
    outgoing: Direction,
    incoming: Direction,
    broken: bool,
}

impl fmt::Debug for SessionSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSecurity")
            .field("keys", &"<redacted>")
            .field("sent", &self.outgoing.seq)
            .field("received", &self.incoming.seq)
            .field("broken", &self.broken)
            .finish()
    }
}

impl SessionSecurity {
    /// Derive both directions' keys from the ExportedSessionKey. A client
    /// seals with the client-to-server keys; a server with the others.
    pub fn from_exported_key(key: [u8; 16], side: Side) -> Self {
        let client_to_server = Direction::new(&key, CLIENT_SIGN_MAGIC, CLIENT_SEAL_MAGIC);
        let server_to_client = Direction::new(&key, SERVER_SIGN_MAGIC, SERVER_SEAL_MAGIC);
        let (outgoing, incoming) = match side {
            Side::Client => (client_to_server, server_to_client),
            Side::Server => (server_to_client, client_to_server),
        };
        SessionSecurity {
            outgoing,
            incoming,
            broken: false,
        }
    }

    /// Seal an outgoing message: returns (16-byte signature, encrypted message).
    pub fn seal(&mut self, message: &[u8]) -> ([u8; 16], Vec<u8>) {
        let out = &mut self.outgoing;
        let mut checksum = out.checksum(message);
        let mut sealed = message.to_vec();
        // The message first, then the checksum, from the same keystream.
        out.rc4.apply_keystream(&mut sealed);
        out.rc4.apply_keystream(&mut checksum);
        let signature = signature_bytes(&checksum, out.seq);
        out.seq = out.seq.wrapping_add(1);
        (signature, sealed)
    }

    /// Unseal an incoming message, checking its signature and sequence number.
    pub fn unseal(&mut self, signature: &[u8], sealed: &[u8]) -> Result<Vec<u8>, NtlmError> {
        let bad = |why: &str| NtlmError::BadSignature(why.to_string());
        if self.broken {
            return Err(bad(
                "an earlier message failed its check; the session is unusable",
            ));
        }
        let signature: &[u8; 16] = signature
            .try_into()
            .map_err(|_| bad("signature is not 16 bytes"))?;
        if signature[..4] != 1u32.to_le_bytes() {
            return Err(bad("unknown signature version"));
        }
        let incoming = &mut self.incoming;
        // Checked before touching the keystream, so a replay does not desynchronise it.
        if signature[12..] != incoming.seq.to_le_bytes() {
            return Err(bad("unexpected sequence number"));
        }
        let mut message = sealed.to_vec();
        let mut checksum: [u8; 8] = signature[4..12].try_into().expect("8 bytes");
        incoming.rc4.apply_keystream(&mut message);
        incoming.rc4.apply_keystream(&mut checksum);
        if !constant_time_eq(&checksum, &incoming.checksum(&message)) {
            self.broken = true;
            return Err(bad("checksum mismatch"));
        }
        incoming.seq = incoming.seq.wrapping_add(1);
        Ok(message)
    }
}

/// NTLMSSP_MESSAGE_SIGNATURE with extended session security: version 1,
/// encrypted checksum, sequence number.
fn signature_bytes(checksum: &[u8; 8], seq: u32) -> [u8; 16] {
    let mut sig = [0u8; 16];
    sig[..4].copy_from_slice(&1u32.to_le_bytes());
    sig[4..12].copy_from_slice(checksum);
    sig[12..].copy_from_slice(&seq.to_le_bytes());
    sig
}

// ---------------------------------------------------------------------------
// Bounds-checked reading and writing of NTLM messages
// ---------------------------------------------------------------------------

fn bytes_at<'a>(
    msg: &'a [u8],
    offset: usize,
    len: usize,
    what: &str,
) -> Result<&'a [u8], NtlmError> {
    offset
        .checked_add(len)
        .and_then(|end| msg.get(offset..end))
        .ok_or_else(|| malformed(format!("{what} lies outside the message")))
}

fn u16_at(msg: &[u8], offset: usize, what: &str) -> Result<u16, NtlmError> {
    let b = bytes_at(msg, offset, 2, what)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(msg: &[u8], offset: usize, what: &str) -> Result<u32, NtlmError> {
    let b = bytes_at(msg, offset, 4, what)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// A security buffer: its descriptor (length, max length, offset) at `desc`.
/// Returns the payload and its offset.
fn field<'a>(msg: &'a [u8], desc: usize, what: &str) -> Result<(&'a [u8], usize), NtlmError> {
    let len = usize::from(u16_at(msg, desc, what)?);
    let offset = u32_at(msg, desc + 4, what)? as usize;
    Ok((bytes_at(msg, offset, len, what)?, offset))
}

/// Check the signature and message type.
fn check_header(msg: &[u8], expected_type: u32, name: &str) -> Result<(), NtlmError> {
    if msg.get(..8) != Some(SIGNATURE.as_slice()) {
        return Err(malformed(format!("{name}: no NTLMSSP signature")));
    }
    let ty = u32_at(msg, 8, name)?;
    if ty != expected_type {
        return Err(malformed(format!(
            "{name}: message type {ty}, expected {expected_type}"
        )));
    }
    Ok(())
}

/// Append `payloads` after `header` and fill in their descriptors.
/// Each entry is (descriptor position in the header, payload).
fn assemble(mut header: Vec<u8>, payloads: &[(usize, &[u8])]) -> Result<Vec<u8>, NtlmError> {
    for &(desc, data) in payloads {
        let len =
            u16::try_from(data.len()).map_err(|_| malformed("field longer than 65535 bytes"))?;
        let offset = u32::try_from(header.len()).map_err(|_| malformed("message too long"))?;
        header[desc..desc + 2].copy_from_slice(&len.to_le_bytes());
        header[desc + 2..desc + 4].copy_from_slice(&len.to_le_bytes());
        header[desc + 4..desc + 8].copy_from_slice(&offset.to_le_bytes());
        header.extend_from_slice(data);
    }
    Ok(header)
}

/// A message header: signature and type, zero-filled to `len`.
fn new_header(message_type: u32, len: usize) -> Vec<u8> {
    let mut header = vec![0u8; len];
    header[..8].copy_from_slice(SIGNATURE);
    header[8..12].copy_from_slice(&message_type.to_le_bytes());
    header
}

/// One AV_PAIR of a target info list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AvPair {
    id: u16,
    value: Vec<u8>,
}

/// Parse AV pairs up to MsvAvEOL (which is not returned). Bytes after the
/// EOL are ignored: the NTLMv2 blob puts four zero bytes there.
fn parse_av_pairs(mut buf: &[u8]) -> Result<Vec<AvPair>, NtlmError> {
    let mut pairs = Vec::new();
    if buf.is_empty() {
        return Ok(pairs);
    }
    loop {
        let id = u16_at(buf, 0, "AV pair id")?;
        let len = usize::from(u16_at(buf, 2, "AV pair length")?);
        if id == AV_EOL {
            return Ok(pairs);
        }
        let value = bytes_at(buf, 4, len, "AV pair value")?.to_vec();
        pairs.push(AvPair { id, value });
        buf = &buf[4 + len..];
    }
}

/// Serialise AV pairs and the closing MsvAvEOL.
fn encode_av_pairs(pairs: &[AvPair]) -> Result<Vec<u8>, NtlmError> {
    let mut out = Vec::new();
    for pair in pairs {
        let len = u16::try_from(pair.value.len()).map_err(|_| malformed("AV pair too long"))?;
        out.extend_from_slice(&pair.id.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&pair.value);
    }
    out.extend_from_slice(&[0; 4]);
    Ok(out)
}

fn av_value(pairs: &[AvPair], id: u16) -> Option<&[u8]> {
    pairs
        .iter()
        .find(|p| p.id == id)
        .map(|p| p.value.as_slice())
}

fn av_flags(pairs: &[AvPair]) -> u32 {
    av_value(pairs, AV_FLAGS)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map_or(0, u32::from_le_bytes)
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// Client side of the handshake.
pub struct ClientContext {
    user: String,
    domain: String,
    nt_hash: [u8; 16],
    negotiate: Option<Vec<u8>>,
    negotiated_flags: u32,
}

impl fmt::Debug for ClientContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientContext")
            .field("user", &self.user)
            .field("domain", &self.domain)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Per-attempt values a real client draws at random; tests pin them.
struct ClientNonces {
    client_challenge: [u8; 8],
    exported_session_key: [u8; 16],
}

impl ClientContext {
    /// `user` is a sAMAccountName or a UPN; `domain` may be empty.
    ///
    /// A UPN (`alice@corp.example`) with an empty domain is sent as is, with
    /// an empty domain, which is how Windows clients send it. A down-level
    /// `CORP\alice` with an empty domain is split into domain and user.
    pub fn new(user: &str, domain: &str, password: &str) -> Self {
        let (user, domain) = match user.split_once('\\') {
            Some((d, u)) if domain.is_empty() => (u, d),
            _ => (user, domain),
        };
        ClientContext {
            user: user.to_string(),
            domain: domain.to_string(),
            nt_hash: nt_hash(password),
            negotiate: None,
            negotiated_flags: 0,
        }
    }

    /// The flags agreed with the server (zero before [`Self::authenticate`]).
    pub fn negotiated_flags(&self) -> u32 {
        self.negotiated_flags
    }

    /// The NEGOTIATE message (type 1).
    pub fn negotiate(&mut self) -> Vec<u8> {
        let mut msg = new_header(NEGOTIATE_TYPE, NEGOTIATE_HEADER_LEN);
        msg[12..16].copy_from_slice(&CLIENT_FLAGS.to_le_bytes());
        // Empty domain and workstation fields point at the end of the header.
        let end = (NEGOTIATE_HEADER_LEN as u32).to_le_bytes();
        msg[20..24].copy_from_slice(&end);
        msg[28..32].copy_from_slice(&end);
        msg[32..40].copy_from_slice(&VERSION);
        self.negotiate = Some(msg.clone());
        msg
    }

    /// The AUTHENTICATE message (type 3) for the server's CHALLENGE (type 2),
    /// with the session security to seal messages on this connection.
    ///
    /// Sends a MIC (and a zero LM response) when the server sent a timestamp,
    /// as Windows clients do; `channel_bindings` is [`channel_bindings_hash`]
    /// of the server's certificate over HTTPS. Call [`Self::negotiate`] first.
    pub fn authenticate(
        &mut self,
        challenge: &[u8],
        channel_bindings: Option<[u8; 16]>,
    ) -> Result<(Vec<u8>, SessionSecurity), NtlmError> {
        let nonces = ClientNonces {
            client_challenge: random_bytes(),
            exported_session_key: random_bytes(),
        };
        self.authenticate_with(challenge, channel_bindings, &nonces, filetime_now())
    }

    fn authenticate_with(
        &mut self,
        challenge_msg: &[u8],
        channel_bindings: Option<[u8; 16]>,
        nonces: &ClientNonces,
        now: u64,
    ) -> Result<(Vec<u8>, SessionSecurity), NtlmError> {
        let negotiate = self
            .negotiate
            .take()
            .ok_or_else(|| malformed("negotiate() must come before authenticate()"))?;
        let challenge = ParsedChallenge::parse(challenge_msg)?;
        check_flags(challenge.flags, "server")?;
        self.negotiated_flags = challenge.flags;

        // The MIC goes with the server's timestamp, as Windows clients do it.
        let server_time = av_value(&challenge.target_info, AV_TIMESTAMP)
            .and_then(|v| <[u8; 8]>::try_from(v).ok());
        let send_mic = server_time.is_some();
        let timestamp = server_time.unwrap_or(now.to_le_bytes());
        let target_info = client_target_info(challenge.target_info, send_mic, channel_bindings)?;

        let response_key = ntowfv2(&self.nt_hash, &self.user, &self.domain);
        let blob = ntlmv2_blob(&timestamp, &nonces.client_challenge, &target_info);
        let proof = nt_proof_str(&response_key, &challenge.server_challenge, &blob);
        let key_exchange_key = session_base_key(&response_key, &proof);
        let nt_response = [proof.as_slice(), &blob].concat();
        let lm_response = if send_mic {
            vec![0u8; 24]
        } else {
            lmv2_response(
                &response_key,
                &challenge.server_challenge,
                &nonces.client_challenge,
            )
        };
        let (exported_key, encrypted_key) = if challenge.flags & NEGOTIATE_KEY_EXCH != 0 {
            let exported = nonces.exported_session_key;
            (exported, rc4k(&key_exchange_key, &exported).to_vec())
        } else {
            (key_exchange_key, Vec::new())
        };

        let mut header = new_header(AUTHENTICATE_TYPE, AUTH_HEADER_LEN);
        header[AUTH_FLAGS_OFFSET..AUTH_FLAGS_OFFSET + 4]
            .copy_from_slice(&challenge.flags.to_le_bytes());
        header[64..72].copy_from_slice(&VERSION);
        let (domain, user) = (utf16le(&self.domain), utf16le(&self.user));
        let mut msg = assemble(
            header,
            &[
                (AUTH_DOMAIN, &domain),
                (AUTH_USER, &user),
                (AUTH_WORKSTATION, &[]),
                (AUTH_LM, &lm_response),
                (AUTH_NT, &nt_response),
                (AUTH_SESSION_KEY, &encrypted_key),
            ],
        )?;
        if send_mic {
            let mic = compute_mic(&exported_key, &negotiate, challenge_msg, &msg);
            msg[AUTH_MIC_OFFSET..AUTH_MIC_OFFSET + 16].copy_from_slice(&mic);
        }
        Ok((
            msg,
            SessionSecurity::from_exported_key(exported_key, Side::Client),
        ))
    }
}

/// The parts of a CHALLENGE the client uses.
struct ParsedChallenge {
    flags: u32,
    server_challenge: [u8; 8],
    target_info: Vec<AvPair>,
}

impl ParsedChallenge {
    fn parse(msg: &[u8]) -> Result<Self, NtlmError> {
        check_header(msg, CHALLENGE_TYPE, "CHALLENGE")?;
        let flags = u32_at(msg, 20, "CHALLENGE flags")?;
        let server_challenge = bytes_at(msg, 24, 8, "server challenge")?
            .try_into()
            .expect("8 bytes");
        let (target_info, _) = field(msg, 40, "CHALLENGE target info")?;
        Ok(ParsedChallenge {
            flags,
            server_challenge,
            target_info: parse_av_pairs(target_info)?,
        })
    }
}

/// The server's target info with the client's additions: MsvAvFlags (MIC
/// present) and MsvAvChannelBindings, replacing any the server sent.
fn client_target_info(
    mut pairs: Vec<AvPair>,
    mic: bool,
    channel_bindings: Option<[u8; 16]>,
) -> Result<Vec<u8>, NtlmError> {
    if mic {
        let flags = av_flags(&pairs) | AV_FLAG_MIC_PRESENT;
        pairs.retain(|p| p.id != AV_FLAGS);
        pairs.push(AvPair {
            id: AV_FLAGS,
            value: flags.to_le_bytes().to_vec(),
        });
    }
    if let Some(bindings) = channel_bindings {
        pairs.retain(|p| p.id != AV_CHANNEL_BINDINGS);
        pairs.push(AvPair {
            id: AV_CHANNEL_BINDINGS,
            value: bindings.to_vec(),
        });
    }
    encode_av_pairs(&pairs)
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// Names the acceptor advertises in its CHALLENGE's target info.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    pub netbios_domain: String,
    pub netbios_computer: String,
    pub dns_domain: String,
    pub dns_computer: String,
}

/// Who authenticated, as the AUTHENTICATE message named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub user: String,
    pub domain: String,
}

/// What the acceptor must remember between CHALLENGE and AUTHENTICATE.
struct Challenged {
    negotiate: Vec<u8>,
    challenge: Vec<u8>,
    server_challenge: [u8; 8],
}

/// Acceptor side of the handshake (one per connection).
pub struct ServerContext {
    identity: ServerIdentity,
    state: Option<Challenged>,
    negotiated_flags: u32,
}

impl fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerContext")
            .field("identity", &self.identity)
            .field("challenged", &self.state.is_some())
            .field(
                "negotiated_flags",
                &format_args!("{:#010x}", self.negotiated_flags),
            )
            .finish()
    }
}

impl ServerContext {
    pub fn new(identity: ServerIdentity) -> Self {
        ServerContext {
            identity,
            state: None,
            negotiated_flags: 0,
        }
    }

    /// The flags sent in the CHALLENGE (zero before [`Self::challenge`]).
    pub fn negotiated_flags(&self) -> u32 {
        self.negotiated_flags
    }

    /// Answer a NEGOTIATE with a CHALLENGE.
    pub fn challenge(&mut self, negotiate: &[u8]) -> Result<Vec<u8>, NtlmError> {
        self.challenge_with(negotiate, random_bytes(), filetime_now())
    }

    fn challenge_with(
        &mut self,
        negotiate: &[u8],
        server_challenge: [u8; 8],
        now: u64,
    ) -> Result<Vec<u8>, NtlmError> {
        check_header(negotiate, NEGOTIATE_TYPE, "NEGOTIATE")?;
        let client_flags = u32_at(negotiate, 12, "NEGOTIATE flags")?;
        check_flags(client_flags, "client")?;
        let flags = SERVER_BASE_FLAGS | (client_flags & SERVER_OPTIONAL_FLAGS);

        let id = &self.identity;
        let target_info = encode_av_pairs(&[
            AvPair {
                id: AV_NB_DOMAIN_NAME,
                value: utf16le(&id.netbios_domain),
            },
            AvPair {
                id: AV_NB_COMPUTER_NAME,
                value: utf16le(&id.netbios_computer),
            },
            AvPair {
                id: AV_DNS_DOMAIN_NAME,
                value: utf16le(&id.dns_domain),
            },
            AvPair {
                id: AV_DNS_COMPUTER_NAME,
                value: utf16le(&id.dns_computer),
            },
            AvPair {
                id: AV_TIMESTAMP,
                value: now.to_le_bytes().to_vec(),
            },
        ])?;
        let mut header = new_header(CHALLENGE_TYPE, CHALLENGE_HEADER_LEN);
        header[20..24].copy_from_slice(&flags.to_le_bytes());
        header[24..32].copy_from_slice(&server_challenge);
        header[48..56].copy_from_slice(&VERSION);
        let target_name = utf16le(&id.netbios_domain);
        let challenge = assemble(header, &[(12, &target_name), (40, &target_info)])?;

        self.negotiated_flags = flags;
        self.state = Some(Challenged {
            negotiate: negotiate.to_vec(),
            challenge: challenge.clone(),
            server_challenge,
        });
        Ok(challenge)
    }

    /// Verify an AUTHENTICATE. `nt_hash_of` returns the NT hash of the named
    /// account if it exists. `expected_bindings` is checked only when the client
    /// sent channel bindings (Windows' CbtHardeningLevel=Relaxed).
    ///
    /// The context is spent after one call, whatever the outcome: a client
    /// that failed starts again with a new NEGOTIATE (and a new context).
    pub fn authenticate(
        &mut self,
        authenticate: &[u8],
        nt_hash_of: &dyn Fn(&str, &str) -> Option<[u8; 16]>,
        expected_bindings: Option<[u8; 16]>,
    ) -> Result<(AuthenticatedUser, SessionSecurity), NtlmError> {
        let state = self
            .state
            .take()
            .ok_or_else(|| malformed("AUTHENTICATE without a preceding CHALLENGE"))?;
        let auth = ParsedAuthenticate::parse(authenticate)?;
        if auth.user.is_empty() && auth.nt_response.is_empty() {
            return Err(NtlmError::LogonFailure); // anonymous logons are not accepted
        }
        if auth.nt_response.len() == 24 {
            return Err(malformed("NTLMv1 response; only NTLMv2 is accepted"));
        }
        if auth.nt_response.len() < 16 + BLOB_HEADER_LEN {
            return Err(malformed("NTLMv2 response too short"));
        }
        let nt_hash = nt_hash_of(&auth.user, &auth.domain).ok_or(NtlmError::LogonFailure)?;

        // The proof first: nothing else in the message is trustworthy before it.
        let response_key = ntowfv2(&nt_hash, &auth.user, &auth.domain);
        let (sent_proof, blob) = auth.nt_response.split_at(16);
        let proof = nt_proof_str(&response_key, &state.server_challenge, blob);
        if !constant_time_eq(&proof, sent_proof) {
            return Err(NtlmError::LogonFailure);
        }
        let key_exchange_key = session_base_key(&response_key, &proof);
        let exported_key = if auth.flags & NEGOTIATE_KEY_EXCH != 0 {
            let encrypted: &[u8; 16] = auth
                .encrypted_session_key
                .try_into()
                .map_err(|_| malformed("encrypted session key is not 16 bytes"))?;
            rc4k(&key_exchange_key, encrypted)
        } else {
            key_exchange_key
        };

        let client_info = parse_av_pairs(&blob[BLOB_HEADER_LEN..])?;
        if av_flags(&client_info) & AV_FLAG_MIC_PRESENT != 0 {
            verify_mic(&exported_key, &state, authenticate, &auth)?;
        }
        verify_bindings(&client_info, expected_bindings)?;

        let user = AuthenticatedUser {
            user: auth.user,
            domain: auth.domain,
        };
        Ok((
            user,
            SessionSecurity::from_exported_key(exported_key, Side::Server),
        ))
    }
}

/// The parts of an AUTHENTICATE the acceptor uses.
struct ParsedAuthenticate<'a> {
    flags: u32,
    nt_response: &'a [u8],
    encrypted_session_key: &'a [u8],
    user: String,
    domain: String,
    /// Where the first payload starts: a MIC must end before it.
    payload_start: usize,
}

impl<'a> ParsedAuthenticate<'a> {
    fn parse(msg: &'a [u8]) -> Result<Self, NtlmError> {
        check_header(msg, AUTHENTICATE_TYPE, "AUTHENTICATE")?;
        let flags = u32_at(msg, AUTH_FLAGS_OFFSET, "AUTHENTICATE flags")?;
        check_flags(flags, "client")?;
        let mut payload_start = msg.len();
        let mut read = |desc: usize, what: &str| -> Result<&'a [u8], NtlmError> {
            let (data, offset) = field(msg, desc, what)?;
            if !data.is_empty() {
                payload_start = payload_start.min(offset);
            }
            Ok(data)
        };
        let _lm_response = read(AUTH_LM, "LM response")?;
        let nt_response = read(AUTH_NT, "NT response")?;
        let domain = read(AUTH_DOMAIN, "domain name")?;
        let user = read(AUTH_USER, "user name")?;
        let _workstation = read(AUTH_WORKSTATION, "workstation name")?;
        let encrypted_session_key = read(AUTH_SESSION_KEY, "encrypted session key")?;
        Ok(ParsedAuthenticate {
            flags,
            nt_response,
            encrypted_session_key,
            user: from_utf16le(user, "user name")?,
            domain: from_utf16le(domain, "domain name")?,
            payload_start,
        })
    }
}

/// Check the MIC over NEGOTIATE, CHALLENGE and the AUTHENTICATE with its MIC zeroed.
fn verify_mic(
    exported_key: &[u8; 16],
    state: &Challenged,
    authenticate: &[u8],
    auth: &ParsedAuthenticate<'_>,
) -> Result<(), NtlmError> {
    if auth.payload_start < AUTH_HEADER_LEN || authenticate.len() < AUTH_HEADER_LEN {
        return Err(malformed(
            "MIC announced but the message has no room for it",
        ));
    }
    let mic_range = AUTH_MIC_OFFSET..AUTH_MIC_OFFSET + 16;
    let mut zeroed = authenticate.to_vec();
    zeroed[mic_range.clone()].fill(0);
    let expected = compute_mic(exported_key, &state.negotiate, &state.challenge, &zeroed);
    if !constant_time_eq(&expected, &authenticate[mic_range]) {
        return Err(NtlmError::BadMic);
    }
    Ok(())
}

/// Relaxed channel-binding hardening: absent or all-zero bindings from the
/// client are accepted; bindings it did send must match ours.
fn verify_bindings(client_info: &[AvPair], expected: Option<[u8; 16]>) -> Result<(), NtlmError> {
    let (Some(sent), Some(expected)) = (av_value(client_info, AV_CHANNEL_BINDINGS), expected)
    else {
        return Ok(());
    };
    if sent.iter().all(|&b| b == 0) || constant_time_eq(sent, &expected) {
        Ok(())
    } else {
        Err(NtlmError::ChannelBindings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    // MS-NLMP 4.2.1 common values and 4.2.4 NTLMv2 results.
    const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    const SPEC_TARGET_INFO: &str =
        "02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000";
    /// The 4.2.4 CHALLENGE_MESSAGE (flags e28a8233, no MsvAvTimestamp).
    const SPEC_CHALLENGE: &str = "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef\
        00000000000000002400240044000000060070170000000f530065007200760065007200\
        02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000";
    const SPEC_NTOWFV2: &str = "0c868a403bfd7a93a3001ef22ef02e3f";
    const SPEC_NT_PROOF: &str = "68cd0ab851e51c96aabc927bebef6a1c";
    const SPEC_SESSION_BASE_KEY: &str = "8de40ccadbc14a82f15cb0ad0de95ca3";
    const SPEC_ENCRYPTED_SESSION_KEY: &str = "c5dad2544fc9799094ce1ce90bc9d03e";
    const SPEC_LMV2: &str = "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa";

    fn spec_nonces() -> ClientNonces {
        ClientNonces {
            client_challenge: [0xaa; 8],
            exported_session_key: [0x55; 16],
        }
    }

    #[test]
    fn nt_hash_matches_ms_nlmp_4_2_2_1_2() {
        assert_eq!(
            hex(&nt_hash("Password")),
            "a4f49c406510bdcab6824ee7c30fd852"
        );
    }

    #[test]
    fn ntowfv2_matches_ms_nlmp_4_2_4_1_1() {
        assert_eq!(
            hex(&ntowfv2(&nt_hash("Password"), "User", "Domain")),
            SPEC_NTOWFV2
        );
        // The user name is upper-cased, the domain is not.
        assert_eq!(
            hex(&ntowfv2(&nt_hash("Password"), "user", "Domain")),
            SPEC_NTOWFV2
        );
        assert_ne!(
            hex(&ntowfv2(&nt_hash("Password"), "User", "DOMAIN")),
            SPEC_NTOWFV2
        );
    }

    #[test]
    fn ntlmv2_response_matches_ms_nlmp_4_2_4_2() {
        let key: [u8; 16] = unhex(SPEC_NTOWFV2).try_into().unwrap();
        let blob = ntlmv2_blob(&[0; 8], &[0xaa; 8], &unhex(SPEC_TARGET_INFO));
        let proof = nt_proof_str(&key, &SERVER_CHALLENGE, &blob);
        assert_eq!(hex(&proof), SPEC_NT_PROOF);
        let base = session_base_key(&key, &proof);
        assert_eq!(hex(&base), SPEC_SESSION_BASE_KEY);
        assert_eq!(hex(&rc4k(&base, &[0x55; 16])), SPEC_ENCRYPTED_SESSION_KEY);
        assert_eq!(
            hex(&lmv2_response(&key, &SERVER_CHALLENGE, &[0xaa; 8])),
            SPEC_LMV2
        );
    }

    /// The whole client path against the spec's CHALLENGE: no timestamp, so
    /// no MIC and an LMv2 response, exactly as 4.2.4 computes it.
    #[test]
    fn client_authenticate_matches_ms_nlmp_4_2_4() {
        let mut client = ClientContext::new("User", "Domain", "Password");
        client.negotiate();
        let (auth, _) = client
            .authenticate_with(&unhex(SPEC_CHALLENGE), None, &spec_nonces(), 0)
            .unwrap();
        let (nt, _) = field(&auth, AUTH_NT, "nt").unwrap();
        let expected_blob = ntlmv2_blob(&[0; 8], &[0xaa; 8], &unhex(SPEC_TARGET_INFO));
        assert_eq!(hex(&nt[..16]), SPEC_NT_PROOF);
        assert_eq!(&nt[16..], expected_blob.as_slice());
        assert_eq!(hex(field(&auth, AUTH_LM, "lm").unwrap().0), SPEC_LMV2);
        assert_eq!(
            hex(field(&auth, AUTH_SESSION_KEY, "key").unwrap().0),
            SPEC_ENCRYPTED_SESSION_KEY
        );
        assert_eq!(
            field(&auth, AUTH_USER, "user").unwrap().0,
            utf16le("User").as_slice()
        );
        assert_eq!(
            field(&auth, AUTH_DOMAIN, "domain").unwrap().0,
            utf16le("Domain").as_slice()
        );
        assert_eq!(
            &auth[AUTH_MIC_OFFSET..AUTH_HEADER_LEN],
            &[0; 16],
            "no MIC without a timestamp"
        );
    }

    /// MS-NLMP 4.2.4.4: "Plaintext" sealed with RandomSessionKey 0x55..55.
    #[test]
    fn seal_matches_ms_nlmp_4_2_4_4() {
        let mut client = SessionSecurity::from_exported_key([0x55; 16], Side::Client);
        let (signature, sealed) = client.seal(&utf16le("Plaintext"));
        assert_eq!(hex(&sealed), "54e50165bf1936dc996020c1811b0f06fb5f");
        assert_eq!(hex(&signature), "010000007fb38ec5c55d497600000000");
    }

    // ---- in-process client <-> server -------------------------------------

    fn identity() -> ServerIdentity {
        ServerIdentity {
            netbios_domain: "CORP".into(),
            netbios_computer: "EXCH01".into(),
            dns_domain: "corp.example".into(),
            dns_computer: "exch01.corp.example".into(),
        }
    }

    /// The lab's account store: alice in CORP (also by UPN) with one password.
    fn lookup(user: &str, domain: &str) -> Option<[u8; 16]> {
        let known = (user.eq_ignore_ascii_case("alice") && domain.eq_ignore_ascii_case("CORP"))
            || (user.eq_ignore_ascii_case("alice@corp.example") && domain.is_empty());
        known.then(|| nt_hash("S3cret!"))
    }

    /// The three messages and both ends' results.
    struct Handshake {
        negotiate: Vec<u8>,
        challenge: Vec<u8>,
        authenticate: Vec<u8>,
        client: SessionSecurity,
    }

    fn client_messages(
        user: &str,
        domain: &str,
        password: &str,
        bindings: Option<[u8; 16]>,
    ) -> (Handshake, ServerContext) {
        let mut client = ClientContext::new(user, domain, password);
        let mut server = ServerContext::new(identity());
        let negotiate = client.negotiate();
        let challenge = server.challenge(&negotiate).unwrap();
        let (authenticate, security) = client.authenticate(&challenge, bindings).unwrap();
        (
            Handshake {
                negotiate,
                challenge,
                authenticate,
                client: security,
            },
            server,
        )
    }

    fn handshake(
        user: &str,
        domain: &str,
        password: &str,
        client_bindings: Option<[u8; 16]>,
        server_bindings: Option<[u8; 16]>,
    ) -> Result<(AuthenticatedUser, SessionSecurity, SessionSecurity), NtlmError> {
        let (h, mut server) = client_messages(user, domain, password, client_bindings);
        let (who, server_security) =
            server.authenticate(&h.authenticate, &lookup, server_bindings)?;
        Ok((who, h.client, server_security))
    }

    fn exchange(client: &mut SessionSecurity, server: &mut SessionSecurity) {
        for i in 0..5 {
            let request = format!("<s:Envelope>request {i}</s:Envelope>").repeat(i + 1);
            let (sig, sealed) = client.seal(request.as_bytes());
            assert_ne!(sealed, request.as_bytes());
            assert_eq!(server.unseal(&sig, &sealed).unwrap(), request.as_bytes());
            let reply = format!("reply {i}");
            let (sig, sealed) = server.seal(reply.as_bytes());
            assert_eq!(client.unseal(&sig, &sealed).unwrap(), reply.as_bytes());
        }
        // An empty message is legal too.
        let (sig, sealed) = client.seal(b"");
        assert_eq!(server.unseal(&sig, &sealed).unwrap(), b"");
    }

    #[test]
    fn round_trip_then_seal_both_ways() {
        let (who, mut client, mut server) =
            handshake("alice", "CORP", "S3cret!", None, None).unwrap();
        assert_eq!(
            who,
            AuthenticatedUser {
                user: "alice".into(),
                domain: "CORP".into()
            }
        );
        exchange(&mut client, &mut server);
    }

    #[test]
    fn negotiated_flags_include_sealing() {
        let mut client = ClientContext::new("alice", "CORP", "S3cret!");
        let mut server = ServerContext::new(identity());
        let challenge = server.challenge(&client.negotiate()).unwrap();
        client.authenticate(&challenge, None).unwrap();
        let wanted = NEGOTIATE_SEAL
            | NEGOTIATE_SIGN
            | NEGOTIATE_KEY_EXCH
            | NEGOTIATE_128
            | NEGOTIATE_EXTENDED_SESSIONSECURITY;
        assert_eq!(client.negotiated_flags() & wanted, wanted);
        assert_eq!(server.negotiated_flags(), client.negotiated_flags());
    }

    #[test]
    fn challenge_carries_the_server_identity() {
        let mut server = ServerContext::new(identity());
        let challenge = server
            .challenge(&ClientContext::new("a", "", "").negotiate())
            .unwrap();
        let (target_name, _) = field(&challenge, 12, "target name").unwrap();
        assert_eq!(target_name, utf16le("CORP").as_slice());
        let parsed = ParsedChallenge::parse(&challenge).unwrap();
        let ids: Vec<u16> = parsed.target_info.iter().map(|p| p.id).collect();
        assert_eq!(
            ids,
            [
                AV_NB_DOMAIN_NAME,
                AV_NB_COMPUTER_NAME,
                AV_DNS_DOMAIN_NAME,
                AV_DNS_COMPUTER_NAME,
                AV_TIMESTAMP
            ]
        );
        assert_eq!(
            av_value(&parsed.target_info, AV_DNS_COMPUTER_NAME),
            Some(utf16le("exch01.corp.example").as_slice())
        );
        // Two challenges are never the same.
        let again = ServerContext::new(identity())
            .challenge(&ClientContext::new("a", "", "").negotiate())
            .unwrap();
        assert_ne!(challenge[24..32], again[24..32]);
    }

    #[test]
    fn client_sends_mic_and_zero_lm_response_when_server_sends_timestamp() {
        let (h, _) = client_messages("alice", "CORP", "S3cret!", None);
        assert_ne!(&h.authenticate[AUTH_MIC_OFFSET..AUTH_HEADER_LEN], &[0; 16]);
        assert_eq!(field(&h.authenticate, AUTH_LM, "lm").unwrap().0, &[0; 24]);
        let (nt, _) = field(&h.authenticate, AUTH_NT, "nt").unwrap();
        let info = parse_av_pairs(&nt[16 + BLOB_HEADER_LEN..]).unwrap();
        assert_eq!(av_flags(&info) & AV_FLAG_MIC_PRESENT, AV_FLAG_MIC_PRESENT);
        // The blob's timestamp is the server's.
        let challenge_info = ParsedChallenge::parse(&h.challenge).unwrap().target_info;
        assert_eq!(Some(&nt[24..32]), av_value(&challenge_info, AV_TIMESTAMP));
        assert!(!h.negotiate.is_empty());
    }

    #[test]
    fn wrong_password_is_logon_failure() {
        assert_eq!(
            handshake("alice", "CORP", "wrong", None, None).unwrap_err(),
            NtlmError::LogonFailure
        );
    }

    #[test]
    fn unknown_user_is_logon_failure() {
        assert_eq!(
            handshake("mallory", "CORP", "S3cret!", None, None).unwrap_err(),
            NtlmError::LogonFailure
        );
    }

    #[test]
    fn upn_with_empty_domain_works() {
        let (h, mut server) = client_messages("alice@corp.example", "", "S3cret!", None);
        assert_eq!(
            field(&h.authenticate, AUTH_DOMAIN, "domain").unwrap().0,
            b""
        );
        assert_eq!(
            field(&h.authenticate, AUTH_USER, "user").unwrap().0,
            utf16le("alice@corp.example").as_slice()
        );
        let (who, mut server_security) =
            server.authenticate(&h.authenticate, &lookup, None).unwrap();
        assert_eq!(
            who,
            AuthenticatedUser {
                user: "alice@corp.example".into(),
                domain: String::new()
            }
        );
        let mut client = h.client;
        exchange(&mut client, &mut server_security);
    }

    #[test]
    fn down_level_name_with_empty_domain_is_split() {
        let (who, _, _) = handshake("CORP\\alice", "", "S3cret!", None, None).unwrap();
        assert_eq!(
            who,
            AuthenticatedUser {
                user: "alice".into(),
                domain: "CORP".into()
            }
        );
    }

    #[test]
    fn tampered_mic_is_bad_mic() {
        let (mut h, mut server) = client_messages("alice", "CORP", "S3cret!", None);
        h.authenticate[AUTH_MIC_OFFSET] ^= 1;
        assert_eq!(
            server
                .authenticate(&h.authenticate, &lookup, None)
                .unwrap_err(),
            NtlmError::BadMic
        );
    }

    #[test]
    fn tampered_workstation_flags_or_version_fail_the_mic() {
        // Bytes outside the NTLMv2 proof are covered by the MIC only.
        for position in [AUTH_FLAGS_OFFSET + 1, 64, 66] {
            let (mut h, mut server) = client_messages("alice", "CORP", "S3cret!", None);
            h.authenticate[position] ^= 0x04;
            assert_eq!(
                server
                    .authenticate(&h.authenticate, &lookup, None)
                    .unwrap_err(),
                NtlmError::BadMic,
                "byte {position}"
            );
        }
    }

    #[test]
    fn channel_bindings_are_checked_when_both_sides_have_them() {
        let ours = channel_bindings_hash_from_cert_hash(b"the lab certificate hash");
        let theirs = channel_bindings_hash_from_cert_hash(b"a relaying attacker's certificate");
        assert!(handshake("alice", "CORP", "S3cret!", Some(ours), Some(ours)).is_ok());
        assert_eq!(
            handshake("alice", "CORP", "S3cret!", Some(theirs), Some(ours)).unwrap_err(),
            NtlmError::ChannelBindings
        );
        // Relaxed hardening: a client without (or with zero) bindings is accepted.
        assert!(handshake("alice", "CORP", "S3cret!", None, Some(ours)).is_ok());
        assert!(handshake("alice", "CORP", "S3cret!", Some([0; 16]), Some(ours)).is_ok());
        // A server that expects none ignores the client's.
        assert!(handshake("alice", "CORP", "S3cret!", Some(theirs), None).is_ok());
    }

    #[test]
    fn tampered_sealed_byte_is_bad_signature() {
        let (_, mut client, mut server) =
            handshake("alice", "CORP", "S3cret!", None, None).unwrap();
        let (sig, mut sealed) = client.seal(b"<s:Envelope/>");
        sealed[3] ^= 0x20;
        assert!(matches!(
            server.unseal(&sig, &sealed),
            Err(NtlmError::BadSignature(_))
        ));
        // The keystream is gone: the session refuses everything after.
        let (sig, sealed) = client.seal(b"next");
        assert!(matches!(
            server.unseal(&sig, &sealed),
            Err(NtlmError::BadSignature(_))
        ));
    }

    #[test]
    fn tampered_checksum_is_bad_signature() {
        let (_, mut client, mut server) =
            handshake("alice", "CORP", "S3cret!", None, None).unwrap();
        let (mut sig, sealed) = client.seal(b"<s:Envelope/>");
        sig[6] ^= 1;
        assert!(matches!(
            server.unseal(&sig, &sealed),
            Err(NtlmError::BadSignature(_))
        ));
    }

    #[test]
    fn replayed_message_is_bad_signature_and_session_survives() {
        let (_, mut client, mut server) =
            handshake("alice", "CORP", "S3cret!", None, None).unwrap();
        let (sig, sealed) = client.seal(b"first");
        assert_eq!(server.unseal(&sig, &sealed).unwrap(), b"first");
        assert!(matches!(
            server.unseal(&sig, &sealed),
            Err(NtlmError::BadSignature(_))
        ));
        let (sig, sealed) = client.seal(b"second");
        assert_eq!(server.unseal(&sig, &sealed).unwrap(), b"second");
    }

    #[test]
    fn malformed_signatures_are_bad_signature() {
        let mut server = SessionSecurity::from_exported_key([7; 16], Side::Server);
        let mut client = SessionSecurity::from_exported_key([7; 16], Side::Client);
        let (sig, sealed) = client.seal(b"x");
        assert!(matches!(
            server.unseal(&sig[..15], &sealed),
            Err(NtlmError::BadSignature(_))
        ));
        let mut wrong_version = sig;
        wrong_version[0] = 2;
        assert!(matches!(
            server.unseal(&wrong_version, &sealed),
            Err(NtlmError::BadSignature(_))
        ));
        // Neither consumed the keystream.
        assert_eq!(server.unseal(&sig, &sealed).unwrap(), b"x");
    }

    #[test]
    fn a_side_cannot_unseal_its_own_messages() {
        let mut client = SessionSecurity::from_exported_key([9; 16], Side::Client);
        let mut other_client = SessionSecurity::from_exported_key([9; 16], Side::Client);
        let (sig, sealed) = client.seal(b"hello");
        assert!(other_client.unseal(&sig, &sealed).is_err());
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let client = ClientContext::new("alice", "CORP", "S3cret!");
        let text = format!("{client:?}");
        assert!(!text.contains("S3cret!") && text.contains("redacted"));
        let security = SessionSecurity::from_exported_key([0xab; 16], Side::Client);
        let text = format!("{security:?}");
        assert!(!text.contains("171") && text.contains("redacted")); // 171 = 0xab
    }

    // ---- hostile input ----------------------------------------------------

    #[test]
    fn truncated_authenticate_never_panics() {
        let (h, _) = client_messages("alice", "CORP", "S3cret!", None);
        for len in 0..h.authenticate.len() {
            let mut server = ServerContext::new(identity());
            server.challenge(&h.negotiate).unwrap();
            assert!(
                server
                    .authenticate(&h.authenticate[..len], &lookup, None)
                    .is_err(),
                "length {len}"
            );
        }
    }

    /// Every single-bit change is caught, by parsing, the proof or the MIC.
    #[test]
    fn flipped_authenticate_bits_never_pass() {
        let (h, _) = client_messages("alice", "CORP", "S3cret!", None);
        for position in 0..h.authenticate.len() {
            for bit in [0x01u8, 0x80] {
                // Replay the exact exchange so the MIC's inputs match.
                let mut server = ServerContext::new(identity());
                server.state = Some(Challenged {
                    negotiate: h.negotiate.clone(),
                    challenge: h.challenge.clone(),
                    server_challenge: h.challenge[24..32].try_into().unwrap(),
                });
                let mut msg = h.authenticate.clone();
                msg[position] ^= bit;
                assert!(
                    server.authenticate(&msg, &lookup, None).is_err(),
                    "byte {position} bit {bit:#x}"
                );
            }
        }
    }

    #[test]
    fn hostile_field_descriptors_are_malformed() {
        let (h, _) = client_messages("alice", "CORP", "S3cret!", None);
        for desc in [
            AUTH_LM,
            AUTH_NT,
            AUTH_DOMAIN,
            AUTH_USER,
            AUTH_WORKSTATION,
            AUTH_SESSION_KEY,
        ] {
            for (len, offset) in [
                (0xffff_u16, 0u32),
                (16, u32::MAX),
                (16, u32::MAX - 8),
                (1, h.authenticate.len() as u32),
            ] {
                let mut server = ServerContext::new(identity());
                server.challenge(&h.negotiate).unwrap();
                let mut msg = h.authenticate.clone();
                msg[desc..desc + 2].copy_from_slice(&len.to_le_bytes());
                msg[desc + 4..desc + 8].copy_from_slice(&offset.to_le_bytes());
                assert!(server.authenticate(&msg, &lookup, None).is_err());
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..2000 {
            let len = (next() % 200) as usize;
            let mut msg: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half the time, keep a valid header so parsing goes deeper.
            if round % 2 == 0 && len >= 12 {
                msg[..8].copy_from_slice(SIGNATURE);
                msg[8..12].copy_from_slice(&((round / 2 % 3 + 1) as u32).to_le_bytes());
            }
            let mut server = ServerContext::new(identity());
            let _ = server.challenge(&msg);
            let mut server = ServerContext::new(identity());
            server
                .challenge(&ClientContext::new("a", "", "").negotiate())
                .unwrap();
            let _ = server.authenticate(&msg, &lookup, Some([1; 16]));
            let mut client = ClientContext::new("alice", "CORP", "S3cret!");
            client.negotiate();
            let _ = client.authenticate(&msg, Some([1; 16]));
            let _ = parse_av_pairs(&msg);
            let _ = channel_bindings_hash(&msg);
        }
    }

    #[test]
    fn truncated_challenge_never_panics() {
        let mut server = ServerContext::new(identity());
        let negotiate = ClientContext::new("a", "", "").negotiate();
        let challenge = server.challenge(&negotiate).unwrap();
        for len in 0..challenge.len() {
            let mut client = ClientContext::new("alice", "CORP", "S3cret!");
            client.negotiate();
            // Cutting only the target info's tail must fail, not misparse.
            assert!(
                client.authenticate(&challenge[..len], None).is_err(),
                "length {len}"
            );
        }
        for len in 0..negotiate.len() {
            let result = ServerContext::new(identity()).challenge(&negotiate[..len]);
            assert_eq!(result.is_ok(), len >= 16, "length {len}");
        }
    }

    #[test]
    fn protocol_order_is_enforced() {
        let mut server = ServerContext::new(identity());
        assert!(matches!(
            server.authenticate(&[], &lookup, None),
            Err(NtlmError::Malformed(_))
        ));
        let mut client = ClientContext::new("alice", "CORP", "S3cret!");
        assert!(matches!(
            client.authenticate(&unhex(SPEC_CHALLENGE), None),
            Err(NtlmError::Malformed(_))
        ));
        // An AUTHENTICATE cannot be replayed on the same context.
        let (h, mut server) = client_messages("alice", "CORP", "S3cret!", None);
        server.authenticate(&h.authenticate, &lookup, None).unwrap();
        assert!(server.authenticate(&h.authenticate, &lookup, None).is_err());
    }

    #[test]
    fn weak_peers_are_refused() {
        let mut negotiate = ClientContext::new("a", "", "").negotiate();
        let flags = CLIENT_FLAGS & !NEGOTIATE_EXTENDED_SESSIONSECURITY;
        negotiate[12..16].copy_from_slice(&flags.to_le_bytes());
        assert!(
            ServerContext::new(identity())
                .challenge(&negotiate)
                .is_err()
        );
        let flags = CLIENT_FLAGS & !NEGOTIATE_128;
        negotiate[12..16].copy_from_slice(&flags.to_le_bytes());
        assert!(
            ServerContext::new(identity())
                .challenge(&negotiate)
                .is_err()
        );
    }

    // ---- channel bindings -------------------------------------------------

    #[test]
    fn channel_bindings_struct_matches_pyspnego() {
        // md5(GssChannelBindings(application_data=b"tls-server-end-point:" + sha256(b"certificate")).pack())
        let sha256 = rustls_hash(
            &rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
            b"certificate",
        );
        assert_eq!(
            hex(&channel_bindings_hash_from_cert_hash(&sha256)),
            "a8398e96473163fef6cae76013e8ab5a"
        );
    }

    #[test]
    fn sha512_matches_fips_180_vectors() {
        assert!(hex(&sha512(b"abc")).starts_with("ddaf35a193617abacc417349ae204131"));
        assert!(hex(&sha512(&[b'a'; 200])).starts_with("4b11459c33f52a22ee8236782714c150"));
        assert_eq!(
            hex(&sha512(b"")),
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce\
             47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
                .replace(' ', "")
        );
    }

    #[test]
    fn ecdsa_p256_certificate_binds_with_sha256() {
        let cert =
            rcgen::generate_simple_self_signed(vec!["exch01.corp.example".to_string()]).unwrap();
        let der = cert.cert.der().to_vec();
        assert_eq!(cert_signature_hash(&der), CertHash::Sha256);
        let sha256 = rustls_hash(
            &rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
            &der,
        );
        assert_eq!(
            channel_bindings_hash(&der),
            channel_bindings_hash_from_cert_hash(&sha256)
        );
    }

    #[test]
    fn certificate_signature_hash_is_read_from_der() {
        let cert_with = |oid: &[u8]| {
            // SEQUENCE { SEQUENCE {} (tbs), SEQUENCE { OID }, BIT STRING }
            let mut alg = vec![0x06, oid.len() as u8];
            alg.extend_from_slice(oid);
            let mut body = vec![0x30, 0x00, 0x30, alg.len() as u8];
            body.extend_from_slice(&alg);
            body.extend_from_slice(&[0x03, 0x01, 0x00]);
            let mut cert = vec![0x30, body.len() as u8];
            cert.extend_from_slice(&body);
            cert
        };
        let ecdsa_sha384 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
        let rsa_sha512 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
        let rsa_sha1 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
        assert_eq!(
            cert_signature_hash(&cert_with(&ecdsa_sha384)),
            CertHash::Sha384
        );
        assert_eq!(
            cert_signature_hash(&cert_with(&rsa_sha512)),
            CertHash::Sha512
        );
        assert_eq!(cert_signature_hash(&cert_with(&rsa_sha1)), CertHash::Sha256);
        assert_eq!(cert_signature_hash(b"not a certificate"), CertHash::Sha256);
    }

    // ---- winrm-rs interop -------------------------------------------------

    #[test]
    fn winrm_rs_sealed_request_unseals_on_our_server() {
        let key = [0x42; 16];
        let mut theirs = winrm_rs::NtlmSession::from_auth(&key);
        let mut ours = SessionSecurity::from_exported_key(key, Side::Server);
        for i in 0..3 {
            let message = format!("<s:Envelope>winrm-rs {i}</s:Envelope>");
            // winrm-rs returns signature || ciphertext.
            let sealed = theirs.seal(message.as_bytes());
            assert_eq!(
                ours.unseal(&sealed[..16], &sealed[16..]).unwrap(),
                message.as_bytes()
            );
            let (sig, body) = ours.seal(format!("reply {i}").as_bytes());
            let framed = [sig.as_slice(), &body].concat();
            assert_eq!(
                theirs.unseal(&framed).unwrap(),
                format!("reply {i}").as_bytes()
            );
        }
    }

    #[test]
    fn our_client_seals_byte_for_byte_like_winrm_rs() {
        // winrm-rs is a client too, so the same key must give the same bytes.
        let key = [0x17; 16];
        let mut ours = SessionSecurity::from_exported_key(key, Side::Client);
        let mut reference = winrm_rs::NtlmSession::from_auth(&key);
        for message in [&b"one"[..], b"", b"three"] {
            let (sig, body) = ours.seal(message);
            assert_eq!([sig.as_slice(), &body].concat(), reference.seal(message));
        }
    }
}
