//! The interpreter's integration tests, one test binary for all: operators on small graphs, the real models
//! against Google's runtime, and hostile model files.

mod common;
mod real;

mod ops;
mod reference_models;
mod robustness;
