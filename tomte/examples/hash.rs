//! A CPU-bound pool: `hasher`, `HASH_WORKERS` identical workers (default 2), each hashing in
//! its own process, so calls run on as many cores at once.
//!
//! * `hash.sha256(data: string, rounds: int) -> string`: h₀ is `data`'s UTF-8 bytes,
//!   hᵢ₊₁ = SHA-256(hᵢ) (the 32 raw bytes), and the answer is the lower-case hex of h_rounds —
//!   so `rounds = 0` answers the hex of `data`. `rounds` is at most 10 000 000 (a few seconds
//!   of work) and `data` at most 1 MiB; more is refused naming the parameter.
//!
//! ```text
//! cargo run --example hash -- start
//! tomtectl --socket unix://$XDG_RUNTIME_DIR/hash.sock call hash.sha256 data=abc rounds=1
//! tomtectl --socket unix://$XDG_RUNTIME_DIR/hash.sock workers
//! tomtectl --socket unix://$XDG_RUNTIME_DIR/hash.sock worker scale hasher 4
//! ```

use std::fmt::Write;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tomte::worker::{Worker, WorkerCtx, WorkerSpec};
use tomte::{Daemon, Fault, Method, Type, Value};

/// The most rounds one call may ask for.
const MAX_ROUNDS: i64 = 10_000_000;
/// The longest `data`, in bytes.
const MAX_DATA: usize = 1 << 20;

/// h_rounds of `data`, as lower-case hex.
fn sha256_rounds(data: &[u8], rounds: u64) -> String {
    let hex = |bytes: &[u8]| {
        bytes.iter().fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    };
    if rounds == 0 {
        return hex(data);
    }
    let mut h: [u8; 32] = Sha256::digest(data).into();
    for _ in 1..rounds {
        h = Sha256::digest(h).into();
    }
    hex(&h)
}

struct Hasher;

impl Worker for Hasher {
    fn r#loop(&mut self, _ctx: &mut WorkerCtx) {}

    fn on_message(&mut self, request: Value, _ctx: &mut WorkerCtx) -> Result<Value, Fault> {
        let [data, rounds] = match request {
            Value::Array(items) => {
                <[Value; 2]>::try_from(items).map_err(|_| Fault::invalid_params("[data, rounds]"))?
            }
            _ => return Err(Fault::invalid_params("[data, rounds]")),
        };
        let (Some(data), Some(rounds)) = (data.as_str(), rounds.as_i64()) else {
            return Err(Fault::invalid_params("[data, rounds]"));
        };
        Ok(Value::from(sha256_rounds(data.as_bytes(), rounds as u64)))
    }
}

/// The parameters of `hash.sha256`.
#[derive(Deserialize)]
struct Sha256Params {
    data: String,
    rounds: i64,
}

fn main() {
    let workers = match std::env::var("HASH_WORKERS") {
        Ok(n) => n.parse().unwrap_or_else(|_| panic!("HASH_WORKERS={n:?} is not a whole number")),
        Err(_) => 2,
    };
    let mut daemon = Daemon::new("hash");
    daemon.worker(WorkerSpec::new("hasher", Duration::from_secs(1), || Hasher).instances(workers));
    daemon.method(
        Method::typed_async("hash.sha256", |Sha256Params { data, rounds }, ctx| {
            let checked = if !(0..=MAX_ROUNDS).contains(&rounds) {
                Err(Fault::invalid_params(format!("parameter 'rounds': {rounds} is not from 0 to {MAX_ROUNDS}")))
            } else if data.len() > MAX_DATA {
                Err(Fault::invalid_params(format!("parameter 'data': {} bytes, more than {MAX_DATA}", data.len())))
            } else {
                Ok(ctx.ask("hasher", Value::Array(vec![Value::from(data), Value::from(rounds)])))
            };
            async move { checked?.await }
        })
        .description(
            "SHA-256 applied ROUNDS times to DATA's UTF-8 bytes (each round hashes the 32 bytes of the one \
             before), in the pool hasher; the lower-case hex of the result (of DATA itself for 0 rounds)",
        )
        .returns(Type::String),
    );
    std::process::exit(tomte::cli::main(daemon));
}
