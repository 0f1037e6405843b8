//! The password policy that applies to one account: the domain's
//! `minPwdLength` on the naming context head, or the resultant fine-grained
//! policy (`msDS-ResultantPSO` → its `msDS-MinimumPasswordLength`), which
//! replaces the domain's for that account (docs/windows-behaviour.md §2.25).

use super::DirectoryError;
use super::connection::{Connection, first};

/// The minimum length that applies, and where it comes from, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimumLength {
    pub characters: usize,
    pub source: String,
}

/// The minimum password length for the account `dn`. A PSO revoke's
/// account may not read (they are readable by administrators by default)
/// falls back to the domain's value and says so.
pub async fn minimum_length(
    conn: &mut Connection,
    dn: &str,
) -> Result<MinimumLength, DirectoryError> {
    let pso = conn
        .read(dn, &["msDS-ResultantPSO"])
        .await?
        .and_then(|e| first(&e.attrs, "msDS-ResultantPSO"));
    if let Some(pso) = &pso
        && let Ok(Some(entry)) = conn.read(pso, &["msDS-MinimumPasswordLength"]).await
        && let Some(length) =
            first(&entry.attrs, "msDS-MinimumPasswordLength").and_then(|v| v.parse::<usize>().ok())
    {
        return Ok(MinimumLength {
            characters: length,
            source: format!("the password settings object {pso}"),
        });
    }
    let nc = conn.root_dse.default_naming_context.clone();
    let domain = conn
        .read(&nc, &["minPwdLength"])
        .await?
        .and_then(|e| first(&e.attrs, "minPwdLength"))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let source = match pso {
        Some(pso) => format!(
            "the domain's minPwdLength (the account's password settings object {pso} could not \
             be read)"
        ),
        None => "the domain's minPwdLength".to_string(),
    };
    Ok(MinimumLength {
        characters: domain,
        source,
    })
}
