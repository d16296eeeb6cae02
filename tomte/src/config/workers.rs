//! The `[workers.NAME]` sections: a worker's interval, restart policy, back-off, hang timeout
//! and stop grace, over what the code installed it with; a pool's also its `instances`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::file::File;
use super::{ConfigError, WORKERS};
use crate::worker::supervisor::Tuning;
use crate::worker::Policy;

/// What a `[workers.NAME]` section may set; the rest stays as the code installed it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct WorkerSection {
    /// Seconds between iterations (fractions allowed).
    #[serde(default, deserialize_with = "seconds")]
    interval: Option<Duration>,
    #[serde(default)]
    policy: Option<PolicyName>,
    #[serde(default, deserialize_with = "seconds_or_zero")]
    backoff_min: Option<Duration>,
    #[serde(default, deserialize_with = "seconds")]
    backoff_max: Option<Duration>,
    /// 0 disables hang detection.
    #[serde(default, deserialize_with = "seconds_or_zero")]
    hang_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "seconds")]
    stop_grace: Option<Duration>,
    /// A pool's size (pools only).
    #[serde(default, deserialize_with = "instances")]
    instances: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum PolicyName {
    Always,
    OnFailure,
    Never,
}

impl WorkerSection {
    /// Whether the section sets `field` (its key: `hang-timeout`).
    pub(crate) fn has(&self, field: &str) -> bool {
        match field {
            "interval" => self.interval.is_some(),
            "policy" => self.policy.is_some(),
            "backoff-min" => self.backoff_min.is_some(),
            "backoff-max" => self.backoff_max.is_some(),
            "hang-timeout" => self.hang_timeout.is_some(),
            "stop-grace" => self.stop_grace.is_some(),
            "instances" => self.instances.is_some(),
            _ => false,
        }
    }

    /// `base` (what the code installed) with this section's settings.
    pub(crate) fn over(&self, base: &Tuning) -> Tuning {
        let mut t = base.clone();
        if let Some(i) = self.interval {
            t.interval = i.max(Duration::from_micros(100));
        }
        if let Some(p) = self.policy {
            t.policy = match p {
                PolicyName::Always => Policy::Always,
                PolicyName::OnFailure => Policy::OnFailure,
                PolicyName::Never => Policy::Never,
            };
        }
        if let Some(b) = self.backoff_min {
            t.backoff_min = b;
        }
        if let Some(b) = self.backoff_max {
            t.backoff_max = b;
        }
        t.backoff_max = t.backoff_max.max(t.backoff_min);
        if let Some(h) = self.hang_timeout {
            t.hang_timeout = (!h.is_zero()).then_some(h);
        }
        if let Some(g) = self.stop_grace {
            t.stop_grace = g;
        }
        if let (Some(n), Some(_)) = (self.instances, base.instances) {
            t.instances = Some(n);
        }
        t
    }
}

/// The file's worker sections, each checked: `names` are the daemon's workers and pools (those
/// in `pools`, the only ones that take `instances`); another name is an error at its line. With
/// its line, by worker name.
pub(crate) fn sections(
    file: &File,
    names: &[String],
    pools: &[String],
) -> Result<Vec<(String, WorkerSection, usize)>, ConfigError> {
    let doc = file.parse()?;
    let Some(workers) = doc.get_ref().get(WORKERS) else { return Ok(Vec::new()) };
    let toml::de::DeValue::Table(t) = workers.get_ref() else {
        let why = format!("expected a table of [workers.NAME] sections, found a {}", workers.get_ref().type_str());
        return Err(file.error(workers.span(), Some(WORKERS.to_owned()), why));
    };
    let mut out = Vec::new();
    for (k, v) in t.iter() {
        let name = k.get_ref().to_string();
        let key = format!("{WORKERS}.{name}");
        if !names.contains(&name) {
            let have = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
            return Err(file.error(k.span(), Some(key), format!("no such worker (the daemon has: {have})")));
        }
        let section: WorkerSection = file.deserialize(&doc, v.clone(), &key)?;
        if section.instances.is_some() && !pools.contains(&name) {
            let at = match v.get_ref() {
                toml::de::DeValue::Table(t) => {
                    t.iter().find(|(k, _)| k.get_ref() == "instances").map(|(k, _)| k.span())
                }
                _ => None,
            };
            let why = format!("worker '{name}' is not a pool: only a pool has instances");
            return Err(file.error(at.unwrap_or(k.span()), Some(format!("{key}.instances")), why));
        }
        out.push((name, section, file.line_column(k.span().start).0));
    }
    Ok(out)
}

/// The most a duration in the file may be: a year.
const YEAR: f64 = 366.0 * 86400.0;

fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let secs = f64::deserialize(d)?;
    if !(secs > 0.0 && secs <= YEAR) {
        return Err(serde::de::Error::custom("must be more than 0 and at most a year of seconds"));
    }
    Ok(Some(Duration::from_secs_f64(secs)))
}

fn instances<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let n = u64::deserialize(d)?;
    match usize::try_from(n).ok().filter(|&n| n <= crate::worker::MAX_INSTANCES) {
        Some(n) => Ok(Some(n)),
        None => Err(serde::de::Error::custom(format!("must be from 0 to {}", crate::worker::MAX_INSTANCES))),
    }
}

fn seconds_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let secs = f64::deserialize(d)?;
    if !(0.0..=YEAR).contains(&secs) {
        return Err(serde::de::Error::custom("must be from 0 to a year of seconds"));
    }
    Ok(Some(Duration::from_secs_f64(secs)))
}
