//! How the reports write a moment: RFC 3339, UTC, milliseconds. The events
//! and the report carry `SystemTime`; only serialization turns it into text.

use std::time::SystemTime;

/// `2026-11-23T10:00:02.345Z`.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// serde `serialize_with`: a moment as [`rfc3339`] writes it.
pub fn serialize<S: serde::Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*at))
}

/// serde `serialize_with`: an optional moment, or null.
pub fn serialize_opt<S: serde::Serializer>(
    at: &Option<SystemTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize(at, serializer),
        None => serializer.serialize_none(),
    }
}
