//! `NAME config`: the effective configuration as TOML that can be fed back as a file, each
//! value followed by a comment naming its source.

use std::fmt::Write as _;
use std::time::Duration;

use super::layers::{Key, Shape, Source, Sources};
use super::workers::WorkerSection;
use super::{env_var, APP};
use crate::worker::supervisor::Tuning;

/// Where the comments start.
const COLUMN: usize = 44;

/// A worker as printed: its name, what the code installed, the file's section and its line.
pub(crate) struct WorkerView {
    pub(crate) name: String,
    pub(crate) base: Tuning,
    pub(crate) section: Option<(WorkerSection, usize)>,
}

/// The effective configuration of daemon `name`. `keys` are the command line's, `current`
/// gives the value a key has in the daemon's configuration when the sources did not set it
/// (tomte's own keys; `None` for others, whose clap default is shown, if any).
pub(crate) fn render(
    name: &str,
    keys: &[Key],
    sources: Option<&Sources>,
    current: &dyn Fn(&str) -> Option<Vec<String>>,
    workers: &[WorkerView],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# The effective configuration of {name}: each value's source in a comment.");
    match sources.and_then(Sources::file_named) {
        Some((path, source)) => {
            let _ = writeln!(out, "# Configuration file {} ({source}).", path.display());
        }
        None => {
            let var = env_var(name, "config");
            let _ = writeln!(out, "# No configuration file (give --config PATH or {var}=PATH).");
        }
    }
    let _ = writeln!(out, "# Precedence: default < file < environment ({}) < command line.", env_var(name, "KEY"));
    let mut sections: Vec<Option<&str>> = vec![None];
    for k in keys {
        if !sections.contains(&k.section.as_deref()) {
            sections.push(k.section.as_deref());
        }
    }
    for section in sections {
        let in_it: Vec<&Key> = keys.iter().filter(|k| k.section.as_deref() == section).collect();
        if in_it.is_empty() {
            continue;
        }
        if let Some(s) = section {
            let _ = writeln!(out, "\n[{s}]");
        } else {
            out.push('\n');
        }
        for key in in_it {
            let set = sources.and_then(|s| s.setting(&key.name));
            // tomte's keys as the daemon has them (paths made absolute); others as given.
            let source = set.map_or(Source::Default, |s| s.source.clone());
            let values = current(&key.name).or_else(|| set.map(|s| s.values.clone())).or_else(|| default_of(key));
            match values.filter(|v| !v.is_empty() || key.shape == Shape::Many) {
                Some(v) => line(&mut out, &format!("{} = {}", key.name, value(key.shape, &v)), &source),
                None => line(&mut out, &format!("# {} = (not set)", key.name), &source),
            }
        }
    }
    for w in workers {
        let _ = writeln!(out, "\n[workers.{}]", w.name);
        let t = w.section.as_ref().map_or_else(|| w.base.clone(), |(s, _)| s.over(&w.base));
        let from = |field: &str| match (&w.section, sources.and_then(Sources::file)) {
            (Some((s, line)), Some(f)) if s.has(field) => {
                let line = f.line_of(&[super::WORKERS, &w.name, field]).unwrap_or(*line);
                Source::File { path: f.path().to_owned(), line }
            }
            _ => Source::Default,
        };
        line(&mut out, &format!("interval = {}", seconds(t.interval)), &from("interval"));
        line(&mut out, &format!("policy = \"{}\"", t.policy.as_str()), &from("policy"));
        line(&mut out, &format!("backoff-min = {}", seconds(t.backoff_min)), &from("backoff-min"));
        line(&mut out, &format!("backoff-max = {}", seconds(t.backoff_max)), &from("backoff-max"));
        let hang = t.hang_timeout.map_or_else(|| "0".to_owned(), seconds);
        line(&mut out, &format!("hang-timeout = {hang}"), &from("hang-timeout"));
        line(&mut out, &format!("stop-grace = {}", seconds(t.stop_grace)), &from("stop-grace"));
        if let Some(n) = t.instances {
            line(&mut out, &format!("instances = {n}"), &from("instances"));
        }
    }
    if let Some(app) = sources.and_then(app_section) {
        out.push('\n');
        out.push_str(&app);
    }
    out
}

/// The file's `[app]` section, as TOML, under a comment naming its line.
fn app_section(sources: &Sources) -> Option<String> {
    let file = sources.file()?;
    let doc = file.parse().ok()?;
    let (key, value) = doc.get_ref().iter().find(|(k, _)| k.get_ref() == APP)?;
    let value: toml::Value =
        serde::Deserialize::deserialize(serde::de::IntoDeserializer::into_deserializer(value.clone())).ok()?;
    let mut table = toml::Table::new();
    table.insert(APP.to_owned(), value);
    let line = file.line_column(key.span().start).0;
    let body = toml::to_string(&table).ok()?;
    Some(format!("# The application's section: file {}:{line}\n{body}", file.path().display()))
}

fn line(out: &mut String, text: &str, source: &Source) {
    let pad = COLUMN.saturating_sub(text.chars().count()).max(1);
    let _ = writeln!(out, "{text}{:pad$}# {source}", "");
}

/// clap's default of `key`; `false` for a switch, 0 for a count.
fn default_of(key: &Key) -> Option<Vec<String>> {
    match key.shape {
        Shape::Switch { sets } => Some(vec![(!sets).to_string()]),
        Shape::Count => Some(vec!["0".to_owned()]),
        _ if key.defaults.is_empty() => None,
        _ => Some(key.defaults.clone()),
    }
}

/// `values` as a TOML value for a flag of `shape`.
fn value(shape: Shape, values: &[String]) -> String {
    match shape {
        Shape::Switch { .. } | Shape::Count => values.first().cloned().unwrap_or_default(),
        Shape::Many => format!("[{}]", values.iter().map(|v| scalar(v)).collect::<Vec<_>>().join(", ")),
        Shape::One => values.first().map(|v| scalar(v)).unwrap_or_default(),
    }
}

/// A number as a TOML number when it reads back as the same text; anything else a string.
fn scalar(v: &str) -> String {
    if is_number(v) {
        v.to_owned()
    } else {
        toml::Value::String(v.to_owned()).to_string()
    }
}

/// Whether `v` is a TOML decimal integer or float, written the way TOML writes it (no leading
/// zero: `027` stays a string, for octal values).
fn is_number(v: &str) -> bool {
    let v = v.strip_prefix(['+', '-']).unwrap_or(v);
    let (mantissa, exponent) = match v.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['+', '-']).unwrap_or(e))),
        None => (v, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(int) && (int == "0" || !int.starts_with('0')) && frac.is_none_or(digits) && exponent.is_none_or(digits)
}

/// Seconds, as few digits as they need: `300`, `0.5`.
pub(crate) fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        let text = format!("{s:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_that_read_back_as_written() {
        for yes in ["0", "300", "-5", "0.5", "1e3", "2.5E-3"] {
            assert!(is_number(yes), "{yes}");
        }
        for no in ["027", "0600", "", "1.", ".5", "0x10", "inf", "1_000", "unix:///x"] {
            assert!(!is_number(no), "{no}");
        }
        assert_eq!(scalar("027"), "\"027\"");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25");
        assert_eq!(seconds(Duration::from_secs(300)), "300");
    }
}
