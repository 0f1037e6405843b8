//! What the unit tests of every layer share: hex, the MS-NLMP 4.2 example
//! values, and a deterministic source of garbage messages.

pub(super) fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// MS-NLMP 4.2.1 common values and 4.2.4 NTLMv2 results.
pub(super) const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
pub(super) const SPEC_TARGET_INFO: &str =
    "02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000";
/// The 4.2.4 CHALLENGE_MESSAGE (flags e28a8233, no MsvAvTimestamp).
pub(super) const SPEC_CHALLENGE: &str = "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef\
    00000000000000002400240044000000060070170000000f530065007200760065007200\
    02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000";
pub(super) const SPEC_NTOWFV2: &str = "0c868a403bfd7a93a3001ef22ef02e3f";
pub(super) const SPEC_NT_PROOF: &str = "68cd0ab851e51c96aabc927bebef6a1c";
pub(super) const SPEC_SESSION_BASE_KEY: &str = "8de40ccadbc14a82f15cb0ad0de95ca3";
pub(super) const SPEC_ENCRYPTED_SESSION_KEY: &str = "c5dad2544fc9799094ce1ce90bc9d03e";
pub(super) const SPEC_LMV2: &str = "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa";

/// 2000 pseudo-random messages of up to 199 bytes (xorshift, fixed seed).
/// Half of them keep a valid NTLMSSP header with a type of 1, 2 or 3, so
/// that parsing goes deeper than the signature check.
pub(super) fn garbage() -> impl Iterator<Item = Vec<u8>> {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..2000).map(move |round| {
        let len = (next() % 200) as usize;
        let mut msg: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 && len >= 12 {
            msg[..8].copy_from_slice(super::wire::SIGNATURE);
            msg[8..12].copy_from_slice(&((round / 2 % 3 + 1) as u32).to_le_bytes());
        }
        msg
    })
}

/// The acceptor the tests authenticate against.
#[cfg(feature = "acceptor")]
pub(crate) fn server_identity() -> super::ServerIdentity {
    super::ServerIdentity {
        netbios_domain: "CORP".into(),
        netbios_computer: "EXCH01".into(),
        dns_domain: "corp.example".into(),
        dns_computer: "exch01.corp.example".into(),
    }
}
