//! Kerberos for revoke through the operating system's GSSAPI library (MIT
//! krb5 on Linux, Heimdal, Apple's GSS.framework), loaded when first needed.
//!
//! Why the system library: it reads the user's ticket cache (`kinit`,
//! `KRB5CCNAME`), `krb5.conf` and DNS SRV records exactly as every other
//! Kerberos client on the machine does, so a helpdesk with a ticket types no
//! password. Why loaded at run time (not linked): building needs no Kerberos
//! headers or libclang, and the binary starts where no Kerberos library is
//! installed, failing only when Kerberos is asked for (docs/design.md).
//!
//! The API is the part of GSSAPI revoke needs: an [`Initiator`] (client) and
//! an [`Acceptor`] (the lab's servers) that exchange tokens, then an
//! established [`Context`] that wraps and unwraps messages. No I/O here:
//! callers carry the tokens.

mod error;
mod ffi;

use std::ffi::{CString, c_int};
use std::path::Path;
use std::ptr;
use std::sync::Arc;

use zeroize::Zeroizing;

pub use error::{ErrorKind, GssError};
use ffi::{Buffer, Ctx, Gss, Name, OmUint32, gss};

/// Which GSSAPI mechanism carries Kerberos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// Raw Kerberos V5 tokens (SASL GSSAPI for LDAP).
    Kerberos,
    /// Kerberos inside SPNEGO (HTTP `Negotiate`, as Windows and pywinrm send it).
    Spnego,
}

impl Mechanism {
    fn oid(self) -> &'static [u8] {
        match self {
            Mechanism::Kerberos => ffi::MECH_KRB5,
            Mechanism::Spnego => ffi::MECH_SPNEGO,
        }
    }
}

/// True when a GSSAPI library can be loaded; the error says why not.
pub fn available() -> Result<(), GssError> {
    gss().map(|_| ()).map_err(GssError::no_library)
}

/// Use the keys in `keytab` to accept tickets (acceptors only). Process-wide.
pub fn use_keytab(keytab: &Path) -> Result<(), GssError> {
    let lib = gss().map_err(GssError::no_library)?;
    let register = lib.register_acceptor_identity.ok_or_else(|| {
        GssError::unsupported("this Kerberos library cannot be given a keytab (MIT krb5 can)")
    })?;
    let path = CString::new(keytab.as_os_str().as_encoded_bytes())
        .map_err(|_| GssError::unsupported("the keytab path contains a NUL byte"))?;
    // SAFETY: a NUL-terminated path; MIT copies it.
    let major = unsafe { register(path.as_ptr()) };
    if major != ffi::COMPLETE {
        return Err(GssError::unsupported("the keytab could not be registered"));
    }
    Ok(())
}

/// A name the library imported; released on drop.
struct ImportedName(Name);

impl ImportedName {
    fn new(lib: &Gss, text: &str, name_type: &'static [u8]) -> Result<Self, GssError> {
        let mut minor = 0;
        let mut name: Name = ptr::null_mut();
        let mut buffer = Buffer::borrowed(text.as_bytes());
        let mut oid = ffi::oid(name_type);
        // SAFETY: valid buffer and OID for the call; `name` is written on success.
        let major = unsafe { (lib.import_name)(&mut minor, &mut buffer, &mut oid, &mut name) };
        check(lib, "reading the name", major, minor)?;
        Ok(Self(name))
    }

    fn display(&self, lib: &Gss) -> Option<String> {
        let mut minor = 0;
        let mut out = Buffer::EMPTY;
        // SAFETY: a name from gss_import_name or gss_accept_sec_context.
        let major = unsafe { (lib.display_name)(&mut minor, self.0, &mut out, ptr::null_mut()) };
        (major == ffi::COMPLETE).then(|| take_buffer(lib, &mut out, false))
    }
}

impl Drop for ImportedName {
    fn drop(&mut self) {
        if let Ok(lib) = gss() {
            let mut minor = 0;
            // SAFETY: a name this value owns.
            unsafe { (lib.release_name)(&mut minor, &mut self.0) };
        }
    }
}

/// Copies a buffer the library allocated, wipes it when asked (it held a
/// secret), and gives it back to the library.
fn take_buffer_bytes(lib: &Gss, buffer: &mut Buffer, secret: bool) -> Vec<u8> {
    let length = buffer.length;
    let value = buffer.value;
    let bytes = if value.is_null() || length == 0 {
        Vec::new()
    } else {
        // SAFETY: the library allocated `length` bytes at `value`.
        let slice = unsafe { std::slice::from_raw_parts_mut(value.cast::<u8>(), length) };
        let copy = slice.to_vec();
        if secret {
            zeroize::Zeroize::zeroize(slice);
        }
        copy
    };
    let mut minor = 0;
    // SAFETY: a buffer the library allocated (or an empty one).
    unsafe { (lib.release_buffer)(&mut minor, buffer) };
    bytes
}

fn take_buffer(lib: &Gss, buffer: &mut Buffer, secret: bool) -> String {
    String::from_utf8_lossy(&take_buffer_bytes(lib, buffer, secret))
        .trim_end_matches('\0')
        .to_string()
}

fn check(lib: &Gss, what: &'static str, major: OmUint32, minor: OmUint32) -> Result<(), GssError> {
    if major & ffi::ERROR_MASK == 0 {
        return Ok(());
    }
    Err(GssError::from_status(
        what,
        major,
        minor,
        status_text(lib, major, minor),
    ))
}

/// The library's own words for a status, routine and mechanism parts.
fn status_text(lib: &Gss, major: OmUint32, minor: OmUint32) -> String {
    let mut parts = Vec::new();
    for (code, kind) in [(major, ffi::C_GSS_CODE), (minor, ffi::C_MECH_CODE)] {
        if code == 0 {
            continue;
        }
        let mut context = 0;
        // A few messages at most; the bound guards against a library that loops.
        for _ in 0..4 {
            let mut minor_out = 0;
            let mut out = Buffer::EMPTY;
            // SAFETY: plain status lookup into a library-allocated buffer.
            let status = unsafe {
                (lib.display_status)(
                    &mut minor_out,
                    code,
                    kind,
                    ptr::null_mut(),
                    &mut context,
                    &mut out,
                )
            };
            if status != ffi::COMPLETE {
                break;
            }
            let text = take_buffer(lib, &mut out, false);
            if !text.is_empty() && !parts.contains(&text) {
                parts.push(text);
            }
            if context == 0 {
                break;
            }
        }
    }
    parts.join(": ")
}

/// Credentials for an initiator other than the default (the ticket cache, or
/// the logged-on user).
pub struct Credential(ffi::Cred);

// SAFETY: a credential handle is not tied to the thread that acquired it.
unsafe impl Send for Credential {}
unsafe impl Sync for Credential {}

impl Credential {
    /// Whether the default credentials (a ticket in the cache) are usable,
    /// without contacting anything.
    pub fn default_available() -> Result<(), GssError> {
        let lib = gss().map_err(GssError::no_library)?;
        let mut minor = 0;
        let mut cred: ffi::Cred = ptr::null_mut();
        // SAFETY: default name, default mechanisms, initiate usage.
        let major = unsafe {
            (lib.acquire_cred)(
                &mut minor,
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                ffi::C_INITIATE,
                &mut cred,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let result = check(lib, "looking for a Kerberos ticket", major, minor);
        if !cred.is_null() {
            drop(Credential(cred));
        }
        result
    }

    /// Get a ticket-granting ticket for `principal` (`user@REALM`) with its
    /// password: an AS exchange with the realm's KDC. Kept in memory only.
    pub fn with_password(principal: &str, password: &str) -> Result<Self, GssError> {
        let lib = gss().map_err(GssError::no_library)?;
        let acquire = lib.acquire_cred_with_password.ok_or_else(|| {
            GssError::unsupported(
                "this Kerberos library cannot log on with a password; run kinit first",
            )
        })?;
        let name = ImportedName::new(lib, principal, ffi::NT_KRB5_PRINCIPAL)?;
        let secret = Zeroizing::new(password.as_bytes().to_vec());
        let mut buffer = Buffer::borrowed(&secret);
        let mut minor = 0;
        let mut cred: ffi::Cred = ptr::null_mut();
        // SAFETY: valid name and password buffer; every mechanism (null set).
        let major = unsafe {
            acquire(
                &mut minor,
                name.0,
                &mut buffer,
                0,
                // Every mechanism the library has: Kerberos itself (LDAP)
                // and SPNEGO around it (HTTP Negotiate).
                ptr::null_mut(),
                ffi::C_INITIATE,
                &mut cred,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        check(
            lib,
            "logging on to Kerberos with the password",
            major,
            minor,
        )?;
        Ok(Self(cred))
    }
}

impl Drop for Credential {
    fn drop(&mut self) {
        if let Ok(lib) = gss() {
            let mut minor = 0;
            // SAFETY: a credential this value owns.
            unsafe { (lib.release_cred)(&mut minor, &mut self.0) };
        }
    }
}

/// RFC 5929 `tls-server-end-point` application data for channel bindings:
/// the prefix then the certificate's hash.
pub fn tls_server_end_point(cert_hash: &[u8]) -> Vec<u8> {
    let mut data = b"tls-server-end-point:".to_vec();
    data.extend_from_slice(cert_hash);
    data
}

/// The client side of a security context, until it is established.
pub struct Initiator {
    ctx: Ctx,
    target: ImportedName,
    mechanism: Mechanism,
    credential: Option<Arc<Credential>>,
    bindings: Option<Vec<u8>>,
    flags: OmUint32,
    established: bool,
}

// SAFETY: GSSAPI contexts may move between threads (never shared).
unsafe impl Send for Initiator {}

impl Initiator {
    /// Start a context with `service@host` (e.g. `HTTP@ex01.corp.example`,
    /// `ldap@dc1.corp.example`), asking for mutual authentication, integrity
    /// and confidentiality. Returns the first token to send.
    pub fn new(
        service: &str,
        host: &str,
        mechanism: Mechanism,
        credential: Option<Arc<Credential>>,
        channel_bindings: Option<Vec<u8>>,
    ) -> Result<(Self, Vec<u8>), GssError> {
        let lib = gss().map_err(GssError::no_library)?;
        let target =
            ImportedName::new(lib, &format!("{service}@{host}"), ffi::NT_HOSTBASED_SERVICE)?;
        let mut initiator = Self {
            ctx: ptr::null_mut(),
            target,
            mechanism,
            credential,
            bindings: channel_bindings,
            flags: 0,
            established: false,
        };
        let token = initiator.step(None)?.unwrap_or_default();
        Ok((initiator, token))
    }

    /// Feed the server's token; returns the next token to send, if any.
    pub fn step(&mut self, input: Option<&[u8]>) -> Result<Option<Vec<u8>>, GssError> {
        let lib = gss().map_err(GssError::no_library)?;
        let mut minor = 0;
        let mut input_buffer = input.map(Buffer::borrowed);
        let mut output = Buffer::EMPTY;
        let mut mech = ffi::oid(self.mechanism.oid());
        let mut bindings = self.bindings.as_deref().map(|data| ffi::ChannelBindings {
            initiator_addrtype: 0,
            initiator_address: Buffer::EMPTY,
            acceptor_addrtype: 0,
            acceptor_address: Buffer::EMPTY,
            application_data: Buffer::borrowed(data),
        });
        let mut ret_flags = 0;
        let requested = ffi::FLAG_MUTUAL
            | ffi::FLAG_REPLAY
            | ffi::FLAG_SEQUENCE
            | ffi::FLAG_CONF
            | ffi::FLAG_INTEG;
        // SAFETY: every pointer is valid for the call; the context handle is
        // this value's, created by the first call.
        let major = unsafe {
            (lib.init_sec_context)(
                &mut minor,
                self.credential.as_ref().map_or(ptr::null_mut(), |c| c.0),
                &mut self.ctx,
                self.target.0,
                &mut mech,
                requested,
                0,
                bindings
                    .as_mut()
                    .map_or(ptr::null_mut(), |b| b as *mut ffi::ChannelBindings),
                input_buffer
                    .as_mut()
                    .map_or(ptr::null_mut(), |b| b as *mut Buffer),
                ptr::null_mut(),
                &mut output,
                &mut ret_flags,
                ptr::null_mut(),
            )
        };
        let token = take_buffer_bytes(lib, &mut output, false);
        check(lib, "authenticating with Kerberos", major, minor)?;
        self.flags = ret_flags;
        self.established = major & ffi::CONTINUE_NEEDED == 0;
        Ok((!token.is_empty()).then_some(token))
    }

    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The established context, once the server proved itself (mutual
    /// authentication) and sealing was granted.
    pub fn finish(mut self) -> Result<Context, GssError> {
        if !self.established {
            return Err(GssError::mutual_missing());
        }
        let needed = ffi::FLAG_MUTUAL | ffi::FLAG_CONF | ffi::FLAG_INTEG;
        if self.flags & needed != needed {
            return Err(GssError::unsupported(
                "the Kerberos context lacks mutual authentication or sealing",
            ));
        }
        let ctx = std::mem::replace(&mut self.ctx, ptr::null_mut());
        Ok(Context { ctx })
    }
}

impl Drop for Initiator {
    fn drop(&mut self) {
        delete_context(&mut self.ctx);
    }
}

/// The server side of a security context (the lab's WinRM servers).
pub struct Acceptor {
    ctx: Ctx,
    peer: Option<String>,
    established: bool,
}

// SAFETY: as for [`Initiator`].
unsafe impl Send for Acceptor {}

impl Default for Acceptor {
    fn default() -> Self {
        Self::new()
    }
}

impl Acceptor {
    pub fn new() -> Self {
        Self {
            ctx: ptr::null_mut(),
            peer: None,
            established: false,
        }
    }

    /// Feed the client's token; returns the token to send back, if any.
    pub fn step(&mut self, input: &[u8]) -> Result<Option<Vec<u8>>, GssError> {
        let lib = gss().map_err(GssError::no_library)?;
        let mut minor = 0;
        let mut input_buffer = Buffer::borrowed(input);
        let mut output = Buffer::EMPTY;
        let mut source: Name = ptr::null_mut();
        let mut flags = 0;
        // SAFETY: valid pointers; default acceptor credentials (the keytab).
        let major = unsafe {
            (lib.accept_sec_context)(
                &mut minor,
                &mut self.ctx,
                ptr::null_mut(),
                &mut input_buffer,
                ptr::null_mut(),
                &mut source,
                ptr::null_mut(),
                &mut output,
                &mut flags,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let token = take_buffer_bytes(lib, &mut output, false);
        if !source.is_null() {
            let name = ImportedName(source);
            self.peer = name.display(lib);
        }
        check(lib, "accepting a Kerberos ticket", major, minor)?;
        self.established = major & ffi::CONTINUE_NEEDED == 0;
        Ok((!token.is_empty()).then_some(token))
    }

    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The client's principal, once known.
    pub fn peer(&self) -> Option<&str> {
        self.peer.as_deref()
    }

    pub fn finish(mut self) -> Result<Context, GssError> {
        if !self.established {
            return Err(GssError::unsupported(
                "the Kerberos exchange is not finished",
            ));
        }
        let ctx = std::mem::replace(&mut self.ctx, ptr::null_mut());
        Ok(Context { ctx })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        delete_context(&mut self.ctx);
    }
}

fn delete_context(ctx: &mut Ctx) {
    if ctx.is_null() {
        return;
    }
    if let Ok(lib) = gss() {
        let mut minor = 0;
        // SAFETY: a context handle owned by the caller; deleting wipes its keys.
        unsafe { (lib.delete_sec_context)(&mut minor, ctx, ptr::null_mut()) };
    }
    *ctx = ptr::null_mut();
}

/// An established security context: seals and opens messages.
pub struct Context {
    ctx: Ctx,
}

// SAFETY: as for [`Initiator`].
unsafe impl Send for Context {}

impl Context {
    /// `gss_wrap` with confidentiality: an RFC 4121 wrap token.
    pub fn seal(&mut self, message: &[u8]) -> Result<Vec<u8>, GssError> {
        let (token, sealed) = self.wrap(message, true, "sealing a message")?;
        if !sealed {
            return Err(GssError::unsupported(
                "the Kerberos context did not encrypt",
            ));
        }
        Ok(token)
    }

    /// `gss_unwrap`, refusing tokens that were not encrypted, replayed or
    /// out of order. The plaintext is wiped when dropped.
    pub fn open(&mut self, token: &[u8]) -> Result<Zeroizing<Vec<u8>>, GssError> {
        let (plain, sealed) = self.unwrap(token, "opening a sealed message")?;
        if !sealed {
            return Err(GssError::unsupported(
                "a message arrived signed but not encrypted on a sealed session",
            ));
        }
        Ok(plain)
    }

    /// `gss_wrap` with integrity only: the SASL GSSAPI security-layer
    /// negotiation (RFC 4752 §3.1) is wrapped this way by both sides.
    pub fn sign(&mut self, message: &[u8]) -> Result<Vec<u8>, GssError> {
        Ok(self.wrap(message, false, "signing a message")?.0)
    }

    /// `gss_unwrap` that accepts integrity-only tokens (the server's SASL
    /// security-layer offer, RFC 4752 §3.1); replays and reordering are
    /// still refused. Everything after the negotiation goes through [`Context::open`].
    pub fn open_signed(&mut self, token: &[u8]) -> Result<Zeroizing<Vec<u8>>, GssError> {
        Ok(self.unwrap(token, "checking a signed message")?.0)
    }

    /// `gss_wrap`: the token, and whether it is encrypted.
    fn wrap(
        &mut self,
        message: &[u8],
        encrypt: bool,
        doing: &'static str,
    ) -> Result<(Vec<u8>, bool), GssError> {
        let lib = gss().map_err(GssError::no_library)?;
        let mut minor = 0;
        let mut input = Buffer::borrowed(message);
        let mut output = Buffer::EMPTY;
        let mut sealed: c_int = 0;
        // SAFETY: an established context and valid buffers.
        let major = unsafe {
            (lib.wrap)(
                &mut minor,
                self.ctx,
                c_int::from(encrypt),
                0,
                &mut input,
                &mut sealed,
                &mut output,
            )
        };
        let token = take_buffer_bytes(lib, &mut output, false);
        check(lib, doing, major, minor)?;
        Ok((token, sealed != 0))
    }

    /// `gss_unwrap`, refusing replayed or reordered tokens: the plaintext
    /// (wiped when dropped) and whether it was encrypted.
    fn unwrap(
        &mut self,
        token: &[u8],
        doing: &'static str,
    ) -> Result<(Zeroizing<Vec<u8>>, bool), GssError> {
        let lib = gss().map_err(GssError::no_library)?;
        let mut minor = 0;
        let mut input = Buffer::borrowed(token);
        let mut output = Buffer::EMPTY;
        let mut sealed: c_int = 0;
        let mut qop = 0;
        // SAFETY: an established context and valid buffers.
        let major = unsafe {
            (lib.unwrap)(
                &mut minor,
                self.ctx,
                &mut input,
                &mut output,
                &mut sealed,
                &mut qop,
            )
        };
        let plain = Zeroizing::new(take_buffer_bytes(lib, &mut output, true));
        check(lib, doing, major, minor)?;
        if major & ffi::SEQUENCE_PROBLEMS != 0 {
            return Err(GssError::replayed());
        }
        Ok((plain, sealed != 0))
    }

    /// The initiator's principal (`user@REALM`) as the context names it:
    /// on the client, whose ticket was used.
    pub fn initiator_name(&self) -> Result<String, GssError> {
        let lib = gss().map_err(GssError::no_library)?;
        let inquire = lib.inquire_context.ok_or_else(|| {
            GssError::unsupported("this Kerberos library cannot name a context's initiator")
        })?;
        let mut minor = 0;
        let mut source: Name = ptr::null_mut();
        // SAFETY: an established context; only the source name is asked for.
        let major = unsafe {
            inquire(
                &mut minor,
                self.ctx,
                &mut source,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let name = (!source.is_null()).then(|| ImportedName(source));
        check(lib, "naming the Kerberos initiator", major, minor)?;
        name.and_then(|n| n.display(lib))
            .ok_or_else(|| GssError::unsupported("the Kerberos context has no initiator name"))
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        delete_context(&mut self.ctx);
    }
}
