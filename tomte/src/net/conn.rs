//! One client connection: a non-blocking state machine with its own read and write buffers.
//!
//! The loop calls [`Conn::drive`] whenever the socket is ready. It reads what is there, serves
//! every complete message, and writes what it can; a half message simply waits in the buffer,
//! so a slow or stuck client never delays another. A client that does not read its answers is
//! served nothing more once its unsent answers pass a mark (back-pressure, checked before each
//! message), and not read from either.
//!
//! Every scan resumes where the last one stopped (line terminators, the end of an HTTP head,
//! whitespace before the first message), and an HTTP head is parsed once, not once per read of
//! its body: the work per connection is linear in what it sends, however it is cut.
//!
//! A TLS connection is the same machine over a TLS [`Stream`]: its handshake counts as a
//! message arriving (the request deadline applies), records the session holds count as unsent
//! output, and the client's certificate name joins [`Peer::cert`] once the handshake is done.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::http::{self, BodyKind, HeadEnd, Parsed};
use tomte_rpc::{Fault, Pending, Served, Value};

use super::{Dialect, Get, HostRule, Limits, Peer, Pushed, Service, Stream};
use crate::metrics::{NetDialect, NetStats};

const INITIAL_BUF: usize = 8 << 10;
/// Buffers larger than this are given back once empty.
const KEEP_BUF: usize = 64 << 10;
/// Bytes already written that [`Conn::compact_out`] keeps before the unsent ones (at least the
/// longest frame separator, see [`Conn::drop_subscriber`]).
const SENT_TAIL: usize = 16;
/// The most unserved input a connection carries to a new process (an upgrade): a request
/// partly read. A connection with more is served here until it has less.
pub(crate) const MAX_CARRIED: usize = 32 << 10;
/// How long a closing connection's late input is read and dropped, and how much of it.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_READS: usize = 256;
/// How long the answer to a wrong token waits: guessing costs that much per try.
const AUTH_DELAY: Duration = Duration::from_millis(250);

thread_local! {
    /// Refusals a web page can cause at will are logged at most once per 10 s (the daemon has
    /// one thread, so this is its one throttle).
    static REFUSED: std::cell::RefCell<crate::logging::Throttle> =
        std::cell::RefCell::new(crate::logging::Throttle::new(Duration::from_secs(10)));
}
/// Reads per drive before yielding to other connections (fairness under a flood).
const READS_PER_DRIVE: usize = 16;
const JSON: &str = "application/json";
const XML: &str = "text/xml; charset=utf-8";
/// The longest HTTP head accepted.
const MAX_HEAD: usize = 64 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// Native listener, nothing read yet: the first byte decides.
    Sniff,
    Ndjson,
    Http,
    Comodojo,
}

/// What the loop should do with a connection after driving it.
#[derive(Debug, PartialEq, Eq)]
pub enum Drive {
    /// Wait for the next readiness event.
    Open,
    /// It yielded with work left: drive it again soon, without waiting for an event.
    MoreWork,
    /// It is finished: deregister and drop it.
    Closed,
    /// Its message needs more memory than the daemon's input budget has left: the loop makes
    /// room (closing a stalled holder) and drives it again, or refuses it with
    /// [`Conn::refuse_budget`].
    Starved,
}

/// What every connection of the daemon buffers together, against [`Limits::max_buffered`]:
/// unfinished requests (input) and unsent answers (output), each counted on its own.
#[derive(Clone, Debug, Default)]
pub struct Budget(Rc<[Cell<usize>; 2]>);

const INPUT: usize = 0;
const OUTPUT: usize = 1;

impl Budget {
    /// Input bytes held now.
    pub fn input(&self) -> usize {
        self.0[INPUT].get()
    }

    /// Output bytes held now.
    pub fn output(&self) -> usize {
        self.0[OUTPUT].get()
    }

    fn take(&self, n: usize, max: usize) -> bool {
        let used = self.0[INPUT].get();
        if used.saturating_add(n) > max {
            return false;
        }
        self.0[INPUT].set(used + n);
        true
    }

    fn give(&self, n: usize) {
        self.0[INPUT].set(self.0[INPUT].get().saturating_sub(n));
    }

    /// Moves the output count from `old` to `new` bytes.
    fn recount_output(&self, old: usize, new: usize) {
        let c = &self.0[OUTPUT];
        c.set((c.get() + new).saturating_sub(old));
    }
}

/// Why the input buffer could not take more.
enum NoRoom {
    /// The message has outgrown the message limit.
    TooLarge,
    /// The daemon's input budget cannot give this many more bytes.
    Budget(usize),
}

/// A client connection.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    /// Who the client is, for limits, logs and events.
    peer: Peer,
    /// The index of the listener that accepted it.
    listener: usize,
    framing: Framing,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Where the search for the next line terminator resumes.
    scanned: usize,
    out: Vec<u8>,
    out_pos: usize,
    /// Where in `out` the last answer written ends: what is unsent before it is answers (and
    /// maybe events queued among them), after it pushed events only — the bytes a subscriber's
    /// queue limit counts (an answer it asked for is not an event it failed to read).
    answers_end: usize,
    scratch: Vec<u8>,
    continue_sent: bool,
    close_after_flush: bool,
    /// The daemon is draining (stopping, or upgraded): HTTP answers say `Connection: close`.
    draining: bool,
    /// The client has finished sending (it may still read): once everything it sent is
    /// answered — which an owed answer postpones — the connection closes after the flush.
    read_closed: bool,
    /// An answer still owed: nothing else is served until it is written.
    waiting: Option<Waiting>,
    /// The head of the HTTP request whose body is still arriving (parsed once).
    head: Option<http::Head>,
    /// HTTP requests must name a loopback host (TCP loopback listeners: DNS rebinding).
    host_rule: HostRule,
    /// When the first byte of the message now arriving came (the request deadline's start).
    msg_started: Option<Instant>,
    /// Serving stopped with whole messages left in the buffer: the client reads too slowly.
    backlog: bool,
    /// Messages served so far.
    answered: u64,
    /// Since when the client has read none of its answers while some wait to be sent.
    stalled_since: Option<Instant>,
    /// Closing: its last answer sent and our side shut, what the client still sends is read
    /// and dropped (so the kernel does not reset the connection before it reads the answer).
    lingering: Option<Instant>,
    /// Nothing is written before this instant (the answer to a wrong token waits).
    hold_until: Option<Instant>,
    /// A penalty the loop has not been told of yet (it wakes the connection then).
    new_penalty: bool,
    /// When it was accepted or last had a request answered (the idle timer).
    last_active: Instant,
    budget: Budget,
    /// The output memory counted in the budget for this connection.
    out_counted: usize,
    /// When bytes last arrived.
    last_read: Instant,
    /// The growth its input buffer waits for, when the budget could not give it.
    starved: usize,
    /// A TLS connection whose handshake has not been seen to finish.
    handshaking: bool,
    /// Its handshake just finished: the loop announces the connection (see [`Conn::take_secured`]).
    secured: bool,
    /// It answered a `GET /events`: it carries pushed events only, and what its client sends
    /// is read and dropped.
    streaming: bool,
    /// It holds a subscription: not idle while it waits for events.
    subscribed: bool,
    /// The daemon's connection figures (bytes, dialects, limits hit).
    net: NetStats,
    /// When it was dropped as a subscriber that does not read (it closes soon after).
    dropped_at: Option<Instant>,
}

/// How long a dropped subscriber's last notice may take to go out before its connection closes.
const DROPPED_GRACE: Duration = Duration::from_secs(5);

/// An answer the connection waits for, and how to frame it.
#[derive(Debug)]
struct Waiting {
    /// The task computing it (see [`Service::spawn`]).
    task: Option<usize>,
    pending: Pending,
    /// For HTTP: whether the connection stays open after the answer, and whether there is
    /// one (a notification's is `204 No Content`).
    http_keep_alive: Option<(bool, bool)>,
}

impl Conn {
    /// A new connection from `peer`, accepted by listener `listener` (its index in the
    /// daemon's list), which speaks `dialect` under `host_rule`.
    pub fn new(
        stream: Stream,
        peer: Peer,
        (listener, dialect, host_rule): (usize, Dialect, HostRule),
        budget: Budget,
        net: NetStats,
        svc: &mut impl Service,
    ) -> Conn {
        if dialect == Dialect::Comodojo {
            net.framed(listener, NetDialect::Comodojo);
        }
        let mut conn = Conn {
            net,
            handshaking: stream.is_tls(),
            stream,
            peer,
            listener,
            framing: match dialect {
                Dialect::Native => Framing::Sniff,
                Dialect::Comodojo => Framing::Comodojo,
            },
            buf: Vec::new(),
            start: 0,
            end: 0,
            scanned: 0,
            out: Vec::new(),
            out_pos: 0,
            answers_end: 0,
            scratch: Vec::new(),
            continue_sent: false,
            close_after_flush: false,
            draining: false,
            read_closed: false,
            waiting: None,
            head: None,
            host_rule,
            msg_started: None,
            backlog: false,
            answered: 0,
            stalled_since: None,
            lingering: None,
            hold_until: None,
            new_penalty: false,
            last_active: Instant::now(),
            secured: false,
            budget,
            out_counted: 0,
            last_read: Instant::now(),
            starved: 0,
            streaming: false,
            subscribed: false,
            dropped_at: None,
        };
        if dialect == Dialect::Comodojo {
            svc.comodojo_greeter(&mut conn.out);
        }
        conn
    }

    /// Who the client is: for limits, logs, events and access control.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The index of the listener that accepted it (in the daemon's list of listeners).
    pub fn listener(&self) -> usize {
        self.listener
    }

    /// Its socket, to register with the poll (and deregister).
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        self.stream.source()
    }

    /// Whether it is a TLS connection.
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// A connection refused (one too many): it gets `error` and is closed.
    pub fn refuse(&mut self, error: &[u8]) {
        self.out.extend_from_slice(error);
        self.close_after_flush = true;
    }

    /// A wrong token was presented: nothing more is served, and the answers already written
    /// go out at `until` (a fixed delay that slows guessing), then the connection closes.
    fn penalize(&mut self) {
        self.close_after_flush = true;
        self.start = self.end;
        self.hold_until = Some(Instant::now() + AUTH_DELAY);
        self.new_penalty = true;
    }

    /// When the answer of a connection penalized since the last call goes out.
    pub fn take_penalty(&mut self) -> Option<Instant> {
        std::mem::take(&mut self.new_penalty).then_some(self.hold_until).flatten()
    }

    /// The task whose answer this connection waits for, if it waits for one.
    pub fn waiting_task(&self) -> Option<usize> {
        self.waiting.as_ref().and_then(|w| w.task)
    }

    /// Writes the answer the connection waited for, then serves what it buffered meanwhile.
    /// Call [`Conn::drive`] afterwards to send it.
    pub fn complete(&mut self, result: &Result<Value, Fault>, svc: &mut impl Service, limits: &Limits) {
        let Some(w) = self.waiting.take() else { return };
        self.last_active = Instant::now();
        match w.http_keep_alive {
            Some((keep_alive, answers)) => {
                let keep_alive =
                    keep_alive && !(self.draining && self.start == self.end && !self.stream.input_waiting());
                self.scratch.clear();
                w.pending.complete(result, &mut self.scratch);
                let ctype = if w.pending.is_xml() { XML } else { JSON };
                let (status, ctype) = if answers { (200, ctype) } else { (204, "") };
                http::write_head(&mut self.out, status, ctype, self.scratch.len(), keep_alive);
                self.out.extend_from_slice(&self.scratch);
                if self.scratch.capacity() > KEEP_BUF {
                    self.scratch = Vec::new();
                }
                if !keep_alive {
                    self.close_after_flush = true;
                }
            }
            None => {
                w.pending.complete(result, &mut self.out);
                if self.framing == Framing::Ndjson && w.pending.answers() {
                    self.out.push(b'\n');
                }
            }
        }
        if !self.close_after_flush {
            self.serve(svc, limits, self.last_active);
        }
        self.answers_end = self.out.len();
        self.count_output();
    }

    /// Starts waiting for an answer that comes later: its future becomes a task of the loop.
    fn wait_for(
        &mut self,
        mut pending: Pending,
        http_keep_alive: Option<bool>,
        svc: &mut impl Service,
        limits: &Limits,
    ) {
        let task = pending.take_future().map(|f| svc.spawn(f));
        let answers = pending.answers();
        self.waiting = Some(Waiting { task, pending, http_keep_alive: http_keep_alive.map(|k| (k, answers)) });
        if task.is_none() {
            let fault = Fault::internal("the method's answer comes later, but nothing computes it");
            self.complete(&Err(fault), svc, limits);
        }
    }

    /// Whether it waits for a deferred answer.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// Its plain socket, to hand to a new binary (see [`Stream::plain_fd`]).
    pub fn plain_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.stream.plain_fd()
    }

    /// Whether it can go to a new process now, and the input it read but has not served (part
    /// of a request, at most 32 KiB), which goes with it: nothing else may be under
    /// way — no answer owed or unsent, no complete request waiting, not closing, not a
    /// subscriber, not TLS, no `100 Continue` sent.
    pub fn movable(&self) -> Option<&[u8]> {
        let quiet = self.waiting.is_none()
            && !self.has_output()
            && !self.backlog
            && !self.close_after_flush
            && !self.handshaking
            && !self.subscribed
            && !self.streaming
            && !self.continue_sent
            && self.stream.plain_fd().is_some();
        quiet.then(|| &self.buf[self.start..self.end]).filter(|unread| unread.len() <= MAX_CARRIED)
    }

    /// Input an old daemon had read from this connection and not served (an upgrade): it is
    /// served as if read here.
    pub fn preload(&mut self, input: &[u8]) {
        if input.is_empty() {
            return;
        }
        let size = input.len().max(INITIAL_BUF).next_power_of_two();
        let _ = self.budget.take(size, usize::MAX);
        self.budget.give(self.buf.len());
        self.buf = vec![0; size];
        self.buf[..input.len()].copy_from_slice(input);
        (self.start, self.end, self.scanned) = (0, input.len(), 0);
        self.msg_started = Some(Instant::now());
        self.backlog = true;
    }

    /// Whether it speaks comodojo's protocol (its greeter was sent).
    pub fn speaks_comodojo(&self) -> bool {
        self.framing == Framing::Comodojo
    }

    /// A comodojo connection handed over by an old daemon was greeted there: no second
    /// greeter.
    pub fn greeted_already(&mut self) {
        self.out.clear();
    }

    /// Writes what it can of its unsent output (a drained daemon's last events): whether some
    /// is left to write.
    pub fn flush_events(&mut self) -> bool {
        matches!(self.flush(), Ok(false)) && self.has_output()
    }

    /// The daemon drains: from now on each HTTP answer closes its connection.
    pub fn set_draining(&mut self) {
        self.draining = true;
    }

    /// Whether its client sent bytes not read yet: a draining daemon does not close it then
    /// (they are requests already sent; closing would reset the connection).
    pub fn input_waiting(&self) -> bool {
        self.stream.input_waiting()
    }

    /// Whether it speaks HTTP (or has not said yet what it speaks).
    pub fn speaks_http(&self) -> bool {
        matches!(self.framing, Framing::Http | Framing::Sniff)
    }

    /// Whether nothing is owed to it but events: a subscriber with no request arriving, none
    /// waiting for its answer and no answer unsent (what a draining daemon need not wait for).
    pub fn only_listening(&self) -> bool {
        self.subscribed
            && self.waiting.is_none()
            && self.start == self.end
            && !self.close_after_flush
            && !self.owes_output()
    }

    /// Whether answers (or TLS records) are waiting to be written.
    pub fn has_output(&self) -> bool {
        self.out_pos < self.out.len() || self.stream.has_pending()
    }

    /// Whether its TLS handshake has just finished (once): the loop announces it then, with
    /// the client's certificate in [`Conn::peer`]. Nothing the client sent is served in the
    /// drive that finished the handshake (it answers [`Drive::MoreWork`]), so whatever the loop
    /// derives from the peer can be brought up to date first.
    pub fn take_secured(&mut self) -> bool {
        std::mem::take(&mut self.secured)
    }

    /// Whether it is a TLS connection whose handshake has not finished (it has not been
    /// announced, and its peer has no certificate yet).
    pub fn is_handshaking(&self) -> bool {
        self.handshaking
    }

    /// Notes the end of a TLS handshake: the client's certificate name becomes part of its peer.
    fn check_handshake(&mut self) {
        if self.handshaking && !self.stream.is_handshaking() {
            self.handshaking = false;
            self.secured = true;
            self.peer.cert = self.stream.peer_name();
        }
    }

    fn unsent(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Whether to serve it nothing more until its client reads: past its own mark, or while
    /// the answers unsent to all clients together pass the daemon's budget.
    fn hold_back(&self, limits: &Limits) -> bool {
        let unsent = self.unsent();
        unsent > limits.max_unsent || (unsent > 0 && self.budget.output() > limits.max_buffered)
    }

    /// Brings the budget's output count up to date with this connection's buffers.
    fn count_output(&mut self) {
        let now = self.out.capacity() + self.scratch.capacity();
        if now != self.out_counted {
            self.budget.recount_output(self.out_counted, now);
            self.out_counted = now;
        }
    }

    /// Since when it has been idle (nothing buffered, owed or unsent), if it is.
    pub fn idle_since(&self) -> Option<Instant> {
        let idle = self.waiting.is_none()
            && !self.has_output()
            && self.start == self.end
            && !self.close_after_flush
            && !self.handshaking
            && !self.subscribed;
        idle.then_some(self.last_active)
    }

    /// Whether its client has not taken its answers within the idle timeout, plus the time
    /// they would take at the minimum rate.
    pub fn stalled(&self, now: Instant, limits: &Limits) -> bool {
        let allowed =
            limits.idle_timeout + Duration::from_secs_f64(self.unsent() as f64 / limits.min_rate.max(1) as f64);
        self.stalled_since.is_some_and(|t| now.saturating_duration_since(t) > allowed)
            || self.dropped_at.is_some_and(|t| now.saturating_duration_since(t) > DROPPED_GRACE)
    }

    /// Since when it has been a subscriber waiting for events with nothing else under way (no
    /// request arriving or owed, not closing), if it is: when the daemon is at its connection
    /// limit and nothing is idle, such a connection may be closed to make room (a subscriber is
    /// never idle, so without this a client could hold every slot with streams that cost it
    /// nothing).
    pub fn subscriber_since(&self) -> Option<Instant> {
        let quiet = self.subscribed
            && self.waiting.is_none()
            && self.start == self.end
            && !self.close_after_flush
            && !self.handshaking;
        quiet.then_some(self.last_active)
    }

    /// Marks it as holding a subscription (or not): a subscriber waiting for events is not idle.
    pub fn set_subscribed(&mut self, on: bool) {
        self.subscribed = on;
    }

    /// The dialect it turned out to speak, once known.
    pub fn dialect(&self) -> Option<NetDialect> {
        match self.framing {
            Framing::Sniff => None,
            Framing::Ndjson => Some(NetDialect::Ndjson),
            Framing::Http => Some(NetDialect::Http),
            Framing::Comodojo => Some(NetDialect::Comodojo),
        }
    }

    /// Whether output it owes its client is still unsent: anything, unless it is a subscriber,
    /// whose pushed events are not owed (a stopping daemon need not wait for it to read them),
    /// only the answers before them.
    pub fn owes_output(&self) -> bool {
        if !self.subscribed {
            return self.has_output();
        }
        self.answers_end > self.out_pos || (self.answers_end == self.out.len() && self.stream.has_pending())
    }

    /// Whether it is an event stream (`GET /events`) rather than an RPC connection.
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// Queues an encoded event, unless the events its client has not read (answers to its own
    /// calls not counted) would then pass `cap` bytes, or it has 64 kB or more unread while the
    /// unsent output of all connections together passes `max_buffered` (the budget of
    /// [`Limits::max_buffered`]: a thousand subscribers that do not read must not hold a
    /// thousand times `cap` meanwhile).
    pub fn push(&mut self, event: &[u8], cap: usize, max_buffered: usize) -> Pushed {
        if self.close_after_flush {
            return Pushed::Queued;
        }
        let unsent = self.unsent();
        let answers = self.answers_end.clamp(self.out_pos, self.out.len()) - self.out_pos;
        if unsent - answers + event.len() > cap {
            return Pushed::Over;
        }
        if unsent >= KEEP_BUF && self.budget.output().saturating_add(event.len()) > max_buffered {
            // One that keeps up (nothing or little unsent) is still served: those behind go first.
            return Pushed::OverBudget;
        }
        self.out.extend_from_slice(event);
        self.count_output();
        if unsent == 0 {
            Pushed::First
        } else {
            Pushed::Queued
        }
    }

    /// Drops it as a subscriber that does not read: what it has not started to read is thrown
    /// away (up to the end of the frame now going out, `sep` ending each), `notice` is queued
    /// in its place, and the connection closes once that is sent (or after a short grace).
    pub fn drop_subscriber(&mut self, notice: &[u8], sep: &[u8]) {
        let at_boundary = self.out_pos == 0 || self.out[..self.out_pos].ends_with(sep);
        let keep = match memchr::memmem::find(&self.out[self.out_pos..], sep) {
            Some(i) if !at_boundary => self.out_pos + i + sep.len(),
            None if !at_boundary => self.out.len(),
            _ => self.out_pos,
        };
        self.out.truncate(keep);
        self.out.extend_from_slice(notice);
        if self.out.capacity() > KEEP_BUF {
            // What was thrown away gives its memory back now, not when the connection closes
            // (up to DROPPED_GRACE later): the notice and the end of one frame are all it keeps.
            self.out.drain(..self.out_pos);
            self.answers_end = self.answers_end.saturating_sub(self.out_pos);
            self.out_pos = 0;
            self.out.shrink_to_fit();
        }
        self.subscribed = false;
        self.close_after_flush = true;
        self.dropped_at = Some(Instant::now());
        self.count_output();
    }

    /// Since when the message now arriving has been arriving, if one is.
    /// A TLS handshake counts as a message arriving since the connection was accepted.
    pub fn arriving_since(&self) -> Option<Instant> {
        if self.handshaking {
            return Some(self.last_active);
        }
        self.msg_started.filter(|_| self.waiting.is_none() && !self.backlog)
    }

    /// Input buffer bytes held.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Output bytes held (answers and their scratch space).
    pub fn output_held(&self) -> usize {
        self.out_counted
    }

    /// The growth its input waits for (after [`Drive::Starved`]).
    pub fn starved_for(&self) -> usize {
        self.starved
    }

    /// Since when no byte of the message now arriving has come, if one is arriving.
    pub fn input_stalled_since(&self) -> Option<Instant> {
        self.arriving_since().map(|_| self.last_read)
    }

    /// Since when its client has read none of its unsent answers, if it has any.
    pub fn output_stalled_since(&self) -> Option<Instant> {
        self.stalled_since
    }

    /// Refuses the message that wanted more than the input budget has: an error, then close.
    pub fn refuse_budget(&mut self, limits: &Limits) {
        self.starved = 0;
        self.no_room(NoRoom::Budget(0), limits);
    }

    /// Whether the message now arriving has missed its deadline: the request timeout, plus the
    /// time its bytes so far would take at the minimum rate. Time the daemon itself holds the
    /// connection (a worker's answer, unsent answers) does not count.
    pub fn overdue(&self, now: Instant, limits: &Limits) -> bool {
        if self.close_after_flush || self.hold_back(limits) {
            return false;
        }
        let Some(started) = self.arriving_since() else { return false };
        let received = (self.end - self.start) as f64;
        let allowed = limits.request_timeout + Duration::from_secs_f64(received / limits.min_rate.max(1) as f64);
        now.saturating_duration_since(started) > allowed
    }

    /// Answers the message that missed its deadline with an error; the connection closes.
    pub fn time_out(&mut self, limits: &Limits) {
        self.net.limit_hit("request_timeout");
        let why = format!(
            "request not received within {:?} (at least {} bytes/s past that)",
            limits.request_timeout, limits.min_rate
        );
        self.fail(408, -32000, &why);
    }

    /// Closes it with an error in its own dialect (the loop needs its slot or its memory).
    pub fn evict(&mut self, why: &str) {
        if self.streaming {
            // An event stream's body is events: the reason goes as a last one, after the
            // frames already queued (each whole), not as an HTTP response in its middle.
            let data = Value::structure([("reason", Value::from(why))]);
            let data = serde_json::to_string(&data).expect("serializing a Value into memory cannot fail");
            self.out.extend_from_slice(format!("event: closed\ndata: {data}\n\n").as_bytes());
            self.subscribed = false;
            self.close_after_flush = true;
            self.count_output();
            return;
        }
        self.fail(503, -32000, why);
    }

    /// Gives back the memory of an idle connection's buffers.
    pub fn shrink(&mut self) {
        if self.idle_since().is_some() {
            self.budget.give(self.buf.len());
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
            self.out = Vec::new();
            self.out_pos = 0;
            self.answers_end = 0;
            self.scratch = Vec::new();
            self.count_output();
        }
    }

    /// Reads, serves and writes as far as the socket allows.
    pub fn drive(&mut self, svc: &mut impl Service, limits: &Limits) -> Drive {
        let mut reads = 0;
        loop {
            match self.flush() {
                Err(_) => return Drive::Closed,
                Ok(false) if self.close_after_flush || self.hold_back(limits) => return Drive::Open,
                Ok(_) => {}
            }
            if self.read_closed && self.waiting.is_none() && !self.backlog {
                // Everything the client sent before its end is served now.
                self.close_after_flush = true;
            }
            if self.close_after_flush && self.waiting.is_none() {
                return if self.has_output() { Drive::Open } else { self.linger() };
            }
            if self.backlog && self.waiting.is_none() {
                // The client read enough: serve what waited in the buffer before reading more.
                self.backlog = false;
                self.serve(svc, limits, Instant::now());
                continue;
            }
            if self.waiting.is_some() && (self.close_after_flush || self.read_closed || self.end == self.buf.len()) {
                // Serve nothing more until the owed answer is written (see `complete`); what
                // arrives meanwhile waits in the buffer, read only so that a client that leaves
                // is noticed.
                return Drive::Open;
            }
            if reads == READS_PER_DRIVE {
                return Drive::MoreWork;
            }
            reads += 1;
            if self.waiting.is_none() {
                match self.make_room(limits) {
                    Ok(()) => {}
                    Err(NoRoom::Budget(need)) => {
                        self.starved = need;
                        return Drive::Starved;
                    }
                    Err(why) => {
                        self.no_room(why, limits);
                        continue;
                    }
                }
            }
            let read = self.stream.read(&mut self.buf[self.end..]);
            self.check_handshake();
            match read {
                Ok(0) => {
                    // The client finished sending (maybe only its half): answer, then close. A
                    // last NDJSON or comodojo line without its newline is still a message.
                    if self.framing != Framing::Http && self.end > self.start && self.make_room(limits).is_ok() {
                        self.buf[self.end] = b'\n';
                        self.end += 1;
                        self.serve(svc, limits, Instant::now());
                    }
                    // Closed once what it sent is answered: at once, or after the answer owed
                    // (the requests behind an async call are served when it completes).
                    self.read_closed = true;
                }
                Ok(n) => {
                    self.end += n;
                    self.net.bytes_in(n);
                    let now = Instant::now();
                    self.last_read = now;
                    if self.msg_started.is_none() {
                        self.msg_started = Some(now);
                    }
                    if self.secured {
                        // The handshake finished in this read, and a request came with its last
                        // flight: the loop learns who the client is (its certificate) before
                        // anything the client sent is served.
                        self.backlog = true;
                        return Drive::MoreWork;
                    }
                    self.serve(svc, limits, now);
                }
                // Nothing new was served since the flush at the top of this turn.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drive::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if self.stream.is_tls() {
                        log::debug!("TLS connection from {} failed: {e}", self.peer);
                    }
                    return Drive::Closed;
                }
            }
        }
    }

    /// Reads and drops what the client still sends after the last answer, for a moment.
    fn linger(&mut self) -> Drive {
        if self.start < self.end && self.framing != Framing::Http {
            // Nothing unread that matters (a plain close after EOF, a refused connection).
            return Drive::Closed;
        }
        if self.lingering.is_none() {
            self.lingering = Some(Instant::now());
            if self.stream.shutdown_write().is_err() {
                return Drive::Closed;
            }
        }
        let mut sink = [0u8; 4096];
        for _ in 0..LINGER_READS {
            match self.stream.read(&mut sink) {
                Ok(0) => return Drive::Closed,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drive::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Drive::Closed,
            }
        }
        Drive::Closed
    }

    /// Whether it has lingered long enough after its last answer.
    pub fn lingered(&self, now: Instant) -> bool {
        self.lingering.is_some_and(|t| now.saturating_duration_since(t) > LINGER)
    }

    /// Drops the part of the output already written, once it outweighs what is left: a client
    /// that reads steadily but never catches up (a subscriber behind a stream of events, a
    /// pipelining client) would otherwise grow the buffer by everything it ever received, since
    /// it is only cleared once all of it has gone. The last bytes written are kept, so that
    /// [`Conn::drop_subscriber`] still sees whether a frame ended there. Each byte is moved at
    /// most once for each byte written before it: linear.
    fn compact_out(&mut self) {
        if self.out_pos >= KEEP_BUF && self.out_pos >= self.out.len() - self.out_pos {
            let cut = self.out_pos - SENT_TAIL;
            self.out.drain(..cut);
            self.out_pos = SENT_TAIL;
            self.answers_end = self.answers_end.saturating_sub(cut);
        }
    }

    /// Writes pending output; Ok(true) when all of it went.
    fn flush(&mut self) -> io::Result<bool> {
        if let Some(until) = self.hold_until {
            if Instant::now() < until {
                return Ok(false);
            }
            self.hold_until = None;
        }
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_pos += n;
                    self.net.bytes_out(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Runs from the first answer the client could not take until all of them
                    // have gone: reading a byte now and then does not restart it.
                    if self.stalled_since.is_none() {
                        self.stalled_since = Some(Instant::now());
                    }
                    self.compact_out();
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        self.answers_end = 0;
        // What a TLS session still holds (its handshake, records a full socket refused).
        if !self.stream.flush_pending()? {
            if self.stalled_since.is_none() {
                self.stalled_since = Some(Instant::now());
            }
            self.count_output();
            return Ok(false);
        }
        self.stalled_since = None;
        // An idle connection keeps small buffers, whatever the size of its last answer.
        if self.out.capacity() > KEEP_BUF {
            self.out = Vec::new();
        }
        if self.scratch.capacity() > KEEP_BUF {
            self.scratch = Vec::new();
        }
        self.count_output();
        Ok(true)
    }

    /// Ensures free space after `end`, growing the buffer within the message limit and the
    /// daemon's input budget.
    fn make_room(&mut self, limits: &Limits) -> Result<(), NoRoom> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
            if self.buf.len() > KEEP_BUF {
                // A big message has gone: give its memory back.
                self.budget.give(self.buf.len());
                self.buf = Vec::new();
            }
        }
        if self.buf.is_empty() {
            // Every connection may hold its first small buffer: the connection limit bounds them.
            let _ = self.budget.take(INITIAL_BUF, usize::MAX);
            self.buf = vec![0; INITIAL_BUF];
        }
        if self.end < self.buf.len() {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
            return Ok(());
        }
        // A full buffer holding one unfinished message: grow, up to the limit plus a margin
        // for framing (an HTTP head, a base64 expansion).
        let cap = limits.max_message + limits.max_message / 3 + MAX_HEAD;
        if self.buf.len() >= cap {
            return Err(NoRoom::TooLarge);
        }
        let new = (self.buf.len() * 2).min(cap);
        if !self.budget.take(new - self.buf.len(), limits.max_buffered) {
            return Err(NoRoom::Budget(new - self.buf.len()));
        }
        self.buf.resize(new, 0);
        Ok(())
    }

    fn no_room(&mut self, why: NoRoom, limits: &Limits) {
        self.net.limit_hit(match why {
            NoRoom::TooLarge => "max_message",
            NoRoom::Budget(_) => "max_buffered",
        });
        let why = match why {
            NoRoom::TooLarge => format!("message exceeds the limit of {} bytes", limits.max_message),
            NoRoom::Budget(_) => format!(
                "the daemon holds {} bytes of unfinished requests (the limit): this one is refused",
                limits.max_buffered
            ),
        };
        log::debug!("closing connection from {}: {why}", self.peer);
        self.fail(413, -32600, &why);
    }

    /// Writes an error in the connection's dialect and closes it after the flush.
    fn fail(&mut self, http_status: u16, code: i32, why: &str) {
        if self.handshaking {
            // No session to say it in yet: just close.
            self.close_after_flush = true;
            return;
        }
        match self.framing {
            Framing::Http | Framing::Sniff => http::write_error(&mut self.out, http_status, why),
            Framing::Comodojo => tomte_rpc::comodojo::encode_response(false, Some(why.as_bytes()), &mut self.out),
            Framing::Ndjson => {
                let fault = match code {
                    tomte_rpc::fault::INVALID_REQUEST => Fault::invalid_request(why),
                    _ => Fault::new(code, "Server error").with_data(why.to_owned()),
                };
                tomte_rpc::jsonrpc::write_error(&mut self.out, "null", &fault);
                self.out.push(b'\n');
            }
        }
        self.start = self.end;
        self.msg_started = None;
        self.head = None;
        self.close_after_flush = true;
    }

    /// Serves every complete message in the buffer, as long as the client reads its answers.
    fn serve(&mut self, svc: &mut impl Service, limits: &Limits, now: Instant) {
        if self.waiting.is_some() {
            return;
        }
        if self.streaming {
            // An event stream's client has nothing more to ask: what it sends is dropped.
            self.start = self.end;
            self.msg_started = None;
            return;
        }
        let answered = self.answered;
        if self.framing == Framing::Sniff {
            // Whitespace before the first message means nothing: drop it, so it is never
            // scanned twice however slowly it comes.
            while self.start < self.end && self.buf[self.start].is_ascii_whitespace() {
                self.start += 1;
            }
            match self.buf[self.start..self.end].first() {
                None => {}
                Some(b'{' | b'[') => {
                    self.framing = Framing::Ndjson;
                    self.net.framed(self.listener, NetDialect::Ndjson);
                }
                Some(_) => {
                    self.framing = Framing::Http;
                    self.net.framed(self.listener, NetDialect::Http);
                }
            }
            self.scanned = self.start;
        }
        match self.framing {
            Framing::Sniff => {}
            Framing::Http => self.serve_http(svc, limits),
            // Once per batch of lines, not per message: the daemon may push events on it.
            Framing::Ndjson => {
                svc.pushable(true);
                self.serve_lines(svc, limits);
                svc.pushable(false);
            }
            Framing::Comodojo => self.serve_lines(svc, limits),
        }
        // Only answered requests count as activity; the request deadline runs from the first
        // byte of each message. Whitespace alone is no message: its connection is idle.
        if self.answered != answered {
            self.last_active = now;
        }
        if self.start == self.end {
            self.msg_started = None;
            if self.buf.len() > KEEP_BUF {
                // Its big message is served: give the memory back now, not at the next read
                // (which a client that does not read its answers may never get).
                self.budget.give(self.buf.len());
                self.buf = Vec::new();
                self.start = 0;
                self.end = 0;
                self.scanned = 0;
            }
        } else if self.answered != answered || self.msg_started.is_none() {
            self.msg_started = Some(now);
        }
        self.answers_end = self.out.len();
        self.count_output();
    }

    /// NDJSON and comodojo frames: one message per line.
    fn serve_lines(&mut self, svc: &mut impl Service, limits: &Limits) {
        let comodojo = self.framing == Framing::Comodojo;
        // A comodojo frame is base64: 4/3 of the message it carries.
        let limit = if comodojo { limits.max_message / 3 * 4 + 64 } else { limits.max_message };
        while let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..self.end]) {
            if self.hold_back(limits) {
                self.backlog = true;
                return;
            }
            let line_end = self.scanned + i;
            let mut line = &self.buf[self.start..line_end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.len() > limit {
                self.no_room(NoRoom::TooLarge, limits);
                return;
            }
            let blank = line.iter().all(u8::is_ascii_whitespace);
            let served = match (blank, comodojo) {
                (true, _) => Served::Nothing,
                (false, true) => svc.comodojo(line, &mut self.out),
                (false, false) => svc.json(line, &mut self.out),
            };
            self.start = line_end + 1;
            self.scanned = self.start;
            self.answered += u64::from(!blank);
            match served {
                Served::Nothing => {}
                Served::Answered => {
                    if !comodojo {
                        self.out.push(b'\n');
                    }
                }
                Served::Later(pending) => return self.wait_for(pending, None, svc, limits),
            }
            if svc.take_auth_failure() {
                return self.penalize();
            }
        }
        self.scanned = self.end;
        if self.end - self.start > limit {
            self.no_room(NoRoom::TooLarge, limits);
        }
    }

    /// The head of the next HTTP request, parsed once and kept while its body arrives; `None`
    /// while it is incomplete or once it has been refused.
    fn http_head(&mut self, limits: &Limits) -> Option<http::Head> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        // Empty lines between requests are skipped (RFC 9112, 2.2).
        while self.start < self.end && matches!(self.buf[self.start], b'\r' | b'\n') {
            self.start += 1;
        }
        self.scanned = self.scanned.max(self.start);
        let bytes = &self.buf[self.start..self.end];
        let len = match http::head_end(bytes, self.scanned - self.start) {
            HeadEnd::Partial(resume) => {
                self.scanned = self.start + resume;
                if bytes.len() > MAX_HEAD {
                    self.http_fail(431, "request head too large");
                }
                return None;
            }
            HeadEnd::BareLf => {
                self.http_fail(400, "malformed HTTP request: a line ends in a bare LF (CRLF is required)");
                return None;
            }
            HeadEnd::At(len) if len > MAX_HEAD => {
                self.http_fail(431, "request head too large");
                return None;
            }
            HeadEnd::At(len) => len,
        };
        let head = match http::parse_head(&bytes[..len]) {
            Parsed::Head(h) => h,
            Parsed::Partial => {
                self.http_fail(400, "malformed HTTP request: incomplete head");
                return None;
            }
            Parsed::Invalid(why) => {
                self.http_fail(400, &format!("malformed HTTP request: {why}"));
                return None;
            }
        };
        let refusal = if let Some(who) = http::cross_site(&head) {
            Some((403, format!("cross-site requests are refused ({who})")))
        } else if !head.host.as_deref().is_none_or(|h| http::host_allowed(h, self.host_rule)) {
            let host = head.host.as_deref().unwrap_or_default();
            Some((403, format!("Host '{host}' does not name this machine")))
        } else if !head.post && !head.get {
            Some((405, "only GET and POST are served here".to_owned()))
        } else if head.chunked {
            Some((501, "chunked request bodies are not supported; send Content-Length".to_owned()))
        } else if head.content_length.is_none() && head.post {
            Some((411, "Content-Length is required".to_owned()))
        } else if let Some(enc) = &head.encoded {
            Some((415, format!("Content-Encoding '{enc}' is not supported: send the body uncompressed")))
        } else {
            head.content_length
                .filter(|&n| n > limits.max_message)
                .map(|n| (413, format!("body of {n} bytes exceeds the limit of {} bytes", limits.max_message)))
        };
        if let Some((status, why)) = refusal {
            if status == 403 {
                let peer = &self.peer;
                REFUSED.with(|t| t.borrow_mut().warn(|| format!("refused an HTTP request from {peer}: {why}")));
            }
            self.http_fail(status, &why);
            return None;
        }
        Some(head)
    }

    fn serve_http(&mut self, svc: &mut impl Service, limits: &Limits) {
        while self.start < self.end && !self.close_after_flush {
            if self.hold_back(limits) {
                self.backlog = true;
                return;
            }
            let Some(mut head) = self.http_head(limits) else { return };
            // A draining daemon closes after the last request the client has sent: those it
            // pipelined are answered first.
            if self.draining {
                let last = self.start + head.head_len + head.content_length.unwrap_or(0) >= self.end;
                head.keep_alive &= !last || self.stream.input_waiting();
            }
            let len = head.content_length.unwrap_or(0);
            let body_start = self.start + head.head_len;
            if self.end - body_start < len {
                if head.expect_continue && !self.continue_sent {
                    self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    self.continue_sent = true;
                }
                self.head = Some(head);
                return;
            }
            // Each HTTP request is authenticated on its own: a token one request presented does
            // not carry over to the next on the same connection (browsers and proxies share
            // connections between users).
            match &head.bearer {
                Some(secret) => {
                    if !svc.authenticate(secret.as_bytes()) {
                        svc.take_auth_failure();
                        self.start = body_start + len;
                        self.http_fail(401, "authentication failed: no such token");
                        return self.penalize();
                    }
                }
                None => svc.unauthenticate(),
            }
            if head.get {
                // A GET's body, if it has one, means nothing.
                self.start = body_start + len;
                self.scanned = self.start;
                self.answered += 1;
                let get = Get { target: &head.target, accept: head.accept.as_deref(), keep_alive: head.keep_alive };
                if svc.get(&get, &mut self.out) {
                    self.streaming = true;
                    self.start = self.end;
                    return;
                }
                if !head.keep_alive {
                    self.close_after_flush = true;
                }
                continue;
            }
            let body = &self.buf[body_start..body_start + len];
            self.scratch.clear();
            let served = match head.kind.unwrap_or_else(|| http::sniff(body)) {
                BodyKind::Json => (svc.json(body, &mut self.scratch), JSON),
                BodyKind::Xml => (svc.xml(body, &mut self.scratch), XML),
                BodyKind::Other => {
                    self.start = body_start + len;
                    return self.http_fail(415, "send application/json (JSON-RPC) or text/xml (XML-RPC)");
                }
            };
            self.start = body_start + len;
            self.scanned = self.start;
            self.continue_sent = false;
            self.answered += 1;
            let failed = svc.take_auth_failure();
            let (status, ctype) = match served {
                (Served::Answered, ctype) => (200, ctype),
                (Served::Nothing, _) => (204, ""),
                (Served::Later(pending), _) => {
                    return self.wait_for(pending, Some(head.keep_alive), svc, limits);
                }
            };
            http::write_head(&mut self.out, status, ctype, self.scratch.len(), head.keep_alive);
            self.out.extend_from_slice(&self.scratch);
            if self.scratch.capacity() > KEEP_BUF {
                // A big answer is not held twice while the client takes it.
                self.scratch = Vec::new();
            }
            if failed {
                return self.penalize();
            }
            if !head.keep_alive {
                self.close_after_flush = true;
            }
        }
    }

    fn http_fail(&mut self, status: u16, why: &str) {
        log::debug!("HTTP {status} to {}: {why}", self.peer);
        self.fail(status, -32600, why);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.budget.give(self.buf.len());
        self.budget.recount_output(self.out_counted, 0);
    }
}
