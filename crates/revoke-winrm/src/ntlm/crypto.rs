//! The cryptographic primitives of NTLMv2 (MS-NLMP 3.3.2, 3.4.5) and the
//! small helpers both ends share: randomness, the clock, UTF-16 strings.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use md4::Md4;
use md5::{Digest, Md5};
use rc4::{Rc4, StreamCipher};

#[cfg(feature = "acceptor")]
use super::{NtlmError, malformed};

pub(super) fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

pub(super) fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// RC4 with a fresh key over one buffer (the RC4K of MS-NLMP, for key exchange).
pub(super) fn rc4k(key: &[u8; 16], data: &[u8; 16]) -> [u8; 16] {
    let mut out = *data;
    new_rc4(key).apply_keystream(&mut out);
    out
}

pub(super) fn new_rc4(key: &[u8; 16]) -> Rc4 {
    <Rc4 as KeyInit>::new_from_slice(key).expect("RC4 accepts 16-byte keys")
}

/// Compare without an early exit, so timing does not reveal a partial match.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The OS generator failing is not a condition a caller could handle.
    getrandom::fill(&mut out).expect("the operating system's random number generator failed");
    out
}

pub(super) fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

#[cfg(feature = "acceptor")]
pub(super) fn from_utf16le(bytes: &[u8], what: &str) -> Result<String, NtlmError> {
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
    // The UTF-16 copy of the password is wiped too.
    let encoded = zeroize::Zeroizing::new(utf16le(password));
    Md4::digest(encoded.as_slice()).into()
}

/// NTOWFv2: the NTLMv2 response key, from the NT hash and the names as sent.
pub(super) fn ntowfv2(nt_hash: &[u8; 16], user: &str, domain: &str) -> [u8; 16] {
    let identity = utf16le(&format!("{}{}", windows_upper(user), domain));
    hmac_md5(nt_hash, &[&identity])
}

/// The current time as a Windows FILETIME (100 ns ticks since 1601-01-01).
pub(super) fn filetime_now() -> u64 {
    const UNIX_EPOCH_AS_FILETIME: u64 = 116_444_736_000_000_000;
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UNIX_EPOCH_AS_FILETIME
        + since_unix.as_secs() * 10_000_000
        + u64::from(since_unix.subsec_nanos()) / 100
}

/// NTProofStr over the server challenge and the client blob.
pub(super) fn nt_proof_str(
    response_key: &[u8; 16],
    server_challenge: &[u8; 8],
    blob: &[u8],
) -> [u8; 16] {
    hmac_md5(response_key, &[server_challenge, blob])
}

/// SessionBaseKey; with NTLMv2 it is also the KeyExchangeKey.
pub(super) fn session_base_key(response_key: &[u8; 16], nt_proof: &[u8; 16]) -> [u8; 16] {
    hmac_md5(response_key, &[nt_proof])
}

/// The LMv2 response, sent only when no MIC is (MS-NLMP 3.3.2).
pub(super) fn lmv2_response(
    response_key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
) -> Vec<u8> {
    let mut out = hmac_md5(response_key, &[server_challenge, client_challenge]).to_vec();
    out.extend_from_slice(client_challenge);
    out
}

/// MIC over the three handshake messages (the AUTHENTICATE with a zero MIC).
pub(super) fn compute_mic(
    exported_key: &[u8; 16],
    negotiate: &[u8],
    challenge: &[u8],
    authenticate: &[u8],
) -> [u8; 16] {
    hmac_md5(exported_key, &[negotiate, challenge, authenticate])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntlm::testing::*;
    use crate::ntlm::wire::ntlmv2_blob;

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
}
