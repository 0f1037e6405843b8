//! The few GSSAPI (RFC 2744) functions revoke calls, looked up in the
//! system's library at run time: no headers or libclang to build, and a
//! binary that starts (and runs NTLM) where no Kerberos library is installed.

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

use libloading::Library;

pub type OmUint32 = u32;
pub type Name = *mut c_void;
pub type Ctx = *mut c_void;
pub type Cred = *mut c_void;

// Apple's GSS.framework packs these structures to 2 bytes; MIT and Heimdal
// elsewhere use the platform's C layout.
#[cfg_attr(target_os = "macos", repr(C, packed(2)))]
#[cfg_attr(not(target_os = "macos"), repr(C))]
pub struct Buffer {
    pub length: usize,
    pub value: *mut c_void,
}

impl Buffer {
    pub const EMPTY: Buffer = Buffer {
        length: 0,
        value: std::ptr::null_mut(),
    };

    /// A buffer that lends `bytes` to the library (which only reads it).
    pub fn borrowed(bytes: &[u8]) -> Buffer {
        Buffer {
            length: bytes.len(),
            value: bytes.as_ptr() as *mut c_void,
        }
    }
}

#[cfg_attr(target_os = "macos", repr(C, packed(2)))]
#[cfg_attr(not(target_os = "macos"), repr(C))]
pub struct Oid {
    pub length: OmUint32,
    pub elements: *mut c_void,
}

#[repr(C)]
pub struct OidSet {
    pub count: usize,
    pub elements: *mut Oid,
}

#[repr(C)]
pub struct ChannelBindings {
    pub initiator_addrtype: OmUint32,
    pub initiator_address: Buffer,
    pub acceptor_addrtype: OmUint32,
    pub acceptor_address: Buffer,
    pub application_data: Buffer,
}

pub const COMPLETE: OmUint32 = 0;
pub const CONTINUE_NEEDED: OmUint32 = 1;
/// Calling and routine errors: the supplementary bits below them are not.
pub const ERROR_MASK: OmUint32 = 0xffff_0000;
/// Supplementary bits of `gss_unwrap`: a replayed, old, out-of-order or
/// missing token. Each is refused: WinRM and LDAP messages arrive in order.
pub const SEQUENCE_PROBLEMS: OmUint32 = 0x2 | 0x4 | 0x8 | 0x10;
/// Where the routine error number sits in a major status (RFC 2744 3.9.1).
pub const ROUTINE_SHIFT: u32 = 16;
/// GSS_S_NO_CRED as a routine error number.
pub const ROUTINE_NO_CRED: u32 = 7;

pub const C_GSS_CODE: c_int = 1;
pub const C_MECH_CODE: c_int = 2;
pub const C_INITIATE: c_int = 1;

pub const FLAG_MUTUAL: OmUint32 = 2;
pub const FLAG_REPLAY: OmUint32 = 4;
pub const FLAG_SEQUENCE: OmUint32 = 8;
pub const FLAG_CONF: OmUint32 = 16;
pub const FLAG_INTEG: OmUint32 = 32;

/// 1.2.840.113554.1.2.1.4, GSS_C_NT_HOSTBASED_SERVICE ("HTTP@host").
pub const NT_HOSTBASED_SERVICE: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x01\x04";
/// 1.2.840.113554.1.2.2.1, GSS_KRB5_NT_PRINCIPAL_NAME ("user@REALM").
pub const NT_KRB5_PRINCIPAL: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01";
/// 1.2.840.113554.1.2.2, the Kerberos V5 mechanism.
pub const MECH_KRB5: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02";
/// 1.3.6.1.5.5.2, SPNEGO (what HTTP `Negotiate` carries).
pub const MECH_SPNEGO: &[u8] = b"\x2b\x06\x01\x05\x05\x02";

/// An OID the library reads but never keeps or writes.
pub fn oid(bytes: &'static [u8]) -> Oid {
    Oid {
        length: bytes.len() as OmUint32,
        elements: bytes.as_ptr() as *mut c_void,
    }
}

type ImportName = unsafe extern "C" fn(*mut OmUint32, *mut Buffer, *mut Oid, *mut Name) -> OmUint32;
type ReleaseName = unsafe extern "C" fn(*mut OmUint32, *mut Name) -> OmUint32;
type DisplayName =
    unsafe extern "C" fn(*mut OmUint32, Name, *mut Buffer, *mut *mut Oid) -> OmUint32;
type InitSecContext = unsafe extern "C" fn(
    *mut OmUint32,
    Cred,
    *mut Ctx,
    Name,
    *mut Oid,
    OmUint32,
    OmUint32,
    *mut ChannelBindings,
    *mut Buffer,
    *mut *mut Oid,
    *mut Buffer,
    *mut OmUint32,
    *mut OmUint32,
) -> OmUint32;
type AcceptSecContext = unsafe extern "C" fn(
    *mut OmUint32,
    *mut Ctx,
    Cred,
    *mut Buffer,
    *mut ChannelBindings,
    *mut Name,
    *mut *mut Oid,
    *mut Buffer,
    *mut OmUint32,
    *mut OmUint32,
    *mut Cred,
) -> OmUint32;
type DeleteSecContext = unsafe extern "C" fn(*mut OmUint32, *mut Ctx, *mut Buffer) -> OmUint32;
type ReleaseBuffer = unsafe extern "C" fn(*mut OmUint32, *mut Buffer) -> OmUint32;
type Wrap = unsafe extern "C" fn(
    *mut OmUint32,
    Ctx,
    c_int,
    OmUint32,
    *mut Buffer,
    *mut c_int,
    *mut Buffer,
) -> OmUint32;
type Unwrap = unsafe extern "C" fn(
    *mut OmUint32,
    Ctx,
    *mut Buffer,
    *mut Buffer,
    *mut c_int,
    *mut OmUint32,
) -> OmUint32;
type DisplayStatus = unsafe extern "C" fn(
    *mut OmUint32,
    OmUint32,
    c_int,
    *mut Oid,
    *mut OmUint32,
    *mut Buffer,
) -> OmUint32;
type AcquireCred = unsafe extern "C" fn(
    *mut OmUint32,
    Name,
    OmUint32,
    *mut OidSet,
    c_int,
    *mut Cred,
    *mut *mut OidSet,
    *mut OmUint32,
) -> OmUint32;
type AcquireCredWithPassword = unsafe extern "C" fn(
    *mut OmUint32,
    Name,
    *mut Buffer,
    OmUint32,
    *mut OidSet,
    c_int,
    *mut Cred,
    *mut *mut OidSet,
    *mut OmUint32,
) -> OmUint32;
type ReleaseCred = unsafe extern "C" fn(*mut OmUint32, *mut Cred) -> OmUint32;
type RegisterAcceptorIdentity = unsafe extern "C" fn(*const c_char) -> OmUint32;
type InquireContext = unsafe extern "C" fn(
    *mut OmUint32,
    Ctx,
    *mut Name,
    *mut Name,
    *mut OmUint32,
    *mut *mut Oid,
    *mut OmUint32,
    *mut c_int,
    *mut c_int,
) -> OmUint32;

/// The library and the functions looked up in it.
pub struct Gss {
    pub import_name: ImportName,
    pub release_name: ReleaseName,
    pub display_name: DisplayName,
    pub init_sec_context: InitSecContext,
    pub accept_sec_context: AcceptSecContext,
    pub delete_sec_context: DeleteSecContext,
    pub release_buffer: ReleaseBuffer,
    pub wrap: Wrap,
    pub unwrap: Unwrap,
    pub display_status: DisplayStatus,
    pub acquire_cred: AcquireCred,
    pub release_cred: ReleaseCred,
    /// An extension (MIT, Heimdal); absent elsewhere.
    pub acquire_cred_with_password: Option<AcquireCredWithPassword>,
    /// MIT's way to name the acceptor's keytab; absent elsewhere.
    pub register_acceptor_identity: Option<RegisterAcceptorIdentity>,
    /// RFC 2744; optional so that a library without it still loads.
    pub inquire_context: Option<InquireContext>,
    /// Kept loaded for the life of the process: the pointers above live in it.
    _library: Library,
}

/// The names tried, in order: MIT krb5 (Linux distributions), Heimdal, Apple.
const CANDIDATES: &[&str] = &[
    "libgssapi_krb5.so.2",
    "libgssapi.so.3",
    "/System/Library/Frameworks/GSS.framework/GSS",
    "libgssapi_krb5.dylib",
];

static GSS: OnceLock<Result<Gss, String>> = OnceLock::new();

/// The loaded library, or why none could be loaded (a sentence).
pub fn gss() -> Result<&'static Gss, String> {
    GSS.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Gss, String> {
    let mut tried = Vec::new();
    for name in CANDIDATES {
        // SAFETY: these are the system's GSSAPI libraries, whose initialisers
        // are safe to run; nothing else of theirs runs until called below.
        match unsafe { Library::new(name) } {
            Ok(library) => return symbols(library).map_err(|e| format!("{name}: {e}")),
            Err(_) => tried.push(*name),
        }
    }
    Err(format!(
        "no Kerberos (GSSAPI) library found on this machine (tried {}); install MIT \
         Kerberos' libgssapi-krb5-2 (Debian, Ubuntu) or krb5-libs (Red Hat)",
        tried.join(", ")
    ))
}

fn symbols(library: Library) -> Result<Gss, libloading::Error> {
    // SAFETY: each symbol is looked up under its RFC 2744 name and given the
    // signature RFC 2744 (or MIT's gssapi_ext.h / gssapi_krb5.h) declares.
    unsafe {
        Ok(Gss {
            import_name: *library.get(b"gss_import_name\0")?,
            release_name: *library.get(b"gss_release_name\0")?,
            display_name: *library.get(b"gss_display_name\0")?,
            init_sec_context: *library.get(b"gss_init_sec_context\0")?,
            accept_sec_context: *library.get(b"gss_accept_sec_context\0")?,
            delete_sec_context: *library.get(b"gss_delete_sec_context\0")?,
            release_buffer: *library.get(b"gss_release_buffer\0")?,
            wrap: *library.get(b"gss_wrap\0")?,
            unwrap: *library.get(b"gss_unwrap\0")?,
            display_status: *library.get(b"gss_display_status\0")?,
            acquire_cred: *library.get(b"gss_acquire_cred\0")?,
            release_cred: *library.get(b"gss_release_cred\0")?,
            acquire_cred_with_password: library
                .get(b"gss_acquire_cred_with_password\0")
                .ok()
                .map(|s| *s),
            register_acceptor_identity: library
                .get(b"krb5_gss_register_acceptor_identity\0")
                .ok()
                .map(|s| *s),
            inquire_context: library.get(b"gss_inquire_context\0").ok().map(|s| *s),
            _library: library,
        })
    }
}
