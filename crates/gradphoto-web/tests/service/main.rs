//! The service's integration tests in one binary: one link of the web stack instead of one per file (recompiling
//! the thirteen files as binaries of their own took six minutes here). The tests that need a process to themselves
//! stay apart: `logs.rs` installs the global log subscriber, and `browser.rs` drives Chromium.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod authz;
mod backup;
mod checks;
mod decisions;
mod flow;
mod outbox;
mod security;
mod tokens;
mod webhooks;
mod wechat;
