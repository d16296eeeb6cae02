//! The layers of a configuration, made from clap's definition of the command line: every
//! flag's long name is a key of the file and, as `NAME_KEY`, of the environment. Values from
//! the file and the environment become flags in front of the command line, which clap parses
//! with each flag's own value parser: validation and messages are the flags'.

use std::ffi::OsString;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches};
use toml::de::{DeInteger, DeValue};
use toml::Spanned;

use super::file::File;
use super::{ConfigError, APP, CONFIG_KEY, WORKERS};

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Not set anywhere: the built-in default.
    Default,
    /// The configuration file, at this line.
    File {
        /// The file.
        path: PathBuf,
        /// The key's line, 1-based.
        line: usize,
    },
    /// The environment variable of this name.
    Env(String),
    /// The command line, this flag (`--idle-timeout`).
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { path, line } => write!(f, "file {}:{line}", path.display()),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A key's value, as the source that won gave it: the strings a flag would have been given
/// (`true`/`false` for a switch, the count for a counted one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The key: the flag's long name.
    pub key: String,
    /// The values, as strings: one, or several for a list.
    pub values: Vec<String>,
    /// Where they came from.
    pub source: Source,
}

/// How a flag takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A switch (`-v`): `true` sets it (`false` for one that clears a value).
    Switch { sets: bool },
    /// Counted (`-vv`): a number, or `true` for one.
    Count,
    /// One value.
    One,
    /// A list (`--socket` given several times): a TOML array.
    Many,
}

/// One key: a flag of the command line.
#[derive(Clone, Debug)]
pub(crate) struct Key {
    /// Its long name: the key in the file.
    pub(crate) name: String,
    /// Its clap id.
    pub(crate) id: String,
    /// The section it may also be written in: its help heading, lower-cased (`[limits]`).
    pub(crate) section: Option<String>,
    pub(crate) shape: Shape,
    /// clap's default, when it has one.
    pub(crate) defaults: Vec<String>,
}

/// Every key of the command line `cmd` defines, in its order: its flags with a long name,
/// but `--help`, `--version` and `--config`.
pub(crate) fn keys(cmd: &clap::Command) -> Vec<Key> {
    cmd.get_arguments()
        .filter(|a| !a.is_positional())
        .filter_map(|a| {
            let name = a.get_long()?;
            let shape = match a.get_action() {
                ArgAction::SetTrue => Shape::Switch { sets: true },
                ArgAction::SetFalse => Shape::Switch { sets: false },
                ArgAction::Count => Shape::Count,
                ArgAction::Append => Shape::Many,
                ArgAction::Set if a.get_num_args().is_some_and(|r| r.max_values() > 1) => Shape::Many,
                ArgAction::Set => Shape::One,
                _ => return None,
            };
            if name == CONFIG_KEY {
                return None;
            }
            Some(Key {
                name: name.to_owned(),
                id: a.get_id().as_str().to_owned(),
                section: a.get_help_heading().map(section_name),
                shape,
                defaults: a.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect(),
            })
        })
        .collect()
}

/// The section of a help heading: `Limits` → `limits`, `Access control` → `access-control`.
fn section_name(heading: &str) -> String {
    heading.trim().to_lowercase().replace(' ', "-")
}

/// The environment variable of `key` for daemon `name`: `ECHO_IDLE_TIMEOUT`.
pub fn env_var(name: &str, key: &str) -> String {
    format!("{name}_{key}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect()
}

/// How the command line is rebuilt, to read the configuration again: `Cli::<A, C>::build`.
pub(crate) type Build = fn(&str, bool) -> clap::Command;

/// Where a daemon's configuration came from — the file, the environment, the command line —
/// and how to read it again (on reload). [`Cli`](crate::cli::Cli) makes it; the daemon's
/// [`Config`](crate::Config) carries it.
pub struct Sources {
    pub(crate) name: String,
    pub(crate) build: Build,
    pub(crate) global: bool,
    /// The command line, normalized (tomte's and the application's flags first).
    pub(crate) argv: Vec<OsString>,
    /// The environment variables of the daemon (`NAME_…`) as they were at start.
    pub(crate) env: Vec<(String, OsString)>,
    /// The directory relative paths are resolved against: the one the daemon was started from.
    pub(crate) cwd: Option<PathBuf>,
    /// The file, and who named it.
    pub(crate) named: Option<(PathBuf, Source)>,
    pub(crate) file: Option<File>,
    /// Every key that the file, the environment or the command line set, in the command
    /// line's order.
    pub(crate) settings: Vec<Setting>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("name", &self.name)
            .field("file", &self.named)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Sources gathered, and what clap must parse to apply them.
pub(crate) struct Gathered {
    pub(crate) sources: Sources,
    /// The command line with the file's and the environment's values in front, when they gave
    /// any.
    pub(crate) composed: Option<Vec<OsString>>,
    /// Where each value in front came from, to name it when clap refuses it.
    origins: Vec<(String, Origin)>,
}

enum Origin {
    /// The value's span in the file, its key as written (`limits.idle-timeout`), and each
    /// item's span (of a list).
    File(Range<usize>, String, Vec<(String, Range<usize>)>),
    Env(String),
}

/// A key's value in the file.
struct Given {
    values: Vec<String>,
    /// Each value's span, when the value is a list.
    items: Vec<(String, Range<usize>)>,
    line: usize,
    span: Range<usize>,
    written: String,
}

/// The environment variables that may configure daemon `name`: those starting `NAME_`.
pub(crate) fn environment(name: &str) -> Vec<(String, OsString)> {
    let prefix = env_var(name, "");
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
        .filter(|(k, _)| k.starts_with(&prefix))
        .collect()
}

impl Sources {
    /// Gathers the layers for the command line `cmd`, given as `argv` (normalized) and parsed
    /// into `matches`: the file (`--config`, or `NAME_CONFIG`), the environment `env`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gather(
        name: &str,
        build: Build,
        global: bool,
        cmd: &clap::Command,
        matches: &ArgMatches,
        argv: Vec<OsString>,
        env: Vec<(String, OsString)>,
        cwd: Option<PathBuf>,
    ) -> Result<Gathered, ConfigError> {
        let keys = keys(cmd);
        let var = |key: &str| {
            let var = env_var(name, key);
            env.iter().find(|(k, _)| *k == var).map(|(_, v)| (var, v.clone())).filter(|(_, v)| !v.is_empty())
        };
        let named = match matches.try_get_one::<PathBuf>(super::CONFIG_ID) {
            Ok(Some(p)) if matches.value_source(super::CONFIG_ID) == Some(ValueSource::CommandLine) => {
                Some((p.clone(), Source::Flag(format!("--{CONFIG_KEY}"))))
            }
            _ => var(CONFIG_KEY).map(|(var, v)| (PathBuf::from(v), Source::Env(var))),
        };
        let named = named.map(|(p, s)| (absolute(&p, cwd.as_deref()), s));
        let file = named.as_ref().map(|(p, _)| File::load(p)).transpose()?;
        let given = match &file {
            Some(f) => from_file(f, &keys)?,
            None => Vec::new(),
        };
        let mut settings = Vec::new();
        let mut front = Vec::new();
        let mut origins = Vec::new();
        for key in &keys {
            if matches.value_source(&key.id) == Some(ValueSource::CommandLine) {
                let values = given_on_command_line(matches, key);
                settings.push(Setting {
                    key: key.name.clone(),
                    values,
                    source: Source::Flag(format!("--{}", key.name)),
                });
                continue;
            }
            let (values, source, origin) = if let Some((var, raw)) = var(&key.name) {
                let values = from_env(&var, key, &raw)?;
                (values, Source::Env(var.clone()), Origin::Env(var))
            } else if let Some((_, g)) = given.iter().find(|(k, _)| *k == key.name) {
                let path = file.as_ref().map(|f| f.path().to_owned()).unwrap_or_default();
                let origin = Origin::File(g.span.clone(), g.written.clone(), g.items.clone());
                (g.values.clone(), Source::File { path, line: g.line }, origin)
            } else {
                continue;
            };
            push_flags(&mut front, key, &values);
            origins.push((key.name.clone(), origin));
            settings.push(Setting { key: key.name.clone(), values, source });
        }
        let composed = (!front.is_empty()).then(|| front.into_iter().chain(argv.iter().cloned()).collect());
        let sources = Sources { name: name.to_owned(), build, global, argv, env, cwd, named, file, settings };
        Ok(Gathered { sources, composed, origins })
    }

    /// Reads the configuration again — the file as it is now, the environment and the command
    /// line as they were at start — and parses it: the new sources and clap's matches.
    pub(crate) fn reread(&self) -> Result<(Sources, ArgMatches), ConfigError> {
        let mut cmd = (self.build)(&self.name, self.global);
        let argv0 = || std::iter::once(OsString::from(&self.name));
        let matches = cmd
            .try_get_matches_from_mut(argv0().chain(self.argv.iter().cloned()))
            .map_err(|e| ConfigError::Flag(first_line(&e)))?;
        let g = Sources::gather(
            &self.name,
            self.build,
            self.global,
            &cmd,
            &matches,
            self.argv.clone(),
            self.env.clone(),
            self.cwd.clone(),
        )?;
        let matches = match &g.composed {
            Some(c) => cmd.try_get_matches_from_mut(argv0().chain(c.iter().cloned())).map_err(|e| g.explain(&e))?,
            None => matches,
        };
        Ok((g.sources, matches))
    }

    /// The daemon's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration file, when there is one.
    pub fn file(&self) -> Option<&File> {
        self.file.as_ref()
    }

    /// The file's path and who named it (`--config`, `NAME_CONFIG`).
    pub fn file_named(&self) -> Option<(&Path, &Source)> {
        self.named.as_ref().map(|(p, s)| (p.as_path(), s))
    }

    /// Every key the file, the environment or the command line set, with its source.
    pub fn settings(&self) -> &[Setting] {
        &self.settings
    }

    /// The setting of `key`, when one of the sources set it.
    pub fn setting(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }

    /// The directory relative paths are resolved against.
    pub fn cwd(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// The command line these sources were read for (the application's flags included).
    pub(crate) fn command(&self) -> clap::Command {
        (self.build)(&self.name, false)
    }

    /// Section `name` of the file (`[app]`) as a `T`: deserialized from an empty table when the
    /// file has none, or there is no file.
    pub fn section<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, ConfigError> {
        match &self.file {
            Some(f) => f.section(name),
            None => super::file::empty_section(None, name),
        }
    }
}

impl Gathered {
    /// Names the file's line or the environment variable whose value clap refused.
    pub(crate) fn explain(&self, e: &clap::Error) -> ConfigError {
        use clap::error::{ContextKind, ContextValue};
        let text = |kind| match e.get(kind) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            _ => None,
        };
        // "--idle-timeout <SECS>", "-v, --verbose"
        let arg = text(ContextKind::InvalidArg);
        let key = arg.as_deref().and_then(|a| {
            a.split([' ', ',', '='])
                .find_map(|w| w.strip_prefix("--"))
                .map(|w| w.split('<').next().unwrap_or(w).to_owned())
        });
        let reason = match std::error::Error::source(e) {
            Some(inner) => Some(inner.to_string()),
            None => match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(v)) => Some(format!("possible values: {}", v.join(", "))),
                _ => None,
            },
        };
        let value = text(ContextKind::InvalidValue);
        let why = match (&value, reason) {
            (Some(value), Some(reason)) => format!("invalid value '{value}': {reason}"),
            _ => first_line(e),
        };
        let origin = key.and_then(|k| self.origins.iter().find(|(n, _)| *n == k));
        match (origin, &self.sources.file) {
            (Some((_, Origin::File(span, written, items))), Some(file)) => {
                // In a list, the item refused.
                let item = items.iter().find(|(v, _)| Some(v) == value.as_ref()).map(|(_, s)| s.clone());
                file.error(item.unwrap_or_else(|| span.clone()), Some(written.clone()), why)
            }
            (Some((_, Origin::Env(var))), _) => ConfigError::Env { var: var.clone(), why },
            _ => ConfigError::Flag(first_line(e)),
        }
    }
}

/// clap's message, without `error: ` and the usage that follows.
fn first_line(e: &clap::Error) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned()
}

fn absolute(path: &Path, cwd: Option<&Path>) -> PathBuf {
    match cwd {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_owned(),
    }
}

/// The values the command line gave `key`, as strings.
fn given_on_command_line(matches: &ArgMatches, key: &Key) -> Vec<String> {
    match key.shape {
        Shape::Switch { .. } => {
            vec![matches.try_get_one::<bool>(&key.id).ok().flatten().copied().unwrap_or_default().to_string()]
        }
        Shape::Count => vec![matches.try_get_one::<u8>(&key.id).ok().flatten().copied().unwrap_or(0).to_string()],
        Shape::One | Shape::Many => matches
            .try_get_raw(&key.id)
            .ok()
            .flatten()
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default(),
    }
}

/// The flags that give `key` `values`, in front of the command line.
fn push_flags(out: &mut Vec<OsString>, key: &Key, values: &[String]) {
    let flag = format!("--{}", key.name);
    match key.shape {
        Shape::Switch { sets } => {
            if values.first().map(String::as_str) == Some(if sets { "true" } else { "false" }) {
                out.push(flag.into());
            }
        }
        Shape::Count => {
            let n: usize = values.first().and_then(|v| v.parse().ok()).unwrap_or(0);
            out.extend(std::iter::repeat_n(OsString::from(&flag), n));
        }
        Shape::One | Shape::Many => out.extend(values.iter().map(|v| OsString::from(format!("{flag}={v}")))),
    }
}

/// `true`, `yes`, `on`, `1` (any case) and their opposites.
fn switch_word(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// The values environment variable `var` gives `key`: a list is separated by white space.
fn from_env(var: &str, key: &Key, raw: &std::ffi::OsStr) -> Result<Vec<String>, ConfigError> {
    let fail = |why: String| ConfigError::Env { var: var.to_owned(), why };
    let v = raw.to_str().ok_or_else(|| fail("not valid UTF-8".to_owned()))?;
    Ok(match key.shape {
        Shape::Switch { .. } => {
            let on =
                switch_word(v).ok_or_else(|| fail(format!("expected true or false (1, yes, on…), found '{v}'")))?;
            vec![on.to_string()]
        }
        Shape::Count => match (v.trim().parse::<u8>(), switch_word(v)) {
            (Ok(n), _) => vec![n.to_string()],
            (_, Some(on)) => vec![u8::from(on).to_string()],
            _ => return Err(fail(format!("expected a count or true/false, found '{v}'"))),
        },
        Shape::Many => v.split_whitespace().map(str::to_owned).collect(),
        Shape::One => vec![v.to_owned()],
    })
}

/// The section names of `keys`' help headings.
fn sections(keys: &[Key]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in keys.iter().filter_map(|k| k.section.as_deref()) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Every key the file sets, checked against `keys`: unknown keys, a key given twice, a value
/// of the wrong shape are errors at their place.
fn from_file(file: &File, keys: &[Key]) -> Result<Vec<(String, Given)>, ConfigError> {
    let doc = file.parse()?;
    let sections = sections(keys);
    let mut out: Vec<(String, Given)> = Vec::new();
    for (k, v) in doc.get_ref().iter() {
        let name: &str = k.get_ref();
        if name == APP || name == WORKERS {
            // The application's and the workers' sections: the daemon reads them.
            continue;
        }
        match v.get_ref() {
            DeValue::Table(t) if sections.contains(&name) => {
                for (k2, v2) in t.iter() {
                    take(file, keys, Some(name), k2, v2, &mut out)?;
                }
            }
            _ => take(file, keys, None, k, v, &mut out)?,
        }
    }
    Ok(out)
}

fn take(
    file: &File,
    keys: &[Key],
    section: Option<&str>,
    k: &Spanned<std::borrow::Cow<'_, str>>,
    v: &Spanned<DeValue<'_>>,
    out: &mut Vec<(String, Given)>,
) -> Result<(), ConfigError> {
    let name: &str = k.get_ref();
    let written = section.map_or_else(|| name.to_owned(), |s| format!("{s}.{name}"));
    let at_key = |why: String| file.error(k.span(), Some(written.clone()), why);
    if name == CONFIG_KEY {
        return Err(at_key("a configuration file cannot name another one (give --config or NAME_CONFIG)".to_owned()));
    }
    let Some(key) = keys.iter().find(|x| x.name == name) else {
        let hint = closest(name, keys).map(|k| format!(" (did you mean '{k}'?)")).unwrap_or_default();
        return Err(at_key(format!("unknown key{hint}")));
    };
    if let Some(s) = section {
        if key.section.as_deref() != Some(s) {
            let belongs = key.section.as_ref().map_or("at the top".to_owned(), |s| format!("in [{s}]"));
            return Err(at_key(format!("not a key of [{s}]: it goes {belongs}")));
        }
    }
    if let Some((_, other)) = out.iter().find(|(n, _)| n == name) {
        // Named at the later of the two places (the document is read in key order).
        let here = file.line_column(k.span().start).0;
        return Err(if here > other.line {
            at_key(format!("given twice (also at line {})", other.line))
        } else {
            let span = other.span.clone();
            file.error(span, Some(other.written.clone()), format!("given twice (also at line {here})"))
        });
    }
    let values = values_of(file, key, v, &written)?;
    let items = match v.get_ref() {
        DeValue::Array(a) => values.iter().cloned().zip(a.iter().map(Spanned::span)).collect(),
        _ => Vec::new(),
    };
    let line = file.line_column(k.span().start).0;
    out.push((name.to_owned(), Given { values, items, line, span: v.span(), written }));
    Ok(())
}

/// The strings a TOML value gives a flag of `key`'s shape.
fn values_of(file: &File, key: &Key, v: &Spanned<DeValue<'_>>, written: &str) -> Result<Vec<String>, ConfigError> {
    let fail = |span: Range<usize>, why: String| file.error(span, Some(written.to_owned()), why);
    let found = |v: &DeValue<'_>| format!("found {} {}", article(v.type_str()), v.type_str());
    match (key.shape, v.get_ref()) {
        (Shape::Switch { .. }, DeValue::Boolean(b)) => Ok(vec![b.to_string()]),
        (Shape::Switch { .. }, other) => Err(fail(v.span(), format!("expected true or false, {}", found(other)))),
        (Shape::Count, DeValue::Boolean(b)) => Ok(vec![u8::from(*b).to_string()]),
        (Shape::Count, DeValue::Integer(i)) if i.radix() == 10 && i.as_str().parse::<u8>().is_ok() => {
            Ok(vec![i.as_str().to_owned()])
        }
        (Shape::Count, other) => {
            Err(fail(v.span(), format!("expected a count (0 to 255) or true/false, {}", found(other))))
        }
        (Shape::Many, DeValue::Array(items)) => items
            .iter()
            .map(|item| {
                scalar(item.get_ref())
                    .ok_or_else(|| fail(item.span(), format!("expected a value, {}", found(item.get_ref()))))
            })
            .collect(),
        (Shape::One, DeValue::Array(_)) => Err(fail(v.span(), "takes one value, not a list".to_owned())),
        (_, other) => {
            scalar(other).map(|s| vec![s]).ok_or_else(|| fail(v.span(), format!("expected a value, {}", found(other))))
        }
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// A TOML scalar as a flag's value would be written.
fn scalar(v: &DeValue<'_>) -> Option<String> {
    match v {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) => Some(integer(i)),
        DeValue::Float(f) => Some(f.as_str().to_owned()),
        DeValue::Boolean(b) => Some(b.to_string()),
        DeValue::Datetime(d) => Some(d.to_string()),
        DeValue::Array(_) | DeValue::Table(_) => None,
    }
}

/// An integer as written, its radix kept: `0o027` is given as `0027`, which octal values
/// (`umask`, `socket-mode`) read as meant.
fn integer(i: &DeInteger<'_>) -> String {
    let digits = i.as_str();
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", digits.strip_prefix('+').unwrap_or(digits)),
    };
    match i.radix() {
        8 => format!("{sign}0{digits}"),
        16 => format!("{sign}0x{digits}"),
        2 => format!("{sign}0b{digits}"),
        _ => format!("{sign}{digits}"),
    }
}

/// The known key nearest to `name`, when it is near (a typo).
fn closest<'k>(name: &str, keys: &'k [Key]) -> Option<&'k str> {
    keys.iter()
        .map(|k| (distance(name, &k.name), k.name.as_str()))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(row[j + 1]) };
            prev = cur;
        }
    }
    row[b.len()]
}
