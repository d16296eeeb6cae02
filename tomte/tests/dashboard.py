"""Headless Chromium for tests/dashboard.rs, driven with Selenium.

One browser for the life of this process. It reads one JSON command a line on stdin and
writes one JSON answer a line on stdout ({"ok": ...} or {"error": ..., "page": ..., "console": ...});
at the end of stdin (the test is over, or it panicked and dropped its pipe) it quits the
browser and chromedriver, so nothing it started outlives it.

Commands (each waits up to "limit" seconds, 60 by default, polling; a wait is never an
assertion about time, only a bound for a hang):
  {"op": "open", "url": U}                         load U (returns the final URL)
  {"op": "rows", "names": [..]}                    wait until those workers have rows with a state
  {"op": "click", "worker": W, "action": A}        click button data-action=A in row W
  {"op": "state", "worker": W, "state": S}         wait until row W's state cell reads S, and the
                                                   event stream has told S (data-event-state);
                                                   with "pid_not": P, and its pid is not P
  {"op": "shows", "worker": W, "state": S}         wait until row W's state cell reads S (a pool's
                                                   row: the liveliest of its instances' rows)
  {"op": "no_row", "worker": W}                    wait until there is no row W
  {"op": "table"}                                  every row in order: worker, kind, pool, cells
  {"op": "note", "worker": W, "contains": T}       wait until row W's note contains T
  {"op": "text", "id": I}                          the text of element #I
  {"op": "wait_text", "id": I, "contains": T}      wait until #I's text contains T
  {"op": "wait_attr", "id": I, "name": A, "min_items": N}
                                                   wait until #I's attribute A has N or more
                                                   space-separated items; its value
  {"op": "type", "id": I, "text": T}               type T into the input #I
  {"op": "press", "id": I}                         click the element #I (a button)
  {"op": "js", "script": S}                        what script S returns
  {"op": "serve", "html": H}                       serve H at http://127.0.0.1:PORT/ (another port)
  {"op": "navigated", "prefix": P}                 wait until the URL starts with P and the page
                                                   is loaded; its URL and text
  {"op": "screenshot", "path": F}                  a PNG of the window
  {"op": "console"}                                the browser's console messages so far

Options: --chromium PATH, --chromedriver PATH, --profile DIR (the user data dir), --size WxH.
"""

import argparse
import http.server
import json
import sys
import threading
import time
import traceback

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    ap.add_argument("--profile", required=True)
    ap.add_argument("--size", default="1200x800")
    args = ap.parse_args()
    width, height = (int(n) for n in args.size.split("x"))

    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in [
        "--headless=new",
        "--no-sandbox",  # run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--user-data-dir={args.profile}",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A driver path given: Selenium Manager is not asked to find (or download) one.
    service = Service(executable_path=args.chromedriver, log_output=f"{args.profile}/chromedriver.log")
    driver = webdriver.Chrome(service=service, options=options)
    # The window's size is the page's (the viewport) plus whatever frame the browser keeps.
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
    console = []
    servers = []
    try:
        reply({"ok": "ready"})
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            try:
                reply({"ok": run(driver, cmd, console, servers)})
            except Exception as e:  # the test shows it, with the page and the console
                console.extend(logs(driver))
                try:
                    page = driver.find_element(By.TAG_NAME, "body").text[:4000]
                except Exception:
                    page = None
                reply({"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(), "page": page, "console": console})
    finally:
        for s in servers:
            s.shutdown()
        driver.quit()


def reply(v):
    sys.stdout.write(json.dumps(v) + "\n")
    sys.stdout.flush()


def logs(driver):
    try:
        return [f"{e.get('level')}: {e.get('message')}" for e in driver.get_log("browser")]
    except Exception as e:
        return [f"(no console log: {e})"]


def until(what, limit, f):
    """Polls f until it returns something truthy; fails naming what it waited for."""
    deadline = time.monotonic() + limit
    last = None
    while True:
        try:
            v = f()
            if v:
                return v
        except Exception as e:  # a row re-rendered under us, a page loading: look again
            last = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {limit}s for {what} (last error: {last})")
        time.sleep(0.05)


def row(driver, worker):
    for tr in driver.find_elements(By.CSS_SELECTOR, "#workers-body tr[data-worker]"):
        if tr.get_attribute("data-worker") == worker:
            return tr
    return None


def row_info(tr):
    cells = {c: tr.find_element(By.CSS_SELECTOR, f"td.{c}").text for c in ["name", "state", "pid", "restarts", "iterations", "uptime"]}
    cells["event_state"] = tr.get_attribute("data-event-state")
    cells["kind"] = tr.get_attribute("data-kind")
    cells["pool"] = tr.get_attribute("data-pool")
    for c in ["asks", "in_flight"]:
        found = tr.find_elements(By.CSS_SELECTOR, f"td.{c}")
        cells[c] = found[0].text if found else None
    cells["note"] = tr.find_element(By.CSS_SELECTOR, ".note").text
    cells["note_code"] = tr.find_element(By.CSS_SELECTOR, ".note").get_attribute("data-code")
    return cells


def run(driver, cmd, console, servers):
    op, limit = cmd["op"], cmd.get("limit", 60)
    if op == "open":
        driver.get(cmd["url"])
        return driver.current_url
    if op == "rows":
        def ready():
            found = {}
            for name in cmd["names"]:
                tr = row(driver, name)
                if tr is None or tr.find_element(By.CSS_SELECTOR, "td.state").text in ("", "–"):
                    return None
                found[name] = row_info(tr)
            return found
        return until(f"rows {cmd['names']}", limit, ready)
    if op == "click":
        tr = until(f"row {cmd['worker']}", limit, lambda: row(driver, cmd["worker"]))
        button = tr.find_element(By.CSS_SELECTOR, f"button[data-action='{cmd['action']}']")
        until(f"{cmd['action']} enabled", limit, button.is_enabled)
        button.click()
        return row_info(tr)
    if op == "state":
        def there():
            tr = row(driver, cmd["worker"])
            info = tr and row_info(tr)
            if not info or info["state"] != cmd["state"] or info["event_state"] != cmd["state"]:
                return None
            return info if info["pid"] != cmd.get("pid_not") else None
        return until(f"{cmd['worker']} {cmd['state']} (cell and event) {cmd.get('pid_not', '')}", limit, there)
    if op == "shows":
        def shown():
            tr = row(driver, cmd["worker"])
            info = tr and row_info(tr)
            return info if info and info["state"] == cmd["state"] else None
        return until(f"{cmd['worker']} {cmd['state']} (cell)", limit, shown)
    if op == "no_row":
        return until(f"no row {cmd['worker']}", limit, lambda: row(driver, cmd["worker"]) is None)
    if op == "table":
        def table():
            return [dict(row_info(tr), worker=tr.get_attribute("data-worker"))
                    for tr in driver.find_elements(By.CSS_SELECTOR, "#workers-body tr[data-worker]")]
        return until("the table", limit, table)
    if op == "note":
        def noted():
            tr = row(driver, cmd["worker"])
            info = tr and row_info(tr)
            return info if info and cmd["contains"] in info["note"] else None
        return until(f"{cmd['worker']}'s note to say {cmd['contains']!r}", limit, noted)
    if op == "text":
        return driver.find_element(By.ID, cmd["id"]).text
    if op == "wait_text":
        def said():
            t = driver.find_element(By.ID, cmd["id"]).text
            return t if cmd["contains"] in t else None
        return until(f"#{cmd['id']} to say {cmd['contains']!r}", limit, said)
    if op == "wait_attr":
        def filled():
            v = driver.find_element(By.ID, cmd["id"]).get_attribute(cmd["name"]) or ""
            return v if len(v.split()) >= cmd.get("min_items", 1) else None
        return until(f"#{cmd['id']}'s {cmd['name']} to have {cmd.get('min_items', 1)} items", limit, filled)
    if op == "type":
        e = driver.find_element(By.ID, cmd["id"])
        e.clear()
        e.send_keys(cmd["text"])
        return True
    if op == "press":
        driver.find_element(By.ID, cmd["id"]).click()
        return True
    if op == "js":
        return driver.execute_script(cmd["script"])
    if op == "serve":
        body = cmd["html"].encode()

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"
    if op == "navigated":
        def arrived():
            ok = driver.current_url.startswith(cmd["prefix"]) and driver.execute_script("return document.readyState") == "complete"
            return ok and {"url": driver.current_url, "text": driver.find_element(By.TAG_NAME, "body").text}
        return until(f"a page at {cmd['prefix']}", limit, arrived)
    if op == "screenshot":
        if not driver.save_screenshot(cmd["path"]):
            raise RuntimeError("no screenshot")
        return cmd["path"]
    if op == "console":
        console.extend(logs(driver))
        return console
    raise ValueError(f"unknown op {op!r}")


if __name__ == "__main__":
    main()
