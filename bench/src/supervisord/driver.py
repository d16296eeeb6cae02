"""The client side of `tomte-bench supervisord`: one XML-RPC transport over a unix socket,
used alike against supervisord and a tomte daemon.

    driver.py calls  SOCKET METHOD SECONDS   one call at a time for SECONDS: prints calls/s
                                             and the number of calls
    driver.py hammer SOCKET METHOD           calls until killed, (re)connecting as needed
    driver.py launch SOCKET SIDE N           prints "ready", then "done" once N children run
    driver.py kills  SOCKET SIDE COUNT FIRST kill -9 COUNT children from the FIRSTth (sorted
                                             by name): prints each one's time to a running
                                             replacement, in ms, as a JSON list

SIDE is `supervisord` or `tomte`. Children are listed with supervisor.getAllProcessInfo or
worker.list; a child is running when supervisord says RUNNING, or tomte says looping.
"""

import http.client
import json
import os
import signal
import socket
import sys
import time
import xmlrpc.client

# How often the launch and kill waits ask: the same for both sides.
POLL = 0.001
PATIENCE = 30.0


class UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 to a unix socket; the Host header says localhost."""

    def __init__(self, path):
        super().__init__("localhost")
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class UnixTransport(xmlrpc.client.Transport):
    """xmlrpc.client's transport (keep-alive included) over a UnixConnection."""

    def __init__(self, path):
        super().__init__()
        self.unix_path = path

    def make_connection(self, host):
        if self._connection and host == self._connection[0]:
            return self._connection[1]
        self._connection = host, UnixConnection(self.unix_path)
        return self._connection[1]


def proxy(path):
    return xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=UnixTransport(path))


# What goes wrong while a manager is not up yet, or going away.
TRANSIENT = (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError)


def listing(server, side):
    """name -> (pid, running) of every child (supervisord's names are GROUP:NAME)."""
    if side == "supervisord":
        return {
            f"{p['group']}:{p['name']}": (p["pid"], p["statename"] == "RUNNING")
            for p in server.supervisor.getAllProcessInfo()
        }
    return {w["name"]: (w["pid"], w["state"] == "looping") for w in getattr(server, "worker.list")()}


def one(server, side, name):
    """(pid, running) of child NAME."""
    if side == "supervisord":
        p = server.supervisor.getProcessInfo(name)
        return p["pid"], p["statename"] == "RUNNING"
    return listing(server, side)[name]


def check(method, answer):
    """An answer that is not what the method gives would make a cheap, wrong figure."""
    if method == "supervisor.getState":
        ok = answer.get("statename") == "RUNNING"
    else:
        ok = isinstance(answer, dict) and "pid" in answer
    if not ok:
        sys.exit(f"{method} answered {answer!r}")


def calls(path, method, seconds):
    call = getattr(proxy(path), method)
    check(method, call())
    n, start = 0, time.monotonic()
    end = start + seconds
    while True:
        for _ in range(20):
            call()
        n += 20
        now = time.monotonic()
        if now >= end:
            break
    check(method, call())
    # The rate, and every call made (the two checks too).
    print(f"{n / (now - start):.1f} {n + 2}")


def hammer(path, method):
    while True:
        try:
            call = getattr(proxy(path), method)
            while True:
                call()
        except TRANSIENT:
            time.sleep(POLL)


def launch(path, side, n):
    print("ready", flush=True)
    deadline = time.monotonic() + PATIENCE
    server = None
    while True:
        try:
            server = server or proxy(path)
            if sum(running for _, running in listing(server, side).values()) >= n:
                break
        except TRANSIENT:
            server = None
        if time.monotonic() > deadline:
            sys.exit(f"{side}: not {n} children running after {PATIENCE} s")
        time.sleep(POLL)
    print("done", flush=True)


def kills(path, side, count, first):
    server = proxy(path)
    names = sorted(listing(server, side))
    times = []
    for k in range(count):
        name = names[(first + k) % len(names)]
        old, running = one(server, side, name)
        if not running or not old:
            sys.exit(f"{side}: child {name} not running before the kill")
        start = time.monotonic()
        os.kill(old, signal.SIGKILL)
        while True:
            pid, running = one(server, side, name)
            if running and pid and pid != old:
                break
            if time.monotonic() - start > PATIENCE:
                sys.exit(f"{side}: child {name} not replaced {PATIENCE} s after kill -9 of {old}")
            time.sleep(POLL)
        times.append((time.monotonic() - start) * 1e3)
        # Let the manager settle before the next one.
        time.sleep(0.05)
    print(json.dumps(times))


def main():
    mode, path, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    if mode == "calls":
        calls(path, rest[0], float(rest[1]))
    elif mode == "hammer":
        hammer(path, rest[0])
    elif mode == "launch":
        launch(path, rest[0], int(rest[1]))
    elif mode == "kills":
        kills(path, rest[0], int(rest[1]), int(rest[2]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
