//! Kerberos for WinRM: sealing SOAP bodies with an established Kerberos
//! context, in the layout Windows uses (MS-WSMV 2.2.9.1 with RFC 4121 wrap
//! tokens). The token exchange itself is in the client (and the lab's
//! server); this module only turns wrap tokens into the header-and-data
//! pair that the encrypted MIME part carries, and back.
//!
//! A confidential RFC 4121 wrap token is a 16-byte header, then the
//! encryption of (confounder, message, filler, copy of the header), then a
//! checksum. Windows sends the message's own bytes last and everything else
//! first: the token rotated right by its RRC field (28 with AES and no
//! filler), so that the "data" is exactly as long as the plaintext and the
//! "header" is 60 bytes. MIT's `gss_wrap` returns the token unrotated
//! (RRC 0); it is rotated here, and `gss_unwrap` undoes any rotation.

use revoke_gss::Context;

use super::ntlm::NtlmError;

/// RFC 4121 4.2.6.2: the wrap token's own header.
const TOKEN_HEADER: usize = 16;
/// AES's confounder: one cipher block, at the start of the encrypted part.
const CONFOUNDER: usize = 16;
/// A header larger than this is not a wrap token anyone sends.
pub const MAX_HEADER: usize = 1024;

/// An established Kerberos context sealing WinRM bodies.
pub struct KerberosSeal(Context);

impl KerberosSeal {
    pub fn new(context: Context) -> Self {
        Self(context)
    }

    /// (header, encrypted data as long as `message`).
    pub fn seal(&mut self, message: &[u8]) -> Result<(Vec<u8>, Vec<u8>), NtlmError> {
        let token = self
            .0
            .seal(message)
            .map_err(|e| NtlmError::BadSignature(e.to_string()))?;
        split_for_winrm(token, message.len())
    }

    pub fn unseal(&mut self, header: &[u8], sealed: &[u8]) -> Result<Vec<u8>, NtlmError> {
        let mut token = Vec::with_capacity(header.len() + sealed.len());
        token.extend_from_slice(header);
        token.extend_from_slice(sealed);
        let plain = self
            .0
            .open(&token)
            .map_err(|e| NtlmError::BadSignature(e.to_string()))?;
        Ok(plain.to_vec())
    }
}

/// Rotate an unrotated wrap token so that the last `message_len` bytes are
/// the data part, and split it there.
fn split_for_winrm(token: Vec<u8>, message_len: usize) -> Result<(Vec<u8>, Vec<u8>), NtlmError> {
    let bad = |why: &str| NtlmError::Malformed(format!("Kerberos wrap token: {why}"));
    if token.len() < TOKEN_HEADER + CONFOUNDER + message_len || token[..2] != [0x05, 0x04] {
        return Err(bad("not an RFC 4121 wrap token"));
    }
    if token[6..8] != [0, 0] {
        return Err(bad("already rotated"));
    }
    let mut payload = token[TOKEN_HEADER..].to_vec();
    let extra = payload.len() - message_len;
    if TOKEN_HEADER + extra > MAX_HEADER {
        return Err(bad("header too large"));
    }
    let rrc = extra - CONFOUNDER;
    payload.rotate_right(rrc);
    let mut header = token[..TOKEN_HEADER].to_vec();
    header[6..8].copy_from_slice(&(rrc as u16).to_be_bytes());
    let data = payload.split_off(extra);
    header.extend_from_slice(&payload);
    Ok((header, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aes_token_becomes_a_60_byte_header_and_data_as_long_as_the_message() {
        // header(16) | E(confounder 16 | message 5 | header copy 16) | checksum 12
        let mut token = vec![0x05, 0x04, 0x06, 0xff, 0, 0, 0, 0];
        token.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        let body: Vec<u8> = (0u8..49).collect();
        token.extend_from_slice(&body);
        let (header, data) = split_for_winrm(token, 5).unwrap();
        assert_eq!(header.len(), 60);
        assert_eq!(&header[6..8], &[0, 28], "RRC");
        // Rotated right by 28: the last 28 bytes come first, then the
        // confounder; the data part is what followed the confounder.
        assert_eq!(&header[16..44], &body[21..49]);
        assert_eq!(&header[44..60], &body[..16]);
        assert_eq!(data, &body[16..21]);
    }

    #[test]
    fn other_tokens_are_refused() {
        assert!(split_for_winrm(vec![0x60; 80], 5).is_err());
        let mut rotated = vec![0x05, 0x04, 0x06, 0xff, 0, 0, 0, 28];
        rotated.extend_from_slice(&[0; 60]);
        assert!(split_for_winrm(rotated, 5).is_err());
        assert!(split_for_winrm(vec![0x05, 0x04, 0, 0, 0, 0, 0, 0], 5).is_err());
    }
}
