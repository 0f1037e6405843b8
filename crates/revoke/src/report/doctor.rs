//! `revoke doctor`'s output: a table for people (check, target, result,
//! what was found, and under each problem its fix) or a JSON document
//! (docs/operations.md).

use serde::Serialize;

use revoke_core::doctor::{CheckResult, CheckStatus, all_ok};

/// The JSON document's version; bumped when a field changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    /// No check found a problem.
    ok: bool,
    problems: usize,
    checks: &'a [CheckResult],
}

pub fn render_json(results: &[CheckResult]) -> String {
    let document = Document {
        schema_version: SCHEMA_VERSION,
        ok: all_ok(results),
        problems: problems(results),
        checks: results,
    };
    serde_json::to_string_pretty(&document).expect("serializable") + "\n"
}

fn problems(results: &[CheckResult]) -> usize {
    results.iter().filter(|r| r.is_problem()).count()
}

fn word(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Ok => "ok",
        CheckStatus::Problem => "PROBLEM",
        CheckStatus::Skipped => "skipped",
    }
}

/// One row per check; a problem's fix on the line under it.
pub fn render_table(results: &[CheckResult]) -> String {
    let header = ["CHECK", "TARGET", "RESULT", "DETAIL"];
    let rows: Vec<[String; 4]> = results
        .iter()
        .map(|r| {
            [
                r.check.name(),
                r.target.clone(),
                word(r.status).to_string(),
                r.detail.clone(),
            ]
        })
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let indent = w0 + w1 + w2 + 6;
    let mut out = format!(
        "{:w0$}  {:w1$}  {:w2$}  {}\n",
        header[0], header[1], header[2], header[3]
    );
    for (row, result) in rows.iter().zip(results) {
        out.push_str(&format!(
            "{:w0$}  {:w1$}  {:w2$}  {}\n",
            row[0], row[1], row[2], row[3]
        ));
        if let Some(fix) = &result.fix {
            out.push_str(&format!("{:indent$}fix: {fix}\n", ""));
        }
    }
    let n = problems(results);
    out.push('\n');
    out.push_str(&match n {
        0 => format!(
            "All {} checks ok: revoke has what a run needs.\n",
            results.len()
        ),
        1 => "1 problem: see its fix above.\n".to_string(),
        n => format!("{n} problems: see each one's fix above.\n"),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use revoke_core::doctor::Check;

    fn sample() -> Vec<CheckResult> {
        vec![
            CheckResult::ok(Check::Config, "/etc/revoke/revoke.toml", "parsed"),
            CheckResult::problem(
                Check::DcTls,
                "ldaps://dc1.corp.example.com:636",
                "its certificate is not signed by a CA revoke trusts",
                "give the CA with --directory-ca-file FILE",
            ),
            CheckResult::skipped(Check::F5Login, "[f5]", "no [f5] section"),
        ]
    }

    #[test]
    fn the_table_puts_each_fix_under_its_problem() {
        let text = render_table(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("CHECK"), "{text}");
        assert!(
            lines[2].contains("dc-tls") && lines[2].contains("PROBLEM"),
            "{text}"
        );
        assert!(
            lines[3].trim_start().starts_with("fix: give the CA"),
            "{text}"
        );
        assert!(text.ends_with("1 problem: see its fix above.\n"), "{text}");
    }

    #[test]
    fn the_json_counts_problems() {
        let json: serde_json::Value = serde_json::from_str(&render_json(&sample())).unwrap();
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["ok"], false);
        assert_eq!(json["problems"], 1);
        assert_eq!(json["checks"][1]["check"], "dc-tls");
        assert_eq!(json["checks"][2]["status"], "skipped");
        assert!(json["checks"][0]["fix"].is_null());
    }
}
