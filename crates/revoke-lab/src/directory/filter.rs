//! Search filters evaluated as AD does for what revoke sends: AND/OR/NOT,
//! equality (case-insensitive, DNs as DNs), presence, substrings, ordering,
//! `objectCategory` shorthand, and the extensible matches
//! 1.2.840.113556.1.4.803/804 (bitwise AND/OR) and .1941 (IN_CHAIN).

use ldap3_proto::proto::{LdapFilter, LdapMatchingRuleAssertion, LdapSubstringFilter};

use super::store::{DcData, Entry, category_for_class, category_of, norm_dn, values_equal};

pub const BIT_AND: &str = "1.2.840.113556.1.4.803";
pub const BIT_OR: &str = "1.2.840.113556.1.4.804";
pub const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// Does `entry` (in `data`) match `filter`?
pub fn matches(filter: &LdapFilter, entry: &Entry, data: &DcData) -> bool {
    match filter {
        LdapFilter::And(all) => all.iter().all(|f| matches(f, entry, data)),
        LdapFilter::Or(any) => any.iter().any(|f| matches(f, entry, data)),
        LdapFilter::Not(inner) => !matches(inner, entry, data),
        LdapFilter::Present(attr) => {
            attr.eq_ignore_ascii_case("objectClass") || !values_of(entry, attr, data).is_empty()
        }
        LdapFilter::Equality(attr, value) => {
            if attr.eq_ignore_ascii_case("objectCategory") && !value.contains('=') {
                let wanted = category_for_class(value).unwrap_or_else(|| value.clone());
                return category_of(entry.values("objectClass")).eq_ignore_ascii_case(&wanted);
            }
            values_of(entry, attr, data)
                .iter()
                .any(|v| values_equal(attr, v, value.as_bytes()))
        }
        LdapFilter::Substring(attr, sub) => values_of(entry, attr, data)
            .iter()
            .any(|v| substring_match(&String::from_utf8_lossy(v), sub)),
        LdapFilter::GreaterOrEqual(attr, value) => values_of(entry, attr, data)
            .iter()
            .any(|v| compare(v, value) != std::cmp::Ordering::Less),
        LdapFilter::LessOrEqual(attr, value) => values_of(entry, attr, data)
            .iter()
            .any(|v| compare(v, value) != std::cmp::Ordering::Greater),
        LdapFilter::Approx(attr, value) => values_of(entry, attr, data)
            .iter()
            .any(|v| values_equal(attr, v, value.as_bytes())),
        LdapFilter::Extensible(rule) => extensible(rule, entry, data),
    }
}

/// Stored values, plus what AD computes: memberOf.
fn values_of(entry: &Entry, attr: &str, data: &DcData) -> Vec<Vec<u8>> {
    if attr.eq_ignore_ascii_case("memberOf") {
        return data
            .member_of(&entry.dn)
            .into_iter()
            .map(String::into_bytes)
            .collect();
    }
    entry.values(attr).to_vec()
}

fn compare(value: &[u8], asserted: &str) -> std::cmp::Ordering {
    let value = String::from_utf8_lossy(value);
    match (value.trim().parse::<i64>(), asserted.trim().parse::<i64>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => value.to_lowercase().cmp(&asserted.to_lowercase()),
    }
}

fn substring_match(value: &str, sub: &LdapSubstringFilter) -> bool {
    let value = value.to_lowercase();
    let mut rest = value.as_str();
    if let Some(initial) = &sub.initial {
        let initial = initial.to_lowercase();
        match rest.strip_prefix(initial.as_str()) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    for any in &sub.any {
        let any = any.to_lowercase();
        match rest.find(any.as_str()) {
            Some(at) => rest = &rest[at + any.len()..],
            None => return false,
        }
    }
    match &sub.final_ {
        Some(last) => rest.ends_with(last.to_lowercase().as_str()),
        None => true,
    }
}

fn extensible(rule: &LdapMatchingRuleAssertion, entry: &Entry, data: &DcData) -> bool {
    let Some(attr) = rule.type_.as_deref() else {
        return false;
    };
    let value = rule.match_value.as_str();
    match rule.matching_rule.as_deref() {
        Some(BIT_AND) | Some(BIT_OR) => {
            let Ok(mask) = value.trim().parse::<i64>() else {
                return false;
            };
            let mask = mask as u32;
            let and = rule.matching_rule.as_deref() == Some(BIT_AND);
            entry.strings(attr).iter().any(|v| {
                let Ok(n) = v.trim().parse::<i64>() else {
                    return false;
                };
                let n = n as u32;
                if and { n & mask == mask } else { n & mask != 0 }
            })
        }
        Some(IN_CHAIN) => {
            let target = norm_dn(value);
            if attr.eq_ignore_ascii_case("member") {
                data.members_closure(entry).contains(&target)
            } else if attr.eq_ignore_ascii_case("memberOf") {
                data.entries
                    .get(&target)
                    .is_some_and(|group| data.members_closure(group).contains(&entry.norm()))
            } else {
                entry.strings(attr).iter().any(|v| norm_dn(v) == target)
            }
        }
        None => entry
            .values(attr)
            .iter()
            .any(|v| values_equal(attr, v, value.as_bytes())),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::parse_ldap_filter_str;

    fn entry(dn: &str, attrs: &[(&str, &str)]) -> Entry {
        let mut e = Entry::new(dn);
        for (k, v) in attrs {
            let mut values = e.values(k).to_vec();
            values.push(v.as_bytes().to_vec());
            e.set(k, values);
        }
        e
    }

    #[test]
    fn filters_match_like_ad() {
        let mut data = DcData::default();
        let user = entry(
            "CN=Alice,OU=Staff,DC=lab",
            &[
                ("objectClass", "user"),
                ("sAMAccountName", "Alice"),
                ("userAccountControl", "514"),
                ("mail", "a*b@x"),
            ],
        );
        let group = entry(
            "CN=Inner,DC=lab",
            &[
                ("objectClass", "group"),
                ("member", "cn=alice,ou=staff,dc=lab"),
            ],
        );
        let outer = entry(
            "CN=Outer,DC=lab",
            &[("objectClass", "group"), ("member", "CN=Inner,DC=lab")],
        );
        for e in [&user, &group, &outer] {
            data.entries.insert(e.norm(), e.clone());
        }
        let is = |f: &str, e: &Entry| matches(&parse_ldap_filter_str(f).unwrap(), e, &data);
        assert!(is("(sAMAccountName=alice)", &user));
        assert!(is("(&(objectClass=user)(!(mail=x)))", &user));
        // An escaped `\2a` arrives decoded: a literal `*` in an equality.
        let literal = LdapFilter::Equality("mail".into(), "a*b@x".into());
        assert!(matches(&literal, &user, &data));
        assert!(!is("(mail=ab@x)", &user));
        assert!(is("(mail=a*@x)", &user));
        assert!(is("(objectCategory=person)", &user));
        let ext = |attr: &str, rule: &str, value: &str| {
            LdapFilter::Extensible(LdapMatchingRuleAssertion {
                matching_rule: Some(rule.into()),
                type_: Some(attr.into()),
                match_value: value.into(),
                dn_attributes: false,
            })
        };
        let chain = ext("member", IN_CHAIN, "CN=Alice,OU=Staff,DC=lab");
        assert!(matches(&chain, &outer, &data));
        assert!(matches(&chain, &group, &data));
        assert!(!matches(&chain, &user, &data));
        let direct = LdapFilter::Equality("member".into(), "CN=Alice,OU=Staff,DC=lab".into());
        assert!(!matches(&direct, &outer, &data));
        assert!(matches(&direct, &group, &data));
        let up = ext("memberOf", IN_CHAIN, "CN=Outer,DC=lab");
        assert!(matches(&up, &user, &data));
        assert!(matches(
            &ext("userAccountControl", BIT_AND, "2"),
            &user,
            &data
        ));
        assert!(!matches(
            &ext("userAccountControl", BIT_AND, "18"),
            &user,
            &data
        ));
        assert!(matches(
            &ext("userAccountControl", BIT_OR, "18"),
            &user,
            &data
        ));
    }
}
