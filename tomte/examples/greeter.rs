//! A daemon whose command line has a flag and a subcommand of its own, next to tomte's, and
//! whose configuration file has a section of its own: one method, `greeter.greet`, that greets
//! with `--greeting` — or with the greeting the `[app]` section gives that name.
//!
//! ```toml
//! # greeter.toml (mode 0644 or stricter: a file others may write is refused)
//! greeting = "hi"             # the flag --greeting, as a key
//! socket = ["unix:///tmp/greeter.sock"]
//!
//! [app]                       # the application's own section, read into `App`
//! punctuation = "!"
//! [app.greetings]
//! alice = "good morning"
//! ```
//!
//! ```text
//! cargo run --example greeter -- check-config --config greeter.toml   # prints what it would serve
//! cargo run --example greeter -- start --config greeter.toml
//! tomtectl --socket unix:///tmp/greeter.sock call greeter.greet name=alice   # "good morning, alice!"
//! # edit [app], then: the new greetings apply at once (a bad section changes nothing)
//! cargo run --example greeter -- reload --config greeter.toml
//! cargo run --example greeter -- stop --config greeter.toml
//! ```

use std::collections::BTreeMap;

use tomte::cli::{self, Action, Cli};
use tomte::{Ctx, Daemon, Method, Type, Value};

/// Greets whoever asks, over JSON-RPC and XML-RPC.
#[derive(clap::Args)]
struct Flags {
    /// What to greet with
    #[arg(long, value_name = "TEXT", default_value = "hello")]
    greeting: String,
}

#[derive(clap::Subcommand)]
enum Extra {
    /// Print the greetings and the sockets, and exit without starting anything
    CheckConfig,
}

/// The `[app]` section of the configuration file.
#[derive(serde::Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, default)]
struct App {
    /// Put after the name.
    punctuation: String,
    /// A greeting for some names, instead of `--greeting`.
    greetings: BTreeMap<String, String>,
}

/// The daemon's state: the flag, and the section as last read (start, reload).
struct Greeter {
    greeting: String,
    app: App,
}

fn main() {
    let cli = Cli::<Flags, Extra>::parse_for("greeter");
    let code = match &cli.command {
        Action::App(Extra::CheckConfig) => check_config(&cli),
        Action::Daemon(command) => cli::run_command(daemon(&cli.app.greeting), command, &cli.daemon),
    };
    std::process::exit(code);
}

/// `check-config`: the section read once, here, with [`Cli::app_config`].
fn check_config(cli: &Cli<Flags, Extra>) -> i32 {
    let app = match cli.app_config::<App>() {
        Ok(app) => app,
        Err(why) => {
            eprintln!("greeter: {why}");
            return 1;
        }
    };
    let config = match cli.daemon.config("greeter") {
        Ok(config) => config,
        Err(why) => {
            eprintln!("greeter: {why}");
            return 2;
        }
    };
    println!("greeting: {}{}", cli.app.greeting, app.punctuation);
    for (name, greeting) in &app.greetings {
        println!("  {name}: {greeting}{}", app.punctuation);
    }
    for socket in &config.sockets {
        println!("socket:   {socket}");
    }
    0
}

fn daemon(greeting: &str) -> Daemon<Greeter> {
    let mut daemon = Daemon::with_state("greeter", Greeter { greeting: greeting.to_owned(), app: App::default() });
    // Read as the daemon starts (a bad section fails the start, naming its line) and at each
    // reload (a bad one changes nothing).
    daemon.app_config(|app: App, ctx: &mut Ctx<Greeter>| ctx.state().app = app);
    daemon.method(
        Method::new("greeter.greet", |mut params, ctx: &mut Ctx<Greeter>| {
            let name: String = params.take("name")?;
            let state = ctx.state_ref();
            let greeting = state.app.greetings.get(&name).unwrap_or(&state.greeting);
            Ok(Value::String(format!("{greeting}, {name}{}", state.app.punctuation)))
        })
        .description("Greets NAME with the daemon's --greeting, or the one [app.greetings] gives NAME")
        .returns(Type::String)
        .param(Type::String, "name"),
    );
    daemon
}
