//! The initiator: NEGOTIATE out, CHALLENGE in, AUTHENTICATE out (MS-NLMP
//! 3.1.5.1), and the session security that seals the rest of the connection.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use super::crypto::{
    compute_mic, filetime_now, lmv2_response, nt_hash, nt_proof_str, ntowfv2, random_bytes, rc4k,
    session_base_key, utf16le,
};
use super::session::{SessionSecurity, Side};
use super::wire::*;
use super::{NtlmError, malformed};

/// What the client asks for in its NEGOTIATE.
pub(super) const CLIENT_FLAGS: u32 = NEGOTIATE_UNICODE
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

/// Client side of the handshake. The NT hash is wiped when it is dropped.
pub struct ClientContext {
    user: String,
    domain: String,
    nt_hash: Zeroizing<[u8; 16]>,
    /// MsvAvTargetName: the SPN the client means to authenticate to.
    target_name: Option<String>,
    /// Refuse a CHALLENGE that does not grant what sealing needs.
    require_sealing: bool,
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

impl Drop for ClientNonces {
    fn drop(&mut self) {
        self.exported_session_key.zeroize();
    }
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
            nt_hash: Zeroizing::new(nt_hash(password)),
            target_name: None,
            require_sealing: false,
            negotiate: None,
            negotiated_flags: 0,
        }
    }

    /// Sends `spn` (e.g. `HTTP/ex01.corp.example`) as MsvAvTargetName in the
    /// AUTHENTICATE's target info (MS-NLMP 2.2.2.1), as Windows' SSPI and
    /// pyspnego do: a server that checks it (Extended Protection) refuses a
    /// response relayed from a connection meant for another service.
    pub fn with_target_name(mut self, spn: &str) -> Self {
        self.target_name = Some(spn.to_string());
        self
    }

    /// [`Self::authenticate`] fails with [`NtlmError::SealingNotGranted`]
    /// unless the server granted SIGN, SEAL, KEY_EXCH and 128-bit keys: the
    /// messages of the connection are to be sealed, and a weaker session
    /// (a downgrade by anyone on the path) is not accepted.
    pub fn require_sealing(&mut self) {
        self.require_sealing = true;
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
    /// as Windows clients do; `channel_bindings` is
    /// [`channel_bindings_hash`](super::channel_bindings_hash) of the
    /// server's certificate over HTTPS. Call [`Self::negotiate`] first.
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
        // Only what both sides support (MS-NLMP 3.1.5.1.2): a server cannot
        // switch on something the client never asked for.
        let flags = challenge.flags & CLIENT_FLAGS;
        if self.require_sealing {
            let missing = missing_for_sealing(flags);
            if !missing.is_empty() {
                return Err(NtlmError::SealingNotGranted(missing.join(", ")));
            }
        }
        check_flags(flags, "server")?;
        self.negotiated_flags = flags;

        // The MIC goes with the server's timestamp, as Windows clients do it.
        let server_time = av_value(&challenge.target_info, AV_TIMESTAMP)
            .and_then(|v| <[u8; 8]>::try_from(v).ok());
        let send_mic = server_time.is_some();
        let timestamp = server_time.unwrap_or(now.to_le_bytes());
        let target_info = client_target_info(
            challenge.target_info,
            send_mic,
            channel_bindings,
            self.target_name.as_deref(),
        )?;

        let response_key = Zeroizing::new(ntowfv2(&self.nt_hash, &self.user, &self.domain));
        let blob = ntlmv2_blob(&timestamp, &nonces.client_challenge, &target_info);
        let proof = nt_proof_str(&response_key, &challenge.server_challenge, &blob);
        let key_exchange_key = Zeroizing::new(session_base_key(&response_key, &proof));
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
        let (exported_key, encrypted_key) = if flags & NEGOTIATE_KEY_EXCH != 0 {
            let exported = Zeroizing::new(nonces.exported_session_key);
            let encrypted = rc4k(&key_exchange_key, &exported).to_vec();
            (exported, encrypted)
        } else {
            (key_exchange_key, Vec::new())
        };

        let mut header = new_header(AUTHENTICATE_TYPE, AUTH_HEADER_LEN);
        header[AUTH_FLAGS_OFFSET..AUTH_FLAGS_OFFSET + 4].copy_from_slice(&flags.to_le_bytes());
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
            SessionSecurity::from_negotiated(*exported_key, Side::Client, flags),
        ))
    }
}

/// The parts of a CHALLENGE the client uses.
pub(super) struct ParsedChallenge {
    pub(super) flags: u32,
    pub(super) server_challenge: [u8; 8],
    pub(super) target_info: Vec<AvPair>,
}

impl ParsedChallenge {
    pub(super) fn parse(msg: &[u8]) -> Result<Self, NtlmError> {
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
/// present), MsvAvChannelBindings and MsvAvTargetName, replacing any the
/// server sent.
fn client_target_info(
    mut pairs: Vec<AvPair>,
    mic: bool,
    channel_bindings: Option<[u8; 16]>,
    target_name: Option<&str>,
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
    if let Some(spn) = target_name {
        pairs.retain(|p| p.id != AV_TARGET_NAME);
        pairs.push(AvPair {
            id: AV_TARGET_NAME,
            value: utf16le(spn),
        });
    }
    encode_av_pairs(&pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntlm::testing::*;

    fn spec_nonces() -> ClientNonces {
        ClientNonces {
            client_challenge: [0xaa; 8],
            exported_session_key: [0x55; 16],
        }
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

    /// The blob's AV pairs of an AUTHENTICATE (after the 16-byte NTProofStr).
    fn sent_target_info(auth: &[u8]) -> Vec<AvPair> {
        let (nt, _) = field(auth, AUTH_NT, "nt").unwrap();
        parse_av_pairs(&nt[16 + BLOB_HEADER_LEN..]).unwrap()
    }

    fn spec_challenge_with_flags(flags: u32) -> Vec<u8> {
        let mut challenge = unhex(SPEC_CHALLENGE);
        challenge[20..24].copy_from_slice(&flags.to_le_bytes());
        challenge
    }

    #[test]
    fn target_name_is_sent_as_utf16le_av_pair_9() {
        let mut client =
            ClientContext::new("User", "Domain", "Password").with_target_name("HTTP/ex01.lab");
        client.negotiate();
        let (auth, _) = client
            .authenticate_with(&unhex(SPEC_CHALLENGE), None, &spec_nonces(), 0)
            .unwrap();
        let pairs = sent_target_info(&auth);
        let name = pairs.iter().find(|p| p.id == 9).expect("MsvAvTargetName");
        assert_eq!(name.value, utf16le("HTTP/ex01.lab"));
    }

    #[test]
    fn answer_carries_only_flags_both_sides_support() {
        // A server that sets a flag the client never asked for (LM_KEY,
        // 0x80; DATAGRAM, 0x40) does not get it back.
        let spec_flags = u32_at(&unhex(SPEC_CHALLENGE), 20, "flags").unwrap();
        let mut client = ClientContext::new("User", "Domain", "Password");
        client.negotiate();
        let (auth, _) = client
            .authenticate_with(
                &spec_challenge_with_flags(spec_flags | 0xc0),
                None,
                &spec_nonces(),
                0,
            )
            .unwrap();
        let sent = u32_at(&auth, AUTH_FLAGS_OFFSET, "flags").unwrap();
        assert_eq!(sent, (spec_flags | 0xc0) & CLIENT_FLAGS);
        assert_eq!(sent & 0xc0, 0);
        assert_eq!(client.negotiated_flags(), sent);
    }

    #[test]
    fn sealing_is_refused_unless_granted_in_full() {
        let spec_flags = u32_at(&unhex(SPEC_CHALLENGE), 20, "flags").unwrap();
        for (flag, name) in [
            (NEGOTIATE_SIGN, "NTLMSSP_NEGOTIATE_SIGN"),
            (NEGOTIATE_SEAL, "NTLMSSP_NEGOTIATE_SEAL"),
            (NEGOTIATE_KEY_EXCH, "NTLMSSP_NEGOTIATE_KEY_EXCH"),
            (NEGOTIATE_128, "NTLMSSP_NEGOTIATE_128"),
        ] {
            let mut client = ClientContext::new("User", "Domain", "Password");
            client.require_sealing();
            client.negotiate();
            let result = client.authenticate_with(
                &spec_challenge_with_flags(spec_flags & !flag),
                None,
                &spec_nonces(),
                0,
            );
            match result {
                Err(e @ NtlmError::SealingNotGranted(_)) => {
                    assert!(e.to_string().contains(name), "{e}")
                }
                other => panic!("{name} withheld: {:?}", other.map(|_| ())),
            }
        }
        // Granted in full: fine.
        let mut client = ClientContext::new("User", "Domain", "Password");
        client.require_sealing();
        client.negotiate();
        assert!(
            client
                .authenticate_with(&unhex(SPEC_CHALLENGE), None, &spec_nonces(), 0)
                .is_ok()
        );
    }

    #[test]
    fn debug_output_has_no_password() {
        let client = ClientContext::new("alice", "CORP", "S3cret!");
        let text = format!("{client:?}");
        assert!(!text.contains("S3cret!") && text.contains("redacted"));
    }

    #[test]
    fn authenticate_needs_a_negotiate_first() {
        let mut client = ClientContext::new("alice", "CORP", "S3cret!");
        assert!(matches!(
            client.authenticate(&unhex(SPEC_CHALLENGE), None),
            Err(NtlmError::Malformed(_))
        ));
    }

    #[test]
    fn garbage_challenges_never_panic() {
        for msg in garbage() {
            let mut client = ClientContext::new("alice", "CORP", "S3cret!");
            client.negotiate();
            let _ = client.authenticate(&msg, Some([1; 16]));
        }
    }
}
