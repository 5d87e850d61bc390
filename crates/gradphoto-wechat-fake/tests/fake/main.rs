//! The WeChat fake's integration tests, one test binary for all: the official account's API and WeChat Pay.

mod common;

mod mp;
mod pay;
