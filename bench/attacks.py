#!/usr/bin/env python3
"""The attacks of the hardening issue, one after another, against the release echo daemon.

    cargo build --release -p tomte-bench && python3 bench/attacks.py [target/release/echo]

For each attack: another client's latency (one call at a time on its own unix connection,
median / p99 / max) during the attack against just before it, and the daemon's RssAnon, VmRSS
and open fds before, during and a few seconds after. Loopback and a temp dir only; the daemon
is stopped by its pid at the end.
"""
import json, os, socket, subprocess, sys, tempfile, threading, time

ECHO = b'{"jsonrpc":"2.0","method":"my.echo","params":["ok"],"id":1}\n'


def status_kb(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


VICTIM = r"""
import socket, sys, time, json
path, seconds = sys.argv[1], float(sys.argv[2])
ECHO = b'{"jsonrpc":"2.0","method":"my.echo","params":["ok"],"id":1}\n'
lat, errors, s, end = [], 0, None, time.time() + seconds
while time.time() < end:
    t = time.perf_counter()
    try:
        if s is None:
            s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(path); f = s.makefile("rb")
        s.sendall(ECHO)
        if b'"ok"' not in f.readline():
            raise OSError("bad answer")
        lat.append(time.perf_counter() - t)
    except OSError:
        errors += 1; s = None; time.sleep(0.01)
print(json.dumps({"lat": lat, "errors": errors}))
"""


class Victim:
    """One client, in a process of its own (no GIL shared with the attackers), calling my.echo
    over and over on the unix socket."""

    def __init__(self, path):
        self.path = path

    def measure(self, seconds):
        out = subprocess.run([sys.executable, "-c", VICTIM, self.path, str(seconds)], capture_output=True, text=True)
        r = json.loads(out.stdout)
        lat = sorted(r["lat"]) or [float("nan")]
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e6
        return (f"median {p(0.5):.0f} us, p99 {p(0.99):.0f} us, max {lat[-1]*1e6:.0f} us, "
                f"{len(r['lat'])} calls, {r['errors']} errors")


def attack(name, pid, victim, setup, teardown=None, during=3.0):
    quiet = victim.measure(1.0)
    before = (status_kb(pid, "RssAnon"), status_kb(pid, "VmRSS"), fds(pid))
    state = setup()
    # The daemon's CPU for the attack alone, before the victim adds its own calls.
    ticks, t0 = cpu_ticks(pid), time.time()
    time.sleep(1.0)
    cpu = (cpu_ticks(pid) - ticks) / os.sysconf("SC_CLK_TCK") / (time.time() - t0)
    loaded = victim.measure(during)
    mid = (status_kb(pid, "RssAnon"), status_kb(pid, "VmRSS"), fds(pid))
    if teardown:
        teardown(state)
    del state
    time.sleep(3)
    after = (status_kb(pid, "RssAnon"), status_kb(pid, "VmRSS"), fds(pid))
    print(f"## {name}")
    print(f"  victim unloaded: {quiet}")
    print(f"  victim during:   {loaded}")
    print(f"  RssAnon/VmRSS kB, fds: before {before}, during {mid}, 3 s after {after}; daemon CPU for the attack alone ~{cpu*100:.0f} % of a core")
    sys.stdout.flush()


def tcp(port):
    s = socket.create_connection(("127.0.0.1", port))
    return s


def main():
    echo = sys.argv[1] if len(sys.argv) > 1 else "target/release/echo"
    d = tempfile.mkdtemp(prefix="tomte-attacks-")
    sock, pidf = f"{d}/e.sock", f"{d}/e.pid"
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    # A 64 MiB message limit, so that the 1 000 000-member XML-RPC struct (55 MiB) fits.
    subprocess.run([echo, "start", "--socket", f"unix://{sock}", "--socket", f"tcp://127.0.0.1:{port}",
                    "--max-message", str(64 << 20),
                    "--pidfile", pidf, "--log", f"{d}/e.log"], check=True)
    pid = int(open(pidf).read())
    v = Victim(sock)
    try:
        def big_object():
            body = "{" + ",".join(f'"k{i}":{i}' for i in range(100_000)) + "}"
            req = ('{"jsonrpc":"2.0","method":"my.echo","params":{"message":"x","extra":%s},"id":9}\n' % body).encode()
            s = socket.socket(socket.AF_UNIX); s.connect(sock)
            t = time.perf_counter()
            s.sendall(req)
            s.makefile("rb").readline()
            print(f"  (the 100 000-member object, {len(req)} bytes, answered in {(time.perf_counter()-t)*1e3:.0f} ms)")
            return s
        attack("100 000-member JSON object (1.3 MB), repeated", pid, v, lambda: [big_object() for _ in range(3)], during=1.0)

        def idle_and_slow():
            conns = []
            for i in range(2048):
                try:
                    c = tcp(port)
                    if i % 2:
                        c.sendall(b"{")
                    conns.append(c)
                except OSError:
                    pass
            return conns
        attack("1024 idle + 1024 dripping TCP connections", pid, v, idle_and_slow,
               lambda cs: [c.close() for c in cs])

        def big_lines():
            conns = []
            for _ in range(50):
                c = socket.socket(socket.AF_UNIX); c.connect(sock); c.settimeout(2)
                try:
                    c.sendall(b'{"jsonrpc":"2.0","method":"my.echo","params":["' + b"x" * (15 << 20))
                except OSError:
                    pass
                conns.append(c)
            return conns
        attack("50 connections each holding a 15 MiB unfinished line", pid, v, big_lines,
               lambda cs: [c.close() for c in cs])

        def no_reader():
            c = tcp(port)
            c.settimeout(3)
            line = b'{"jsonrpc":"2.0","method":"system.listMethods","id":1}\n'
            try:
                c.sendall(ECHO + b" " * (8 << 20) + b"\n")
                for _ in range(40):
                    c.sendall(line * 20000)
            except OSError:
                pass
            return c
        attack("pipelining cheap requests with expensive answers, never reading", pid, v, no_reader, lambda c: c.close())

        def drip_spaces():
            c = socket.socket(socket.AF_UNIX); c.connect(sock)
            c.sendall(ECHO)
            c.recv(100)
            c.sendall(b" " * (15 << 20))
            stop = []
            def drip():
                while not stop:
                    try:
                        c.sendall(b" ")
                    except OSError:
                        return
                    time.sleep(0.001)
            th = threading.Thread(target=drip); th.start()
            return (c, stop, th)
        def undrip(st):
            st[1].append(1); st[2].join(); st[0].close()
        attack("dripping spaces after 15 MiB of them", pid, v, drip_spaces, undrip)

        def xml_struct():
            members = "".join(f"<member><name>m{i}</name><value><i4>{i}</i4></value></member>" for i in range(1_000_000))
            body = f"<?xml version='1.0'?><methodCall><methodName>my.echo</methodName><params><param><value><struct>{members}</struct></value></param></params></methodCall>".encode()
            c = tcp(port)
            c.sendall(b"POST /RPC2 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            c.settimeout(60)
            t = time.perf_counter()
            c.recv(4096)
            print(f"  (the 1 000 000-member struct, {len(body)>>20} MiB, answered in {(time.perf_counter()-t)*1e3:.0f} ms)")
            return c
        attack("an XML-RPC call with a 1 000 000-member struct", pid, v, xml_struct, lambda c: c.close(), during=1.0)

        def many_calls():
            stop = []
            def client():
                s = socket.socket(socket.AF_UNIX); s.connect(sock)
                batch = ECHO * 64
                f = s.makefile("rb")
                while not stop:
                    s.sendall(batch)
                    for _ in range(64):
                        f.readline()
                s.close()
            ths = [threading.Thread(target=client) for _ in range(64)]
            [t.start() for t in ths]
            return (stop, ths)
        def end_calls(st):
            st[0].append(1); [t.join() for t in st[1]]
        attack("64 clients pipelining my.echo", pid, v, many_calls, end_calls, during=5.0)
    finally:
        os.kill(pid, 15)
        time.sleep(0.5)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    main()
