//! The open-files limit. Every server at once (`--parallel` defaults to all
//! of them, up to 1,024) needs a socket per server, and the common default
//! soft limit of 1,024 open files is below what 1,024 servers need. At the
//! start of a run the soft `RLIMIT_NOFILE` is raised toward the hard limit as
//! far as the planned concurrency needs; if the hard limit is too low, one
//! line on stderr says so (connections past the limit would fail with
//! "too many open files").

/// Open files per server handled at once: its one WinRM connection, plus
/// room for the DNS lookup and the TLS setup while it connects.
const FILES_PER_SERVER: u64 = 2;
/// Everything else: stdio, the tokio runtime (epoll, eventfd, the signal
/// pipe), the config and CA files, the directory and BIG-IP connections.
const HEADROOM: u64 = 64;

/// Open files needed to handle `servers` servers at once.
pub fn needed(servers: usize) -> u64 {
    (servers as u64)
        .saturating_mul(FILES_PER_SERVER)
        .saturating_add(HEADROOM)
}

/// Makes sure `servers` servers can be handled at once: raises the soft
/// open-files limit if needed (never lowers it), and warns on stderr when
/// even the hard limit is too low.
pub fn ensure_open_files(servers: usize) {
    if let Some(warning) = raise_soft_limit(servers) {
        eprintln!("{warning}");
    }
}

/// What to do with the limits `(soft, hard)` when `needed` files are needed.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// The soft limit already allows enough.
    Enough,
    /// Set the soft limit to this (never above the hard limit).
    Raise(u64),
}

fn decide(soft: u64, hard: u64, needed: u64) -> Decision {
    if soft >= needed {
        Decision::Enough
    } else {
        // Only as far as needed: some systems refuse a soft limit above
        // their own ceiling even when the hard limit is "unlimited".
        Decision::Raise(needed.min(hard))
    }
}

fn warning(allowed: u64, servers: usize, needed: u64) -> String {
    format!(
        "WARNING: only {allowed} open files allowed; {servers} servers at once need about \
         {needed}: some connections may fail with \"too many open files\" \
         (lower --parallel or raise the hard limit, ulimit -Hn)"
    )
}

#[cfg(unix)]
fn raise_soft_limit(servers: usize) -> Option<String> {
    let needed = needed(servers);
    let (soft, hard) = match unix::get() {
        Ok(limits) => limits,
        Err(e) => {
            return Some(format!(
                "WARNING: cannot read the open-files limit ({e}); {servers} servers at once \
                 need about {needed}"
            ));
        }
    };
    match decide(soft, hard, needed) {
        Decision::Enough => None,
        Decision::Raise(to) => match unix::set_soft(to, hard) {
            Ok(()) if to >= needed => None,
            Ok(()) => Some(warning(to, servers, needed)),
            Err(_) => Some(warning(soft, servers, needed)),
        },
    }
}

#[cfg(not(unix))]
fn raise_soft_limit(_servers: usize) -> Option<String> {
    // Windows has no per-process open-files limit of this kind.
    None
}

#[cfg(unix)]
mod unix {
    use std::io;

    /// `(soft, hard)` of RLIMIT_NOFILE.
    // `rlim_t` is u64 here but u32 on some 32-bit targets.
    #[allow(clippy::useless_conversion)]
    pub fn get() -> io::Result<(u64, u64)> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes one `rlimit` through the pointer, which
        // points at a live, properly aligned local of exactly that type.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((u64::from(limit.rlim_cur), u64::from(limit.rlim_max)))
    }

    /// Sets the soft limit to `soft`, keeping the hard limit `hard`.
    pub fn set_soft(soft: u64, hard: u64) -> io::Result<()> {
        let limit = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: setrlimit only reads one `rlimit` through the pointer, which
        // points at a live, initialised local of exactly that type.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_files_per_server_plus_headroom() {
        assert_eq!(needed(0), 64);
        assert_eq!(needed(1024), 2112);
        assert_eq!(needed(usize::MAX), u64::MAX);
    }

    #[test]
    fn raises_only_when_needed_and_never_past_the_hard_limit() {
        assert_eq!(decide(4096, 4096, 2112), Decision::Enough);
        assert_eq!(decide(2112, 4096, 2112), Decision::Enough);
        assert_eq!(decide(1024, 524_288, 2112), Decision::Raise(2112));
        assert_eq!(decide(1024, u64::MAX, 2112), Decision::Raise(2112));
        // Not enough even at the hard limit: as far as it goes.
        assert_eq!(decide(256, 1024, 2112), Decision::Raise(1024));
    }

    #[test]
    fn the_warning_is_one_line_with_the_numbers() {
        let text = warning(1024, 1024, 2112);
        assert!(text.starts_with("WARNING: only 1024 open files allowed;"));
        assert!(text.contains("1024 servers at once need about 2112"));
        assert!(!text.contains('\n'));
    }

    #[cfg(unix)]
    #[test]
    fn the_current_limits_can_be_read() {
        let (soft, hard) = unix::get().unwrap();
        assert!(soft <= hard);
    }
}
