//! The commands that start the simulated estate (the `lab` feature).

pub mod demo;
pub mod lab;
