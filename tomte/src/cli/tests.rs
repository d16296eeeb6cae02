use std::path::Path;

use super::*;
use crate::net::{Address, Limits, Transport};

fn parse(args: &[&str]) -> Result<Cli, ParseError> {
    Cli::try_parse_from("echo", args)
}

/// The daemon's command and config from `args`.
fn config(args: &[&str]) -> (Command, crate::Config) {
    let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let Action::Daemon(command) = cli.command;
    (command, cli.daemon.config("echo").unwrap())
}

fn error(args: &[&str]) -> String {
    parse(args).map(|_| ()).expect_err("must be refused").to_string()
}

#[test]
fn comodojo_flags_and_options() {
    let (command, c) = config(&["-d", "--socket", "tcp://127.0.0.1:1", "-v"]);
    assert_eq!(command, Command::Start { hard: false });
    assert_eq!(c.verbose, 1);
    assert_eq!(c.sockets.len(), 1);
    let (command, c) = config(&["--pidfile=rel.pid", "-f"]);
    assert_eq!(command, Command::Run);
    assert!(c.pidfile.unwrap().is_absolute());
    assert_eq!(config(&["-s"]).0, Command::Start { hard: true });
    assert_eq!(config(&["-s", "-d", "-v"]).0, Command::Start { hard: true });
    assert_eq!(config(&["-v", "start", "--hard"]).0, Command::Start { hard: true });
    // A flag's value is not a comodojo flag (clap refuses a value that looks like a flag).
    let (command, c) = config(&["run", "--log=-d"]);
    assert_eq!((command, c.log.unwrap().file_name().unwrap().to_str()), (Command::Run, Some("-d")));
    assert!(error(&["run", "--log", "-d"]).contains("'-d'"));
    assert!(parse(&["start", "stop"]).is_err());
    assert!(parse(&["-d", "-f"]).is_err());
    assert!(error(&["start", "--bogus"]).contains("--bogus"));
    assert!(error(&["start", "--socket"]).contains("--socket"));
    // No command: a usage error, with the help.
    let e = parse(&[]).map(|_| ()).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(parse(&["--socket", "unix:///x.sock"]).is_err());
}

#[test]
fn defaults_are_configs_defaults_and_flags_go_before_or_after_the_command() {
    let (_, c) = config(&["status"]);
    let d = crate::Config::defaults("echo");
    assert_eq!((c.sockets, c.pidfile, c.umask, c.socket_mode), (d.sockets, d.pidfile, d.umask, d.socket_mode));
    assert_eq!(c.limits.max_connections, Limits::default().max_connections);
    for args in [
        &["--socket", "unix:///a.sock", "stop", "--pidfile", "/p"][..],
        &["stop", "--pidfile", "/p", "--socket", "unix:///a.sock"],
    ] {
        let (command, c) = config(args);
        assert_eq!(command, Command::Stop);
        assert_eq!(c.sockets, [Address::unix("/a.sock")]);
        assert_eq!(c.pidfile.as_deref(), Some(Path::new("/p")));
    }
    // Given twice, the last wins; lists add up.
    let (_, c) = config(&["run", "--log", "/a", "--log=/b", "--socket", "unix:///1", "--socket", "unix:///2"]);
    assert_eq!(c.log.as_deref(), Some(Path::new("/b")));
    assert_eq!(c.sockets.len(), 2);
}

#[test]
fn access_options() {
    let (_, c) = config(&["run", "--allow", "group:ops=read,control", "--allow=uid:7=all", "--socket-mode", "0660"]);
    let rules: Vec<String> = c.policy.rules().iter().map(|r| r.to_string()).collect();
    assert_eq!(rules, ["group:ops=read,control", "uid:7=all"]);
    assert_eq!(c.socket_mode, 0o660);
    let (_, c) = config(&["run", "--require", "worker.restart=restart"]);
    assert_eq!(c.requires, [("worker.restart".to_owned(), tomte_rpc::Permission::custom("restart"))]);
    let (_, c) = config(&["run", "--socket-group", "root"]);
    assert_eq!(c.socket_group, Some(0));
    for bad in [
        ["--allow", "ops=read"],
        ["--socket-mode", "888"],
        ["--socket-mode", "01777"],
        ["--socket-group", "no such"],
        ["--require", "nothing"],
        ["--umask", "9"],
    ] {
        let e = error(&["run", bad[0], bad[1]]);
        assert!(e.contains(bad[0]) && e.contains(bad[1]), "{bad:?}: {e}");
    }
}

#[test]
fn limits_are_checked_naming_the_flag_and_value() {
    let (_, c) =
        config(&["run", "--max-connections", "7", "--idle-timeout", "0.5", "--listener-reserve", "0", "--nice", "-5"]);
    assert_eq!(c.limits.max_connections, 7);
    assert_eq!(c.limits.idle_timeout, std::time::Duration::from_millis(500));
    assert_eq!(c.limits.listener_reserve, 0);
    assert_eq!(c.nice, Some(-5));
    for (flag, value, why) in [
        ("--max-connections", "abc", "not a valid number"),
        ("--max-connections", "0", "at least 1"),
        ("--request-timeout", "0", "more than 0"),
        ("--idle-timeout", "1e9", "a year"),
        ("--min-rate", "-1", "not a valid number"),
    ] {
        let e = parse(&["run", &format!("{flag}={value}")]).map(|_| ()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = e.to_string();
        assert!(e.contains(flag) && e.contains(&format!("'{value}'")) && e.contains(why), "{e}");
    }
}

#[test]
fn tls_flags() {
    let args = [
        "run",
        "--socket",
        "tls://127.0.0.1:1",
        "--tls-cert=c.pem",
        "--tls-key",
        "/k.pem",
        "--tls-client-ca",
        "ca.pem",
    ];
    let (_, c) = config(&args);
    assert!(matches!(c.sockets[0].transport, Transport::Tls { .. }));
    assert!(c.tls.cert.unwrap().is_absolute());
    assert_eq!(c.tls.key.unwrap(), Path::new("/k.pem"));
    assert!(c.tls.client_ca.unwrap().ends_with("ca.pem"));
    assert!(error(&["run", "--tls-key"]).contains("--tls-key"));
    let (_, c) = config(&["run", "--token-file", "t", "--insecure"]);
    assert!(c.insecure && c.token_file.unwrap().is_absolute());
}

#[test]
fn help_lists_commands_flags_and_defaults() {
    let e = parse(&["--help"]).map(|_| ()).unwrap_err();
    assert_eq!(e.exit_code(), 0);
    let help = e.to_string();
    for word in [
        "start",
        "run",
        "stop",
        "status",
        "restart",
        "reload",
        "-d",
        "-f",
        "-s",
        "--socket <ADDR>",
        "--max-connections <N>",
        "--tls-cert <PATH>",
        "-v, --verbose",
        "-h, --help",
        "Defaults: socket unix://",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    let limits = Limits::default();
    for n in [
        limits.max_connections,
        limits.max_per_peer,
        limits.listener_reserve,
        limits.max_message,
        limits.max_buffered,
        limits.max_unsent,
        limits.min_rate,
    ] {
        assert!(help.contains(&format!("[default: {n}")), "default {n} missing from:\n{help}");
    }
    for d in [limits.idle_timeout, limits.request_timeout] {
        assert!(help.contains(&format!("[default: {}]", d.as_secs())), "default {d:?} missing from:\n{help}");
    }
    assert!(help.contains(&format!("SIGKILL after {}s", run::STOP_TIMEOUT.as_secs())), "{help}");
    // `-h` prints help too.
    assert_eq!(parse(&["-h"]).map(|_| ()).unwrap_err().exit_code(), 0);
}

#[derive(clap::Args, Debug)]
struct Flags {
    /// What to greet with
    #[arg(long, default_value = "hello")]
    greeting: String,
    #[arg(short = 'n', long)]
    times: Option<u32>,
}

#[derive(clap::Subcommand, Debug, PartialEq, Eq)]
enum Extra {
    /// Print the configuration
    CheckConfig {
        #[arg(long)]
        quiet: bool,
    },
}

#[test]
fn an_application_adds_flags_and_subcommands() {
    let parse = |args: &[&str]| Cli::<Flags, Extra>::try_parse_from("greeter", args);
    let cli = parse(&["run", "--greeting", "hey", "--socket", "unix:///g.sock"]).unwrap();
    assert_eq!(cli.command, Action::Daemon(Command::Run));
    assert_eq!(cli.app.greeting, "hey");
    assert_eq!(cli.daemon.sockets, [Address::unix("/g.sock")]);
    let cli = parse(&["--greeting=hi", "-n", "3", "check-config", "--quiet", "-v"]).unwrap();
    assert_eq!(cli.command, Action::App(Extra::CheckConfig { quiet: true }));
    assert_eq!((cli.app.greeting.as_str(), cli.app.times), ("hi", Some(3)));
    assert_eq!(cli.daemon.verbose, 1);
    let cli = parse(&["-d", "-n", "-s"]);
    assert!(cli.is_err(), "-n takes a value: -s is it, not a hard start");
    assert_eq!(parse(&["-f"]).unwrap().app.greeting, "hello");
    let help = parse(&["--help"]).map(|_| ()).unwrap_err().to_string();
    for word in ["--greeting", "What to greet with", "check-config", "--socket", "start"] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    let e = parse(&["check-config", "--max-connections", "abc"]).map(|_| ()).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("--max-connections"), "{e}");
}

#[test]
fn the_clap_command_is_consistent() {
    Cli::<NoArgs, NoCommand>::command("echo").debug_assert();
    Cli::<Flags, Extra>::command("greeter").debug_assert();
}

#[test]
fn flags_go_before_the_command_so_no_flag_need_be_global() {
    let cmd = Cli::<Flags, Extra>::build("greeter", false);
    let norm = |args: &[&str]| -> Vec<String> {
        let args = args.iter().map(OsString::from).collect();
        normalize(&cmd, args).into_iter().map(|a| a.into_string().unwrap()).collect()
    };
    assert_eq!(
        norm(&["run", "--socket", "unix:///a", "-v", "--greeting=hi"]),
        ["--socket", "unix:///a", "-v", "--greeting=hi", "run"]
    );
    assert_eq!(norm(&["-s", "--nice", "-5", "-d"]), ["--nice", "-5", "start", "--hard"]);
    assert_eq!(norm(&["check-config", "--quiet", "-n3", "--", "-v"]), ["-n3", "check-config", "--quiet", "--", "-v"]);
    // What clap will refuse stays in place.
    assert_eq!(norm(&["start", "--bogus", "x", "--pidfile"]), ["start", "--bogus", "x", "--pidfile"]);
    assert_eq!(norm(&["-f", "-d"]), ["run", "start"]);
    // The usual command lines parse without the global command (the fallback for errors).
    for args in [
        &["start", "--socket", "unix:///a", "--pidfile", "/p", "--log", "/l", "-v"][..],
        &["-d", "--max-connections=9"],
        &["--greeting", "x", "check-config", "--quiet", "-v"],
    ] {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let parsed = Cli::<Flags, Extra>::parse_with("greeter", false, &args, &[], &None);
        assert!(parsed.is_ok(), "{args:?}: {}", parsed.unwrap_err());
    }
}

#[test]
fn log_flags_syslog_format_and_verbosity() {
    use crate::logging::LogFormat;
    let (_, c) = config(&["run", "-vv", "--log-format", "json", "--log", "syslog"]);
    assert_eq!((c.verbose, c.logging.format), (2, LogFormat::Json));
    assert_eq!((c.log, c.logging.syslog.as_deref()), (None, Some(Path::new("/dev/log"))));
    let (_, c) = config(&["run", "-v", "--log", "syslog:/tmp/s.sock"]);
    assert_eq!((c.verbose, c.logging.syslog.as_deref()), (1, Some(Path::new("/tmp/s.sock"))));
    // A file named syslog is a path with a directory.
    let (_, c) = config(&["run", "--log", "./syslog"]);
    assert!(c.log.unwrap().is_absolute() && c.logging.syslog.is_none());
    let (_, c) = config(&["run", "-v", "-v", "-v"]);
    assert_eq!((c.verbose, c.logging.format), (3, LogFormat::Text));
    assert!(error(&["run", "--log-format", "xml"]).contains("--log-format"));
}

// ---- The configuration file and the environment under the command line ----

/// A later group of flags, as another module would flatten in: its keys come with it.
#[derive(clap::Args, Debug)]
struct Later {
    #[command(flatten)]
    more: MoreArgs,
}

#[derive(clap::Args, Debug)]
#[command(about = None, long_about = None)]
struct MoreArgs {
    /// Open files at most
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..), help_heading = "Privileges")]
    max_files: Option<u16>,
    /// Lock everything down (a made-up switch: not one of tomte's)
    #[arg(long, help_heading = "Privileges")]
    lock_down: bool,
    /// Less output (repeatable)
    #[arg(short = 'q', long, action = clap::ArgAction::Count)]
    quiet: u8,
}

/// A file with `text` in a fresh directory, and the directory (removed by the caller).
fn file_with(tag: &str, text: &str) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tomte-cfg-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("echo.toml");
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, file)
}

fn layered(args: &[&str], env: &[(&str, &str)]) -> Result<Cli<Later>, ParseError> {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let env = env.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
    Cli::<Later>::try_parse_in("echo", &args, env, Some(PathBuf::from("/srv")))
}

use std::path::PathBuf;

use crate::config::Source;

#[test]
fn file_then_environment_then_flags_for_every_group_of_flags() {
    let (dir, file) = file_with(
        "layers",
        "quiet = 2\nidle-timeout = 5\npidfile = \"run/echo.pid\"\n\n[limits]\nmax-connections = 7\n\n\
         [privileges]\nmax-files = 9\nlock-down = true\n",
    );
    let f = file.to_str().unwrap();
    let env =
        [("ECHO_MAX_CONNECTIONS", "8"), ("ECHO_MAX_FILES", "10"), ("ECHO_SOCKET", "unix:///a.sock unix:///b.sock")];
    let cli = layered(&["run", "--config", f, "--idle-timeout", "6"], &env).unwrap();
    assert_eq!((cli.app.more.max_files, cli.app.more.lock_down, cli.app.more.quiet), (Some(10), true, 2));
    let config = cli.daemon.config("echo").unwrap();
    assert_eq!(config.limits.idle_timeout, std::time::Duration::from_secs(6));
    assert_eq!(config.limits.max_connections, 8);
    assert_eq!(config.sockets, [Address::unix("/a.sock"), Address::unix("/b.sock")]);
    // A relative path in the file: against the directory the daemon started from.
    assert_eq!(config.pidfile.as_deref(), Some(Path::new("/srv/run/echo.pid")));
    let sources = config.sources.as_deref().unwrap();
    let source = |key: &str| sources.setting(key).map(|s| s.source.clone());
    assert_eq!(source("idle-timeout"), Some(Source::Flag("--idle-timeout".into())));
    assert_eq!(source("max-connections"), Some(Source::Env("ECHO_MAX_CONNECTIONS".into())));
    assert_eq!(source("lock-down"), Some(Source::File { path: file.clone(), line: 10 }));
    assert_eq!(source("quiet"), Some(Source::File { path: file.clone(), line: 1 }));
    assert_eq!(source("max-per-peer"), None);
    // The file named by the environment instead; a switch turned off by it.
    let cli = layered(&["run"], &[("ECHO_CONFIG", f), ("ECHO_LOCK_DOWN", "off")]).unwrap();
    assert!(!cli.app.more.lock_down);
    assert_eq!(cli.daemon.config("echo").unwrap().limits.max_connections, 7);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn values_are_checked_by_the_flags_own_parsers_naming_the_place() {
    for (text, wanted) in [
        (
            "[privileges]\nmax-files = 0\n",
            ":2:13: key 'privileges.max-files': invalid value '0': 0 is not in 1..=65535",
        ),
        ("\nmax-per-peer = 0\n", ":2:16: key 'max-per-peer': invalid value '0': must be at least 1"),
        (
            "[limits]\nlock-down = true\n",
            ":2:1: key 'limits.lock-down': not a key of [limits]: it goes in [privileges]",
        ),
        ("quiet = \"x\"\n", ":1:9: key 'quiet': expected a count (0 to 255) or true/false, found a string"),
        ("allow = [\"ops=read\"]\n", ":1:10: key 'allow': invalid value 'ops=read'"),
        ("[app\n", ":1:5:"),
    ] {
        let (dir, file) = file_with("bad", text);
        let e = layered(&["run", "--config", file.to_str().unwrap()], &[]).map(|_| ()).unwrap_err();
        assert_eq!(e.exit_code(), 1, "{e}");
        let e = e.to_string();
        assert!(e.starts_with(&format!("{}{wanted}", file.display())), "{text:?}: {e}");
        std::fs::remove_dir_all(dir).ok();
    }
    let e = layered(&["run"], &[("ECHO_MAX_FILES", "none")]).map(|_| ()).unwrap_err().to_string();
    assert_eq!(e, "ECHO_MAX_FILES: invalid value 'none': invalid digit found in string");
    // The command line's own errors stay usage errors (exit 2).
    assert_eq!(layered(&["run", "--max-files", "0"], &[]).map(|_| ()).unwrap_err().exit_code(), 2);
}

#[test]
fn the_app_section_is_typed_and_its_errors_named() {
    #[derive(serde::Deserialize, Debug, Default, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct App {
        greeting: String,
        times: u32,
    }
    let (dir, file) = file_with("app", "idle-timeout = 5\n[app]\ngreeting = \"hi\"\ntimes = 3\n");
    let cli = layered(&["run", "--config", file.to_str().unwrap()], &[]).unwrap();
    assert_eq!(cli.app_config::<App>().unwrap(), App { greeting: "hi".into(), times: 3 });
    std::fs::write(&file, "[app]\ngreeting = \"hi\"\ntimes = -1\n").unwrap();
    let cli = layered(&["run", "--config", file.to_str().unwrap()], &[]).unwrap();
    let e = cli.app_config::<App>().unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:3:9: key 'app.times': ", file.display())), "{e}");
    // No file: an empty section.
    assert_eq!(layered(&["run"], &[]).unwrap().app_config::<App>().unwrap(), App::default());
    std::fs::remove_dir_all(dir).ok();
}
