//! Hostile answers, for the faults that play a server (or anyone on the path
//! of plain HTTP) abusing a WinRM client: a body without end, a 401 after the
//! command ran, an unsealed 200 on a sealed session, a broken signature.
//! Each is given once per server, to the first request it applies to.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use revoke_winrm::sealing;
use revoke_winrm::soap::{ACTION_COMMAND, ACTION_RECEIVE, ACTION_SIGNAL};

use super::super::envelope::{Body as SoapBody, WsmanRequest};
use super::super::faults::ServerFaults;

/// HugeResponse: how much the body streams (far past any WinRM answer).
const HUGE_BODY: usize = 512 * 1024 * 1024;
const HUGE_CHUNK: usize = 64 * 1024;

/// What a server does to one request instead of answering it plainly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Twist {
    None,
    /// Answer with a body of [`HUGE_BODY`] bytes, not acting on the request.
    HugeBody,
    /// Answer an unsealed, empty 200, not acting on the request.
    Unsealed200,
    /// Act on the request, then answer 401.
    Reply401,
    /// Act on the request, then break the signature of the sealed answer.
    BadSignature,
    /// Act on the request, then never answer.
    Silence,
}

/// The hostile faults of one server, and which were given already.
pub(super) struct Hostile {
    huge_response: Option<AtomicBool>,
    unsealed_200: Option<AtomicBool>,
    reply_401: Option<AtomicBool>,
    bad_signature: Option<AtomicBool>,
    silent: Option<AtomicBool>,
}

/// `Some(flag)` for a fault the server has; the flag says it was given.
fn armed(on: bool) -> Option<AtomicBool> {
    on.then(|| AtomicBool::new(false))
}

/// True the first time only.
fn first(flag: &Option<AtomicBool>) -> bool {
    flag.as_ref()
        .is_some_and(|f| !f.swap(true, Ordering::SeqCst))
}

impl Hostile {
    pub(super) fn new(faults: &ServerFaults) -> Self {
        Hostile {
            huge_response: armed(faults.huge_response),
            unsealed_200: armed(faults.unsealed_200),
            reply_401: armed(faults.reply_401_after_command),
            bad_signature: armed(faults.bad_signature),
            silent: armed(faults.silent_after_command),
        }
    }

    /// What to do with this (unsealed) request; `sealed` says the session seals.
    pub(super) fn twist(&self, request: Option<&WsmanRequest>, sealed: bool) -> Twist {
        let Some(request) = request else {
            return Twist::None;
        };
        match request.action.as_str() {
            ACTION_RECEIVE if first(&self.huge_response) => Twist::HugeBody,
            ACTION_RECEIVE if sealed && first(&self.unsealed_200) => Twist::Unsealed200,
            ACTION_SIGNAL if sealed && first(&self.bad_signature) => Twist::BadSignature,
            ACTION_COMMAND if changes_something(&request.body) && first(&self.reply_401) => {
                Twist::Reply401
            }
            ACTION_COMMAND if changes_something(&request.body) && first(&self.silent) => {
                Twist::Silence
            }
            _ => Twist::None,
        }
    }
}

/// A command line that recycles a pool or resets IIS.
fn changes_something(body: &SoapBody) -> bool {
    let SoapBody::CommandLine { command, arguments } = body else {
        return false;
    };
    let line = std::iter::once(command.as_str())
        .chain(arguments.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    line.contains(" recycle ") || (line.contains("iisreset") && !line.contains("/status"))
}

/// Marks a response whose body [`body`] replaces with [`HUGE_BODY`] bytes.
#[derive(Clone, Copy)]
struct HugeMarker;

/// A 200 that claims to be sealed and streams [`HUGE_BODY`] bytes.
pub(super) fn huge_response() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(sealing::SEALED_CONTENT_TYPE),
    );
    r.extensions_mut().insert(HugeMarker);
    r
}

/// Flips a bit of the checksum in a sealed body's signature.
pub(super) fn break_signature(framed: &mut [u8]) {
    const PART: &[u8] = b"application/octet-stream\r\n";
    if let Some(at) = framed.windows(PART.len()).position(|w| w == PART) {
        // The 4-byte signature length, then version (4 bytes), then the checksum.
        let checksum = at + PART.len() + 4 + 4;
        if let Some(byte) = framed.get_mut(checksum) {
            *byte ^= 0x01;
        }
    }
}

pub(super) type LabBody = Either<Full<Bytes>, HugeBody>;

/// The response as sent: a huge body where [`huge_response`] asked for one.
pub(super) fn body(response: Response<Full<Bytes>>) -> Response<LabBody> {
    let huge = response.extensions().get::<HugeMarker>().is_some();
    response.map(|b| {
        if huge {
            Either::Right(HugeBody { left: HUGE_BODY })
        } else {
            Either::Left(b)
        }
    })
}

/// [`HUGE_BODY`] bytes of one shared chunk, without a Content-Length
/// (chunked), so a client learns the size only by reading.
pub(super) struct HugeBody {
    left: usize,
}

impl Body for HugeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        static CHUNK: [u8; HUGE_CHUNK] = [b'A'; HUGE_CHUNK];
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(HUGE_CHUNK);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        // No exact size: hyper would send a Content-Length.
        SizeHint::default()
    }
}
