//! The acceptor (MS-NLMP 3.2.5.1): NEGOTIATE in, CHALLENGE out,
//! AUTHENTICATE in and verified (NTLMv2 proof, MIC, channel bindings).
//! Only a simulated WinRM server needs it, hence the `acceptor` feature.

use std::fmt;

use super::crypto::{
    compute_mic, constant_time_eq, filetime_now, from_utf16le, nt_proof_str, ntowfv2, random_bytes,
    rc4k, session_base_key, utf16le,
};
use super::session::{SessionSecurity, Side};
use super::wire::*;
use super::{NtlmError, malformed};

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
    /// Flags never granted, whatever the client asks (a lab fault).
    withheld: u32,
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
            withheld: 0,
        }
    }

    /// Never grants sealing (NTLMSSP_NEGOTIATE_SEAL), as a server
    /// configured (or an attacker on the path rewriting the CHALLENGE)
    /// could: a client that must seal has to refuse to go on.
    pub fn without_sealing(mut self) -> Self {
        self.withheld |= NEGOTIATE_SEAL;
        self
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
        let flags = (SERVER_BASE_FLAGS | (client_flags & SERVER_OPTIONAL_FLAGS)) & !self.withheld;

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
            SessionSecurity::from_negotiated(exported_key, Side::Server, auth.flags),
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
    use crate::ntlm::channel_bindings_hash_from_cert_hash;
    use crate::ntlm::client::{CLIENT_FLAGS, ClientContext, ParsedChallenge};
    use crate::ntlm::crypto::nt_hash;
    use crate::ntlm::testing::garbage;

    // ---- in-process client <-> server -------------------------------------

    use crate::ntlm::testing::server_identity as identity;

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
        // The client answers with what both support: the server's
        // informational flags (target type, target info) are not echoed.
        assert_eq!(
            server.negotiated_flags() & CLIENT_FLAGS,
            client.negotiated_flags()
        );
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
        for msg in garbage() {
            let mut server = ServerContext::new(identity());
            let _ = server.challenge(&msg);
            let mut server = ServerContext::new(identity());
            server
                .challenge(&ClientContext::new("a", "", "").negotiate())
                .unwrap();
            let _ = server.authenticate(&msg, &lookup, Some([1; 16]));
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
}
