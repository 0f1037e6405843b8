//! The domain behind every DC: its identity (base DN, SID), one copy of
//! the data per DC, and the LDAP operations on a copy (rootDSE, search,
//! add, modify, delete) with AD's semantics, value rules and result texts.
//! Who may do what is `access`; how copies converge is `replication`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ldap3_proto::proto::{LdapFilter, LdapModifyType, LdapSearchScope};

use super::access::{Bound, Delegation};
use super::filter;
use super::replication::{Replication, root_dse_modify_refused};
use super::store::*;

fn no_such_object(data: &DcData, dn: &str) -> LdapError {
    LdapError::new(
        NO_SUCH_OBJECT,
        format!(
            "0000208D: NameErr: DSID-03100241, problem 2001 (NO_OBJECT), data 0, best match of: '{}'",
            data.matched(&norm_dn(dn))
        ),
    )
}

/// A DC as the rest of the domain knows it.
#[derive(Debug, Clone)]
pub struct DcInfo {
    /// The listen address, also its dNSHostName.
    pub host: String,
    pub dsa_dn: String,
}

/// One modification as the wire gives it.
#[derive(Debug, Clone)]
pub struct Modification {
    pub op: LdapModifyType,
    pub attr: String,
    pub values: Vec<Vec<u8>>,
}

pub struct Domain {
    pub base_dn: String,
    pub config_dn: String,
    pub dns_domain: String,
    pub netbios: String,
    pub domain_sid: String,
    pub dcs: Vec<DcInfo>,
    pub delegations: Mutex<Vec<Delegation>>,
    pub allow_plain_bind: bool,
    data: Vec<Mutex<DcData>>,
    /// How changes made here reach the other DCs.
    pub replication: Replication,
    stamp: AtomicU64,
    next_rid: AtomicU32,
}

impl Domain {
    pub fn new(
        dns_domain: &str,
        netbios: &str,
        dcs: Vec<DcInfo>,
        delays: Vec<Option<Duration>>,
        allow_plain_bind: bool,
    ) -> Self {
        let base_dn = dns_domain
            .split('.')
            .map(|p| format!("DC={p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut random = [0u8; 12];
        let _ = getrandom::fill(&mut random);
        let sub =
            |i: usize| u32::from_le_bytes([random[i], random[i + 1], random[i + 2], random[i + 3]]);
        Domain {
            config_dn: format!("CN=Configuration,{base_dn}"),
            base_dn,
            dns_domain: dns_domain.to_string(),
            netbios: netbios.to_string(),
            domain_sid: format!("S-1-5-21-{}-{}-{}", sub(0), sub(4), sub(8)),
            data: dcs.iter().map(|_| Mutex::new(DcData::default())).collect(),
            dcs,
            delegations: Mutex::new(Vec::new()),
            allow_plain_bind,
            replication: Replication::new(delays),
            stamp: AtomicU64::new(1),
            next_rid: AtomicU32::new(1103),
        }
    }

    pub fn dc_count(&self) -> usize {
        self.data.len()
    }

    pub fn data(&self, dc: usize) -> MutexGuard<'_, DcData> {
        lock(&self.data[dc])
    }

    pub fn next_sid(&self) -> String {
        let rid = self.next_rid.fetch_add(1, Ordering::Relaxed);
        format!("{}-{rid}", self.domain_sid)
    }

    fn next_stamp(&self) -> u64 {
        self.stamp.fetch_add(1, Ordering::Relaxed)
    }

    // ------------------------------------------------------------ search

    pub fn root_dse(&self, dc: usize) -> Entry {
        let info = &self.dcs[dc];
        let data = self.data(dc);
        let mut e = Entry::new("");
        e.set_str("defaultNamingContext", self.base_dn.clone());
        e.set_str("rootDomainNamingContext", self.base_dn.clone());
        e.set_str("configurationNamingContext", self.config_dn.clone());
        e.set_str(
            "schemaNamingContext",
            format!("CN=Schema,{}", self.config_dn),
        );
        e.set(
            "namingContexts",
            [
                self.base_dn.clone(),
                self.config_dn.clone(),
                format!("CN=Schema,{}", self.config_dn),
            ]
            .into_iter()
            .map(String::into_bytes)
            .collect(),
        );
        e.set_exact("dnsHostName", info.host.clone());
        e.set_str("dsServiceName", info.dsa_dn.clone());
        e.set_str("serverName", parent_dn(&info.dsa_dn));
        e.set_str(
            "ldapServiceName",
            format!(
                "{}:{}$@{}",
                self.dns_domain,
                info.host,
                self.dns_domain.to_uppercase()
            ),
        );
        e.set_str("highestCommittedUSN", data.usn.to_string());
        e.set_str("isSynchronized", "TRUE");
        e.set_str("supportedLDAPVersion", "3");
        e.set(
            "supportedExtension",
            vec![b"1.3.6.1.4.1.1466.20037".to_vec()],
        );
        e.set_str("domainFunctionality", "4");
        e.set_str("forestFunctionality", "4");
        e.set_str("domainControllerFunctionality", "4");
        e.set_str("vendorName", "revoke lab (embedded directory)");
        e
    }

    /// Entries under `base` in `scope` matching `filter`, with the attributes asked for.
    pub fn search(
        &self,
        dc: usize,
        base: &str,
        scope: &LdapSearchScope,
        filter: &LdapFilter,
        attrs: &[String],
    ) -> LdapResult<Vec<Entry>> {
        let data = self.data(dc);
        let base_norm = norm_dn(base);
        if !base_norm.is_empty() && !data.entries.contains_key(&base_norm) {
            return Err(no_such_object(&data, base));
        }
        let in_scope = |norm: &str| match scope {
            LdapSearchScope::Base => norm == base_norm,
            LdapSearchScope::OneLevel => parent_norm(norm) == base_norm,
            LdapSearchScope::Subtree => {
                base_norm.is_empty()
                    || norm == base_norm
                    || norm.ends_with(&format!(",{base_norm}"))
            }
            LdapSearchScope::Children => {
                norm != base_norm
                    && (base_norm.is_empty() || norm.ends_with(&format!(",{base_norm}")))
            }
        };
        Ok(data
            .entries
            .iter()
            .filter(|(norm, _)| in_scope(norm))
            .filter(|(_, e)| filter::matches(filter, e, &data))
            .map(|(_, e)| project(e, attrs, &data))
            .collect())
    }

    // ------------------------------------------------------------ add

    /// Adds an entry on DC `dc` as `who`, filling in what AD generates.
    pub fn add(
        self: &Arc<Self>,
        dc: usize,
        who: &Bound,
        dn: &str,
        attrs: Vec<(String, Vec<Vec<u8>>)>,
        tls: bool,
    ) -> LdapResult<()> {
        who.check_admin(dn)?;
        let mut entry = self.build(dn, attrs, tls)?;
        let mut data = self.data(dc);
        let norm = norm_dn(dn);
        if data.entries.contains_key(&norm) {
            return Err(LdapError::new(
                ENTRY_EXISTS,
                format!(
                    "00002071: UpdErr: DSID-030502F9, problem 6005 (ENTRY_EXISTS), data 0: {dn}"
                ),
            ));
        }
        let parent = parent_norm(&norm);
        let naming_context = norm == norm_dn(&self.base_dn);
        if !naming_context && !parent.is_empty() && !data.entries.contains_key(&parent) {
            return Err(no_such_object(&data, dn));
        }
        if let Some(sam) = entry.first("sAMAccountName") {
            let taken = data.entries.values().any(|e| {
                e.first("sAMAccountName")
                    .is_some_and(|s| s.to_lowercase() == sam.to_lowercase())
            });
            if taken {
                return Err(LdapError::new(
                    ENTRY_EXISTS,
                    format!(
                        "00000524: UpdErr: DSID-031A11E2, problem 6005 (ENTRY_EXISTS), data 0: sAMAccountName {sam} is in use"
                    ),
                ));
            }
        }
        entry.stamp = self.next_stamp();
        data.put(entry.clone(), true);
        drop(data);
        self.replicate(dc, Replica::Put(entry));
        Ok(())
    }

    fn build(&self, dn: &str, attrs: Vec<(String, Vec<Vec<u8>>)>, tls: bool) -> LdapResult<Entry> {
        let (rdn_attr, rdn_value) =
            rdn(dn).ok_or_else(|| LdapError::new(INVALID_DN, format!("invalid DN {dn:?}")))?;
        let mut entry = Entry::new(dn);
        let mut password = None;
        for (name, values) in attrs {
            if name.eq_ignore_ascii_case("unicodePwd") {
                let raw = values.first().cloned().unwrap_or_default();
                password = Some(decode_unicode_pwd(&raw)?);
                continue;
            }
            let mut all = entry.values(&name).to_vec();
            all.extend(values);
            entry.set(&name, all);
        }
        if entry.get("objectClass").is_none() {
            return Err(LdapError::new(65, "objectClass is required"));
        }
        let classes = expand_classes(entry.values("objectClass"));
        entry.set("objectClass", classes.clone());
        entry.set_str(&rdn_attr, rdn_value.clone());
        entry.set_str("name", rdn_value);
        entry.set_str("distinguishedName", dn);
        entry.set_str(
            "objectCategory",
            format!("CN={},CN=Schema,{}", category_of(&classes), self.config_dn),
        );
        entry.set("objectGUID", vec![uuid::Uuid::new_v4().as_bytes().to_vec()]);
        entry.set_str("instanceType", "4");
        let now = generalized_now();
        entry.set_str("whenCreated", now.clone());
        entry.set_str("whenChanged", now);
        let principal = entry.has_class("user") || entry.has_class("group");
        if principal {
            if entry.get("objectSid").is_none() {
                entry.set("objectSid", vec![sid_bytes(&self.next_sid())]);
            }
            if entry.get("sAMAccountName").is_none() {
                let rid = entry.rid().unwrap_or(0);
                entry.set_str("sAMAccountName", format!("$LAB{rid:06}"));
            }
        }
        if entry.has_class("group") && entry.get("groupType").is_none() {
            entry.set_str("groupType", "-2147483646");
        }
        if entry.has_class("user") {
            let computer = entry.has_class("computer");
            if entry.get("userAccountControl").is_none() {
                let uac = if computer { UAC_WORKSTATION } else { 0x222 };
                entry.set_str("userAccountControl", uac.to_string());
            } else {
                let uac = entry.uac();
                entry.set_str("userAccountControl", (uac as i32).to_string());
            }
            if entry.get("primaryGroupID").is_none() {
                let uac = entry.uac();
                let group = if uac & UAC_SERVER != 0 {
                    516
                } else if computer || uac & UAC_WORKSTATION != 0 {
                    515
                } else {
                    513
                };
                entry.set_str("primaryGroupID", group.to_string());
            }
            match password {
                Some(p) => {
                    if !tls {
                        return Err(password_needs_tls());
                    }
                    entry.secrets.set(p);
                    entry.set_str("pwdLastSet", filetime_now().to_string());
                }
                None => entry.set_str("pwdLastSet", "0"),
            }
        }
        if let Some(t) = sam_account_type(&entry).filter(|_| principal) {
            entry.set_str("sAMAccountType", t.to_string());
        }
        Ok(entry)
    }

    // ------------------------------------------------------------ modify

    /// An LDAP modify on DC `dc` as `who`, all changes or none.
    pub fn modify(
        self: &Arc<Self>,
        dc: usize,
        who: &Bound,
        dn: &str,
        changes: &[Modification],
        tls: bool,
    ) -> LdapResult<()> {
        if norm_dn(dn).is_empty() {
            return Err(root_dse_modify_refused());
        }
        let mut data = self.data(dc);
        let Some(current) = data.get(dn) else {
            return Err(no_such_object(&data, dn));
        };
        self.check_write(who, dn, current, changes)?;
        let mut entry = current.clone();
        for change in changes {
            apply_change(&mut entry, change, tls)?;
        }
        check_user_account_control(&mut entry)?;
        entry.set_str("whenChanged", generalized_now());
        entry.stamp = self.next_stamp();
        data.put(entry.clone(), false);
        drop(data);
        self.replicate(dc, Replica::Put(entry));
        Ok(())
    }

    /// Deletes a leaf entry (administrators only).
    pub fn delete(self: &Arc<Self>, dc: usize, who: &Bound, dn: &str) -> LdapResult<()> {
        who.check_admin(dn)?;
        let mut data = self.data(dc);
        let norm = norm_dn(dn);
        if !data.entries.contains_key(&norm) {
            return Err(no_such_object(&data, dn));
        }
        let suffix = format!(",{norm}");
        if data.entries.keys().any(|k| k.ends_with(&suffix)) {
            return Err(LdapError::new(
                66,
                "00002015: UpdErr: DSID-031A1262, problem 6003 (CANT_ON_NON_LEAF)",
            ));
        }
        let stamp = self.next_stamp();
        data.entries.remove(&norm);
        data.deleted.insert(norm.clone(), stamp);
        data.usn += 1;
        drop(data);
        self.replicate(dc, Replica::Remove { norm, stamp });
        Ok(())
    }
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn parent_dn(dn: &str) -> String {
    split_dn(dn)[1..].join(",")
}

fn password_needs_tls() -> LdapError {
    LdapError::new(
        UNWILLING,
        "0000001F: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM), data 0: \
         password changes need an encrypted connection",
    )
}

/// Read-only and system attributes a modify may not touch.
const SYSTEM_ONLY: &[&str] = &[
    "objectsid",
    "objectguid",
    "distinguishedname",
    "samaccounttype",
    "usnchanged",
    "usncreated",
    "whenchanged",
    "whencreated",
    "objectcategory",
    "instancetype",
];

fn apply_change(entry: &mut Entry, change: &Modification, tls: bool) -> LdapResult<()> {
    let key = change.attr.to_ascii_lowercase();
    if SYSTEM_ONLY.contains(&key.as_str()) {
        return Err(LdapError::new(
            CONSTRAINT_VIOLATION,
            format!(
                "000020B1: AtrErr: DSID-030F1B2C, #1: {} is owned by the system",
                change.attr
            ),
        ));
    }
    match key.as_str() {
        "unicodepwd" => return change_password(entry, change, tls),
        "pwdlastset" => {
            let value = single(change)?;
            let text = String::from_utf8_lossy(&value).trim().to_string();
            let stored = match text.as_str() {
                "0" => "0".to_string(),
                "-1" => filetime_now().to_string(),
                _ => {
                    return Err(LdapError::new(
                        UNWILLING,
                        "0000209A: SvcErr: DSID-031A1190, problem 5003 (WILL_NOT_PERFORM): pwdLastSet only takes 0 or -1",
                    ));
                }
            };
            entry.set_str("pwdLastSet", stored);
            return Ok(());
        }
        _ => {}
    }
    let mut values = entry.values(&change.attr).to_vec();
    match change.op {
        LdapModifyType::Add => {
            for v in &change.values {
                if values.iter().any(|x| values_equal(&change.attr, x, v)) {
                    return Err(LdapError::new(
                        VALUE_EXISTS,
                        format!(
                            "00002083: AtrErr: DSID-03151904, #1: {}: the value already exists",
                            change.attr
                        ),
                    ));
                }
                values.push(v.clone());
            }
        }
        LdapModifyType::Delete => {
            if values.is_empty() {
                return Err(no_such_attribute(&change.attr, &entry.dn));
            }
            if change.values.is_empty() {
                values.clear();
            }
            for v in &change.values {
                let before = values.len();
                values.retain(|x| !values_equal(&change.attr, x, v));
                if values.len() == before {
                    return Err(no_such_attribute(&change.attr, &entry.dn));
                }
            }
        }
        LdapModifyType::Replace => values = change.values.clone(),
        LdapModifyType::Increment => {
            let by: i64 = change
                .values
                .first()
                .and_then(|v| String::from_utf8_lossy(v).trim().parse().ok())
                .unwrap_or(1);
            let now = entry
                .number(&change.attr)
                .ok_or_else(|| no_such_attribute(&change.attr, &entry.dn))?;
            values = vec![(now + by).to_string().into_bytes()];
        }
    }
    entry.set(&change.attr, values);
    Ok(())
}

/// After all changes: userAccountControl holds one integer, stored signed.
fn check_user_account_control(entry: &mut Entry) -> LdapResult<()> {
    let values = entry.values("userAccountControl").to_vec();
    if values.is_empty() && !entry.has_class("user") {
        return Ok(());
    }
    let [one] = values.as_slice() else {
        return Err(LdapError::new(
            CONSTRAINT_VIOLATION,
            "00000057: AtrErr: DSID-03151904, #1: userAccountControl takes exactly one value",
        ));
    };
    let n: i64 = String::from_utf8_lossy(one)
        .trim()
        .parse()
        .map_err(|_| LdapError::new(21, "00000057: userAccountControl is not an integer"))?;
    entry.set_str("userAccountControl", (n as i32).to_string());
    Ok(())
}

/// Samba's text (checked against the test domain).
fn no_such_attribute(attr: &str, dn: &str) -> LdapError {
    LdapError::new(
        NO_SUCH_ATTRIBUTE,
        format!(
            "attribute '{attr}': no matching attribute value while deleting attribute on '{dn}'"
        ),
    )
}

fn single(change: &Modification) -> LdapResult<Vec<u8>> {
    match (&change.op, change.values.as_slice()) {
        (LdapModifyType::Replace, [one]) => Ok(one.clone()),
        _ => Err(LdapError::new(
            CONSTRAINT_VIOLATION,
            format!("{}: replace it with exactly one value", change.attr),
        )),
    }
}

/// unicodePwd: a replace is an administrative reset; delete(old)+add(new)
/// is a user's own change. Both need TLS, as on AD and Samba.
fn change_password(entry: &mut Entry, change: &Modification, tls: bool) -> LdapResult<()> {
    if !tls {
        return Err(password_needs_tls());
    }
    match change.op {
        LdapModifyType::Replace | LdapModifyType::Add => {
            let new = decode_unicode_pwd(&single_value(change)?)?;
            if new.chars().count() < 7 {
                return Err(LdapError::new(
                    CONSTRAINT_VIOLATION,
                    "0000052D: Constraint violation - check_password_restrictions: the password is too short. It should be equal or longer than 7 characters!",
                ));
            }
            entry.secrets.set(new);
            entry.set_str("pwdLastSet", filetime_now().to_string());
            Ok(())
        }
        LdapModifyType::Delete => {
            let old = decode_unicode_pwd(&single_value(change)?)?;
            if entry.secrets.current.as_deref() != Some(old.as_str()) {
                return Err(LdapError::new(
                    CONSTRAINT_VIOLATION,
                    "00000056: AtrErr: DSID-03190FE6, #1: 0: 00000056: unicodePwd: the old password is wrong",
                ));
            }
            Ok(())
        }
        LdapModifyType::Increment => Err(LdapError::new(
            UNWILLING,
            "unicodePwd cannot be incremented",
        )),
    }
}

fn single_value(change: &Modification) -> LdapResult<Vec<u8>> {
    match change.values.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(LdapError::new(
            CONSTRAINT_VIOLATION,
            "unicodePwd takes exactly one value",
        )),
    }
}

/// The attributes asked for (all with none or `*`; none with `1.1`), plus
/// the computed memberOf; secrets never.
fn project(entry: &Entry, attrs: &[String], data: &DcData) -> Entry {
    let all = attrs.is_empty() || attrs.iter().any(|a| a == "*");
    let wanted: Vec<String> = attrs.iter().map(|a| a.to_ascii_lowercase()).collect();
    let mut out = Entry::new(&entry.dn);
    for attr in entry.attrs() {
        let key = attr.name.to_ascii_lowercase();
        if SECRET_ATTRIBUTES.contains(&key.as_str()) {
            continue;
        }
        if all || wanted.contains(&key) {
            out.set(&attr.name, attr.values.clone());
        }
    }
    if all || wanted.iter().any(|a| a == "memberof") {
        let groups = data.member_of(&entry.dn);
        if !groups.is_empty() {
            out.set(
                "memberOf",
                groups.into_iter().map(String::into_bytes).collect(),
            );
        }
    }
    out
}

/// Attributes of an entry as strings (binary values lossily), keyed by name.
pub fn as_strings(entry: &Entry) -> HashMap<String, Vec<String>> {
    entry
        .attrs()
        .map(|a| {
            (
                a.name.clone(),
                a.values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect(),
            )
        })
        .collect()
}
