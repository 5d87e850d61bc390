//! Load benchmark (being written): see the item 10.
fn main() {}
