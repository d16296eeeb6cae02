//! Answers that come later: the futures async handlers return, driven by the daemon's loop.
//!
//! No runtime, no second thread: a future is polled on the loop thread when one of its
//! wake-ups arrives — a worker's answer to an [`Ask`], a [`Sleep`] reaching its deadline — and
//! never otherwise. A waker only marks its task ready (woken from another thread, it also wakes
//! the loop's poll), and the loop polls the ready tasks once per turn.
//!
//! ```no_run
//! use std::time::Duration;
//! use tomte::{Daemon, Method, Value};
//!
//! let mut daemon = Daemon::new("gather");
//! daemon.method(Method::new_async("gather.both", |_, ctx| {
//!     // The asks are sent now; the future awaits both answers at once.
//!     let alpha = ctx.timeout(Duration::from_secs(2), ctx.ask("alpha", Value::from("count")));
//!     let beta = ctx.timeout(Duration::from_secs(2), ctx.ask("beta", Value::from("count")));
//!     async move {
//!         let (a, b) = tomte::future::join(alpha, beta).await;
//!         let show = |r: Result<Result<Value, tomte::Fault>, tomte::task::Elapsed>| match r {
//!             Ok(Ok(v)) => v,
//!             Ok(Err(f)) => Value::structure([("error", f.full_message())]),
//!             Err(e) => Value::structure([("error", e.to_string())]),
//!         };
//!         Ok(Value::structure([("alpha", show(a)), ("beta", show(b))]))
//!     }
//! }));
//! ```

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use slab::Slab;
use tomte_rpc::{Fault, Later, Value};

/// What the loop delivers to waiting futures: workers' answers and deadlines.
#[derive(Default)]
pub(crate) struct Reactor {
    asks: RefCell<HashMap<u64, AskSlot>>,
    /// Requests of asks polled for the first time, for the loop to send: (ticket, worker,
    /// request).
    outbox: RefCell<Vec<(u64, String, Value)>>,
    /// Tickets of asks sent whose future was dropped unanswered, for the loop to forget.
    cancelled: RefCell<Vec<u64>>,
    next_ticket: Cell<u64>,
    sleeps: RefCell<BTreeMap<(Instant, u64), Waker>>,
    next_sleep: Cell<u64>,
}

#[derive(Default)]
struct AskSlot {
    result: Option<Result<Value, Fault>>,
    waker: Option<Waker>,
}

impl Reactor {
    /// Hands a worker's answer to the [`Ask`] waiting for it; false when none waits any more
    /// (its future was dropped: the client left, a timeout fired).
    pub(crate) fn deliver(&self, ticket: u64, result: Result<Value, Fault>) -> bool {
        let mut asks = self.asks.borrow_mut();
        let Some(slot) = asks.get_mut(&ticket) else { return false };
        slot.result = Some(result);
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
        true
    }

    /// The requests to send to workers, each with the ticket its answer will carry.
    pub(crate) fn take_outbox(&self) -> Vec<(u64, String, Value)> {
        std::mem::take(&mut *self.outbox.borrow_mut())
    }

    /// The asks whose caller went away before their answer came.
    pub(crate) fn take_cancelled(&self) -> Vec<u64> {
        std::mem::take(&mut *self.cancelled.borrow_mut())
    }

    /// The nearest deadline a [`Sleep`] waits for.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.sleeps.borrow().keys().next().map(|k| k.0)
    }

    /// Wakes the sleeps whose deadline has come.
    pub(crate) fn fire(&self, now: Instant) {
        // Called every loop turn: nothing to do (the usual case) costs one look.
        if self.next_deadline().is_none_or(|d| d > now) {
            return;
        }
        let due: Vec<Waker> = {
            let mut sleeps = self.sleeps.borrow_mut();
            let later = sleeps.split_off(&(now, u64::MAX));
            std::mem::replace(&mut *sleeps, later).into_values().collect()
        };
        due.into_iter().for_each(Waker::wake);
    }
}

/// The future of a worker's answer, from [`Ctx::ask`](crate::Ctx::ask).
///
/// The request is sent when the future is first polled — so an ask that is never awaited (in
/// a batch, say, which cannot wait) sends nothing — and several asks awaited together
/// (`tomte::future::join`) are sent together and run at once. Dropping the future forgets the
/// question: a late answer is discarded. The answer is an error when the worker is unknown
/// (−32010), not running or ends before answering (−32011).
#[must_use = "an ask does nothing with its answer unless awaited"]
pub struct Ask {
    state: AskState,
}

enum AskState {
    Unsent { worker: String, request: Value, reactor: Rc<Reactor> },
    Waiting { ticket: u64, reactor: Rc<Reactor> },
    Done,
}

impl Ask {
    pub(crate) fn new(worker: &str, request: Value, reactor: &Rc<Reactor>) -> Ask {
        Ask { state: AskState::Unsent { worker: worker.to_owned(), request, reactor: Rc::clone(reactor) } }
    }

    /// The same ask, failing with −32003 "Timed out" when no answer comes within `limit`
    /// (the question is then forgotten: a late answer is discarded).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use tomte::Method;
    /// let m: Method = Method::new_async("pool.count", |_, ctx| {
    ///     ctx.ask("alpha", "count").within(Duration::from_secs(2))
    /// });
    /// ```
    pub fn within(self, limit: Duration) -> Within {
        let reactor = match &self.state {
            AskState::Unsent { reactor, .. } | AskState::Waiting { reactor, .. } => Rc::clone(reactor),
            AskState::Done => Rc::default(),
        };
        Within { inner: Timeout::new(self, limit, &reactor) }
    }
}

/// An [`Ask`] with a time limit, from [`Ask::within`].
#[must_use = "an ask does nothing with its answer unless awaited"]
#[derive(Debug)]
pub struct Within {
    inner: Timeout<Ask>,
}

impl Future for Within {
    type Output = Result<Value, Fault>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx).map(|r| r.map_err(Fault::from).and_then(|answer| answer))
    }
}

impl Future for Ask {
    type Output = Result<Value, Fault>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let AskState::Unsent { .. } = &self.state {
            let AskState::Unsent { worker, request, reactor } = std::mem::replace(&mut self.state, AskState::Done)
            else {
                unreachable!("matched above")
            };
            let ticket = reactor.next_ticket.get() + 1;
            reactor.next_ticket.set(ticket);
            let slot = AskSlot { result: None, waker: Some(cx.waker().clone()) };
            reactor.asks.borrow_mut().insert(ticket, slot);
            reactor.outbox.borrow_mut().push((ticket, worker, request));
            self.state = AskState::Waiting { ticket, reactor };
            return Poll::Pending;
        }
        match &mut self.state {
            AskState::Unsent { .. } => unreachable!("sent above"),
            AskState::Waiting { ticket, reactor } => {
                let mut asks = reactor.asks.borrow_mut();
                let slot = asks.entry(*ticket).or_default();
                match slot.result.take() {
                    Some(result) => {
                        asks.remove(ticket);
                        drop(asks);
                        self.state = AskState::Done;
                        Poll::Ready(result)
                    }
                    None => {
                        slot.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }
            AskState::Done => Poll::Ready(Err(Fault::internal("polled after it ended"))),
        }
    }
}

impl Drop for Ask {
    fn drop(&mut self) {
        if let AskState::Waiting { ticket, reactor } = &self.state {
            let slot = reactor.asks.borrow_mut().remove(ticket);
            if slot.is_some_and(|s| s.result.is_none()) {
                reactor.cancelled.borrow_mut().push(*ticket);
            }
        }
    }
}

impl fmt::Debug for Ask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            AskState::Waiting { ticket, .. } => write!(f, "Ask(ticket {ticket})"),
            AskState::Unsent { worker, .. } => write!(f, "Ask(unsent, to {worker})"),
            AskState::Done => f.write_str("Ask(done)"),
        }
    }
}

/// A future ready at a deadline, from [`Ctx::sleep`](crate::Ctx::sleep).
#[must_use = "a sleep does nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    id: u64,
    reactor: Rc<Reactor>,
}

impl Sleep {
    pub(crate) fn new(deadline: Instant, reactor: &Rc<Reactor>) -> Sleep {
        let id = reactor.next_sleep.get() + 1;
        reactor.next_sleep.set(id);
        Sleep { deadline, id, reactor: Rc::clone(reactor) }
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut sleeps = self.reactor.sleeps.borrow_mut();
        if Instant::now() >= self.deadline {
            sleeps.remove(&(self.deadline, self.id));
            return Poll::Ready(());
        }
        sleeps.insert((self.deadline, self.id), cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.reactor.sleeps.borrow_mut().remove(&(self.deadline, self.id));
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("deadline", &self.deadline).finish_non_exhaustive()
    }
}

/// A future given a time limit, from [`Ctx::timeout`](crate::Ctx::timeout): its output, or
/// [`Elapsed`] once the limit passes (the inner future is then dropped, cancelling what it
/// waited for).
#[must_use = "a timeout does nothing unless awaited"]
pub struct Timeout<F> {
    future: Pin<Box<F>>,
    sleep: Sleep,
    limit: Duration,
}

impl<F> Timeout<F> {
    pub(crate) fn new(future: F, limit: Duration, reactor: &Rc<Reactor>) -> Timeout<F> {
        let deadline = Instant::now().checked_add(limit).unwrap_or_else(far_future);
        Timeout { future: Box::pin(future), sleep: Sleep::new(deadline, reactor), limit }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 86_400)
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        let limit = self.limit;
        Pin::new(&mut self.sleep).poll(cx).map(|()| Err(Elapsed(limit)))
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout").field("limit", &self.limit).finish_non_exhaustive()
    }
}

/// A [`Timeout`]'s limit passed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed(pub Duration);

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no answer within {:?}", self.0)
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for Fault {
    fn from(e: Elapsed) -> Fault {
        Fault::new(crate::faults::TIMED_OUT, "Timed out").with_data(e.to_string())
    }
}

/// A task that finished: its key, the connection (key, serial) it answers, and the answer.
pub(crate) struct Finished {
    pub(crate) task: usize,
    pub(crate) owner: (usize, u64),
    pub(crate) result: Result<Value, Fault>,
}

/// The tasks the loop drives: each an answer owed to a connection.
pub(crate) struct Tasks {
    tasks: Slab<Task>,
    woken: Arc<Woken>,
}

struct Task {
    future: Later,
    /// The connection (key, serial) the answer goes to.
    owner: (usize, u64),
    waker: Waker,
}

/// Tasks marked ready by their wakers, and how to wake the loop from another thread.
struct Woken {
    ready: Mutex<Vec<usize>>,
    loop_thread: std::thread::ThreadId,
    poll: Option<mio::Waker>,
}

struct TaskWaker {
    key: usize,
    woken: Arc<Woken>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.ready.lock().unwrap_or_else(|p| p.into_inner()).push(self.key);
        // From the loop thread the loop polls the ready tasks before it sleeps; from another
        // thread the poll must be woken.
        if std::thread::current().id() != self.woken.loop_thread {
            if let Some(w) = &self.woken.poll {
                let _ = w.wake();
            }
        }
    }
}

impl Tasks {
    /// A task set; `poll` wakes the loop when a task is woken from another thread.
    pub(crate) fn new(poll: Option<mio::Waker>) -> Tasks {
        let woken = Woken { ready: Mutex::new(Vec::new()), loop_thread: std::thread::current().id(), poll };
        Tasks { tasks: Slab::new(), woken: Arc::new(woken) }
    }

    /// Starts a task answering connection `owner`; it is polled on the next [`Tasks::run`].
    pub(crate) fn spawn(&mut self, future: Later, owner: (usize, u64)) -> usize {
        let entry = self.tasks.vacant_entry();
        let key = entry.key();
        let waker = Waker::from(Arc::new(TaskWaker { key, woken: Arc::clone(&self.woken) }));
        entry.insert(Task { future, owner, waker });
        self.woken.ready.lock().unwrap_or_else(|p| p.into_inner()).push(key);
        key
    }

    /// Drops a task (its client left): what it waited for is cancelled with it.
    pub(crate) fn cancel(&mut self, key: usize) {
        self.tasks.try_remove(key);
    }

    /// Whether some task is ready to be polled.
    pub(crate) fn has_ready(&self) -> bool {
        !self.woken.ready.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Polls every ready task once; returns the answers of those that finished.
    pub(crate) fn run(&mut self) -> Vec<Finished> {
        let mut ready = std::mem::take(&mut *self.woken.ready.lock().unwrap_or_else(|p| p.into_inner()));
        ready.sort_unstable();
        ready.dedup();
        let mut done = Vec::new();
        for key in ready {
            let Some(task) = self.tasks.get_mut(key) else { continue };
            let waker = task.waker.clone();
            let mut cx = Context::from_waker(&waker);
            // The registry wraps every method's future so that a panic is an answer (−32603).
            if let Poll::Ready(result) = task.future.as_mut().poll(&mut cx) {
                let task = self.tasks.remove(key);
                done.push(Finished { task: key, owner: task.owner, result });
            }
        }
        done
    }

    /// Tasks not finished yet.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }
}
