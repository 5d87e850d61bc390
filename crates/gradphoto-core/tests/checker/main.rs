//! The checker library's integration tests, one test binary for all.

mod decode;
mod faces;
mod file_rules;
mod malformed;
mod quality;
mod roster;
