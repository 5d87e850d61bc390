//! Writes fuzz seeds: the two well-formed source files and a sample of the malformed corpus.
//! Usage: cargo run -p gradphoto-testkit --example fuzz_seeds -- fuzz/corpus/check

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus/check".into());
    std::fs::create_dir_all(&dir)?;
    let mut n = 0;
    for (name, bytes) in gradphoto_testkit::hostile::sources() {
        std::fs::write(format!("{dir}/source-{name}.jpg"), bytes)?;
        n += 1;
    }
    for (i, case) in gradphoto_testkit::hostile::corpus().iter().enumerate().step_by(5) {
        std::fs::write(format!("{dir}/case-{i:03}.jpg"), &case.bytes)?;
        n += 1;
    }
    println!("wrote {n} seeds to {dir}");
    Ok(())
}
