//! The `gradphoto` binary's integration tests, one test binary for all (each file was its own link of the whole
//! workspace).

mod support;

mod cli;
mod fix;
mod keys;
mod kill;
mod nodes;
