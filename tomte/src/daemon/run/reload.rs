//! Reloading: the configuration read again, what can change live applied to the running
//! daemon, what needs a restart reported; a file that is refused changes nothing.
//!
//! | applied live | needs a restart |
//! | --- | --- |
//! | `verbose`, `log` (a new path is opened), the limits (`max-*`, `listener-reserve`, `idle-timeout`, `request-timeout`, `min-rate`, `drain-timeout`), `allow`, `require`, `token-file` (re-read), `tls-cert`, `tls-key`, `tls-client-ca` (re-read), `[workers.NAME]` (a worker whose interval or hang timeout changes is restarted, one at a time), `[app]` (with [`Daemon::app_config`](crate::Daemon::app_config)) | `socket`, `pidfile`, `umask`, `nice`, `socket-mode`, `socket-group`, `insecure`, `log` set to none, the application's own flags, `[app]` read in `main` only, any other key |

use std::path::PathBuf;
use std::rc::Rc;

use tomte_rpc::{Permission, Value};

use super::{unauthenticated, Running};
use crate::access::{Auth, Caller, Policy};
use crate::cli::{current, DaemonArgs};
use crate::config::{workers, ConfigError, Sources};
use crate::daemon::{AppHook, Config, Ctx, Daemon, DaemonError};
use crate::worker::supervisor::Tuning;

/// tomte's keys a reload applies to the running daemon.
const LIVE: &[&str] = &[
    "verbose",
    "log",
    "max-connections",
    "max-per-peer",
    "listener-reserve",
    "max-message",
    "max-buffered",
    "max-unsent",
    "idle-timeout",
    "request-timeout",
    "min-rate",
    "drain-timeout",
    "allow",
    "require",
    "token-file",
    "tls-cert",
    "tls-key",
    "tls-client-ca",
];

/// tomte's keys that take a restart: the listeners, the files and the process as set up.
const AT_START: &[&str] =
    &["socket", "pidfile", "umask", "nice", "socket-mode", "socket-group", "insecure", "dashboard"];

/// What applies a section of the application's.
pub(super) type Apply<S> = Box<dyn FnOnce(&mut Ctx<S>)>;

/// What a reload needs to know besides the running daemon.
pub(super) struct Settings<S> {
    /// The configuration the daemon started with: what needs a restart is measured from it.
    started: Config,
    /// The configuration applied last.
    current: Config,
    /// The rules the code gave ([`Daemon::allow`]), which the configuration's add to.
    code_policy: Policy,
    /// The permissions methods were registered with, before `require` changed them.
    registered: Vec<(String, Permission)>,
    /// Each worker's settings as the code installed it.
    code_tunings: Vec<(String, Tuning)>,
    app: Vec<AppHook<S>>,
}

impl<S> Settings<S> {
    /// Checks the file's worker and application sections before anything starts (a bad one
    /// fails the start), gives the workers theirs, and keeps what a reload needs. The
    /// application's sections are applied by the caller once the context exists.
    pub(super) fn prepare(d: &mut Daemon<S>, config: &Config) -> Result<(Settings<S>, Vec<Apply<S>>), DaemonError> {
        let file = config.sources.as_deref().and_then(Sources::file);
        let names = d.workers.units();
        let code_tunings: Vec<(String, Tuning)> =
            names.iter().filter_map(|n| Some((n.clone(), d.workers.tuning(n)?))).collect();
        if let Some(f) = file {
            for (name, section, _) in workers::sections(f, &names, &d.workers.pools())? {
                if let Some((_, base)) = code_tunings.iter().find(|(n, _)| *n == name) {
                    d.workers.retune(&name, section.over(base));
                }
            }
        }
        let app = std::mem::take(&mut d.app_config);
        let apply = app.iter().map(|hook| hook(file)).collect::<Result<Vec<_>, _>>()?;
        let registered = config
            .requires
            .iter()
            .filter_map(|(m, _)| Some((m.clone(), d.registry.get(m)?.permission().clone())))
            .collect();
        let settings = Settings {
            started: config.clone(),
            current: config.clone(),
            code_policy: d.policy.clone(),
            registered,
            code_tunings,
            app,
        };
        Ok((settings, apply))
    }
}

/// What a reload did: `daemon.reload`'s answer and the data of the `daemon.reload` event.
#[derive(Debug, Default)]
pub(super) struct Report {
    file: Option<PathBuf>,
    /// The keys that changed and were applied.
    applied: Vec<String>,
    /// The keys that changed since the start and take effect only after a restart.
    restart_needed: Vec<String>,
}

impl Report {
    /// `{file, applied: [keys], restart_needed: [keys]}`.
    pub(super) fn to_value(&self) -> Value {
        let list = |keys: &[String]| Value::Array(keys.iter().map(|k| Value::from(k.as_str())).collect());
        Value::structure([
            ("file", Value::from(self.file.as_ref().map(|p| p.display().to_string()))),
            ("applied", list(&self.applied)),
            ("restart_needed", list(&self.restart_needed)),
        ])
    }

    pub(super) fn log(&self) {
        let from = self.file.as_ref().map(|p| format!(" from {}", p.display())).unwrap_or_default();
        if self.applied.is_empty() {
            log::info!("configuration reloaded{from}: nothing to apply");
        } else {
            log::info!("configuration reloaded{from}: applied {}", self.applied.join(", "));
        }
        if !self.restart_needed.is_empty() {
            log::warn!("changed, but take effect only after a restart: {}", self.restart_needed.join(", "));
        }
    }
}

impl<S: 'static> Running<S> {
    /// Reads the configuration again and applies it. Everything is checked before anything
    /// changes: on an error the running configuration is untouched.
    pub(super) fn reconfigure(&mut self) -> Result<Report, DaemonError> {
        let old = &self.settings.current;
        let new = match &old.sources {
            Some(sources) => {
                let args = DaemonArgs::reread(sources)?;
                args.config(&self.ctx.name).map_err(ConfigError::Flag)?
            }
            // A configuration made in code: its files (TLS, tokens) are read again, that is all.
            None => old.clone(),
        };
        let file = new.sources.as_deref().and_then(Sources::file);
        let names = self.ctx.workers.units();
        let sections =
            file.map(|f| workers::sections(f, &names, &self.ctx.workers.pools())).transpose()?.unwrap_or_default();
        let apps = self.settings.app.iter().map(|hook| hook(file)).collect::<Result<Vec<_>, _>>()?;

        let mut applied: Vec<String> = Vec::new();
        let mut restart_needed: Vec<String> = Vec::new();
        for key in LIVE {
            if current(old, key) != current(&new, key) {
                applied.push((*key).to_owned());
            }
        }
        for key in AT_START {
            if current(&self.settings.started, key) != current(&new, key) {
                restart_needed.push((*key).to_owned());
            }
        }
        if new.log.is_none() && applied.iter().any(|k| k == "log") {
            // Where would the log go: the terminal it was started from is gone.
            applied.retain(|k| k != "log");
            restart_needed.push("log".to_owned());
        }
        // The other keys (the application's flags, say) are read once, at start.
        let (was, now) = (self.settings.started.sources.as_deref(), new.sources.as_deref());
        let mut others: Vec<&str> = Vec::new();
        for s in was.into_iter().chain(now).flat_map(Sources::settings) {
            if current(&new, &s.key).is_none() && !others.contains(&s.key.as_str()) {
                others.push(&s.key);
            }
        }
        for key in others {
            let values = |s: Option<&Sources>| s.and_then(|s| s.setting(key)).map(|s| s.values.clone());
            if values(was) != values(now) {
                restart_needed.push(key.to_owned());
            }
        }
        let app_changed = section(old.sources.as_deref(), crate::config::APP) != section(now, crate::config::APP);
        if app_changed && self.settings.app.is_empty() {
            restart_needed.push(crate::config::APP.to_owned());
        }

        // Checks, in the order of the changes below.
        for (method, _) in &new.requires {
            if self.registry.get(method).is_none() {
                return Err(DaemonError::UnknownMethod { method: method.clone() });
            }
        }
        let tokens = new.token_file.as_deref().map(crate::tokens::Tokens::load).transpose()?;
        if !self.settings.started.insecure {
            if let Some(why) = self.listeners.iter().find_map(|l| unauthenticated(l.address(), &new)) {
                return Err(DaemonError::Refused(why.to_string()));
            }
        }
        let tls_changed = applied.iter().any(|k| k.starts_with("tls-"));
        let tls = match &self.tls {
            None => None,
            Some(_) if new.tls.cert.is_none() || new.tls.key.is_none() => {
                return Err(DaemonError::Refused("tls:// listeners need --tls-cert and --tls-key".to_owned()));
            }
            Some(_) => match crate::net::tls::server_config(&new.tls) {
                Ok(c) => Some(c),
                Err(e) if tls_changed => return Err(e.into()),
                // The same files, unreadable now: the certificate in use stays.
                Err(e) => {
                    log::error!("keeping the previous TLS certificate: {e}");
                    None
                }
            },
        };
        if applied.iter().any(|k| k == "log") {
            if let Some(path) = &new.log {
                // The first change: when it fails, nothing has changed yet.
                crate::process::redirect_stderr(path).map_err(|e| DaemonError::Refused(e.to_string()))?;
                self.log = Some(path.clone());
            }
        }

        // Changes: nothing below fails.
        if applied.iter().any(|k| k == "verbose") {
            log::set_max_level(crate::logging::verbosity(new.verbose));
        }
        self.limits = new.limits.clone();
        self.ctx.limits = new.limits.clone();
        self.set_access(&new, tokens);
        if let (Some(config), Some((files, running))) = (tls, &mut self.tls) {
            *files = new.tls.clone();
            *running = config;
            let cert = files.cert.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
            log::info!("TLS certificate reloaded from {cert}");
        }
        for (name, base) in &self.settings.code_tunings {
            let wanted =
                sections.iter().find(|(n, ..)| n == name).map_or_else(|| base.clone(), |(_, s, _)| s.over(base));
            let Some(now) = self.ctx.workers.tuning(name) else { continue };
            if wanted != now {
                applied.extend(wanted.changes(&now).into_iter().map(|field| format!("workers.{name}.{field}")));
                self.ctx.workers.retune(name, wanted);
            }
        }
        if app_changed && !apps.is_empty() {
            applied.push(crate::config::APP.to_owned());
        }
        for apply in apps {
            apply(&mut self.ctx);
        }
        let file = new.sources.as_deref().and_then(Sources::file_named).map(|(p, _)| p.to_owned());
        self.settings.current = new;
        Ok(Report { file, applied, restart_needed })
    }

    /// The access policy of `new`: the code's rules and the configuration's, tokens, method
    /// permissions; open connections get their grants again under it.
    fn set_access(&mut self, new: &Config, tokens: Option<crate::tokens::Tokens>) {
        let mut policy = self.settings.code_policy.clone();
        for rule in new.policy.rules() {
            policy.add(rule.clone());
        }
        if tokens.is_some() {
            policy.require_tokens();
        }
        for (_, caller) in self.callers.iter_mut() {
            let peer = caller.peer.clone();
            *caller = Rc::new(Caller { grants: policy.grants(&peer, self.owner), peer });
        }
        self.ctx.auth = tokens.map(|tokens| Rc::new(Auth { tokens, policy: policy.clone(), owner: self.owner }));
        self.policy = policy;
        // Methods `require` no longer names get their own permission back.
        let registered = &mut self.settings.registered;
        for (method, permission) in registered.iter() {
            if !new.requires.iter().any(|(m, _)| m == method) {
                let _ = self.registry.set_permission(method, permission.clone());
            }
        }
        for (method, permission) in &new.requires {
            if !registered.iter().any(|(m, _)| m == method) {
                if let Some(m) = self.registry.get(method) {
                    registered.push((method.clone(), m.permission().clone()));
                }
            }
            let _ = self.registry.set_permission(method, permission.clone());
        }
    }
}

/// Section `name` of the sources' file, as a TOML value (to tell whether it changed).
fn section(sources: Option<&Sources>, name: &str) -> Option<toml::Value> {
    let text = sources?.file()?.text();
    let doc: toml::Table = toml::from_str(text).ok()?;
    doc.get(name).cloned()
}
