// The tomte dashboard: the status, workers (pools with their instances), calls/s and methods of the daemon that serves this
// page, read with its own JSON-RPC (POST /) and event stream (GET /events). Every string the
// daemon sends goes into the page as text (textContent, attributes): none is parsed as HTML.
// Actions are POSTs with Content-Type: application/json, which no cross-site form can send.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN = 'tomte.token';
  const POINTS = 120; // sparkline: one point a second
  const COLUMNS = ['name', 'state', 'pid', 'restarts', 'iterations', 'asks', 'in_flight', 'uptime'];
  // A pool's state is its liveliest instance's (as the daemon says it).
  const LIVELY = ['looping', 'paused', 'spinup', 'spindown', 'backoff', 'exited', 'failed'];
  const ACTIONS = ['pause', 'resume', 'restart'];
  const PERMISSION_DENIED = -32001;
  let nextId = 1;

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const show = (v) => (v === null || v === undefined ? '–' : String(v));
  const pad = (n) => String(n).padStart(2, '0');
  function duration(s) {
    if (typeof s !== 'number' || !isFinite(s)) return '–';
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${pad(m)}m`;
    return m ? `${m}m ${pad(s % 60)}s` : `${s % 60}s`;
  }

  // ---- JSON-RPC ----

  class RpcError extends Error {
    constructor(code, message, data) {
      super(String(message));
      this.code = code;
      this.data = data;
    }
    text() {
      const data = this.data === undefined || this.data === null ? '' : `: ${typeof this.data === 'string' ? this.data : JSON.stringify(this.data)}`;
      return `${this.message}${data}`;
    }
  }

  function token() {
    try {
      return sessionStorage.getItem(TOKEN) || '';
    } catch (_) {
      return '';
    }
  }

  async function post(body) {
    const headers = { 'Content-Type': 'application/json' };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    const r = await fetch('/', { method: 'POST', headers, body: JSON.stringify(body), cache: 'no-store', redirect: 'error' });
    const text = await r.text();
    let v;
    try {
      v = JSON.parse(text);
    } catch (_) {
      throw new RpcError(r.status, `HTTP ${r.status}`, text.slice(0, 200));
    }
    if (!r.ok && !(v && v.error) && !Array.isArray(v)) throw new RpcError(r.status, `HTTP ${r.status}`, text.slice(0, 200));
    return v;
  }

  function unwrap(v) {
    if (v && v.error) throw new RpcError(v.error.code, v.error.message, v.error.data);
    return v ? v.result : undefined;
  }

  const rpc = async (method, params) => unwrap(await post({ jsonrpc: '2.0', method, params: params || [], id: nextId++ }));

  // ---- messages ----

  let lastProblem = '';
  function message(text, kind) {
    const list = $('messages');
    const li = el('li', { 'data-kind': kind || 'info' });
    li.append(el('time', {}, new Date().toLocaleTimeString()), ' ', text);
    list.prepend(li);
    while (list.children.length > 40) list.lastChild.remove();
  }
  // A failing poll is said once, not once a second.
  function problem(what, e) {
    const text = `${what}: ${e instanceof RpcError ? e.text() : e && e.message ? e.message : e}`;
    if (text !== lastProblem) message(text, e && e.code === PERMISSION_DENIED ? 'refused' : 'error');
    lastProblem = text;
  }
  const ok = () => {
    lastProblem = '';
  };
  function live(state) {
    const l = $('live');
    l.dataset.live = state;
    l.textContent = state;
  }

  // ---- workers ----

  // A row a worker, a pool (data-kind="pool", the size in its pid cell) or a pool's instance
  // (data-kind="instance", data-pool=POOL), each instance under its pool's row.
  const rows = new Map();
  let seq = 0; // events applied so far: a worker.list sent before an event must not undo it
  const cell = (tr, c) => tr.querySelector(`td.${c}`);
  const members = (pool) => [...rows.values()].filter((tr) => tr.dataset.pool === pool);

  function row(name, kind, pool) {
    let tr = rows.get(name);
    if (tr) return tr;
    tr = el('tr', { 'data-kind': kind });
    tr.dataset.worker = name;
    if (pool) tr.dataset.pool = pool;
    for (const c of COLUMNS) tr.append(el('td', { class: c }, '–'));
    cell(tr, 'name').textContent = name;
    const td = el('td', { class: 'actions' });
    for (const a of ACTIONS) td.append(el('button', { type: 'button', 'data-action': a }, a));
    td.append(el('span', { class: 'note', role: 'status' }));
    tr.append(td);
    rows.set(name, tr);
    // A new instance goes after its pool's last row (the next worker.list puts it in order).
    const after = pool && [rows.get(pool), ...members(pool)].filter((r) => r && r !== tr).pop();
    if (after) after.after(tr);
    else $('workers-body').append(tr);
    $('workers-empty').hidden = true;
    return tr;
  }

  function setState(tr, state, pid) {
    tr.dataset.state = state;
    cell(tr, 'state').textContent = state;
    if (tr.dataset.kind !== 'pool') cell(tr, 'pid').textContent = show(pid);
    buttons(tr);
  }

  // A pool's state and buttons from its instances' rows.
  function poolState(pool) {
    const tr = rows.get(pool);
    if (!tr) return;
    const states = members(pool).map((r) => r.dataset.state);
    const best = states.map((s) => LIVELY.indexOf(s)).filter((i) => i >= 0);
    if (best.length) setState(tr, LIVELY[Math.min(...best)]);
    else buttons(tr);
  }

  function buttons(tr) {
    const busy = tr.dataset.busy === '1';
    // A pool can be paused while one of its instances is not, resumed while one is paused.
    const states = tr.dataset.kind === 'pool' && tr.dataset.worker ? members(tr.dataset.worker).map((r) => r.dataset.state) : [];
    if (!states.length) states.push(tr.dataset.state);
    for (const b of tr.querySelectorAll('button[data-action]')) {
      const a = b.dataset.action;
      b.disabled = busy || (a === 'pause' && states.every((s) => s === 'paused')) || (a === 'resume' && !states.includes('paused'));
    }
  }

  function fill(tr, w, at) {
    if ((Number(tr.dataset.seq) || 0) <= at) setState(tr, String(w.state), w.pid);
    cell(tr, 'restarts').textContent = show(w.restarts);
    cell(tr, 'iterations').textContent = show(w.iterations);
    cell(tr, 'asks').textContent = show(w.asks);
    cell(tr, 'in_flight').textContent = show(w.in_flight);
    cell(tr, 'uptime').textContent = duration(w.uptime);
    if (typeof w.last_exit === 'string') tr.title = `last exit: ${w.last_exit}`;
  }

  async function refreshWorkers() {
    const at = seq;
    let list;
    try {
      list = await rpc('worker.list');
    } catch (e) {
      problem('worker.list', e);
      return;
    }
    if (!Array.isArray(list)) return;
    const order = [];
    for (const w of list) {
      if (!w || typeof w.name !== 'string') continue;
      if (w.pool === true && Array.isArray(w.instances)) {
        const tr = row(w.name, 'pool');
        fill(tr, w, at);
        cell(tr, 'pid').textContent = `${show(w.size)} instance${w.size === 1 ? '' : 's'}, ${show(w.queued)} queued`;
        order.push(tr);
        for (const i of w.instances) {
          if (!i || typeof i.name !== 'string') continue;
          const ir = row(i.name, 'instance', w.name);
          fill(ir, i, at);
          order.push(ir);
        }
        if (w.instances.length) poolState(w.name);
      } else {
        const tr = row(w.name, 'worker');
        fill(tr, w, at);
        order.push(tr);
      }
    }
    const seen = new Set(order);
    for (const [name, tr] of rows) {
      if (!seen.has(tr)) {
        tr.remove();
        rows.delete(name);
      }
    }
    const body = $('workers-body');
    if (order.some((tr, i) => body.children[i] !== tr)) body.append(...order);
    $('workers-empty').hidden = rows.size > 0;
  }

  function onEvent(m) {
    let ev;
    try {
      ev = JSON.parse(m.data);
    } catch (_) {
      return;
    }
    const d = ev && ev.data;
    if (ev.name !== 'daemon.worker.state' || !d || typeof d.worker !== 'string') return;
    const pool = typeof d.pool === 'string' ? d.pool : '';
    const ended = ['exited', 'backoff', 'failed'].includes(d.state);
    // An instance scaled away tells its end after worker.list dropped it: no row again.
    if (!rows.has(d.worker) && pool && ended) return;
    const tr = row(d.worker, pool ? 'instance' : 'worker', pool);
    tr.dataset.seq = String(++seq);
    tr.dataset.eventState = String(d.state); // data-event-state: the last state the stream told
    setState(tr, String(d.state), d.pid);
    if (pool) poolState(pool);
    const exit = ended && typeof d.last_exit === 'string' ? ` (${d.last_exit})` : '';
    message(`${d.worker} ${d.state}${exit}`, 'event');
    $('live').dataset.events = String(seq);
  }

  let stream = null;
  function listen() {
    stream = new EventSource('/events?pattern=daemon.worker.*');
    stream.onopen = () => live('live');
    stream.onmessage = onEvent;
    stream.onerror = () => {
      // The browser retries a dropped stream itself, but not one refused with an HTTP status.
      if (stream.readyState === EventSource.CLOSED) {
        live('offline');
        setTimeout(listen, 5000);
      } else {
        live('reconnecting');
      }
    };
  }

  async function act(tr, action) {
    const name = tr.dataset.worker, note = tr.querySelector('.note');
    tr.dataset.busy = '1';
    buttons(tr);
    note.textContent = `${action}…`;
    note.dataset.kind = 'pending';
    note.removeAttribute('title');
    delete note.dataset.code;
    try {
      const done = await rpc(`worker.${action}`, [name]);
      const said = done === false ? 'not done' : 'done';
      note.textContent = `${action}: ${said}`;
      note.dataset.kind = done === false ? 'warn' : 'ok';
      message(`worker.${action}(${name}): ${said}`, 'ok');
    } catch (e) {
      const text = e instanceof RpcError ? e.text() : String(e);
      const refused = e.code === PERMISSION_DENIED;
      // The row says the error's message; its title and the messages below say the rest.
      note.textContent = e instanceof RpcError ? e.message : text;
      note.title = text;
      note.dataset.kind = refused ? 'refused' : 'error';
      note.dataset.code = String(e.code);
      message(`worker.${action}(${name}) ${refused ? 'refused' : 'failed'}: ${text}`, refused ? 'refused' : 'error');
    } finally {
      tr.dataset.busy = '0';
      buttons(tr);
      refreshWorkers();
    }
  }

  // ---- status and the calls/s sparkline ----

  const rates = [];
  let last = null;

  async function refreshStatus() {
    let s;
    try {
      s = await rpc('daemon.status');
    } catch (e) {
      problem('daemon.status', e);
      return;
    }
    if (!s || typeof s !== 'object') return;
    ok();
    $('d-name').textContent = show(s.name);
    document.title = `${show(s.name)} · tomte`;
    $('d-version').textContent = s.version ? `v${s.version}` : '';
    $('d-pid').textContent = show(s.pid);
    $('d-uptime').textContent = duration(s.uptime);
    $('d-connections').textContent = show(s.connections);
    const you = s.you || {};
    const who = you.token ? `token ${you.token}` : you.user || you.address || '';
    $('d-you').textContent = `${who ? `${who}: ` : ''}${Array.isArray(you.grants) ? you.grants.join(', ') || 'nothing' : '–'}`;
    const calls = await totalCalls(s);
    if (calls === null) {
      $('rate-max').textContent = 'this daemon does not count its calls';
      return;
    }
    $('d-calls').textContent = String(calls);
    const now = performance.now();
    if (last && now > last.t) rates.push(Math.max(0, calls - last.calls) / ((now - last.t) / 1000));
    last = { t: now, calls };
    if (rates.length > POINTS) rates.shift();
    draw();
  }

  // The calls served so far: daemon.status's `calls`, else the sum of tomte_rpc_calls_total
  // in /metrics (a daemon that has one and not the other); null when neither says.
  async function totalCalls(s) {
    if (typeof s.calls === 'number') return s.calls;
    try {
      const t = token();
      const r = await fetch('/metrics', { headers: t ? { Authorization: `Bearer ${t}` } : {}, cache: 'no-store' });
      if (!r.ok) return null;
      let sum = null;
      for (const line of (await r.text()).split('\n')) {
        if (!/^tomte_rpc_calls_total[{ ]/.test(line)) continue;
        const v = Number(line.slice(line.lastIndexOf(' ') + 1));
        if (Number.isFinite(v)) sum = (sum || 0) + v;
      }
      return sum;
    } catch (_) {
      return null;
    }
  }

  function draw() {
    if (!rates.length) return;
    const max = Math.max(1, ...rates);
    // The width holds the last two minutes, or half a minute while fewer have been seen.
    const span = Math.max(30, rates.length);
    const x = (i) => ((120 * (span - rates.length + i)) / (span - 1)).toFixed(2);
    const points = rates.map((r, i) => `${x(i)},${(39 - (37 * r) / max).toFixed(2)}`);
    $('spark-line').setAttribute('points', points.join(' '));
    $('spark-area').setAttribute('points', `${x(0)},40 ${points.join(' ')} 120,40`);
    const now = rates[rates.length - 1];
    $('rate-now').textContent = now < 10 ? now.toFixed(1) : String(Math.round(now));
    $('rate-max').textContent = `max ${Math.round(Math.max(...rates))}`;
  }

  // ---- methods ----

  async function loadMethods() {
    let names;
    try {
      names = await rpc('system.listMethods');
    } catch (e) {
      problem('system.listMethods', e);
      return;
    }
    names = (Array.isArray(names) ? names : []).filter((n) => typeof n === 'string').sort();
    const help = new Map();
    if (names.length) {
      // One batch: a call per method, matched back by id.
      const batch = names.map((n, i) => ({ jsonrpc: '2.0', method: 'system.methodHelp', params: [n], id: i + 1 }));
      try {
        const answers = await post(batch);
        for (const a of Array.isArray(answers) ? answers : []) {
          if (a && Number.isInteger(a.id) && names[a.id - 1] && typeof a.result === 'string') help.set(names[a.id - 1], a.result);
        }
      } catch (e) {
        problem('system.methodHelp', e);
      }
    }
    const list = $('methods-list');
    list.replaceChildren();
    for (const n of names) {
      const dt = el('dt', { 'data-method': n });
      dt.append(el('code', {}, n));
      list.append(dt, el('dd', {}, help.get(n) || ''));
    }
    $('methods-count').textContent = String(names.length);
  }

  // ---- the token ----

  function tokenShown() {
    const set = token() !== '';
    $('token').placeholder = set ? 'token set for this tab' : 'bearer token (optional)';
    $('token-form').dataset.token = set ? 'set' : 'none';
  }

  function every(ms, f) {
    const tick = async () => {
      try {
        await f();
      } finally {
        setTimeout(tick, ms);
      }
    };
    tick();
  }

  function start() {
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const v = $('token').value.trim();
      try {
        if (v) sessionStorage.setItem(TOKEN, v);
        else sessionStorage.removeItem(TOKEN);
      } catch (_) {
        message('this browser keeps no session storage: the token is not kept', 'error');
      }
      $('token').value = '';
      tokenShown();
      message(v ? 'token set for this tab' : 'token cleared', 'info');
      refreshStatus();
      loadMethods();
    });
    $('token-clear').addEventListener('click', () => {
      try {
        sessionStorage.removeItem(TOKEN);
      } catch (_) {
        // nothing kept, nothing to clear
      }
      tokenShown();
      message('token cleared', 'info');
      refreshStatus();
      loadMethods();
    });
    $('workers-body').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-action]');
      const tr = b && b.closest('tr[data-worker]');
      if (tr && !b.disabled) act(tr, b.dataset.action);
    });
    tokenShown();
    every(1000, refreshStatus);
    every(3000, refreshWorkers);
    loadMethods();
    listen();
  }

  start();
})();
