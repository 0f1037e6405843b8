//! A secret that never prints itself and is wiped from memory when dropped.

use zeroize::Zeroizing;

/// A password: `Debug` redacts it, and its memory is zeroed on drop (every
/// clone too), so it does not outlive its last user in the process image.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }
    /// The clear text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}
