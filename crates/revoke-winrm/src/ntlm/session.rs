//! Session security after authentication (MS-NLMP 3.4.3, 3.4.4.2, 3.4.5):
//! the signing and sealing keys of each direction, and sealing and
//! unsealing messages with them.

use std::fmt;

use rc4::{Rc4, StreamCipher};
use zeroize::Zeroize;

use super::NtlmError;
use super::crypto::{constant_time_eq, hmac_md5, md5, new_rc4};
use super::wire::NEGOTIATE_KEY_EXCH;

// MS-NLMP 3.4.5.2 SIGNKEY and 3.4.5.3 SEALKEY.
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

/// Keys and state for one direction of traffic. The signing key is wiped
/// on drop, and so is the RC4 state (rc4's `zeroize` feature).
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

    /// MS-NLMP 3.4.4.2: with key exchange the checksum is encrypted with
    /// the sealing keystream, without it it is sent as is.
    fn protect_checksum(&mut self, checksum: &mut [u8; 8], key_exchange: bool) {
        if key_exchange {
            self.rc4.apply_keystream(checksum);
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
    /// NTLMSSP_NEGOTIATE_KEY_EXCH was negotiated: checksums are encrypted.
    /// The client only seals with key exchange (it refuses a server that
    /// does not grant it), so for the client this is always true; the
    /// acceptor follows what its client negotiated.
    key_exchange: bool,
    broken: bool,
}

impl Drop for Direction {
    fn drop(&mut self) {
        self.sign_key.zeroize();
    }
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
    /// Derive both directions' keys from the ExportedSessionKey, for a
    /// session that negotiated key exchange. A client seals with the
    /// client-to-server keys; a server with the others.
    pub fn from_exported_key(key: [u8; 16], side: Side) -> Self {
        Self::from_negotiated(key, side, NEGOTIATE_KEY_EXCH)
    }

    /// [`Self::from_exported_key`] for the negotiated `flags`: without
    /// NTLMSSP_NEGOTIATE_KEY_EXCH the checksums are not encrypted
    /// (MS-NLMP 3.4.4.2).
    pub fn from_negotiated(mut key: [u8; 16], side: Side, flags: u32) -> Self {
        let client_to_server = Direction::new(&key, CLIENT_SIGN_MAGIC, CLIENT_SEAL_MAGIC);
        let server_to_client = Direction::new(&key, SERVER_SIGN_MAGIC, SERVER_SEAL_MAGIC);
        let (outgoing, incoming) = match side {
            Side::Client => (client_to_server, server_to_client),
            Side::Server => (server_to_client, client_to_server),
        };
        key.zeroize();
        SessionSecurity {
            outgoing,
            incoming,
            key_exchange: flags & NEGOTIATE_KEY_EXCH != 0,
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
        out.protect_checksum(&mut checksum, self.key_exchange);
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
        incoming.protect_checksum(&mut checksum, self.key_exchange);
        if !constant_time_eq(&checksum, &incoming.checksum(&message)) {
            self.broken = true;
            return Err(bad("checksum mismatch"));
        }
        incoming.seq = incoming.seq.wrapping_add(1);
        Ok(message)
    }
}

/// NTLMSSP_MESSAGE_SIGNATURE with extended session security (MS-NLMP
/// 2.2.2.9.1): version 1, encrypted checksum, sequence number.
fn signature_bytes(checksum: &[u8; 8], seq: u32) -> [u8; 16] {
    let mut sig = [0u8; 16];
    sig[..4].copy_from_slice(&1u32.to_le_bytes());
    sig[4..12].copy_from_slice(checksum);
    sig[12..].copy_from_slice(&seq.to_le_bytes());
    sig
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntlm::crypto::utf16le;
    use crate::ntlm::testing::hex;

    /// Both ends of one connection, keyed as a handshake would key them.
    fn pair(key: u8) -> (SessionSecurity, SessionSecurity) {
        (
            SessionSecurity::from_exported_key([key; 16], Side::Client),
            SessionSecurity::from_exported_key([key; 16], Side::Server),
        )
    }

    /// MS-NLMP 4.2.4.4: "Plaintext" sealed with RandomSessionKey 0x55..55.
    #[test]
    fn seal_matches_ms_nlmp_4_2_4_4() {
        let mut client = SessionSecurity::from_exported_key([0x55; 16], Side::Client);
        let (signature, sealed) = client.seal(&utf16le("Plaintext"));
        assert_eq!(hex(&sealed), "54e50165bf1936dc996020c1811b0f06fb5f");
        assert_eq!(hex(&signature), "010000007fb38ec5c55d497600000000");
    }

    #[test]
    fn tampered_sealed_byte_is_bad_signature() {
        let (mut client, mut server) = pair(0x31);
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
        let (mut client, mut server) = pair(0x32);
        let (mut sig, sealed) = client.seal(b"<s:Envelope/>");
        sig[6] ^= 1;
        assert!(matches!(
            server.unseal(&sig, &sealed),
            Err(NtlmError::BadSignature(_))
        ));
    }

    #[test]
    fn replayed_message_is_bad_signature_and_session_survives() {
        let (mut client, mut server) = pair(0x33);
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
        let (mut client, mut server) = pair(7);
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
    fn without_key_exchange_the_checksum_is_not_encrypted() {
        let key = [0x55; 16];
        let mut plain = SessionSecurity::from_negotiated(key, Side::Client, 0);
        let (signature, _) = plain.seal(&utf16le("Plaintext"));
        // MS-NLMP 4.2.4.4: HMAC_MD5(SignKey, SeqNum || Message)[0..7], not RC4'd.
        assert_eq!(
            hex(&signature),
            concat!("01000000", "70352851f2564309", "00000000")
        );
        let mut client = SessionSecurity::from_negotiated(key, Side::Client, 0);
        let mut server = SessionSecurity::from_negotiated(key, Side::Server, 0);
        let (sig, sealed) = client.seal(b"<s:Envelope/>");
        assert_eq!(server.unseal(&sig, &sealed).unwrap(), b"<s:Envelope/>");
    }

    #[test]
    fn debug_output_has_no_keys() {
        let security = SessionSecurity::from_exported_key([0xab; 16], Side::Client);
        let text = format!("{security:?}");
        assert!(!text.contains("171") && text.contains("redacted")); // 171 = 0xab
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
