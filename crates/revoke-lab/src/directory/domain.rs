//! The domain behind every DC: its identity (base DN, SID), one copy of
//! the data per DC, and the LDAP operations on a copy (rootDSE, search,
//! add, modify, delete) with AD's semantics, value rules and result texts.
//! Who may do what is `access`; how copies converge is `replication`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// AD's default MaxPageSize (docs/windows-behaviour.md §2.20).
pub const DEFAULT_MAX_PAGE_SIZE: usize = 1000;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use ldap3_proto::proto::{LdapFilter, LdapModifyType, LdapSearchScope};

use super::access::{Bound, Delegation};
use super::filter;
use super::replication::Replication;
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
    /// The forest root domain's naming context (this domain's own, unless
    /// it is a child domain).
    pub root_domain_dn: String,
    /// The forest's other domain (a two-domain forest: the root's child, or
    /// the child's root): where cross-domain binds, universal groups and
    /// the Global Catalog look.
    pub peer: OnceLock<Weak<Domain>>,
    pub dns_domain: String,
    pub netbios: String,
    pub domain_sid: String,
    pub dcs: Vec<DcInfo>,
    pub delegations: Mutex<Vec<Delegation>>,
    pub allow_plain_bind: bool,
    /// AD's MaxPageSize: at most this many entries per search or page.
    pub max_page_size: AtomicUsize,
    data: Vec<Mutex<DcData>>,
    /// How changes made here reach the other DCs.
    pub replication: Replication,
    stamp: AtomicU64,
    next_rid: AtomicU32,
    /// Per DC: its invocation id, which stamps its originating writes.
    pub invocation_ids: Vec<String>,
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
        let dc_count = dcs.len();
        let mut random = [0u8; 12];
        let _ = getrandom::fill(&mut random);
        let sub =
            |i: usize| u32::from_le_bytes([random[i], random[i + 1], random[i + 2], random[i + 3]]);
        Domain {
            config_dn: format!("CN=Configuration,{base_dn}"),
            root_domain_dn: base_dn.clone(),
            peer: OnceLock::new(),
            base_dn,
            dns_domain: dns_domain.to_string(),
            netbios: netbios.to_string(),
            domain_sid: format!("S-1-5-21-{}-{}-{}", sub(0), sub(4), sub(8)),
            data: dcs.iter().map(|_| Mutex::new(DcData::default())).collect(),
            dcs,
            delegations: Mutex::new(Vec::new()),
            allow_plain_bind,
            max_page_size: AtomicUsize::new(DEFAULT_MAX_PAGE_SIZE),
            replication: Replication::new(delays),
            stamp: AtomicU64::new(1),
            next_rid: AtomicU32::new(1103),
            invocation_ids: (0..dc_count)
                .map(|_| uuid::Uuid::new_v4().to_string())
                .collect(),
        }
    }

    /// A child domain of `root`'s forest: its configuration partition and
    /// forest root are the root's.
    pub fn new_child(
        dns_domain: &str,
        netbios: &str,
        dcs: Vec<DcInfo>,
        delays: Vec<Option<Duration>>,
        allow_plain_bind: bool,
        root: &Domain,
    ) -> Self {
        let mut child = Domain::new(dns_domain, netbios, dcs, delays, allow_plain_bind);
        child.config_dn = root.config_dn.clone();
        child.root_domain_dn = root.base_dn.clone();
        child
    }

    pub fn dc_count(&self) -> usize {
        self.data.len()
    }

    /// The forest's other domain, if there is one.
    pub fn peer(&self) -> Option<Arc<Domain>> {
        self.peer.get().and_then(Weak::upgrade)
    }

    /// Is this the forest root domain?
    pub fn is_root(&self) -> bool {
        norm_dn(&self.root_domain_dn) == norm_dn(&self.base_dn)
    }

    /// The forest root domain's SID (Enterprise Admins are its RID 519).
    pub fn root_sid(&self) -> String {
        match self.peer() {
            Some(peer) if !self.is_root() => peer.domain_sid.clone(),
            _ => self.domain_sid.clone(),
        }
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
        e.set_str("rootDomainNamingContext", self.root_domain_dn.clone());
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
            vec![
                b"1.3.6.1.4.1.1466.20037".to_vec(),
                b"1.3.6.1.4.1.4203.1.11.3".to_vec(),
            ],
        );
        e.set("supportedControl", vec![b"1.2.840.113556.1.4.319".to_vec()]);
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
        let wants_token = attrs.iter().any(|a| a.eq_ignore_ascii_case("tokenGroups"));
        let wants_meta = attrs
            .iter()
            .any(|a| a.eq_ignore_ascii_case("msDS-ReplAttributeMetaData"));
        if wants_token && *scope != LdapSearchScope::Base {
            // Samba's text (AD refuses the same way, [MS-ADTS] 3.1.1.4.5.19).
            return Err(LdapError::new(
                1,
                "00002020: operational_search_post_process failed for attribute 'tokenGroups' \
                 - Cannot provide tokenGroups attribute, this is not a BASE search",
            ));
        }
        // The configuration partition is its own naming context: a search of
        // the domain's tree does not descend into it (Samba and AD answer
        // with a continuation reference instead).
        let other_nc = |norm: &str| !self.in_config(&base_norm) && self.in_config(norm);
        let mut found: Vec<(Entry, Option<Vec<String>>)> = data
            .entries
            .iter()
            .filter(|(norm, _)| in_scope(scope, &base_norm, norm) && !other_nc(norm))
            .filter(|(_, e)| filter::matches(filter, e, &data))
            .map(|(_, e)| {
                let mut out = project(e, attrs, &data);
                let mut groups = None;
                if wants_token {
                    let (sids, dns) = self.token_groups(&data, e);
                    out.set("tokenGroups", sids);
                    groups = Some(dns);
                }
                if wants_meta {
                    // Constructed, like Windows (Samba serves none).
                    let dsa_of = |id: &str| self.dsa_of_invocation(id);
                    out.set(
                        "msDS-ReplAttributeMetaData",
                        e.repl_attribute_meta_data(dsa_of),
                    );
                }
                (out, groups)
            })
            .collect();
        drop(data);
        // Universal groups of the forest's other domain are in the token too
        // (a DC asks a Global Catalog for them): looked up with this DC's
        // copy released, so two domains never wait on each other.
        if let Some(peer) = self.peer() {
            for (out, groups) in &mut found {
                if let Some(dns) = groups {
                    let mut sids = out.values("tokenGroups").to_vec();
                    for sid in peer.universal_groups_containing(dns) {
                        if !sids.contains(&sid) {
                            sids.push(sid);
                        }
                    }
                    out.set("tokenGroups", sids);
                }
            }
        }
        Ok(found.into_iter().map(|(e, _)| e).collect())
    }

    fn in_config(&self, norm: &str) -> bool {
        let config_norm = norm_dn(&self.config_dn);
        norm == config_norm || norm.ends_with(&format!(",{config_norm}"))
    }

    /// SIDs of this domain's universal groups that hold any of `dns`
    /// (normalised), directly or through nesting (on its first DC's copy).
    pub fn universal_groups_containing(&self, dns: &[String]) -> Vec<Vec<u8>> {
        let data = self.data(0);
        data.entries
            .values()
            .filter(|g| g.has_class("group") && is_universal(g) && g.get("member").is_some())
            .filter(|g| {
                let closure = data.members_closure(g);
                dns.iter().any(|dn| closure.contains(dn))
            })
            .flat_map(|g| g.values("objectSid").to_vec())
            .collect()
    }

    /// A search of the Global Catalog this domain's first DC serves: the
    /// whole forest as one tree (this domain's and the other domain's
    /// objects, no referrals between them), each domain object with the
    /// partial attribute set only; the configuration partition in full
    /// (docs/windows-behaviour.md §2.29).
    pub fn gc_search(
        &self,
        base: &str,
        scope: &LdapSearchScope,
        filter: &LdapFilter,
        attrs: &[String],
    ) -> LdapResult<Vec<Entry>> {
        let base_norm = norm_dn(base);
        let mut domains: Vec<Arc<Domain>> = Vec::new();
        if let Some(peer) = self.peer() {
            domains.push(peer);
        }
        let wants_member_of = attrs.is_empty()
            || attrs
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case("memberOf"));
        let asked: Vec<String> = attrs
            .iter()
            .filter(|a| !a.eq_ignore_ascii_case("memberOf"))
            .cloned()
            .collect();
        let mut out = Vec::new();
        let mut base_found = base_norm.is_empty();
        let mut collect = |domain: &Domain, config: bool| {
            let data = domain.data(0);
            base_found |= data.entries.contains_key(&base_norm);
            for (norm, e) in &data.entries {
                let in_config = domain.in_config(norm);
                if in_config != config || !in_scope(scope, &base_norm, norm) {
                    continue;
                }
                let partial = if in_config { e.clone() } else { partial(e) };
                if filter::matches(filter, &partial, &data) {
                    let mut entry = project(&partial, &asked, &data);
                    if asked.is_empty() || asked.iter().any(|a| a == "*") {
                        entry.set("memberOf", Vec::new());
                    }
                    out.push(entry);
                }
            }
        };
        // The root's own objects and the configuration partition (held once),
        // then the other domain's objects.
        collect(self, true);
        collect(self, false);
        for domain in &domains {
            collect(domain, false);
        }
        if !base_found {
            return Err(no_such_object(&self.data(0), base));
        }
        if wants_member_of {
            // memberOf on a GC: the universal groups of every domain.
            let all: Vec<Arc<Domain>> = domains;
            for entry in &mut out {
                let norm = entry.norm();
                let mut groups: Vec<Vec<u8>> = Vec::new();
                let mut add = |domain: &Domain| {
                    let data = domain.data(0);
                    for g in data.entries.values() {
                        if is_universal(g) && g.strings("member").iter().any(|m| norm_dn(m) == norm)
                        {
                            groups.push(g.dn.clone().into_bytes());
                        }
                    }
                };
                add(self);
                for domain in &all {
                    add(domain);
                }
                entry.set("memberOf", groups);
            }
        }
        Ok(out)
    }

    /// Other naming contexts this DC knows of but does not hold, as
    /// (normalised nCName, LDAP URL): the configuration partition and every
    /// domain with a crossRef in it (a child domain, say).
    fn foreign_contexts(&self, data: &DcData) -> Vec<(String, String)> {
        let own = norm_dn(&self.base_dn);
        let mut out = vec![(
            norm_dn(&self.config_dn),
            format!("ldaps://{}/{}", self.dns_domain, self.config_dn),
        )];
        for e in data.entries.values().filter(|e| e.has_class("crossRef")) {
            if let (Some(nc), Some(dns)) = (e.first("nCName"), e.first("dnsRoot"))
                && norm_dn(&nc) != own
            {
                out.push((norm_dn(&nc), format!("ldaps://{dns}/{nc}")));
            }
        }
        out
    }

    /// A referral for a search based in a naming context this DC does not
    /// hold (result 10, as AD answers a DN of another domain).
    pub fn referral(&self, dc: usize, base: &str) -> Option<String> {
        let base_norm = norm_dn(base);
        let config_norm = norm_dn(&self.config_dn);
        if base_norm.is_empty()
            || base_norm == config_norm
            || base_norm.ends_with(&format!(",{config_norm}"))
        {
            return None;
        }
        let data = self.data(dc);
        // The most specific naming context holding the base decides: a
        // child domain's DNs also end with its forest root's.
        let own = norm_dn(&self.base_dn);
        let under = |nc: &str| base_norm == nc || base_norm.ends_with(&format!(",{nc}"));
        self.foreign_contexts(&data)
            .into_iter()
            .filter(|(nc, _)| under(nc))
            .max_by_key(|(nc, _)| nc.len())
            .filter(|(nc, _)| !under(&own) || nc.len() > own.len())
            .map(|(_, url)| url)
    }

    /// The continuation references a search of `base` in `scope` returns:
    /// every naming context below the base that this DC does not hold.
    pub fn references(&self, dc: usize, base: &str, scope: &LdapSearchScope) -> Vec<String> {
        let base_norm = norm_dn(base);
        let data = self.data(dc);
        self.foreign_contexts(&data)
            .into_iter()
            .filter(|(nc, _)| match scope {
                LdapSearchScope::Subtree | LdapSearchScope::Children => {
                    !base_norm.is_empty() && nc.ends_with(&format!(",{base_norm}"))
                }
                LdapSearchScope::OneLevel => parent_norm(nc) == base_norm,
                LdapSearchScope::Base => false,
            })
            .map(|(_, url)| url)
            .collect()
    }

    /// tokenGroups: the SIDs of every group in the account's logon token:
    /// its groups through `member` (nested), its primary group and that
    /// group's own groups; not the account's own SID. Also the normalised
    /// DNs of the account and of those groups, for the universal groups of
    /// another domain that hold them.
    pub fn token_groups(&self, data: &DcData, entry: &Entry) -> (Vec<Vec<u8>>, Vec<String>) {
        if !entry.has_class("user") {
            return (Vec::new(), Vec::new());
        }
        let mut groups: Vec<&Entry> = data.groups_of(&entry.dn);
        let primary = entry
            .number("primaryGroupID")
            .map(|rid| sid_bytes(&format!("{}-{rid}", self.domain_sid)));
        if let Some(primary) = primary
            && let Some(group) = data
                .entries
                .values()
                .find(|g| g.has_class("group") && g.values("objectSid").contains(&primary))
        {
            groups.push(group);
            groups.extend(data.groups_of(&group.dn));
        }
        let mut sids: Vec<Vec<u8>> = Vec::new();
        let mut dns = vec![entry.norm()];
        for group in groups {
            dns.push(group.norm());
            for sid in group.values("objectSid") {
                if !sids.contains(sid) {
                    sids.push(sid.clone());
                }
            }
        }
        (sids, dns)
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
        let usn = data.usn + 1;
        let mut written: Vec<String> = entry.attrs().map(|a| a.name.clone()).collect();
        if entry.secrets.current.is_some() {
            written.push("unicodePwd".into());
        }
        for name in written {
            entry.stamp_attribute(&name, &self.invocation_ids[dc], usn);
        }
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
            return self.root_dse_modify(dc, who, changes);
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
        let usn = data.usn + 1;
        for change in changes {
            entry.stamp_attribute(&change.attr, &self.invocation_ids[dc], usn);
            if change.attr.eq_ignore_ascii_case("unicodePwd") {
                // A new password sets pwdLastSet too.
                entry.stamp_attribute("pwdLastSet", &self.invocation_ids[dc], usn);
            }
        }
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

/// Is the normalised DN `norm` in `scope` of the search based at `base_norm`?
pub fn in_scope(scope: &LdapSearchScope, base_norm: &str, norm: &str) -> bool {
    match scope {
        LdapSearchScope::Base => norm == base_norm,
        LdapSearchScope::OneLevel => parent_norm(norm) == base_norm,
        LdapSearchScope::Subtree => {
            base_norm.is_empty() || norm == base_norm || norm.ends_with(&format!(",{base_norm}"))
        }
        LdapSearchScope::Children => {
            norm != base_norm && (base_norm.is_empty() || norm.ends_with(&format!(",{base_norm}")))
        }
    }
}

/// A domain object as a Global Catalog holds it: the partial attribute
/// set only, and `member` of universal groups only
/// (docs/windows-behaviour.md §2.29).
fn partial(entry: &Entry) -> Entry {
    const PARTIAL_ATTRIBUTE_SET: &[&str] = &[
        "objectclass",
        "objectcategory",
        "objectguid",
        "objectsid",
        "samaccountname",
        "samaccounttype",
        "userprincipalname",
        "mail",
        "displayname",
        "cn",
        "name",
        "dc",
        "ou",
        "distinguishedname",
        "useraccountcontrol",
        "primarygroupid",
        "grouptype",
        "member",
        "instancetype",
    ];
    let mut out = Entry::new(&entry.dn);
    for attr in entry.attrs() {
        let key = attr.name.to_ascii_lowercase();
        if !PARTIAL_ATTRIBUTE_SET.contains(&key.as_str())
            || (key == "member" && !is_universal(entry))
        {
            continue;
        }
        out.set(&attr.name, attr.values.clone());
    }
    out
}

/// groupType with GROUP_TYPE_UNIVERSAL_GROUP (0x8).
pub fn is_universal(group: &Entry) -> bool {
    group.number("groupType").is_some_and(|t| t & 0x8 != 0)
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
