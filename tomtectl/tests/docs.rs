//! tomtectl's shell completions and man pages, checked by the real tools: bash parses and runs
//! the completion function, zsh and fish parse theirs (and fish completes with it) when
//! installed, groff renders every page without a warning and `man -l` reads it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn tomtectl(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_tomtectl")).args(args).env_remove("TOMTE_SOCKET").output().unwrap();
    assert!(out.status.success(), "tomtectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A fresh directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = PathBuf::from(format!("/tmp/tc-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    /// Writes `bytes` to file `name` in it; its path.
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn installed(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Candidates bash's completion function offers for the words `line` (the last one being
/// completed).
fn bash_complete(script: &Path, line: &[&str]) -> Vec<String> {
    let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
         _tomtectl tomtectl '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        words.join(" "),
        line.len() - 1,
        line.join(" "),
        line[line.len() - 1],
        line[line.len().saturating_sub(2)],
    );
    let (ok, out, err) = run(Command::new("bash").arg("-c").arg(prog));
    assert!(ok, "bash completion failed: {err}");
    out.lines().map(str::to_owned).collect()
}

#[test]
fn bash_parses_the_completions_and_they_complete_commands_and_values() {
    let dir = Dir::new("bash");
    let script = dir.file("tomtectl.bash", &tomtectl(&["completions", "bash"]).stdout);
    let (ok, _, err) = run(Command::new("bash").arg("-n").arg(&script));
    assert!(ok, "bash -n: {err}");
    let he = bash_complete(&script, &["tomtectl", "he"]);
    assert_eq!(he, ["help", "health"], "the commands starting with he");
    let shells = bash_complete(&script, &["tomtectl", "completions", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.contains(&shell.to_owned()), "{shell} missing from {shells:?}");
    }
    let levels = bash_complete(&script, &["tomtectl", "logs", "--level", ""]);
    assert_eq!(levels, ["error", "warn", "info", "debug", "trace"]);
    let actions = bash_complete(&script, &["tomtectl", "worker", ""]);
    for action in ["pause", "resume", "start", "stop", "restart", "scale"] {
        assert!(actions.contains(&action.to_owned()), "{action} missing from {actions:?}");
    }
    assert_eq!(bash_complete(&script, &["tomtectl", "worker", "sc"]), ["scale"]);
}

#[test]
fn zsh_and_fish_parse_theirs_when_installed() {
    let dir = Dir::new("zshfish");
    let zsh = dir.file("_tomtectl", &tomtectl(&["completions", "zsh"]).stdout);
    assert!(std::fs::read_to_string(&zsh).unwrap().starts_with("#compdef tomtectl"));
    if installed("zsh") {
        let (ok, _, err) = run(Command::new("zsh").arg("-n").arg(&zsh));
        assert!(ok, "zsh -n: {err}");
    } else {
        eprintln!("zsh is not installed: its script is not parsed");
    }
    let fish = dir.file("tomtectl.fish", &tomtectl(&["completions", "fish"]).stdout);
    if installed("fish") {
        let (ok, _, err) = run(Command::new("fish").arg("-n").arg(&fish));
        assert!(ok, "fish -n: {err}");
        let prog = format!("source '{}'; complete -C 'tomtectl he'", fish.display());
        let (ok, out, err) = run(Command::new("fish").arg("--no-config").arg("-c").arg(prog));
        assert!(ok, "fish: {err}");
        let names: Vec<&str> = out.lines().filter_map(|l| l.split('\t').next()).collect();
        assert_eq!(names, ["health", "help"], "{out}");
    } else {
        eprintln!("fish is not installed: its script is not parsed");
    }
}

/// Renders `page` with groff, warnings on; the text.
fn groff(page: &Path) -> String {
    assert!(installed("groff"), "groff is needed to render the man pages (Debian's groff-base; .ci/run installs it)");
    let (ok, out, err) = run(Command::new("groff").args(["-man", "-Tutf8", "-ww"]).arg(page));
    assert!(ok, "groff failed: {err}");
    assert!(err.trim().is_empty(), "groff warned on {}:\n{err}", page.display());
    out
}

#[test]
fn the_man_pages_render_without_warnings() {
    let dir = Dir::new("man");
    let page = dir.file("tomtectl.1", &tomtectl(&["man"]).stdout);
    // groff's utf8 output over-strikes for bold: strip the backspaces to read it.
    let plain = |s: String| {
        let mut out = String::new();
        for c in s.chars() {
            if c == '\u{8}' {
                out.pop();
            } else {
                out.push(c);
            }
        }
        out
    };
    let text = plain(groff(&page));
    for needle in ["tomtectl", "SYNOPSIS", "--socket", "tomtectl-health(1)", "tomtectl-events(1)", "Exit status: 0"] {
        assert!(text.contains(needle), "{needle} missing from the page:\n{text}");
    }
    // Every command has its own page, and `man -l` reads them.
    let help = String::from_utf8(tomtectl(&["--help"]).stdout).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(commands.len() >= 14, "{commands:?}");
    for command in commands {
        let sub = dir.file(&format!("tomtectl-{command}.1"), &tomtectl(&["man", command]).stdout);
        let text = plain(groff(&sub));
        assert!(text.contains(&format!("tomtectl-{command}")), "{command}'s page:\n{text}");
    }
    let health = dir.0.join("tomtectl-health.1");
    let health_text = plain(groff(&health));
    assert!(health_text.contains("--verbose"), "{health_text}");
    // Justified: one space between words to read it.
    let worker_text = plain(groff(&dir.0.join("tomtectl-worker.1"))).split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in ["scale", "worker scale NAME N", "NAME: FROM -> TO instances", "hasher.2"] {
        assert!(worker_text.contains(needle), "{needle} missing from tomtectl-worker(1):\n{worker_text}");
    }
    if installed("man") {
        let (ok, out, err) = run(Command::new("man").arg("-l").arg(&page).env("MANPAGER", "cat").env("MANWIDTH", "80"));
        assert!(ok, "man -l: {err}");
        assert!(plain(out).contains("tomtectl-metrics(1)"));
    }
    // Piped, as the help says: `tomtectl man | man -l -`.
    if installed("man") {
        let mut man = Command::new("man")
            .args(["-l", "-"])
            .env("MANPAGER", "cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        man.stdin.take().unwrap().write_all(&tomtectl(&["man", "logs"]).stdout).unwrap();
        let out = man.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(plain(String::from_utf8_lossy(&out.stdout).into_owned()).contains("--worker"));
    }
}

#[test]
fn a_man_page_for_an_unknown_command_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_tomtectl")).args(["man", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no command 'nope'") && err.contains("health"), "{err}");
}
