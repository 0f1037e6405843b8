//! Whether a DC has a change, decided by the replication metadata of the
//! attribute that carries it, not by the attribute's value
//! (docs/windows-behaviour.md §2.23): a value can match by accident (a stale
//! DC where `pwdLastSet` already was 0) or never match (a direct write gives
//! each DC its own `pwdLastSet`), but every originating write has a stamp —
//! version, originating DSA invocation id, originating USN — that travels
//! with the value.
//!
//! Windows serves the stamps as the constructed `msDS-ReplAttributeMetaData`
//! (XML, one value per attribute); Samba serves only the stored
//! `replPropertyMetaData` (MS-DRSR 5.160 REPL_PROPERTY_META_DATA_BLOB).
//! revoke reads both and says which one decided.

use serde::Serialize;

use super::DirectoryError;
use super::connection::Connection;

/// The constructed attribute Windows serves.
pub const CONSTRUCTED: &str = "msDS-ReplAttributeMetaData";
/// The stored blob Samba (and Windows, to administrators) serves.
pub const STORED: &str = "replPropertyMetaData";

/// The stamp of the last originating write of one attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub version: u32,
    /// The originating DSA's invocation id, as a lowercase GUID string.
    pub invocation_id: String,
    pub originating_usn: i64,
}

impl Stamp {
    /// Does a DC whose stamp is `self` have the write stamped `written`, or a
    /// later one? A later originating write has a higher version; the same
    /// version from another originator is a conflicting write, not ours.
    pub fn includes(&self, written: &Stamp) -> bool {
        self.version > written.version
            || (self.version == written.version
                && self.invocation_id == written.invocation_id
                && self.originating_usn == written.originating_usn)
    }
}

/// What decided whether a DC has the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Evidence {
    /// Windows' constructed attribute.
    #[serde(rename = "msDS-ReplAttributeMetaData")]
    Constructed,
    /// The stored blob (Samba).
    #[serde(rename = "replPropertyMetaData")]
    Stored,
    /// No metadata served: the attribute's value (weaker, see the module doc).
    #[serde(rename = "attribute-value")]
    Value,
    /// revoke wrote the change on this DC and read it back.
    #[serde(rename = "written-here")]
    WrittenHere,
}

impl Evidence {
    pub fn describe(self) -> &'static str {
        match self {
            Evidence::Constructed => "decided by msDS-ReplAttributeMetaData",
            Evidence::Stored => "decided by replPropertyMetaData",
            Evidence::Value => {
                "this DC serves no replication metadata to revoke's account, so this was decided by the attribute's value"
            }
            Evidence::WrittenHere => "written here and read back",
        }
    }
}

/// The attribute's stamp on this DC and where it came from; `None` if the
/// DC serves no metadata for it.
pub async fn read(
    conn: &mut Connection,
    dn: &str,
    attribute: &str,
) -> Result<Option<(Stamp, Evidence)>, DirectoryError> {
    let Some(entry) = conn.read(dn, &[CONSTRUCTED, STORED]).await? else {
        return Ok(None);
    };
    let values = |name: &str| -> Vec<Vec<u8>> {
        let text = entry
            .attrs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.iter().map(|s| s.as_bytes().to_vec()));
        let binary = entry
            .bin_attrs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.iter().cloned());
        text.chain(binary).collect()
    };
    for value in values(CONSTRUCTED) {
        if let Some(stamp) = parse_constructed(&String::from_utf8_lossy(&value), attribute) {
            return Ok(Some((stamp, Evidence::Constructed)));
        }
    }
    if let Some(attid) = attid_of(attribute) {
        for value in values(STORED) {
            if let Some(stamp) = parse_stored(&value, attid) {
                return Ok(Some((stamp, Evidence::Stored)));
            }
        }
    }
    Ok(None)
}

/// ATTRTYPs of the base-schema attributes revoke changes: prefix 9 is
/// 1.2.840.113556.1.4 in the default prefix table (MS-DRSR 5.16.4).
fn attid_of(attribute: &str) -> Option<u32> {
    match attribute.to_ascii_lowercase().as_str() {
        "useraccountcontrol" => Some(0x0009_0008),
        "unicodepwd" => Some(0x0009_005a),
        "pwdlastset" => Some(0x0009_0060),
        _ => None,
    }
}

/// One `DS_REPL_ATTR_META_DATA` XML value, if it is `attribute`'s.
fn parse_constructed(xml: &str, attribute: &str) -> Option<Stamp> {
    let field = |name: &str| -> Option<&str> {
        let open = format!("<{name}>");
        let start = xml.find(&open)? + open.len();
        let end = start + xml[start..].find(&format!("</{name}>"))?;
        Some(xml[start..end].trim())
    };
    if !field("pszAttributeName")?.eq_ignore_ascii_case(attribute) {
        return None;
    }
    Some(Stamp {
        version: field("dwVersion")?.parse().ok()?,
        invocation_id: field("uuidLastOriginatingDsaInvocationID")?
            .trim_matches(['{', '}'])
            .to_ascii_lowercase(),
        originating_usn: field("usnOriginatingChange")?.parse().ok()?,
    })
}

/// REPL_PROPERTY_META_DATA_BLOB: version 1, reserved, count, reserved, then
/// `count` 48-byte entries (attid, version, originating time (8),
/// originating invocation id (16), originating USN (8), local USN (8)).
fn parse_stored(blob: &[u8], attid: u32) -> Option<Stamp> {
    let u32_at = |at: usize| Some(u32::from_le_bytes(blob.get(at..at + 4)?.try_into().ok()?));
    let i64_at = |at: usize| Some(i64::from_le_bytes(blob.get(at..at + 8)?.try_into().ok()?));
    if u32_at(0)? != 1 {
        return None;
    }
    let count = u32_at(8)? as usize;
    (0..count).find_map(|i| {
        let at = 16 + i * 48;
        if u32_at(at)? != attid {
            return None;
        }
        Some(Stamp {
            version: u32_at(at + 4)?,
            invocation_id: guid(blob.get(at + 16..at + 32)?)?,
            originating_usn: i64_at(at + 32)?,
        })
    })
}

/// A GUID's 16 wire bytes (first three fields little-endian) as text.
fn guid(bytes: &[u8]) -> Option<String> {
    let b: [u8; 16] = bytes.try_into().ok()?;
    Some(format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10..]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two entries as Samba 4.17 served them for a test user.
    fn samba_blob() -> Vec<u8> {
        let mut blob = vec![1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        for (attid, version, usn) in [(0x0009_0008u32, 4u32, 4138i64), (0x0009_005a, 2, 4137)] {
            blob.extend(attid.to_le_bytes());
            blob.extend(version.to_le_bytes());
            blob.extend([0x43, 0x54, 0x20, 0x21, 3, 0, 0, 0]);
            blob.extend([
                0xcf, 0xaf, 0x5b, 0x7c, 0x12, 0x87, 0xc4, 0x4d, 0x87, 0x52, 0x07, 0x94, 0x40, 0xfb,
                0x9f, 0x6d,
            ]);
            blob.extend(usn.to_le_bytes());
            blob.extend(3755i64.to_le_bytes());
        }
        blob
    }

    #[test]
    fn the_stored_blob_gives_each_attributes_stamp() {
        let blob = samba_blob();
        let uac = parse_stored(&blob, 0x0009_0008).unwrap();
        assert_eq!(uac.version, 4);
        assert_eq!(uac.originating_usn, 4138);
        assert_eq!(uac.invocation_id, "7c5bafcf-8712-4dc4-8752-079440fb9f6d");
        assert_eq!(parse_stored(&blob, 0x0009_005a).unwrap().version, 2);
        assert_eq!(parse_stored(&blob, 0x0009_0060), None);
        assert_eq!(parse_stored(&blob[..40], 0x0009_005a), None, "truncated");
    }

    #[test]
    fn the_constructed_xml_gives_the_named_attributes_stamp() {
        let xml = "<DS_REPL_ATTR_META_DATA>\n\t<pszAttributeName>userAccountControl</pszAttributeName>\n\t<dwVersion>7</dwVersion>\n\t<ftimeLastOriginatingChange>2026-12-02T03:00:00Z</ftimeLastOriginatingChange>\n\t<uuidLastOriginatingDsaInvocationID>7C5BAFCF-8712-4DC4-8752-079440FB9F6D</uuidLastOriginatingDsaInvocationID>\n\t<usnOriginatingChange>41234</usnOriginatingChange>\n\t<usnLocalChange>41234</usnLocalChange>\n\t<pszLastOriginatingDsaDN>CN=NTDS Settings,CN=DC1</pszLastOriginatingDsaDN>\n</DS_REPL_ATTR_META_DATA>\n";
        let stamp = parse_constructed(xml, "userAccountControl").unwrap();
        assert_eq!(stamp.version, 7);
        assert_eq!(stamp.invocation_id, "7c5bafcf-8712-4dc4-8752-079440fb9f6d");
        assert_eq!(stamp.originating_usn, 41234);
        assert_eq!(parse_constructed(xml, "unicodePwd"), None);
    }

    #[test]
    fn a_dc_has_our_write_or_a_later_one_but_not_a_conflicting_one() {
        let ours = Stamp {
            version: 5,
            invocation_id: "a".into(),
            originating_usn: 100,
        };
        let same = ours.clone();
        let later = Stamp {
            version: 6,
            invocation_id: "b".into(),
            originating_usn: 7,
        };
        let stale = Stamp {
            version: 4,
            ..ours.clone()
        };
        let conflicting = Stamp {
            invocation_id: "b".into(),
            ..ours.clone()
        };
        assert!(same.includes(&ours));
        assert!(later.includes(&ours));
        assert!(!stale.includes(&ours));
        assert!(!conflicting.includes(&ours));
    }
}
