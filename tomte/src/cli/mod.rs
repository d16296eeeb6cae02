//! The command line every daemon binary gets, and that an application extends with flags and
//! subcommands of its own (clap derive):
//!
//! ```text
//! NAME start|run|stop|status|restart|reload|config [--config PATH] [--socket ADDR]...
//!      [--pidfile PATH] [--log PATH] [-v] [--allow WHO=PERM[,PERM…]]... [--require METHOD=PERM]...
//!      [--socket-mode OCTAL] [--socket-group GROUP] [limits, TLS and token flags]
//! ```
//!
//! Every flag — tomte's and the application's — is also a key of the configuration file
//! (`--config PATH`, or `NAME_CONFIG`) and an environment variable (`NAME_KEY`), under the
//! command line in precedence: see [`crate::config`]. `config` prints the effective
//! configuration with each value's source; `reload` checks the file, then the daemon reads it
//! again.
//!
//! comodojo's flags work too: `-d` (= `start`), `-f` (= `run`), `-s` (= `start --hard`: clear
//! stale files first), `-v`, `-h`. `status` exits 0 when running and 3 when not, as LSB says;
//! a wrong command line exits 2. Flags may come before or after the command.
//!
//! * [`main`] is all a daemon with no flags of its own needs: it parses the command line,
//!   acts, and returns the exit code.
//! * [`Cli`] parses tomte's command line plus an application's: `A` is a [`clap::Args`] struct
//!   of its flags, `C` a [`clap::Subcommand`] enum of its subcommands. `--help` lists them
//!   all. Its [`command`](Cli::command) is an [`Action`]: one of tomte's [`Command`]s, which
//!   [`run_command`] carries out, or one of the application's, which it handles itself.
//! * [`DaemonArgs`] holds tomte's flags and makes the daemon's [`Config`](crate::Config).
//! * [`Cli::app_config`] reads the application's own `[app]` section of the file, typed.
//!
//! ```no_run
//! use tomte::cli::{self, Action, Cli};
//! use tomte::{Daemon, Method, Type, Value};
//!
//! /// The application's own flags.
//! #[derive(clap::Args)]
//! struct Flags {
//!     /// What to greet with
//!     #[arg(long, value_name = "TEXT", default_value = "hello")]
//!     greeting: String,
//! }
//!
//! /// The application's own subcommands, next to start, run, stop…
//! #[derive(clap::Subcommand)]
//! enum Extra {
//!     /// Print the greeting and exit
//!     Show,
//! }
//!
//! fn main() {
//!     let cli = Cli::<Flags, Extra>::parse_for("greeter");
//!     let code = match &cli.command {
//!         Action::App(Extra::Show) => {
//!             println!("{}", cli.app.greeting);
//!             0
//!         }
//!         Action::Daemon(command) => {
//!             let greeting = cli.app.greeting.clone();
//!             let mut daemon = Daemon::new("greeter");
//!             daemon.method(
//!                 Method::new("greeter.greet", move |mut params, _| {
//!                     Ok(Value::String(format!("{greeting}, {}", params.take::<String>("name")?)))
//!                 })
//!                 .returns(Type::String)
//!                 .param(Type::String, "name"),
//!             );
//!             cli::run_command(daemon, command, &cli.daemon)
//!         }
//!     };
//!     std::process::exit(code);
//! }
//! ```
//!
//! Flags, tomte's and the application's, are accepted before and after the command, and a
//! subcommand's own (`start --hard`) after it. The doc comment of `A` is the about line of
//! `--help`. An application with flags but no subcommands uses `Cli::<Flags>` and takes the
//! command with `let Action::Daemon(command) = cli.command;`. Its flags and subcommands must
//! not reuse tomte's names, nor the short flags `-d`, `-f`, `-s`, `-v` and `-h`; a test calling
//! `Cli::<Flags, Extra>::command("NAME").debug_assert()` catches a clash.

mod args;
mod run;

use std::ffi::OsString;

use std::sync::Arc;

use clap::{ArgMatches, Args, FromArgMatches, Subcommand};

use crate::config::{ConfigError, Sources};
use crate::daemon::{runtime_path, Daemon};
pub(crate) use args::current;
pub use args::{AccessArgs, DaemonArgs, LimitArgs, LogArgs, PrivilegeArgs, TlsArgs};
/// The clap this command line is built with: an application's `A` and `C` derive its traits.
pub use clap;
pub use run::{run_command, run_with_config, Command};

/// Parses `std::env::args()`, acts, and returns the process exit code.
pub fn main<S: 'static>(daemon: Daemon<S>) -> i32 {
    main_from(daemon, std::env::args_os().skip(1))
}

/// As [`main`], with the arguments given (without the program name).
pub fn main_with<S: 'static>(daemon: Daemon<S>, args: Vec<String>) -> i32 {
    main_from(daemon, args)
}

fn main_from<S: 'static, T: Into<OsString> + Clone>(daemon: Daemon<S>, args: impl IntoIterator<Item = T>) -> i32 {
    match Cli::<NoArgs, NoCommand>::try_parse_from(daemon.name(), args) {
        Ok(cli) => {
            let Action::Daemon(command) = cli.command;
            run_command(daemon, &command, &cli.daemon)
        }
        Err(e) => {
            // Help goes to stdout (exit 0), errors to stderr (exit 2).
            let _ = e.print();
            e.exit_code()
        }
    }
}

/// Why [`Cli::try_parse_from`] failed: the command line (clap's error: exit 2, or 0 for
/// `--help`, which clap reports as one), or the configuration file or environment (exit 1,
/// naming the place: `FILE:LINE:COL: key 'x': why`).
#[derive(Debug)]
#[non_exhaustive]
pub enum ParseError {
    /// A wrong command line, or help asked for.
    Usage(clap::Error),
    /// A bad configuration file or environment variable, for daemon `name`.
    Config {
        /// The daemon's name, which the message starts with.
        name: String,
        /// What is wrong, and where.
        error: ConfigError,
    },
}

impl ParseError {
    /// Prints it: help to stdout, errors to stderr.
    pub fn print(&self) -> std::io::Result<()> {
        // A new binary started by an upgrade says it to the old daemon too (its stderr is a
        // log nobody is reading at that moment).
        crate::process::upgrade::report_failure(&self.to_string());
        match self {
            ParseError::Usage(e) => e.print(),
            ParseError::Config { name, error } => {
                use std::io::Write;
                writeln!(std::io::stderr(), "{name}: {error}")
            }
        }
    }

    /// The exit code: clap's (2, or 0 for help), 1 for the configuration.
    pub fn exit_code(&self) -> i32 {
        match self {
            ParseError::Usage(e) => e.exit_code(),
            ParseError::Config { .. } => 1,
        }
    }

    /// Prints it and exits with [`ParseError::exit_code`] (what `Parser::parse` does).
    pub fn exit(&self) -> ! {
        match self {
            ParseError::Usage(e) => e.exit(),
            ParseError::Config { .. } => {
                let _ = self.print();
                std::process::exit(self.exit_code())
            }
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Usage(e) => e.fmt(f),
            ParseError::Config { error, .. } => error.fmt(f),
        }
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ParseError::Usage(e) => Some(e),
            ParseError::Config { error, .. } => Some(error),
        }
    }
}

impl From<clap::Error> for ParseError {
    fn from(e: clap::Error) -> ParseError {
        ParseError::Usage(e)
    }
}

/// A daemon's parsed command line: tomte's flags and command, and the application's flags `A`
/// and subcommands `C` (none by default). See the [module](self) for an example.
#[derive(Clone, Debug)]
pub struct Cli<A = NoArgs, C = NoCommand> {
    /// What to do: one of tomte's commands, or one of the application's.
    pub command: Action<C>,
    /// tomte's flags.
    pub daemon: DaemonArgs,
    /// The application's flags.
    pub app: A,
}

/// The command given: tomte's (to hand to [`run_command`]) or the application's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<C = NoCommand> {
    /// `start`, `run`, `stop`, `status`, `restart`, `reload` (or comodojo's `-d`, `-f`, `-s`).
    Daemon(Command),
    /// One of the application's subcommands.
    App(C),
}

/// No flags of the application's own: the default `A` of [`Cli`].
#[derive(clap::Args, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[command(about = None, long_about = None)]
pub struct NoArgs {}

/// No subcommands of the application's own: the default `C` of [`Cli`]. It has no values, so
/// `let Action::Daemon(command) = cli.command;` needs no other arm.
#[derive(clap::Subcommand, Clone, Copy, Debug, PartialEq, Eq)]
#[command(about = None, long_about = None)]
pub enum NoCommand {}

impl<A: Args, C: Subcommand> Cli<A, C> {
    /// The clap command of daemon `name`: tomte's flags and commands, and the application's
    /// (for shell completions or a man page; [`Cli::try_parse_from`] builds its own).
    pub fn command(name: &str) -> clap::Command {
        Self::build(name, true)
    }

    /// With `global`, every flag is accepted by (and listed in the help of) every subcommand
    /// too. clap copies each global flag into each subcommand, which would cost an idle daemon
    /// some 100 kB of heap for good: parsing puts the flags before the command instead
    /// ([`normalize`]), and only help and errors pay for the copies.
    fn build(name: &str, global: bool) -> clap::Command {
        let defaults = format!(
            "Defaults: socket unix://{}, pid file {}",
            runtime_path(name, "sock").display(),
            runtime_path(name, "pid").display()
        );
        let cmd = clap::Command::new(name.to_owned())
            .disable_help_subcommand(true)
            .subcommand_required(true)
            .arg_required_else_help(true)
            // A flag given twice takes the last value, as it always did (lists add up).
            .args_override_self(true)
            .after_help(defaults);
        let cmd = out_of_line(cmd, DaemonArgs::augment_args);
        let cmd = out_of_line(cmd, Command::augment_subcommands);
        // The application's last: the doc comment of `A` (or of `C`) is the about line.
        let cmd = out_of_line(cmd, C::augment_subcommands).next_help_heading(None::<&str>);
        let mut cmd = out_of_line(cmd, A::augment_args);
        if global {
            // A positional argument cannot be global.
            cmd = cmd.mut_args(|arg| if arg.is_positional() { arg } else { arg.global(true) });
        }
        cmd.build();
        cmd
    }

    /// Parses `std::env::args()` for daemon `name`, with its configuration file and
    /// environment; on a wrong command line, or for `--help`, prints and exits (2 and 0), as
    /// clap's `Parser::parse` does, and on a bad configuration prints where and exits 1.
    pub fn parse_for(name: &str) -> Self {
        Self::try_parse_from(name, std::env::args_os().skip(1)).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (without the program name) for daemon `name`, with the configuration
    /// file (`--config PATH`, or `NAME_CONFIG`) and the environment (`NAME_KEY`) under them:
    /// see [`crate::config`]. The error is clap's for a wrong command line and for `--help`
    /// alike, or the configuration's: print it with [`ParseError::print`], exit with
    /// [`ParseError::exit_code`] (or just [`ParseError::exit`]).
    pub fn try_parse_from<I, T>(name: &str, args: I) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        Self::try_parse_in(name, &args, crate::config::environment(name), std::env::current_dir().ok())
    }

    /// As [`Cli::try_parse_from`], with the environment variables (`NAME_…`) and the
    /// directory relative paths are resolved against given: for tests.
    #[doc(hidden)]
    pub fn try_parse_in(
        name: &str,
        args: &[OsString],
        env: Vec<(String, OsString)>,
        cwd: Option<std::path::PathBuf>,
    ) -> Result<Self, ParseError> {
        // Help and errors (help is one, to clap) come from the global command: the help of a
        // subcommand lists every flag, and an error is about the argument where it was given.
        match Self::parse_with(name, false, args, &env, &cwd) {
            Err(ParseError::Usage(_)) => Self::parse_with(name, true, args, &env, &cwd),
            done => done,
        }
    }

    /// The application's section of the configuration file, `[app]`, as a `T` (serde): from
    /// an empty table when there is no file or no such section. A bad one is an error naming
    /// the file, line and key. Read once, here; [`Daemon::app_config`] reads it again on
    /// reload.
    pub fn app_config<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        match &self.daemon.sources {
            Some(sources) => sources.section(crate::config::APP),
            None => crate::config::empty_section(None, crate::config::APP),
        }
    }

    fn parse_with(
        name: &str,
        global: bool,
        args: &[OsString],
        env: &[(String, OsString)],
        cwd: &Option<std::path::PathBuf>,
    ) -> Result<Self, ParseError> {
        let mut cmd = Self::build(name, global);
        let argv0 = OsString::from(cmd.get_name());
        let argv = normalize(&cmd, args.to_vec());
        let line = |args: &[OsString]| std::iter::once(argv0.clone()).chain(args.iter().cloned()).collect::<Vec<_>>();
        let mut matches = cmd.try_get_matches_from_mut(line(&argv)).map_err(ParseError::Usage)?;
        let config = |error| ParseError::Config { name: name.to_owned(), error };
        let build: crate::config::Build = Self::build;
        let gathered =
            Sources::gather(name, build, global, &cmd, &matches, argv, env.to_vec(), cwd.clone()).map_err(config)?;
        if let Some(composed) = &gathered.composed {
            matches = cmd.try_get_matches_from_mut(line(composed)).map_err(|e| config(gathered.explain(&e)))?;
        }
        let mut cli = Self::from_matches(&mut matches).map_err(|e| ParseError::Usage(e.format(&mut cmd)))?;
        cli.daemon.sources = Some(Arc::new(gathered.sources));
        Ok(cli)
    }

    fn from_matches(matches: &mut ArgMatches) -> Result<Self, clap::Error> {
        let daemon = DaemonArgs::from_arg_matches_mut(matches)?;
        let app = A::from_arg_matches_mut(matches)?;
        let command = Action::from_arg_matches_mut(matches)?;
        Ok(Cli { command, daemon, app })
    }
}

impl<C: Subcommand> FromArgMatches for Action<C> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut matches.clone())
    }

    fn from_arg_matches_mut(matches: &mut ArgMatches) -> Result<Self, clap::Error> {
        match matches.subcommand_name() {
            Some(name) if Command::has_subcommand(name) => Command::from_arg_matches_mut(matches).map(Action::Daemon),
            _ => C::from_arg_matches_mut(matches).map(Action::App),
        }
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<C: Subcommand> Subcommand for Action<C> {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        C::augment_subcommands(Command::augment_subcommands(cmd))
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        C::augment_subcommands_for_update(Command::augment_subcommands_for_update(cmd))
    }

    fn has_subcommand(name: &str) -> bool {
        Command::has_subcommand(name) || C::has_subcommand(name)
    }
}

/// `f(cmd)`, never inlined. A clap `augment` function has a stack frame of some kB (one `Arg`
/// per flag), and inlined into one another their frames add up: the deepest the stack ever
/// was stays resident in an idle daemon.
fn out_of_line(cmd: clap::Command, f: fn(clap::Command) -> clap::Command) -> clap::Command {
    std::hint::black_box(f)(cmd)
}

/// `args` in the order clap parses without global flags: tomte's and the application's flags
/// before the command, the command's own after it. comodojo's command flags become commands:
/// `-d` → `start`, `-f` → `run`, `-s` → `start --hard` (`-s -d` is one hard start), unless the
/// application took the short flag for itself. A flag's value (`--pidfile -d`), what follows
/// `--`, and whatever clap will refuse stay where they are.
fn normalize(top: &clap::Command, args: Vec<OsString>) -> Vec<OsString> {
    let mut before = Vec::new();
    // The command, then its own flags and arguments.
    let mut after: Vec<OsString> = Vec::new();
    let mut sub: Option<&clap::Command> = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(s) = arg.to_str() else {
            (if sub.is_some() { &mut after } else { &mut before }).push(arg);
            continue;
        };
        if s == "--" {
            let rest = if sub.is_some() { &mut after } else { &mut before };
            rest.push(arg);
            rest.extend(args);
            break;
        }
        // The command's own flag first, then the top level's.
        if let Some(value_follows) = sub.and_then(|cmd| option(cmd, s)) {
            after.push(arg);
            if value_follows {
                after.extend(args.next());
            }
            continue;
        }
        if let Some(value_follows) = option(top, s) {
            // One missing its value stays in place, for clap to say so.
            if value_follows && args.len() == 0 {
                (if sub.is_some() { &mut after } else { &mut before }).push(arg);
                continue;
            }
            before.push(arg);
            if value_follows {
                before.extend(args.next());
            }
            continue;
        }
        let comodojo = match s {
            "-d" | "-s" => Some("start"),
            "-f" => Some("run"),
            _ => None,
        };
        if let Some(name) = comodojo {
            match sub {
                Some(cmd) if cmd.get_name() == name => {}
                // A second command: clap says so.
                Some(_) => after.push(name.into()),
                None => {
                    sub = top.find_subcommand(name);
                    after.push(name.into());
                }
            }
            if s == "-s" {
                after.push("--hard".into());
            }
            continue;
        }
        if sub.is_none() && !s.starts_with('-') {
            if let Some(cmd) = top.find_subcommand(s) {
                sub = Some(cmd);
                after.push(arg);
                continue;
            }
        }
        (if sub.is_some() { &mut after } else { &mut before }).push(arg);
    }
    before.extend(after);
    before
}

/// Whether `s` is a flag of `cmd`: `Some(true)` when its value is the next argument.
fn option(cmd: &clap::Command, s: &str) -> Option<bool> {
    let takes_value = |a: &clap::Arg| a.get_action().takes_values();
    if let Some(long) = s.strip_prefix("--") {
        let (name, inline) = long.split_once('=').map_or((long, false), |(name, _)| (name, true));
        let is = |a: &&clap::Arg| a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|v| v.contains(&name));
        return cmd.get_arguments().find(is).map(|a| takes_value(a) && !inline);
    }
    let mut chars = s.strip_prefix('-')?.chars();
    let first = chars.next()?;
    let short = |c: char| cmd.get_arguments().find(|a| a.get_short() == Some(c));
    let arg = short(first)?;
    if takes_value(arg) {
        // `-n 3`, or `-n3`.
        return Some(chars.as_str().is_empty());
    }
    // A cluster of flags (`-vq`), every one this command's.
    chars.all(|c| short(c).is_some_and(|a| !takes_value(a))).then_some(false)
}

#[cfg(test)]
mod tests;
