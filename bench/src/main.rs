//! `tomte-bench compare` runs the side-by-side benchmark, `metrics` what metrics cost, `tls` the
//! TLS figures, `workers` the worker figures, `upgrade` what a binary upgrade costs (against a
//! restart), `pool` what worker pools give and cost, `ab OLD_DIR NEW_DIR` two builds side by
//! side (see `tomte_bench::ab`); `floor-ndjson PATH` and `floor-http ADDR` run the floors
//! `compare` spawns.

use anyhow::{bail, Context, Result};
use tomte_bench::{compare, floor};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["floor-ndjson", path] => Ok(floor::ndjson_unix(path)?),
        ["floor-http", addr] => Ok(floor::http_tcp(addr)?),
        // For profiling: drive one server with the pipelined load.
        ["pipelined", path, seconds] => {
            let rate =
                tomte_bench::load::pipelined(path.as_ref(), 64, std::time::Duration::from_secs(seconds.parse()?))?;
            println!("{rate:.0} calls/s");
            Ok(())
        }
        ["compare", rest @ ..] => {
            let seconds = rest.first().map(|s| s.parse()).transpose().context("seconds per round")?.unwrap_or(1.0);
            let exe = std::env::current_exe()?;
            let echo = exe.with_file_name("echo");
            let bins = compare::Bins { bench: exe, echo };
            compare::run(&bins, seconds, 5)?;
            Ok(())
        }
        ["tls", rest @ ..] => {
            let seconds = rest.first().map(|s| s.parse()).transpose().context("seconds per round")?.unwrap_or(1.0);
            tomte_bench::tls::run(&std::env::current_exe()?.with_file_name("echo"), seconds, 5)?;
            Ok(())
        }
        ["workers", rest @ ..] => {
            let seconds = rest.first().map(|s| s.parse()).transpose().context("seconds per round")?.unwrap_or(0.5);
            let pool = std::env::current_exe()?.with_file_name("pool");
            tomte_bench::workers::run(&pool, std::time::Duration::from_secs_f64(seconds))?;
            Ok(())
        }
        ["ab", old, new, rest @ ..] if rest.len() <= 1 => {
            let seconds = rest.first().map(|s| s.parse()).transpose().context("seconds per round")?.unwrap_or(1.0);
            if !tomte_bench::ab::run(old.as_ref(), new.as_ref(), seconds)? {
                std::process::exit(1);
            }
            Ok(())
        }
        ["pool", rest @ ..] => {
            let seconds = rest.first().map(|s| s.parse()).transpose().context("seconds per round")?.unwrap_or(1.0);
            let bins = tomte_bench::pool::Bins::beside(&std::env::current_exe()?)?;
            if !tomte_bench::pool::run(&bins, std::time::Duration::from_secs_f64(seconds))? {
                std::process::exit(1);
            }
            Ok(())
        }
        ["supervisord", rest @ ..] => tomte_bench::supervisord::main(rest),
        ["metrics", rest @ ..] => {
            let seconds = rest.first().map(|s| s.parse()).transpose().context("seconds per round")?.unwrap_or(1.0);
            let exe = std::env::current_exe()?;
            let bins =
                tomte_bench::metrics::Bins { echo: exe.with_file_name("echo"), fleet: exe.with_file_name("fleet") };
            if !tomte_bench::metrics::run(&bins, seconds, 7)? {
                std::process::exit(1);
            }
            Ok(())
        }
        ["subscribers", rest @ ..] => {
            let seconds = rest.first().map(|s| s.parse()).transpose().context("seconds per round")?.unwrap_or(1.0);
            let exe = std::env::current_exe()?;
            if !tomte_bench::subscribers::run(&exe.with_file_name("echo"), &exe.with_file_name("chaos"), seconds)? {
                std::process::exit(1);
            }
            Ok(())
        }
        ["upgrade", rest @ ..] => {
            let seconds = rest.first().map(|s| s.parse()).transpose().context("seconds of steady load")?.unwrap_or(1.5);
            let exe = std::env::current_exe()?;
            let bins =
                tomte_bench::upgrade::Bins { echo: exe.with_file_name("echo"), pool: exe.with_file_name("pool") };
            if !tomte_bench::upgrade::run(&bins, seconds)? {
                std::process::exit(1);
            }
            Ok(())
        }
        _ => {
            bail!("usage: tomte-bench compare [SECONDS] | tls [SECONDS] | workers [SECONDS] | ab OLD_DIR NEW_DIR [SECONDS] | supervisord [--out PATH] | subscribers [SECONDS] | metrics [SECONDS] | upgrade [SECONDS] | pool [SECONDS] | floor-ndjson PATH | floor-http ADDR | pipelined PATH SECONDS")
        }
    }
}
