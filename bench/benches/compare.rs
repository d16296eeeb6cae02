//! `cargo bench -p tomte-bench`: the side-by-side comparison against the floors.

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not use.
    let bins = tomte_bench::compare::Bins {
        bench: env!("CARGO_BIN_EXE_tomte-bench").into(),
        echo: env!("CARGO_BIN_EXE_echo").into(),
    };
    match tomte_bench::compare::run(&bins, 1.0, 5) {
        Ok(true) => println!("\nall targets met"),
        Ok(false) => println!("\nsome targets NOT met (see above)"),
        Err(e) => {
            eprintln!("benchmark failed: {e:#}");
            std::process::exit(1);
        }
    }
}
