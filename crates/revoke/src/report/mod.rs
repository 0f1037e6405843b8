//! The terminal's consumers of the core's events: the live progress display,
//! the human table, and `revoke servers`' listing. The JSON document is the
//! core's [`revoke_core::report::RunReport`], serialized as it is.

pub mod doctor;
mod progress;
pub mod servers;
mod table;

pub use progress::{PlainProgress, ProgressDisplay};
pub use table::render as render_table;
