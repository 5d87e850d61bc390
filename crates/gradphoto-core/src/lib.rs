//! gradphoto-core knows the degree-photo standard (教毕指〔2017〕99号) and how to check a photo against it.
//!
//! The data path reads from the module names: [`decode`] (bytes → container, metadata, pixels) → [`measure`]
//! (facts) → [`judge`] (findings against a [`judge::Profile`]) → later normalise and [`seal`]. Pure: no I/O beyond
//! the bytes handed in, no threads, no network.

pub mod annotate;
pub mod calendar;
pub mod check;
pub mod decode;
pub mod judge;
pub mod limits;
pub mod measure;
pub mod message;
pub mod normalise;
pub mod roster;
pub mod seal;

pub use check::{CheckOptions, Checked, check, check_file};
pub use judge::{Finding, Profile, Report, Rule, Severity, Verdict};
pub use limits::Limits;
pub use message::{Lang, Message};
