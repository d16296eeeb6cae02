//! A daemon whose command line has a flag and a subcommand of its own, next to tomte's: one
//! method, `greeter.greet`, that greets with `--greeting`.
//!
//! ```text
//! cargo run --example greeter -- check-config --greeting hi   # prints what it would serve
//! cargo run --example greeter -- start --greeting hi
//! tomtectl --socket unix:///run/greeter.sock call greeter.greet name=bob   # "hi, bob"
//! cargo run --example greeter -- stop
//! ```

use tomte::cli::{self, Action, Cli};
use tomte::{Daemon, Method, Type, Value};

/// Greets whoever asks, over JSON-RPC and XML-RPC.
#[derive(clap::Args)]
struct Flags {
    /// What to greet with
    #[arg(long, value_name = "TEXT", default_value = "hello")]
    greeting: String,
}

#[derive(clap::Subcommand)]
enum Extra {
    /// Print the greeting and the sockets, and exit without starting anything
    CheckConfig,
}

fn main() {
    let cli = Cli::<Flags, Extra>::parse_for("greeter");
    let code = match &cli.command {
        Action::App(Extra::CheckConfig) => match cli.daemon.config("greeter") {
            Ok(config) => {
                println!("greeting: {}", cli.app.greeting);
                for socket in &config.sockets {
                    println!("socket:   {socket}");
                }
                0
            }
            Err(why) => {
                eprintln!("greeter: {why}");
                2
            }
        },
        Action::Daemon(command) => cli::run_command(daemon(&cli.app.greeting), command, &cli.daemon),
    };
    std::process::exit(code);
}

fn daemon(greeting: &str) -> Daemon {
    let greeting = greeting.to_owned();
    let mut daemon = Daemon::new("greeter");
    daemon.method(
        Method::new("greeter.greet", move |mut params, _| {
            let name: String = params.take("name")?;
            Ok(Value::String(format!("{greeting}, {name}")))
        })
        .description("Greets NAME with the daemon's --greeting")
        .returns(Type::String)
        .param(Type::String, "name"),
    );
    daemon
}
