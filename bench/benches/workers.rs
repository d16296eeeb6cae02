//! `cargo bench -p tomte-bench --bench workers`: the worker channel against the shared-memory
//! floor, and a pool daemon with back-off zero (crash → replacement, memory, `pool.count`).

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not use.
    match tomte_bench::workers::run(env!("CARGO_BIN_EXE_pool").as_ref(), std::time::Duration::from_millis(500)) {
        Ok(true) => println!("\nall targets met"),
        Ok(false) => println!("\nsome targets NOT met (see above)"),
        Err(e) => {
            eprintln!("benchmark failed: {e:#}");
            std::process::exit(1);
        }
    }
}
