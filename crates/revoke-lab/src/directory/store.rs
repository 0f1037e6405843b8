//! The directory's data: entries keyed by normalised DN, one copy per DC,
//! and the AD rules for add and modify (docs/windows-behaviour.md §2.4-§2.8).

use std::collections::{BTreeMap, HashSet};

/// Result codes the directory answers with (RFC 4511), and AD's texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapError {
    pub code: u32,
    pub message: String,
}

impl LdapError {
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        LdapError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for LdapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "result {}: {}", self.code, self.message)
    }
}

impl std::error::Error for LdapError {}

pub type LdapResult<T> = Result<T, LdapError>;

pub const NO_SUCH_ATTRIBUTE: u32 = 16;
pub const CONSTRAINT_VIOLATION: u32 = 19;
pub const VALUE_EXISTS: u32 = 20;
pub const NO_SUCH_OBJECT: u32 = 32;
pub const INVALID_DN: u32 = 34;
pub const INSUFFICIENT_ACCESS: u32 = 50;
pub const UNWILLING: u32 = 53;
pub const ENTRY_EXISTS: u32 = 68;

pub const UAC_DISABLE: u32 = 0x2;
pub const UAC_WORKSTATION: u32 = 0x1000;
pub const UAC_SERVER: u32 = 0x2000;

/// Attributes whose values are DNs: compared as DNs.
const DN_ATTRIBUTES: &[&str] = &[
    "member",
    "memberof",
    "distinguishedname",
    "ncname",
    "hasmasterncs",
    "msds-hasmasterncs",
    "objectcategory",
    "serverreference",
    "dsservicename",
    "managedby",
];

/// Binary attributes: compared byte for byte.
const BINARY_ATTRIBUTES: &[&str] = &["objectsid", "objectguid", "unicodepwd"];

/// Never returned by a search (AD never reads them out).
pub const SECRET_ATTRIBUTES: &[&str] = &["unicodepwd", "dbcspwd", "ntpwdhistory", "lmpwdhistory"];

/// Splits a DN into its RDNs at unescaped commas, trimmed.
pub fn split_dn(dn: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == ',' {
            parts.push(current.trim().to_string());
            current.clear();
        } else {
            current.push(c);
        }
    }
    if !current.trim().is_empty() || !parts.is_empty() {
        parts.push(current.trim().to_string());
    }
    parts
}

/// The DN in a form two spellings of the same DN share: RDNs trimmed,
/// spaces around `=` removed, lower case.
pub fn norm_dn(dn: &str) -> String {
    split_dn(dn)
        .iter()
        .map(|rdn| match rdn.split_once('=') {
            Some((a, v)) => format!("{}={}", a.trim(), v.trim()),
            None => rdn.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// Parent of a normalised DN ("" for a top-level one).
pub fn parent_norm(norm: &str) -> String {
    let parts = split_dn(norm);
    parts[1.min(parts.len())..].join(",")
}

/// The RDN's attribute and value: ("CN", "alice").
pub fn rdn(dn: &str) -> Option<(String, String)> {
    let first = split_dn(dn).into_iter().next()?;
    let (attr, value) = first.split_once('=')?;
    let value = unescape_rdn(value.trim());
    Some((attr.trim().to_string(), value))
}

fn unescape_rdn(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One attribute with the name as first written.
#[derive(Debug, Clone)]
pub struct Attr {
    pub name: String,
    pub values: Vec<Vec<u8>>,
}

/// The password state: the current password and, for the old-password
/// window, the one before it.
#[derive(Debug, Clone, Default)]
pub struct StoredPasswords {
    pub current: Option<String>,
    pub previous: Option<String>,
}

impl StoredPasswords {
    pub fn accepts(&self, password: &str) -> bool {
        self.current.as_deref() == Some(password) || self.previous.as_deref() == Some(password)
    }

    pub fn set(&mut self, password: String) {
        self.previous = self.current.take();
        self.current = Some(password);
    }
}

/// The stamp of an attribute's last originating write, as AD keeps it per
/// attribute (MS-DRSR 5.160 PROPERTY_META_DATA_EXT): replication carries it
/// with the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrMeta {
    pub version: u32,
    /// The originating DC's invocation id.
    pub invocation_id: String,
    pub originating_usn: u64,
    pub originating_time: String,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub dn: String,
    attrs: BTreeMap<String, Attr>,
    pub secrets: StoredPasswords,
    /// Domain-wide write stamp: replication keeps the higher one.
    pub stamp: u64,
    /// Per attribute (canonical name): its last originating write.
    pub meta: BTreeMap<String, AttrMeta>,
}

impl Entry {
    pub fn new(dn: &str) -> Self {
        Entry {
            dn: dn.to_string(),
            attrs: BTreeMap::new(),
            secrets: StoredPasswords::default(),
            stamp: 0,
            meta: BTreeMap::new(),
        }
    }

    /// Records an originating write of `name` on the DC with
    /// `invocation_id`, at that DC's `usn`: the version goes up by one.
    pub fn stamp_attribute(&mut self, name: &str, invocation_id: &str, usn: u64) {
        let name = canonical_name(name);
        let version = self.meta.get(&name).map_or(0, |m| m.version) + 1;
        self.meta.insert(
            name,
            AttrMeta {
                version,
                invocation_id: invocation_id.to_string(),
                originating_usn: usn,
                originating_time: generalized_now(),
            },
        );
    }

    /// `msDS-ReplAttributeMetaData` as Windows constructs it: one
    /// `DS_REPL_ATTR_META_DATA` XML document per attribute.
    pub fn repl_attribute_meta_data(&self, dsa_of: impl Fn(&str) -> String) -> Vec<Vec<u8>> {
        self.meta
            .iter()
            .map(|(name, m)| {
                format!(
                    "<DS_REPL_ATTR_META_DATA>\n\t<pszAttributeName>{name}</pszAttributeName>\n\t\
                     <dwVersion>{}</dwVersion>\n\t<ftimeLastOriginatingChange>{}</ftimeLastOriginatingChange>\n\t\
                     <uuidLastOriginatingDsaInvocationID>{}</uuidLastOriginatingDsaInvocationID>\n\t\
                     <usnOriginatingChange>{}</usnOriginatingChange>\n\t<usnLocalChange>{}</usnLocalChange>\n\t\
                     <pszLastOriginatingDsaDN>{}</pszLastOriginatingDsaDN>\n</DS_REPL_ATTR_META_DATA>\n",
                    m.version,
                    m.originating_time,
                    m.invocation_id,
                    m.originating_usn,
                    m.originating_usn,
                    dsa_of(&m.invocation_id)
                )
                .into_bytes()
            })
            .collect()
    }

    pub fn norm(&self) -> String {
        norm_dn(&self.dn)
    }

    pub fn get(&self, name: &str) -> Option<&Attr> {
        self.attrs.get(&name.to_ascii_lowercase())
    }

    pub fn values(&self, name: &str) -> &[Vec<u8>] {
        self.get(name).map_or(&[], |a| a.values.as_slice())
    }

    pub fn strings(&self, name: &str) -> Vec<String> {
        self.values(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    pub fn first(&self, name: &str) -> Option<String> {
        self.strings(name).into_iter().next()
    }

    pub fn number(&self, name: &str) -> Option<i64> {
        self.first(name)?.trim().parse().ok()
    }

    pub fn set(&mut self, name: &str, values: Vec<Vec<u8>>) {
        let key = name.to_ascii_lowercase();
        if values.is_empty() {
            self.attrs.remove(&key);
            return;
        }
        let name = self
            .attrs
            .get(&key)
            .map_or_else(|| canonical_name(name), |a| a.name.clone());
        self.attrs.insert(key, Attr { name, values });
    }

    /// Sets an attribute under exactly this name (the rootDSE's own spellings).
    pub fn set_exact(&mut self, name: &str, value: impl Into<String>) {
        self.attrs.insert(
            name.to_ascii_lowercase(),
            Attr {
                name: name.to_string(),
                values: vec![value.into().into_bytes()],
            },
        );
    }

    pub fn set_str(&mut self, name: &str, value: impl Into<String>) {
        self.set(name, vec![value.into().into_bytes()]);
    }

    pub fn attrs(&self) -> impl Iterator<Item = &Attr> {
        self.attrs.values()
    }

    pub fn has_class(&self, class: &str) -> bool {
        self.values("objectClass")
            .iter()
            .any(|v| v.eq_ignore_ascii_case(class.as_bytes()))
    }

    pub fn uac(&self) -> u32 {
        self.number("userAccountControl").unwrap_or(0) as u32
    }

    /// The last component of objectSid.
    pub fn rid(&self) -> Option<u32> {
        let sid = self.values("objectSid").first()?;
        let n = sid.len();
        (n >= 12).then(|| u32::from_le_bytes([sid[n - 4], sid[n - 3], sid[n - 2], sid[n - 1]]))
    }
}

/// Attribute names as AD's schema spells them (searches return these,
/// whatever case a client used when writing).
const CANONICAL: &[&str] = &[
    "accountExpires",
    "adminCount",
    "cn",
    "dc",
    "description",
    "displayName",
    "distinguishedName",
    "dNSHostName",
    "dnsRoot",
    "givenName",
    "groupType",
    "hasMasterNCs",
    "instanceType",
    "lockoutTime",
    "mail",
    "member",
    "memberOf",
    "msDS-hasMasterNCs",
    "msDS-isRODC",
    "msExchCurrentServerRoles",
    "name",
    "nCName",
    "nETBIOSName",
    "networkAddress",
    "objectCategory",
    "objectClass",
    "objectGUID",
    "objectSid",
    "options",
    "ou",
    "primaryGroupID",
    "pwdLastSet",
    "sAMAccountName",
    "sAMAccountType",
    "serialNumber",
    "serverReference",
    "sn",
    "systemFlags",
    "unicodePwd",
    "userAccountControl",
    "userPrincipalName",
    "uSNChanged",
    "uSNCreated",
    "whenChanged",
    "whenCreated",
];

pub fn canonical_name(name: &str) -> String {
    CANONICAL
        .iter()
        .find(|c| c.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_string(), |c| c.to_string())
}

/// Do two values of `attr` denote the same thing (AD's matching rules, roughly)?
pub fn values_equal(attr: &str, a: &[u8], b: &[u8]) -> bool {
    let key = attr.to_ascii_lowercase();
    if BINARY_ATTRIBUTES.contains(&key.as_str()) {
        return a == b;
    }
    let (Ok(a), Ok(b)) = (std::str::from_utf8(a), std::str::from_utf8(b)) else {
        return a == b;
    };
    if DN_ATTRIBUTES.contains(&key.as_str()) {
        return norm_dn(a) == norm_dn(b);
    }
    if let (Ok(x), Ok(y)) = (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
        return x == y;
    }
    a.to_lowercase() == b.to_lowercase()
}

/// objectClass values as AD stores them: the whole chain from `top`.
pub fn expand_classes(given: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out: Vec<String> = vec!["top".into()];
    for class in given {
        let class = String::from_utf8_lossy(class).into_owned();
        let chain: &[&str] = match class.to_ascii_lowercase().as_str() {
            "user" => &["person", "organizationalPerson", "user"],
            "computer" => &["person", "organizationalPerson", "user", "computer"],
            "contact" => &["person", "organizationalPerson", "contact"],
            "person" => &["person"],
            "organizationalperson" => &["person", "organizationalPerson"],
            "msds-groupmanagedserviceaccount" => &[
                "person",
                "organizationalPerson",
                "user",
                "computer",
                "msDS-GroupManagedServiceAccount",
            ],
            "top" => &[],
            _ => &[],
        };
        let chain: Vec<String> = if chain.is_empty() && !class.eq_ignore_ascii_case("top") {
            vec![class]
        } else {
            chain.iter().map(|s| s.to_string()).collect()
        };
        for c in chain {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&c)) {
                out.push(c);
            }
        }
    }
    out.into_iter().map(String::into_bytes).collect()
}

/// The objectCategory CN of an entry's most specific class.
pub fn category_of(classes: &[Vec<u8>]) -> String {
    let last = classes
        .last()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default();
    category_for_class(&last).unwrap_or(last)
}

/// `person` → `Person`, `msExchExchangeServer` → `ms-Exch-Exchange-Server`.
pub fn category_for_class(class: &str) -> Option<String> {
    let known = [
        ("user", "Person"),
        ("person", "Person"),
        ("contact", "Person"),
        ("organizationalperson", "Person"),
        ("computer", "Computer"),
        (
            "msds-groupmanagedserviceaccount",
            "ms-DS-Group-Managed-Service-Account",
        ),
        ("group", "Group"),
        ("organizationalunit", "Organizational-Unit"),
        ("container", "Container"),
        ("msexchexchangeserver", "ms-Exch-Exchange-Server"),
        (
            "msexchconfigurationcontainer",
            "ms-Exch-Configuration-Container",
        ),
        ("ntdsdsa", "NTDS-DSA"),
        ("server", "Server"),
        ("crossref", "Cross-Ref"),
        ("crossrefcontainer", "Cross-Ref-Container"),
        ("domaindns", "Domain-DNS"),
        ("builtindomain", "Builtin-Domain"),
        ("configuration", "Configuration"),
        ("site", "Site"),
        ("sitescontainer", "Sites-Container"),
        ("serverscontainer", "Servers-Container"),
    ];
    let lower = class.to_ascii_lowercase();
    known
        .iter()
        .find(|(c, _)| *c == lower)
        .map(|(_, cat)| cat.to_string())
}

/// sAMAccountType as AD computes it (MS-ADTS 2.2.18 / 3.1.1.5.2.3).
pub fn sam_account_type(entry: &Entry) -> Option<u32> {
    if entry.has_class("group") {
        let group_type = entry.number("groupType").unwrap_or(-2147483646) as i32;
        let security = group_type < 0;
        // Builtin local (0x1) and domain local (0x4) groups are aliases.
        let local = group_type & 0x5 != 0;
        return Some(match (local, security) {
            (true, true) => 0x2000_0000,
            (true, false) => 0x2000_0001,
            (false, true) => 0x1000_0000,
            (false, false) => 0x1000_0001,
        });
    }
    if entry.has_class("computer") || entry.uac() & (UAC_WORKSTATION | UAC_SERVER) != 0 {
        return Some(0x3000_0001);
    }
    if entry.has_class("user") {
        return Some(0x3000_0000);
    }
    None
}

/// One DC's copy of the directory.
#[derive(Debug, Default, Clone)]
pub struct DcData {
    pub entries: BTreeMap<String, Entry>,
    pub usn: u64,
    /// Tombstones: normalised DN → the stamp of the deletion.
    pub deleted: BTreeMap<String, u64>,
}

/// What replication carries from one DC to another.
#[derive(Debug, Clone)]
pub enum Replica {
    Put(Entry),
    Remove { norm: String, stamp: u64 },
}

impl DcData {
    pub fn get(&self, dn: &str) -> Option<&Entry> {
        self.entries.get(&norm_dn(dn))
    }

    /// The nearest existing ancestor of `norm` (for matchedDN).
    pub fn matched(&self, norm: &str) -> String {
        let mut current = parent_norm(norm);
        while !current.is_empty() {
            if let Some(e) = self.entries.get(&current) {
                return e.dn.clone();
            }
            current = parent_norm(&current);
        }
        String::new()
    }

    /// Stores an entry, giving it this DC's next USN.
    pub fn put(&mut self, mut entry: Entry, created: bool) {
        self.usn += 1;
        let usn = self.usn.to_string();
        if created {
            entry.set_str("uSNCreated", usn.clone());
        }
        entry.set_str("uSNChanged", usn);
        self.entries.insert(entry.norm(), entry);
    }

    /// Applies a replicated change if it is newer than what this DC has.
    pub fn apply(&mut self, replica: &Replica) -> bool {
        match replica {
            Replica::Put(entry) => self.apply_replica(entry),
            Replica::Remove { norm, stamp } => {
                let newer = self.entries.get(norm).is_some_and(|e| e.stamp < *stamp);
                let known = self.deleted.get(norm).copied().unwrap_or(0);
                self.deleted.insert(norm.clone(), known.max(*stamp));
                if newer {
                    self.entries.remove(norm);
                    self.usn += 1;
                }
                newer
            }
        }
    }

    /// Applies a replicated entry if it is newer than what this DC has
    /// (and than a deletion it knows of).
    pub fn apply_replica(&mut self, entry: &Entry) -> bool {
        let norm = entry.norm();
        if self.deleted.get(&norm).is_some_and(|s| *s >= entry.stamp) {
            return false;
        }
        let created = match self.entries.get(&norm) {
            Some(mine) if mine.stamp >= entry.stamp => return false,
            Some(_) => false,
            None => true,
        };
        self.put(entry.clone(), created);
        true
    }

    /// DNs (normalised) of every entry that `start` reaches through
    /// `member`, transitively (LDAP_MATCHING_RULE_IN_CHAIN).
    pub fn members_closure(&self, start: &Entry) -> HashSet<String> {
        let mut seen = HashSet::new();
        let mut todo: Vec<String> = start.strings("member").iter().map(|m| norm_dn(m)).collect();
        while let Some(dn) = todo.pop() {
            if !seen.insert(dn.clone()) {
                continue;
            }
            if let Some(e) = self.entries.get(&dn) {
                todo.extend(e.strings("member").iter().map(|m| norm_dn(m)));
            }
        }
        seen
    }

    /// Groups that list `dn` directly in `member` (the memberOf back link).
    pub fn member_of(&self, dn: &str) -> Vec<String> {
        let norm = norm_dn(dn);
        self.entries
            .values()
            .filter(|e| e.strings("member").iter().any(|m| norm_dn(m) == norm))
            .map(|e| e.dn.clone())
            .collect()
    }

    /// Groups `dn` belongs to, directly or through nesting.
    pub fn groups_of(&self, dn: &str) -> Vec<&Entry> {
        let norm = norm_dn(dn);
        self.entries
            .values()
            .filter(|g| g.get("member").is_some() && self.members_closure(g).contains(&norm))
            .collect()
    }
}

/// unicodePwd's value: the password in double quotes, UTF-16LE.
pub fn decode_unicode_pwd(raw: &[u8]) -> LdapResult<String> {
    let bad = || {
        LdapError::new(
            CONSTRAINT_VIOLATION,
            "0000052D: Constraint violation - check_password_restrictions: the password is not a quoted UTF-16LE string",
        )
    };
    if !raw.len().is_multiple_of(2) {
        return Err(bad());
    }
    let units: Vec<u16> = raw
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let text = String::from_utf16(&units).map_err(|_| bad())?;
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(bad)?;
    Ok(inner.to_string())
}

/// Now as a FILETIME (100 ns since 1601), as pwdLastSet holds it.
pub fn filetime_now() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (since.as_secs() + 11_644_473_600) * 10_000_000 + u64::from(since.subsec_nanos()) / 100
}

/// Now as AD's GeneralizedTime: "20251123110500.0Z".
pub fn generalized_now() -> String {
    let text = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    format!("{digits}.0Z")
}

/// objectSid bytes of `S-1-5-21-a-b-c-rid` (or any S-1-N-... SID).
pub fn sid_bytes(sid: &str) -> Vec<u8> {
    let parts: Vec<u64> = sid
        .trim_start_matches("S-")
        .split('-')
        .filter_map(|p| p.parse().ok())
        .collect();
    let (revision, authority, subs) = (parts[0], parts[1], &parts[2..]);
    let mut out = vec![revision as u8, subs.len() as u8];
    out.extend_from_slice(&authority.to_be_bytes()[2..]);
    for s in subs {
        out.extend_from_slice(&(*s as u32).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_normalise() {
        assert_eq!(
            norm_dn("CN=Alice Example , OU=Staff,DC=lab"),
            "cn=alice example,ou=staff,dc=lab"
        );
        assert_eq!(parent_norm("cn=a\\,b,ou=x,dc=y"), "ou=x,dc=y");
        assert_eq!(rdn("CN=a\\,b,OU=x").unwrap(), ("CN".into(), "a,b".into()));
        assert_eq!(parent_norm("dc=test"), "");
    }

    #[test]
    fn sids_round_trip() {
        let raw = sid_bytes("S-1-5-21-1-2-3-500");
        assert_eq!(
            revoke_core::directory::account::sid_to_string(&raw).unwrap(),
            "S-1-5-21-1-2-3-500"
        );
        assert_eq!(sid_bytes("S-1-5-32-544").len(), 16);
    }

    #[test]
    fn sam_account_types_are_computed_as_ad_does() {
        let typed = |classes: &[&str], attrs: &[(&str, &str)]| {
            let mut e = Entry::new("CN=x");
            let given: Vec<Vec<u8>> = classes.iter().map(|c| c.as_bytes().to_vec()).collect();
            e.set("objectClass", expand_classes(&given));
            for (k, v) in attrs {
                e.set_str(k, *v);
            }
            sam_account_type(&e)
        };
        assert_eq!(typed(&["user"], &[]), Some(805306368));
        assert_eq!(typed(&["computer"], &[]), Some(805306369));
        assert_eq!(
            typed(&["msDS-GroupManagedServiceAccount"], &[]),
            Some(805306369)
        );
        // A user object with a trust-account flag counts as a machine.
        assert_eq!(
            typed(&["user"], &[("userAccountControl", "4096")]),
            Some(805306369)
        );
        assert_eq!(typed(&["group"], &[]), Some(268435456));
        assert_eq!(
            typed(&["group"], &[("groupType", "-2147483640")]),
            Some(268435456)
        );
        assert_eq!(
            typed(&["group"], &[("groupType", "-2147483643")]),
            Some(536870912)
        );
        assert_eq!(
            typed(&["group"], &[("groupType", "-2147483644")]),
            Some(536870912)
        );
        assert_eq!(typed(&["group"], &[("groupType", "2")]), Some(268435457));
        assert_eq!(typed(&["contact"], &[]), None);
    }

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        let raw = revoke_core::directory::password::unicode_pwd(&revoke_core::Password::new(
            "Pä55-wörd".into(),
        ));
        assert_eq!(decode_unicode_pwd(&raw).unwrap(), "Pä55-wörd");
        assert_eq!(
            decode_unicode_pwd(b"x").unwrap_err().code,
            CONSTRAINT_VIOLATION
        );
        let unquoted: Vec<u8> = "abc".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert!(decode_unicode_pwd(&unquoted).is_err());
    }

    #[test]
    fn computers_are_users_too() {
        let classes = expand_classes(&[b"computer".to_vec()]);
        let names: Vec<String> = classes
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        assert_eq!(
            names,
            ["top", "person", "organizationalPerson", "user", "computer"]
        );
        assert_eq!(category_of(&classes), "Computer");
        let mut e = Entry::new("CN=x");
        e.set_str("CN", "x");
        e.set_str("SAMACCOUNTNAME", "x");
        let names: Vec<&str> = e.attrs().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["cn", "sAMAccountName"]);
    }
}
