//! The storage crate's integration tests, one test binary for all: the metadata repository and the byte stores.

mod db;
mod s3;
