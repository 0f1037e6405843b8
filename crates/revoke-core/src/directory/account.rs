//! A user object as revoke sees it, and `userAccountControl` in words.

use ldap3::SearchEntry;

use super::connection::{all, first};

/// ACCOUNTDISABLE.
pub const ACCOUNT_DISABLE: u32 = 0x2;

/// Attributes read for every user.
pub const USER_ATTRIBUTES: &[&str] = &[
    "sAMAccountName",
    "userPrincipalName",
    "displayName",
    "mail",
    "userAccountControl",
    "objectSid",
    "adminCount",
    "primaryGroupID",
    "pwdLastSet",
    "whenChanged",
    "uSNChanged",
    "objectClass",
    "sAMAccountType",
];

/// sAMAccountType of computers and (group) managed service accounts
/// (SAM_MACHINE_ACCOUNT, docs/windows-behaviour.md §2.15).
pub const SAM_MACHINE_ACCOUNT: u32 = 0x3000_0001;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccount {
    pub dn: String,
    pub sam: String,
    pub upn: Option<String>,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub user_account_control: u32,
    /// `S-1-5-21-...`
    pub sid: String,
    pub admin_count: bool,
    pub primary_group_id: u32,
    pub pwd_last_set: String,
    /// `objectClass`, every value (e.g. top, person, ..., user, computer).
    pub object_classes: Vec<String>,
    pub sam_account_type: Option<u32>,
}

impl UserAccount {
    pub fn from_entry(entry: &SearchEntry) -> Self {
        let a = &entry.attrs;
        let number = |name| first(a, name).and_then(|v| v.parse::<i64>().ok());
        UserAccount {
            dn: entry.dn.clone(),
            sam: first(a, "sAMAccountName").unwrap_or_default(),
            upn: first(a, "userPrincipalName"),
            display_name: first(a, "displayName"),
            mail: first(a, "mail"),
            // AD writes it as a signed 32-bit integer.
            user_account_control: number("userAccountControl").unwrap_or(0) as u32,
            sid: object_sid(entry).unwrap_or_default(),
            admin_count: number("adminCount").unwrap_or(0) == 1,
            primary_group_id: number("primaryGroupID").unwrap_or(0) as u32,
            pwd_last_set: first(a, "pwdLastSet").unwrap_or_default(),
            object_classes: all(a, "objectClass"),
            sam_account_type: number("sAMAccountType").map(|n| n as u32),
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.user_account_control & ACCOUNT_DISABLE != 0
    }

    /// The relative identifier: the last component of the SID.
    pub fn rid(&self) -> Option<u32> {
        self.sid.rsplit('-').next()?.parse().ok()
    }

    pub fn has_class(&self, class: &str) -> bool {
        self.object_classes
            .iter()
            .any(|c| c.eq_ignore_ascii_case(class))
    }

    /// How to name the user in messages: `sam (Display Name)`.
    pub fn label(&self) -> String {
        match &self.display_name {
            Some(name) if !name.is_empty() => format!("{} ({name})", self.sam),
            _ => self.sam.clone(),
        }
    }
}

/// Every value of a binary SID attribute (`objectSid`, `tokenGroups`) in
/// string form; values that are not SIDs are left out.
pub fn sids(entry: &SearchEntry, name: &str) -> Vec<String> {
    let mut raw: Vec<Vec<u8>> = entry
        .bin_attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter().cloned())
        .collect();
    // ldap3 keeps values that happen to be valid UTF-8 in `attrs`.
    raw.extend(all(&entry.attrs, name).into_iter().map(String::into_bytes));
    raw.iter().filter_map(|v| sid_to_string(v)).collect()
}

/// `objectSid` in its string form. ldap3 puts values that are not UTF-8 in
/// `bin_attrs`; a SID can happen to be valid UTF-8, so look in both.
pub fn object_sid(entry: &SearchEntry) -> Option<String> {
    let raw: Vec<u8> = entry
        .bin_attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("objectSid"))
        .and_then(|(_, v)| v.first().cloned())
        .or_else(|| {
            all(&entry.attrs, "objectSid")
                .first()
                .map(|s| s.clone().into_bytes())
        })?;
    sid_to_string(&raw)
}

/// MS-DTYP 2.4.2.2: revision, sub-authority count, 48-bit big-endian
/// authority, then little-endian 32-bit sub-authorities.
pub fn sid_to_string(raw: &[u8]) -> Option<String> {
    let count = *raw.get(1)? as usize;
    if raw.len() != 8 + 4 * count {
        return None;
    }
    let authority = raw[2..8].iter().fold(0u64, |acc, b| (acc << 8) | *b as u64);
    let mut text = format!("S-{}-{authority}", raw[0]);
    for chunk in raw[8..].chunks_exact(4) {
        let sub = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        text.push_str(&format!("-{sub}"));
    }
    Some(text)
}

const FLAGS: &[(u32, &str)] = &[
    (0x0001, "SCRIPT"),
    (0x0002, "ACCOUNTDISABLE"),
    (0x0008, "HOMEDIR_REQUIRED"),
    (0x0010, "LOCKOUT"),
    (0x0020, "PASSWD_NOTREQD"),
    (0x0040, "PASSWD_CANT_CHANGE"),
    (0x0080, "ENCRYPTED_TEXT_PWD_ALLOWED"),
    (0x0100, "TEMP_DUPLICATE_ACCOUNT"),
    (0x0200, "NORMAL_ACCOUNT"),
    (0x0800, "INTERDOMAIN_TRUST_ACCOUNT"),
    (0x1000, "WORKSTATION_TRUST_ACCOUNT"),
    (0x2000, "SERVER_TRUST_ACCOUNT"),
    (0x10000, "DONT_EXPIRE_PASSWORD"),
    (0x20000, "MNS_LOGON_ACCOUNT"),
    (0x40000, "SMARTCARD_REQUIRED"),
    (0x80000, "TRUSTED_FOR_DELEGATION"),
    (0x100000, "NOT_DELEGATED"),
    (0x200000, "USE_DES_KEY_ONLY"),
    (0x400000, "DONT_REQ_PREAUTH"),
    (0x800000, "PASSWORD_EXPIRED"),
    (0x1000000, "TRUSTED_TO_AUTH_FOR_DELEGATION"),
    (0x4000000, "PARTIAL_SECRETS_ACCOUNT"),
];

/// `userAccountControl` decoded into flag names (unknown bits as hex).
pub fn uac_flag_names(value: u32) -> Vec<String> {
    let mut names: Vec<String> = FLAGS
        .iter()
        .filter(|(bit, _)| value & bit != 0)
        .map(|(_, name)| name.to_string())
        .collect();
    let known = FLAGS.iter().fold(0, |acc, (bit, _)| acc | bit);
    if value & !known != 0 {
        names.push(format!("0x{:x}", value & !known));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_render_like_windows() {
        // S-1-5-21-1-2-3-500
        let mut raw = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
        for sub in [21u32, 1, 2, 3, 500] {
            raw.extend(sub.to_le_bytes());
        }
        assert_eq!(sid_to_string(&raw).unwrap(), "S-1-5-21-1-2-3-500");
        assert_eq!(sid_to_string(&raw[..raw.len() - 1]), None);
    }

    #[test]
    fn flags_are_named() {
        assert_eq!(uac_flag_names(512), ["NORMAL_ACCOUNT"]);
        assert_eq!(uac_flag_names(514), ["ACCOUNTDISABLE", "NORMAL_ACCOUNT"]);
        assert_eq!(
            uac_flag_names(0x10200 | 0x8000_0000),
            ["NORMAL_ACCOUNT", "DONT_EXPIRE_PASSWORD", "0x80000000"]
        );
    }
}
