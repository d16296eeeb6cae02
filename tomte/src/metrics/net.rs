//! Connection figures: open and accepted connections per listener and dialect, bytes in and
//! out, refusals and limit hits. The loop calls these as things happen; `/metrics` reads them.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::text::{Encoder, Kind};

/// The framing a connection turned out to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetDialect {
    /// Newline-delimited JSON-RPC.
    Ndjson,
    /// HTTP/1.1 (JSON-RPC, XML-RPC, the GET routes).
    Http,
    /// comodojo/daemon's frames.
    Comodojo,
}

impl NetDialect {
    const ALL: [NetDialect; 3] = [NetDialect::Ndjson, NetDialect::Http, NetDialect::Comodojo];

    /// Its label value: `ndjson`, `http`, `comodojo`.
    pub fn as_str(self) -> &'static str {
        match self {
            NetDialect::Ndjson => "ndjson",
            NetDialect::Http => "http",
            NetDialect::Comodojo => "comodojo",
        }
    }
}

/// The label value of connections that closed before their dialect was known.
const NO_DIALECT: &str = "none";

/// Figures of one listener.
#[derive(Debug, Default)]
struct Listener {
    name: String,
    open: Cell<u64>,
    /// Open now, per dialect (`NetDialect as usize`).
    open_by: [Cell<u64>; 3],
    /// Accepted, per dialect, and (the last) closed before speaking.
    accepted: [Cell<u64>; 4],
}

#[derive(Debug, Default)]
struct Inner {
    listeners: Vec<Listener>,
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    /// Few distinct reasons and limits, named by the loop: a list beats a map.
    refused: RefCell<Vec<(&'static str, u64)>>,
    limits: RefCell<Vec<(&'static str, u64)>>,
}

/// The daemon's connection figures. A clone shares them (an `Rc`); counting is a `Cell`
/// addition: one thread, no atomics. A listener index the daemon did not name is ignored.
#[derive(Clone, Debug, Default)]
pub struct NetStats {
    inner: Rc<Inner>,
}

fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

fn sub(c: &Cell<u64>) {
    c.set(c.get().saturating_sub(1));
}

fn bump(list: &RefCell<Vec<(&'static str, u64)>>, key: &'static str) {
    let mut list = list.borrow_mut();
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += 1,
        None => list.push((key, 1)),
    }
}

impl NetStats {
    /// Figures for these listeners (their labels, in the order the loop indexes them).
    pub fn new(listeners: Vec<String>) -> NetStats {
        let listeners = listeners.into_iter().map(|name| Listener { name, ..Listener::default() }).collect();
        NetStats { inner: Rc::new(Inner { listeners, ..Inner::default() }) }
    }

    fn listener(&self, i: usize) -> Option<&Listener> {
        self.inner.listeners.get(i)
    }

    /// A connection was accepted on listener `listener`.
    pub fn opened(&self, listener: usize) {
        if let Some(l) = self.listener(listener) {
            add(&l.open, 1);
        }
    }

    /// The connection's dialect is known (called once per connection).
    pub fn framed(&self, listener: usize, dialect: NetDialect) {
        if let Some(l) = self.listener(listener) {
            add(&l.open_by[dialect as usize], 1);
            add(&l.accepted[dialect as usize], 1);
        }
    }

    /// A connection closed; `dialect`: the one [`NetStats::framed`] gave, if it was called.
    /// One that closed before it was known is counted as accepted with dialect `none`.
    pub fn closed(&self, listener: usize, dialect: Option<NetDialect>) {
        if let Some(l) = self.listener(listener) {
            sub(&l.open);
            match dialect {
                Some(d) => sub(&l.open_by[d as usize]),
                None => add(&l.accepted[3], 1),
            }
        }
    }

    /// Bytes read from clients.
    pub fn bytes_in(&self, n: usize) {
        add(&self.inner.bytes_in, n as u64);
    }

    /// Bytes written to clients.
    pub fn bytes_out(&self, n: usize) {
        add(&self.inner.bytes_out, n as u64);
    }

    /// A connection was refused, for `reason` (`max_connections`, `max_per_peer`, `tls`…).
    pub fn refused(&self, reason: &'static str) {
        bump(&self.inner.refused, reason);
    }

    /// A client ran into limit `limit` (`max_message`, `idle_timeout`, `max_unsent`…).
    pub fn limit_hit(&self, limit: &'static str) {
        bump(&self.inner.limits, limit);
    }

    /// Connections open now, all listeners together.
    pub fn open(&self) -> u64 {
        self.inner.listeners.iter().map(|l| l.open.get()).sum()
    }

    /// Writes the connection families.
    pub(crate) fn render(&self, e: &mut Encoder<'_>) {
        let ls = &self.inner.listeners;
        e.family("tomte_connections", Kind::Gauge, "Client connections open now, by listener.");
        for l in ls {
            e.sample("tomte_connections", "", &[("listener", &l.name)], l.open.get());
        }
        e.family(
            "tomte_connections_open",
            Kind::Gauge,
            "Client connections open now whose dialect is known, by listener and dialect.",
        );
        for l in ls {
            for d in NetDialect::ALL {
                let labels = [("listener", l.name.as_str()), ("dialect", d.as_str())];
                e.sample("tomte_connections_open", "", &labels, l.open_by[d as usize].get());
            }
        }
        let name = "tomte_connections_accepted";
        e.family(
            name,
            Kind::Counter,
            "Client connections accepted, by listener and dialect (none: closed before it spoke).",
        );
        for l in ls {
            for (i, d) in NetDialect::ALL.iter().map(|d| d.as_str()).chain([NO_DIALECT]).enumerate() {
                e.sample(name, "_total", &[("listener", &l.name), ("dialect", d)], l.accepted[i].get());
            }
        }
        let name = "tomte_connection_bytes_received";
        e.family(name, Kind::Counter, "Bytes read from clients.");
        e.sample(name, "_total", &[], self.inner.bytes_in.get());
        let name = "tomte_connection_bytes_sent";
        e.family(name, Kind::Counter, "Bytes written to clients.");
        e.sample(name, "_total", &[], self.inner.bytes_out.get());
        let name = "tomte_connections_refused";
        e.family(name, Kind::Counter, "Client connections refused, by reason.");
        for (reason, n) in self.inner.refused.borrow().iter() {
            e.sample(name, "_total", &[("reason", reason)], *n);
        }
        let name = "tomte_limit_hits";
        e.family(name, Kind::Counter, "Clients that ran into a limit, by limit.");
        for (limit, n) in self.inner.limits.borrow().iter() {
            e.sample(name, "_total", &[("limit", limit)], *n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Format;

    #[test]
    fn counts_per_listener_and_dialect_and_ignores_unknown_listeners() {
        let net = NetStats::new(vec!["unix:///a.sock".into(), "tcp://127.0.0.1:1".into()]);
        let clone = net.clone();
        net.opened(0);
        net.opened(0);
        net.opened(1);
        net.framed(0, NetDialect::Http);
        clone.closed(1, None);
        net.opened(7);
        net.framed(7, NetDialect::Ndjson);
        net.closed(7, Some(NetDialect::Ndjson));
        net.bytes_in(10);
        net.bytes_out(20);
        net.refused("max_connections");
        net.refused("max_connections");
        net.limit_hit("max_message");
        assert_eq!(net.open(), 2);
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out, Format::Prometheus);
        net.render(&mut e);
        let text = String::from_utf8(out).unwrap();
        for line in [
            "tomte_connections{listener=\"unix:///a.sock\"} 2\n",
            "tomte_connections{listener=\"tcp://127.0.0.1:1\"} 0\n",
            "tomte_connections_open{listener=\"unix:///a.sock\",dialect=\"http\"} 1\n",
            "tomte_connections_accepted_total{listener=\"unix:///a.sock\",dialect=\"http\"} 1\n",
            "tomte_connections_accepted_total{listener=\"tcp://127.0.0.1:1\",dialect=\"none\"} 1\n",
            "tomte_connection_bytes_received_total 10\n",
            "tomte_connection_bytes_sent_total 20\n",
            "tomte_connections_refused_total{reason=\"max_connections\"} 2\n",
            "tomte_limit_hits_total{limit=\"max_message\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
