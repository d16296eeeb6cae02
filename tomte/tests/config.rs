//! The configuration file on real daemons: precedence (file < environment < flag) as `NAME
//! config` shows it, broken and unsafe files refused before anything starts, reload applying
//! what it can (log level, limits, worker intervals with a rolling restart) and keeping the
//! running configuration when the file is broken, and the greeter's own `[app]` section.

mod common;

use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// Writes a configuration file, mode `mode`.
fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `d`'s binary with `command`, its arguments, and `env`.
fn run(d: &Daemon, command: &str, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(&d.bin);
    c.arg(command).args(&d.args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run the daemon binary")
}

/// A daemon of example `name` whose configuration file (mode 0644) is `text`.
fn with_file(name: &str, text: &str) -> (Daemon, PathBuf) {
    let d = Daemon::new(name, &[]);
    let file = d.dir.path("d.toml");
    write(&file, text, 0o644);
    let file_arg = file.display().to_string();
    (d.add_args(&["--config", &file_arg]), file)
}

/// Starts `d` with `env`, asserting success; its pid is recorded for cleanup.
fn start(d: &mut Daemon, env: &[(&str, &str)]) -> i32 {
    let out = run(d, "start", env);
    assert!(out.status.success(), "start failed: {}{}", text(&out.stdout), text(&out.stderr));
    let pid = d.pid().expect("pid file of a ready daemon");
    d.pids.push(pid);
    pid
}

/// The line of `config`'s output setting `key`.
fn line_of<'a>(shown: &'a str, key: &str) -> &'a str {
    shown.lines().find(|l| l.starts_with(&format!("{key} = "))).unwrap_or_else(|| panic!("no {key} in:\n{shown}"))
}

/// Processes whose command line mentions `needle` (the test's own temp dir): none may be left.
fn processes_with(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if pid != std::process::id() as i32 && alive(pid) && String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn precedence_is_file_then_environment_then_flag_and_config_shows_each_source() {
    let (d, file) = with_file(
        "echo",
        "# echo's configuration\n\
         idle-timeout = 5\n\
         request-timeout = 3\n\
         \n\
         [limits]\n\
         max-connections = 7\n\
         min-rate = 1000\n",
    );
    let mut d = d.add_args(&["--idle-timeout", "9"]);
    let env = [("ECHO_MAX_CONNECTIONS", "8"), ("ECHO_MIN_RATE", "2000"), ("ECHO_MAX_MESSAGE", "")];
    let out = run(&d, "config", &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let f = file.display().to_string();
    for (key, value, source) in [
        ("idle-timeout", "9", "# flag --idle-timeout".to_owned()),
        ("max-connections", "8", "# env ECHO_MAX_CONNECTIONS".to_owned()),
        ("min-rate", "2000", "# env ECHO_MIN_RATE".to_owned()),
        ("request-timeout", "3", format!("# file {f}:3")),
        // An empty variable is no setting.
        ("max-message", "16777216", "# default".to_owned()),
        ("max-per-peer", "256", "# default".to_owned()),
    ] {
        let line = line_of(&shown, key);
        assert!(line.starts_with(&format!("{key} = {value} ")) && line.ends_with(&source), "{line}\n{shown}");
    }
    assert!(shown.contains(&format!("# Configuration file {f} (flag --config)")), "{shown}");
    assert!(line_of(&shown, "pidfile").contains(&d.pidfile.display().to_string()), "{shown}");

    // What it prints is a configuration file: fed back alone, it gives the same values.
    let again = d.dir.path("again.toml");
    write(&again, &shown, 0o600);
    let out = Command::new(&d.bin).args(["config", "--config", again.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let reread = text(&out.stdout);
    for key in ["idle-timeout", "max-connections", "min-rate", "request-timeout", "socket", "umask", "socket-mode"] {
        let value = |s: &str| line_of(s, key).split('#').next().unwrap().trim().to_owned();
        assert_eq!(value(&reread), value(&shown), "{key}:\n{reread}");
    }

    // The daemon runs with them.
    start(&mut d, &env);
    let limits = &call(&d, "daemon.status", "[]")["result"]["limits"];
    assert_eq!(limits["idle_timeout"], 9.0, "{limits}");
    assert_eq!(limits["max_connections"], 8, "{limits}");
    assert_eq!(limits["request_timeout"], 3.0, "{limits}");
    assert_eq!(limits["min_rate"], 2000, "{limits}");
    served(&d);
}

#[test]
fn a_broken_file_fails_start_naming_its_line_and_leaves_nothing_behind() {
    for (bin, contents, place, why) in [
        ("echo", "idle-timeout = 5\nsocket = [\n", ":2:", "expected `]`"),
        ("echo", "\n\nidle-timout = 5\n", ":3:1: key 'idle-timout'", "unknown key (did you mean 'idle-timeout'?)"),
        (
            "echo",
            "[limits]\nidle-timeout = 0\n",
            ":2:16: key 'limits.idle-timeout'",
            "invalid value '0': must be more than 0",
        ),
        (
            "echo",
            "max-connections = \"many\"\n",
            ":1:19: key 'max-connections'",
            "invalid value 'many': not a valid number",
        ),
        // Checked by the daemon itself, through the readiness pipe.
        (
            "pool",
            "[workers.gamma]\ninterval = 1\n",
            ":1:10: key 'workers.gamma'",
            "no such worker (the daemon has: alpha, beta)",
        ),
        ("pool", "[workers.alpha]\ninterval = -1\n", ":2:12: key 'workers.alpha.interval'", "more than 0"),
        ("greeter", "[app]\ncolour = \"red\"\n", ":2:1: key 'app.colour'", "unknown field `colour`"),
    ] {
        let (d, file) = with_file(bin, contents);
        for command in ["start", "run"] {
            let out = run(&d, command, &[]);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{bin} {command} {contents:?}: {err}");
            let at = format!("{}{place}", file.display());
            assert!(err.contains(&at) && err.contains(why), "{bin} {contents:?}: wanted {at} … {why}, got: {err}");
            assert!(d.pid().is_none() && !d.pidfile.exists() && !d.sock.exists(), "{bin} {command} left files");
            // The trailing slash: not another test's directory whose name starts the same. A
            // daemon that reported its failure may take a moment more to exit.
            let dir = format!("{}/", d.dir.0.display());
            wait_for(Duration::from_secs(5), || processes_with(&dir).is_empty());
            let left = processes_with(&dir);
            for &pid in &left {
                kill(pid, libc::SIGKILL);
            }
            assert!(left.is_empty(), "{bin} {command} left processes {left:?}");
        }
    }
}

#[test]
fn a_missing_file_and_a_file_others_may_write_are_refused_naming_them() {
    let d = Daemon::new("echo", &[]);
    let missing = d.dir.path("nowhere.toml");
    let d = d.add_args(&["--config", missing.to_str().unwrap()]);
    let out = run(&d, "start", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("configuration file {} does not exist", missing.display())));
    // Named by the environment instead.
    let plain = Daemon::new("echo", &[]);
    let out = run(&plain, "start", &[("ECHO_CONFIG", missing.to_str().unwrap())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&missing.display().to_string()), "{}", text(&out.stderr));
    assert!(plain.pid().is_none());

    for mode in [0o666, 0o664, 0o646] {
        let (d, file) = with_file("echo", "idle-timeout = 5\n");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = run(&d, "start", &[]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{mode:o}: {err}");
        assert!(
            err.contains(&format!("refusing configuration file {}", file.display()))
                && err.contains(&format!("writable by users other than its owner (mode {mode:04o})")),
            "{err}"
        );
        assert!(d.pid().is_none() && !d.sock.exists());
    }
    // A link is refused too: it could be swapped under the daemon.
    let (d, file) = with_file("echo", "idle-timeout = 5\n");
    let link = d.dir.path("link.toml");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let out = Command::new(&d.bin).args(["run", "--config", link.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("symbolic link"), "{}", text(&out.stderr));
}

#[test]
fn reload_applies_log_level_and_limits_and_keeps_the_old_configuration_on_a_broken_file() {
    let (mut d, file) = with_file("echo", "idle-timeout = 300\n");
    let pid = start(&mut d, &[]);
    kill(pid, libc::SIGWINCH);
    assert!(!d.log_text().contains("DEBUG"), "debug lines before -v: {}", d.log_text());

    // A new level, a new limit, and a new socket mode (which needs a restart).
    write(&file, "verbose = true\nsocket-mode = \"0660\"\n[limits]\nidle-timeout = 7\n", 0o644);
    let report = call(&d, "daemon.reload", "[]");
    let r = &report["result"];
    assert_eq!(r["file"], file.display().to_string(), "{report}");
    let applied: Vec<&str> = r["applied"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(applied.contains(&"verbose") && applied.contains(&"idle-timeout"), "{report}");
    assert_eq!(r["restart_needed"], serde_json::json!(["socket-mode"]), "{report}");
    assert_eq!(call(&d, "daemon.status", "[]")["result"]["limits"]["idle_timeout"], 7.0);
    // Debug lines now: the signal is logged at debug level.
    kill(pid, libc::SIGWINCH);
    until("a debug line", Duration::from_secs(10), || {
        d.log_text().contains("DEBUG") && d.log_text().contains("SIGWINCH")
    });
    let log = d.log_text();
    assert!(log.contains("applied verbose, idle-timeout"), "{log}");
    assert!(log.contains("take effect only after a restart: socket-mode"), "{log}");

    // A broken file: refused with its line, the running configuration kept.
    write(&file, "verbose = true\n[limits]\nidle-timeout = [\n", 0o644);
    let v = call(&d, "daemon.reload", "[]");
    assert_eq!(v["error"]["code"], -32020, "{v}");
    let data = v["error"]["data"].as_str().unwrap_or_default();
    assert!(data.contains(&format!("{}:3:", file.display())), "{v}");
    assert_eq!(call(&d, "daemon.status", "[]")["result"]["limits"]["idle_timeout"], 7.0);
    served(&d);
    until("the refusal in the log", Duration::from_secs(10), || d.log_text().contains("reload refused"));
    // `reload` says so too, and signals nothing.
    let out = run(&d, "reload", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("{}:3:", file.display())), "{}", text(&out.stderr));

    // Fixed: applied.
    write(&file, "[limits]\nidle-timeout = 7\nmax-connections = 50\n", 0o644);
    let out = run(&d, "reload", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // `reload` asks over the daemon's socket, and says what it applied.
    assert!(text(&out.stdout).contains("applied verbose, max-connections"), "{}", text(&out.stdout));
    until("the new limit", Duration::from_secs(10), || {
        call(&d, "daemon.status", "[]")["result"]["limits"]["max_connections"] == 50
    });
    // By SIGHUP too.
    write(&file, "[limits]\nidle-timeout = 7\nmax-connections = 60\n", 0o644);
    kill(pid, libc::SIGHUP);
    until("the limit by SIGHUP", Duration::from_secs(10), || {
        call(&d, "daemon.status", "[]")["result"]["limits"]["max_connections"] == 60
    });
    served(&d);
    assert!(alive(pid));
}

#[test]
fn reload_restarts_workers_with_a_new_interval_one_at_a_time() {
    let (mut d, file) = with_file("pool", "[workers.alpha]\ninterval = 0.2\n");
    start(&mut d, &[]);
    let _reaper = pids(&d);
    until("two looping workers", Duration::from_secs(20), || workers(&d).iter().all(|w| w["state"] == "looping"));
    assert_eq!(worker(&d, "alpha")["interval_ms"], 200, "the file's interval at start");
    assert_eq!(worker(&d, "beta")["interval_ms"], 100, "the code's");
    let before: Vec<i64> = workers(&d).iter().map(|w| w["pid"].as_i64().unwrap()).collect();

    write(&file, "[workers.alpha]\ninterval = 0.25\n[workers.beta]\ninterval = 0.25\npolicy = \"on-failure\"\n", 0o644);
    let report = call(&d, "daemon.reload", "[]");
    let applied = report["result"]["applied"].as_array().cloned().unwrap_or_default();
    for key in ["workers.alpha.interval", "workers.beta.interval", "workers.beta.policy"] {
        assert!(applied.contains(&serde_json::json!(key)), "{key}: {report}");
    }
    assert_eq!(worker(&d, "beta")["policy"], "on-failure", "applied at once");
    // Never both down at once: each new one loops before the next stops.
    let mut both_down = 0;
    until("both restarted with the new interval", Duration::from_secs(30), || {
        let ws = workers(&d);
        if ws.iter().all(|w| w["state"] != "looping") {
            both_down += 1;
        }
        let pids: Vec<i64> = ws.iter().filter_map(|w| w["pid"].as_i64()).collect();
        ws.iter().all(|w| w["interval_ms"] == 250 && w["state"] == "looping")
            && pids.len() == 2
            && pids.iter().all(|p| !before.contains(p))
    });
    assert_eq!(both_down, 0, "both workers were down at once");
    let _reaper = pids(&d);
    until("the rolling restart's end in the log", Duration::from_secs(10), || {
        d.log_text().contains("worker beta is looping with its new settings")
    });
    let log = d.log_text();
    let at = |what: &str| log.find(what).unwrap_or_else(|| panic!("no '{what}' in:\n{log}"));
    assert!(at("restarting worker alpha for its new settings") < at("worker alpha is looping with its new settings"));
    assert!(at("worker alpha is looping with its new settings") < at("restarting worker beta for its new settings"));
    assert!(at("restarting worker beta for its new settings") < at("worker beta is looping with its new settings"));
    assert_eq!(worker(&d, "alpha")["restarts"], 1);

    // The same file again: nothing to apply, nothing restarted.
    let report = call(&d, "daemon.reload", "[]");
    assert_eq!(report["result"]["applied"], serde_json::json!([]), "{report}");
    assert_eq!(worker(&d, "alpha")["restarts"], 1);
}

#[test]
fn the_greeter_reads_its_app_section_at_start_and_on_reload() {
    let (mut d, file) = with_file(
        "greeter",
        "greeting = \"hi\"\n\n[app]\npunctuation = \"!\"\n\n[app.greetings]\nalice = \"good morning\"\n",
    );
    // `check-config` reads it too (Cli::app_config).
    let out = run(&d, "check-config", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("greeting: hi!") && shown.contains("alice: good morning!"), "{shown}");
    start(&mut d, &[]);
    let greet = |name: &str| {
        let mut r = BufReader::new(d.connect());
        let line = format!(r#"{{"jsonrpc":"2.0","method":"greeter.greet","params":["{name}"],"id":1}}"#);
        json(&ndjson(&mut r, &line))["result"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(greet("alice"), "good morning, alice!");
    assert_eq!(greet("bob"), "hi, bob!");
    // `config` shows the app's flag as a key, and the section.
    let shown = text(&run(&d, "config", &[]).stdout);
    assert!(line_of(&shown, "greeting").contains(&format!("# file {}:1", file.display())), "{shown}");
    assert!(shown.contains("[app]") && shown.contains("punctuation = \"!\""), "{shown}");

    write(&file, "greeting = \"hi\"\n[app]\npunctuation = \".\"\n[app.greetings]\nbob = \"welcome\"\n", 0o644);
    let report = call(&d, "daemon.reload", "[]");
    assert_eq!(report["result"]["applied"], serde_json::json!(["app"]), "{report}");
    assert_eq!(greet("bob"), "welcome, bob.");
    assert_eq!(greet("alice"), "hi, alice.");
    // A section the app refuses changes nothing.
    write(&file, "[app]\npunctuation = 5\n", 0o644);
    let v = call(&d, "daemon.reload", "[]");
    let data = v["error"]["data"].as_str().unwrap_or_default();
    assert!(data.contains(&format!("{}:2:15: key 'app.punctuation'", file.display())), "{v}");
    assert_eq!(greet("bob"), "welcome, bob.");
    // The application's flag is read at start: a change needs a restart.
    write(&file, "greeting = \"hey\"\n[app]\npunctuation = \".\"\n[app.greetings]\nbob = \"welcome\"\n", 0o644);
    let report = call(&d, "daemon.reload", "[]");
    assert_eq!(report["result"]["restart_needed"], serde_json::json!(["greeting"]), "{report}");
}

#[test]
fn the_sample_file_is_a_configuration_of_the_defaults() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../contrib/echo.toml.example");
    let d = Daemon::new("echo", &[]);
    let file = d.dir.path("echo.toml");
    write(&file, &std::fs::read_to_string(sample).unwrap(), 0o644);
    let out = Command::new(&d.bin).args(["config", "--config", file.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let from_sample = text(&out.stdout);
    let defaults = text(&Command::new(&d.bin).arg("config").output().unwrap().stdout);
    let mut compared = 0;
    for line in defaults.lines().filter(|l| l.contains(" = ") && !l.starts_with('#')) {
        let key = line.split(" = ").next().unwrap();
        // The default paths are the user's; the sample's are root's.
        if ["socket", "pidfile"].contains(&key) {
            continue;
        }
        let value = |l: &str| l.split('#').next().unwrap().trim().to_owned();
        assert_eq!(value(line_of(&from_sample, key)), value(line), "{key}");
        compared += 1;
    }
    assert!(compared >= 15, "{defaults}");
}

#[test]
fn reload_applies_the_access_policy_to_open_connections_too() {
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let (d, file) = with_file("echo", "# nothing yet\n");
    let mut d = d.add_args(&["--socket", &tcp]);
    start(&mut d, &[]);
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut c = BufReader::new(stream);
    let reload = r#"{"jsonrpc":"2.0","method":"daemon.reload","id":1}"#;
    // An anonymous TCP client holds read and call, not control.
    assert_eq!(json(&ndjson(&mut c, reload))["error"]["code"], -32001);
    write(&file, "[access]\nallow = [\"anonymous=control\"]\n", 0o644);
    let report = call(&d, "daemon.reload", "[]");
    assert_eq!(report["result"]["applied"], serde_json::json!(["allow"]), "{report}");
    // The connection open all along holds it now…
    let v = json(&ndjson(&mut c, reload));
    assert_eq!(v["result"]["applied"], serde_json::json!([]), "{v}");
    // …and loses it with the rule.
    write(&file, "# the rule is gone\n", 0o644);
    let report = call(&d, "daemon.reload", "[]");
    assert_eq!(report["result"]["applied"], serde_json::json!(["allow"]), "{report}");
    assert_eq!(json(&ndjson(&mut c, reload))["error"]["code"], -32001);
}
