//! Steps 1 and 2 of cmd.exe's reading of a command line (command.rs has
//! the sources): `%VAR%` expanded once for the whole line, then `^` escapes,
//! double quotes and the `&`, `&&`, `||` connectors split it into commands.

use std::ops::Range;

/// A line after step 1: its characters, and for each the range of the
/// original line it came from (an expanded `%VAR%` maps to all of it).
pub(super) struct Expanded {
    pub(super) chars: Vec<char>,
    pub(super) origin: Vec<Range<usize>>,
}

impl Expanded {
    /// The original text behind `span` of the expanded line, trimmed.
    pub(super) fn written(&self, raw: &[char], span: Range<usize>) -> String {
        let (Some(first), Some(last)) = (
            self.origin.get(span.start),
            span.end.checked_sub(1).and_then(|e| self.origin.get(e)),
        ) else {
            return String::new();
        };
        raw[first.start..last.end.max(first.start)]
            .iter()
            .collect::<String>()
            .trim()
            .to_owned()
    }
}

/// Step 1, command-line mode: `%NAME%` becomes the variable's value; an
/// undefined name stays as typed, and its closing `%` is scanned again as a
/// possible opening one. `%NAME:~start,length%` and `%NAME:find=replace%`
/// work on defined variables.
pub(super) fn expand_percent(line: &[char], lookup: &dyn Fn(&str) -> Option<String>) -> Expanded {
    let mut out = Expanded {
        chars: Vec::with_capacity(line.len()),
        origin: Vec::with_capacity(line.len()),
    };
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        let close = (c == '%')
            .then(|| line[i + 1..].iter().position(|&d| d == '%'))
            .flatten()
            .map(|offset| i + 1 + offset);
        let Some(close) = close else {
            out.chars.push(c);
            out.origin.push(i..i + 1);
            i += 1;
            continue;
        };
        let name: String = line[i + 1..close].iter().collect();
        match reference_value(&name, lookup) {
            Some(value) => {
                for v in value.chars() {
                    out.chars.push(v);
                    out.origin.push(i..close + 1);
                }
                i = close + 1;
            }
            None => {
                // "%NAME" stays; the closing % may open the next reference.
                for (k, &n) in line[i..close].iter().enumerate() {
                    out.chars.push(n);
                    out.origin.push(i + k..i + k + 1);
                }
                i = close;
            }
        }
    }
    out
}

/// The value of one `%...%` reference, modifiers applied; `None` if the
/// variable is not defined (or the reference is empty, as in `%%`).
pub(super) fn reference_value(
    reference: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    if reference.is_empty() {
        return None;
    }
    let Some((name, modifier)) = reference.split_once(':') else {
        return lookup(reference);
    };
    let value = lookup(name)?;
    if let Some(range) = modifier.strip_prefix('~') {
        return Some(substring(&value, range).unwrap_or_else(|| format!("%{reference}%")));
    }
    match modifier.split_once('=') {
        Some((find, replace)) => Some(replace_all(&value, find, replace)),
        // `%VAR:x%` without `=` or `~` is not a modifier: cmd leaves it.
        None => Some(format!("%{reference}%")),
    }
}

/// `%VAR:~start[,length]%`: negative numbers count from the end.
pub(super) fn substring(value: &str, spec: &str) -> Option<String> {
    let chars: Vec<char> = value.chars().collect();
    let len = chars.len() as i64;
    let (start, length) = match spec.split_once(',') {
        Some((s, l)) => (
            s.trim().parse::<i64>().ok()?,
            Some(l.trim().parse::<i64>().ok()?),
        ),
        None => (spec.trim().parse::<i64>().ok()?, None),
    };
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start.min(len)
    };
    let end = match length {
        None => len,
        Some(l) if l < 0 => (len + l).max(start),
        Some(l) => (start + l).min(len),
    };
    Some(chars[start as usize..end as usize].iter().collect())
}

/// `%VAR:find=replace%`: every occurrence, case-insensitively; `*find`
/// replaces everything up to and including the first occurrence.
pub(super) fn replace_all(value: &str, find: &str, replace: &str) -> String {
    let (find, through_first) = match find.strip_prefix('*') {
        Some(f) => (f, true),
        None => (find, false),
    };
    if find.is_empty() {
        return value.to_owned();
    }
    let lower = value.to_ascii_lowercase();
    let needle = find.to_ascii_lowercase();
    let mut out = String::new();
    let mut at = 0;
    while let Some(found) = lower[at..].find(&needle) {
        let found = at + found;
        if !through_first {
            out.push_str(&value[at..found]);
        }
        out.push_str(replace);
        at = found + needle.len();
        if through_first {
            break;
        }
    }
    out.push_str(&value[at..]);
    out
}

/// How a command follows the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Connector {
    First,
    /// `&`
    Always,
    /// `&&`
    IfOk,
    /// `||`
    IfFailed,
}

/// One command of a line after step 2: its text (carets consumed, quotes
/// kept) and where it sits in the expanded line.
#[derive(Debug)]
pub(super) struct Command {
    pub(super) after: Connector,
    pub(super) text: String,
    pub(super) span: Range<usize>,
}

/// A command being collected by [`split_commands`].
pub(super) struct Piece {
    pub(super) after: Connector,
    pub(super) text: String,
    /// Expanded positions of its first and last non-blank characters.
    pub(super) first: Option<usize>,
    pub(super) last: usize,
}

impl Piece {
    pub(super) fn new(after: Connector) -> Self {
        Piece {
            after,
            text: String::new(),
            first: None,
            last: 0,
        }
    }
    pub(super) fn keep(&mut self, c: char, at: usize) {
        self.text.push(c);
        if !c.is_whitespace() {
            self.first.get_or_insert(at);
            self.last = at;
        }
    }
    pub(super) fn is_blank(&self) -> bool {
        self.first.is_none()
    }
    pub(super) fn into_command(self) -> Command {
        Command {
            after: self.after,
            span: self.first.map_or(0..0, |f| f..self.last + 1),
            text: self.text,
        }
    }
}

/// Step 2: splits the expanded line at `&`, `&&` and `||` outside quotes,
/// consuming `^` escapes. Pipes, redirections and blocks are refused.
pub(super) fn split_commands(line: &Expanded) -> Result<Vec<Command>, &'static str> {
    let chars = &line.chars;
    let mut commands = Vec::new();
    let mut current = Piece::new(Connector::First);
    let mut quoted = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if quoted {
            current.keep(c, i);
            quoted = c != '"';
            i += 1;
            continue;
        }
        match c {
            '"' => {
                current.keep(c, i);
                quoted = true;
                i += 1;
            }
            '^' => {
                // The escaped character is literal; a caret at the very end
                // would continue the line, and there is no next line.
                if let Some(&next) = chars.get(i + 1) {
                    current.keep(next, i + 1);
                }
                i += 2;
            }
            '&' | '|' => {
                let doubled = chars.get(i + 1) == Some(&c);
                let after = match (c, doubled) {
                    ('&', true) => Connector::IfOk,
                    ('&', false) => Connector::Always,
                    ('|', true) => Connector::IfFailed,
                    _ => return Err("pipes ('|')"),
                };
                if current.is_blank() {
                    return Err("an operator without a command before it");
                }
                commands.push(std::mem::replace(&mut current, Piece::new(after)).into_command());
                i += if doubled { 2 } else { 1 };
            }
            '<' | '>' => return Err("redirections ('<', '>')"),
            '(' if current.is_blank() => return Err("parenthesised blocks"),
            _ => {
                current.keep(c, i);
                i += 1;
            }
        }
    }
    if current.is_blank() {
        if !commands.is_empty() {
            return Err("an operator without a command after it");
        }
        return Ok(commands);
    }
    commands.push(current.into_command());
    Ok(commands)
}
