//! `worker restart --wait`: the restarted workers followed through their `daemon.worker.state`
//! events until each is back (looping or paused with a new pid) or known not to come back.
//!
//! A worker is back once an event says it loops (or is paused) with a pid other than the one
//! it had before the restart; its old process told in spinup, looping or paused (late: the
//! daemon reports a state when it notices it) does not count as down. It did not come back when it is told `failed` or `exited` after it
//! went down, or — in a rolling restart, which takes the workers in the answer's order — when a
//! worker after it goes down while it is not back: the daemon moved on without it. Every other
//! wait is bounded by the caller (no progress for a while).

use tomte_rpc::Value;

/// Where one restarted worker is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Not seen going down yet.
    Waiting,
    /// Seen down (stopping, restarting, in back-off): its last state.
    Down(String),
    /// Looping (or paused) again, with this pid.
    Back(i64),
    /// Not coming back: its last state.
    Lost(String),
}

/// What one event changed, for the printer.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Worker `name` is back with `pid` (it had `was`).
    Back { name: String, pid: i64, was: Option<i64> },
    /// Worker `name` is not coming back; its state.
    Lost { name: String, state: String },
}

/// The restarted workers, in the answer's order, with their pids before the restart.
#[derive(Debug)]
pub struct Tracker {
    workers: Vec<(String, Option<i64>, Progress)>,
    rolling: bool,
}

impl Tracker {
    /// Follows `workers` (name, pid before), restarted one at a time when `rolling`.
    pub fn new(workers: Vec<(String, Option<i64>)>, rolling: bool) -> Tracker {
        Tracker { workers: workers.into_iter().map(|(n, p)| (n, p, Progress::Waiting)).collect(), rolling }
    }

    /// Whether every worker is back or lost.
    pub fn done(&self) -> bool {
        self.workers.iter().all(|(_, _, p)| matches!(p, Progress::Back(_) | Progress::Lost(_)))
    }

    /// Whether every worker came back.
    pub fn all_back(&self) -> bool {
        self.workers.iter().all(|(_, _, p)| matches!(p, Progress::Back(_)))
    }

    /// The workers not back nor lost yet, with their last state (`waiting` when none was seen).
    pub fn pending(&self) -> Vec<(String, String)> {
        let mut left = Vec::new();
        for (name, _, p) in &self.workers {
            match p {
                Progress::Waiting => left.push((name.clone(), "waiting".to_owned())),
                Progress::Down(s) => left.push((name.clone(), s.clone())),
                Progress::Back(_) | Progress::Lost(_) => {}
            }
        }
        left
    }

    /// Takes in a `daemon.worker.state` event's data (`{worker, state, pid, last_exit}`).
    pub fn event(&mut self, data: &Value) -> Vec<Change> {
        let mut changes = Vec::new();
        let Some(name) = data.member("worker").and_then(Value::as_str) else { return changes };
        let Some(state) = data.member("state").and_then(Value::as_str) else { return changes };
        let pid = data.member("pid").and_then(Value::as_i64);
        let Some(at) = self.workers.iter().position(|(n, _, _)| n == name) else { return changes };
        let (_, was, progress) = &mut self.workers[at];
        let was = *was;
        let up = matches!(state, "looping" | "paused");
        if was.is_some() && pid == was && matches!(state, "spinup" | "looping" | "paused") {
            // The old process, told late (a daemon reports states as it notices them): not down.
            return changes;
        }
        match progress.clone() {
            Progress::Back(_) | Progress::Lost(_) => return changes,
            Progress::Waiting | Progress::Down(_) if up && pid.is_some() && pid != was => {
                let pid = pid.expect("checked");
                *progress = Progress::Back(pid);
                changes.push(Change::Back { name: name.to_owned(), pid, was });
                return changes;
            }
            Progress::Down(_) if matches!(state, "failed" | "exited") => {
                *progress = Progress::Lost(state.to_owned());
                changes.push(Change::Lost { name: name.to_owned(), state: state.to_owned() });
                return changes;
            }
            Progress::Waiting if up => return changes,
            Progress::Waiting | Progress::Down(_) => *progress = Progress::Down(state.to_owned()),
        }
        if self.rolling {
            // This one went down: those before it that are not back were passed over.
            for (name, _, p) in &mut self.workers[..at] {
                let state = match p {
                    Progress::Waiting => "waiting".to_owned(),
                    Progress::Down(s) => s.clone(),
                    Progress::Back(_) | Progress::Lost(_) => continue,
                };
                *p = Progress::Lost(state.clone());
                changes.push(Change::Lost { name: name.clone(), state });
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(worker: &str, state: &str, pid: Option<i64>) -> Value {
        Value::structure([
            ("worker", Value::from(worker)),
            ("state", Value::from(state)),
            ("pid", pid.map_or(Value::Nil, Value::from)),
            ("last_exit", Value::Nil),
        ])
    }

    #[test]
    fn a_worker_is_back_once_it_loops_with_a_new_pid() {
        let mut t = Tracker::new(vec![("alpha".into(), Some(10)), ("beta".into(), Some(11))], true);
        // Its old process, told late: nothing yet, and beta's does not pass alpha over.
        assert_eq!(t.event(&state("alpha", "spinup", Some(10))), []);
        assert_eq!(t.event(&state("beta", "spinup", Some(11))), []);
        assert_eq!(t.event(&state("alpha", "looping", Some(10))), []);
        assert_eq!(t.event(&state("alpha", "spindown", Some(10))), []);
        assert_eq!(t.event(&state("alpha", "backoff", None)), []);
        assert_eq!(t.event(&state("alpha", "spinup", Some(20))), []);
        assert_eq!(
            t.event(&state("alpha", "looping", Some(20))),
            [Change::Back { name: "alpha".into(), pid: 20, was: Some(10) }]
        );
        assert!(!t.done());
        assert_eq!(t.pending(), [("beta".to_owned(), "waiting".to_owned())]);
        t.event(&state("beta", "spindown", Some(11)));
        assert_eq!(
            t.event(&state("beta", "paused", Some(21))),
            [Change::Back { name: "beta".into(), pid: 21, was: Some(11) }]
        );
        assert!(t.done() && t.all_back());
        // Later events change nothing.
        assert_eq!(t.event(&state("beta", "failed", None)), []);
        assert_eq!(t.event(&state("gamma", "looping", Some(3))), []);
    }

    #[test]
    fn a_failed_worker_or_one_passed_over_is_lost() {
        let mut t = Tracker::new(vec![("a".into(), None), ("b".into(), Some(2)), ("c".into(), Some(3))], true);
        t.event(&state("a", "spinup", Some(5)));
        assert_eq!(t.event(&state("a", "failed", None)), [Change::Lost { name: "a".into(), state: "failed".into() }]);
        t.event(&state("b", "spindown", Some(2)));
        t.event(&state("b", "backoff", None));
        // c goes down while b is in back-off: the daemon moved on.
        assert_eq!(
            t.event(&state("c", "spindown", Some(3))),
            [Change::Lost { name: "b".into(), state: "backoff".into() }]
        );
        t.event(&state("c", "looping", Some(7)));
        assert!(t.done());
        assert!(!t.all_back());
    }

    #[test]
    fn without_rolling_workers_go_down_together() {
        let mut t = Tracker::new(vec![("a".into(), Some(1)), ("b".into(), Some(2))], false);
        t.event(&state("a", "spindown", Some(1)));
        assert_eq!(t.event(&state("b", "spindown", Some(2))), []);
        t.event(&state("b", "looping", Some(4)));
        t.event(&state("a", "looping", Some(3)));
        assert!(t.all_back());
    }
}
