//! The NTLM message codec (MS-NLMP 2.2): negotiate flags, AV pairs, the
//! fixed layout of the three messages, and bounds-checked reading and
//! writing of their fields. Which message carries what is up to the client
//! and the acceptor; this module only knows how the bytes are laid out.

use super::{NtlmError, malformed};

// ---------------------------------------------------------------------------
// Negotiate flags (MS-NLMP 2.2.2.5)
// ---------------------------------------------------------------------------

pub(super) const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
pub(super) const REQUEST_TARGET: u32 = 0x0000_0004;
pub(super) const NEGOTIATE_SIGN: u32 = 0x0000_0010;
pub(super) const NEGOTIATE_SEAL: u32 = 0x0000_0020;
pub(super) const NEGOTIATE_NTLM: u32 = 0x0000_0200;
pub(super) const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
#[cfg(feature = "acceptor")]
pub(super) const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
pub(super) const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
#[cfg(feature = "acceptor")]
pub(super) const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
pub(super) const NEGOTIATE_VERSION: u32 = 0x0200_0000;
pub(super) const NEGOTIATE_128: u32 = 0x2000_0000;
pub(super) const NEGOTIATE_KEY_EXCH: u32 = 0x4000_0000;
pub(super) const NEGOTIATE_56: u32 = 0x8000_0000;

/// Both ends refuse a peer without these: this module only implements NTLMv2
/// with extended session security and UTF-16 strings.
const REQUIRED_FLAGS: u32 = NEGOTIATE_UNICODE | NEGOTIATE_EXTENDED_SESSIONSECURITY;

/// Sealing is only implemented with 128-bit keys; weaker keys are refused.
pub(super) fn check_flags(flags: u32, peer: &str) -> Result<(), NtlmError> {
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

/// What sealing with MS-NLMP 3.4.4.2 needs from the negotiated flags, by
/// name; the names of those missing from `flags`.
pub(super) fn missing_for_sealing(flags: u32) -> Vec<&'static str> {
    [
        (NEGOTIATE_SIGN, "NTLMSSP_NEGOTIATE_SIGN"),
        (NEGOTIATE_SEAL, "NTLMSSP_NEGOTIATE_SEAL"),
        (NEGOTIATE_KEY_EXCH, "NTLMSSP_NEGOTIATE_KEY_EXCH"),
        (NEGOTIATE_128, "NTLMSSP_NEGOTIATE_128 (128-bit keys)"),
    ]
    .into_iter()
    .filter(|(flag, _)| flags & flag == 0)
    .map(|(_, name)| name)
    .collect()
}

/// The VERSION structure we send (Windows 10 / Server 2019, NTLM revision 15).
/// It is informational only; peers do not act on it.
pub(super) const VERSION: [u8; 8] = [10, 0, 0x63, 0x45, 0, 0, 0, 15];

// ---------------------------------------------------------------------------
// AV_PAIR ids (MS-NLMP 2.2.2.1) and MsvAvFlags bits
// ---------------------------------------------------------------------------

const AV_EOL: u16 = 0;
#[cfg(feature = "acceptor")]
pub(super) const AV_NB_COMPUTER_NAME: u16 = 1;
#[cfg(feature = "acceptor")]
pub(super) const AV_NB_DOMAIN_NAME: u16 = 2;
#[cfg(feature = "acceptor")]
pub(super) const AV_DNS_COMPUTER_NAME: u16 = 3;
#[cfg(feature = "acceptor")]
pub(super) const AV_DNS_DOMAIN_NAME: u16 = 4;
pub(super) const AV_FLAGS: u16 = 6;
pub(super) const AV_TIMESTAMP: u16 = 7;
/// MsvAvTargetName: the SPN of the server, UTF-16LE, no terminator.
pub(super) const AV_TARGET_NAME: u16 = 9;
pub(super) const AV_CHANNEL_BINDINGS: u16 = 10;
pub(super) const AV_FLAG_MIC_PRESENT: u32 = 0x2;

// ---------------------------------------------------------------------------
// Message layout (MS-NLMP 2.2.1)
// ---------------------------------------------------------------------------

pub(super) const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
pub(super) const NEGOTIATE_TYPE: u32 = 1;
pub(super) const CHALLENGE_TYPE: u32 = 2;
pub(super) const AUTHENTICATE_TYPE: u32 = 3;

/// NEGOTIATE: signature, type, flags, domain and workstation fields, version.
pub(super) const NEGOTIATE_HEADER_LEN: usize = 40;
/// CHALLENGE: ... target name at 12, flags at 20, challenge at 24, target info at 40, version at 48.
#[cfg(feature = "acceptor")]
pub(super) const CHALLENGE_HEADER_LEN: usize = 56;
/// AUTHENTICATE: six fields, flags at 60, version at 64, MIC at 72.
pub(super) const AUTH_FLAGS_OFFSET: usize = 60;
pub(super) const AUTH_MIC_OFFSET: usize = 72;
pub(super) const AUTH_HEADER_LEN: usize = 88;
/// Where each AUTHENTICATE security buffer descriptor sits.
pub(super) const AUTH_LM: usize = 12;
pub(super) const AUTH_NT: usize = 20;
pub(super) const AUTH_DOMAIN: usize = 28;
pub(super) const AUTH_USER: usize = 36;
pub(super) const AUTH_WORKSTATION: usize = 44;
pub(super) const AUTH_SESSION_KEY: usize = 52;

/// The fixed part of an NTLMv2 client blob before its AV pairs: RespType,
/// HiRespType, 6 reserved bytes, timestamp, client challenge, 4 reserved bytes.
pub(super) const BLOB_HEADER_LEN: usize = 28;

/// The NTLMv2 client blob (MS-NLMP 2.2.2.7 NTLMv2_CLIENT_CHALLENGE).
pub(super) fn ntlmv2_blob(
    timestamp: &[u8; 8],
    client_challenge: &[u8; 8],
    target_info: &[u8],
) -> Vec<u8> {
    let mut blob = Vec::with_capacity(BLOB_HEADER_LEN + target_info.len() + 4);
    blob.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    blob.extend_from_slice(timestamp);
    blob.extend_from_slice(client_challenge);
    blob.extend_from_slice(&[0; 4]);
    blob.extend_from_slice(target_info);
    blob.extend_from_slice(&[0; 4]);
    blob
}

// ---------------------------------------------------------------------------
// Bounds-checked reading and writing of NTLM messages
// ---------------------------------------------------------------------------

pub(super) fn bytes_at<'a>(
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

pub(super) fn u32_at(msg: &[u8], offset: usize, what: &str) -> Result<u32, NtlmError> {
    let b = bytes_at(msg, offset, 4, what)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// A security buffer: its descriptor (length, max length, offset) at `desc`.
/// Returns the payload and its offset.
pub(super) fn field<'a>(
    msg: &'a [u8],
    desc: usize,
    what: &str,
) -> Result<(&'a [u8], usize), NtlmError> {
    let len = usize::from(u16_at(msg, desc, what)?);
    let offset = u32_at(msg, desc + 4, what)? as usize;
    Ok((bytes_at(msg, offset, len, what)?, offset))
}

/// Check the signature and message type.
pub(super) fn check_header(msg: &[u8], expected_type: u32, name: &str) -> Result<(), NtlmError> {
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
pub(super) fn assemble(
    mut header: Vec<u8>,
    payloads: &[(usize, &[u8])],
) -> Result<Vec<u8>, NtlmError> {
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
pub(super) fn new_header(message_type: u32, len: usize) -> Vec<u8> {
    let mut header = vec![0u8; len];
    header[..8].copy_from_slice(SIGNATURE);
    header[8..12].copy_from_slice(&message_type.to_le_bytes());
    header
}

// ---------------------------------------------------------------------------
// AV pairs (MS-NLMP 2.2.2.1)
// ---------------------------------------------------------------------------

/// One AV_PAIR of a target info list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AvPair {
    pub(super) id: u16,
    pub(super) value: Vec<u8>,
}

/// Parse AV pairs up to MsvAvEOL (which is not returned). Bytes after the
/// EOL are ignored: the NTLMv2 blob puts four zero bytes there.
pub(super) fn parse_av_pairs(mut buf: &[u8]) -> Result<Vec<AvPair>, NtlmError> {
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
pub(super) fn encode_av_pairs(pairs: &[AvPair]) -> Result<Vec<u8>, NtlmError> {
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

pub(super) fn av_value(pairs: &[AvPair], id: u16) -> Option<&[u8]> {
    pairs
        .iter()
        .find(|p| p.id == id)
        .map(|p| p.value.as_slice())
}

pub(super) fn av_flags(pairs: &[AvPair]) -> u32 {
    av_value(pairs, AV_FLAGS)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map_or(0, u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntlm::testing::{SPEC_TARGET_INFO, garbage, unhex};

    #[test]
    fn spec_target_info_round_trips() {
        let bytes = unhex(SPEC_TARGET_INFO);
        let pairs = parse_av_pairs(&bytes).unwrap();
        assert_eq!(pairs.iter().map(|p| p.id).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(encode_av_pairs(&pairs).unwrap(), bytes);
    }

    #[test]
    fn av_pairs_running_past_the_buffer_are_malformed() {
        let mut bytes = unhex(SPEC_TARGET_INFO);
        bytes.truncate(10);
        assert!(matches!(
            parse_av_pairs(&bytes),
            Err(NtlmError::Malformed(_))
        ));
    }

    #[test]
    fn garbage_av_pairs_never_panic() {
        for msg in garbage() {
            let _ = parse_av_pairs(&msg);
        }
    }
}
