"""A small Chrome DevTools Protocol client over Chromium's --remote-debugging-pipe: no websocket, no extra package.

Chromium reads commands on file descriptor 3 and writes replies and events on 4, as NUL-separated JSON. One browser
serves many pages (targets); each page collects its console errors, uncaught exceptions and failed loads.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import tempfile
import threading
import time
from collections import defaultdict


class CDPError(RuntimeError):
    pass


class Browser:
    def __init__(self, binary: str, flags: list[str]):
        self._profile = tempfile.TemporaryDirectory()
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        # Move the child's ends above 2..4 first, so placing them on 3 and 4 cannot overwrite one with the other;
        # close-on-exec, like every descriptor Python opens, so only the dup2 copies reach Chromium.
        child_r, child_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (cmd_r, res_w))
        os.close(cmd_r)
        os.close(res_w)

        def place_pipes():
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        self.proc = subprocess.Popen([binary, *flags, "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}",
                                      "about:blank"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=place_pipes, close_fds=False)
        os.close(child_r)
        os.close(child_w)
        self._out, self._in = os.fdopen(cmd_w, "wb", buffering=0), os.fdopen(res_r, "rb", buffering=0)
        self._id, self._lock, self._cond = 0, threading.Lock(), threading.Condition()
        self._replies: dict[int, dict] = {}
        self.events: dict[str | None, list[dict]] = defaultdict(list)  # by session
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self._in.read(1 << 16)
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            with self._cond:
                for raw in messages:
                    msg = json.loads(raw)
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events[msg.get("sessionId")].append(msg)
                self._cond.notify_all()

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        with self._lock:
            self._id += 1
            msg_id = self._id
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while msg_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise CDPError(f"{method}: no reply within {timeout} s" if left <= 0 else f"{method}: Chromium exited")
                self._cond.wait(min(left, 0.5))
            reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, session: str, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events[session]:
                    if ev["method"] == method:
                        self.events[session].remove(ev)
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDPError(f"no {method} within {timeout} s")
                self._cond.wait(min(left, 0.5))

    def new_page(self, width: int = 1280, height: int = 2400) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, target, session)
        for domain in ("Page", "Runtime", "Log"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False})
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (CDPError, OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self._out, self._in):
            f.close()
        self._profile.cleanup()


class Page:
    def __init__(self, browser: Browser, target: str, session: str):
        self.browser, self.target, self.session = browser, target, session

    def send(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        return self.browser.send(method, params, self.session, timeout)

    def goto(self, url: str, timeout: float = 60) -> None:
        self.browser.events[self.session].clear()
        reply = self.send("Page.navigate", {"url": url})
        if reply.get("errorText"):
            raise CDPError(f"{url}: {reply['errorText']}")
        self.browser.wait_event(self.session, "Page.loadEventFired", timeout)

    def eval(self, expression: str, timeout: float = 60):
        """Evaluate JavaScript (promises awaited) and return its JSON value; a thrown error raises CDPError."""
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True,
                                               "timeout": int(timeout * 1000)}, timeout=timeout + 5)
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            raise CDPError(details.get("exception", {}).get("description") or details.get("text"))
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30, interval: float = 0.2):
        """Poll until the expression is truthy; return its value (or the last falsy value at the time-out)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(interval)

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser-logged errors (failed loads) since the last goto."""
        out = []
        for ev in list(self.browser.events[self.session]):
            p = ev.get("params", {})
            if ev["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif ev["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("uncaught: " + (d.get("exception", {}).get("description") or d.get("text", "")).splitlines()[0]
                           + (f" ({d.get('url')}:{d.get('lineNumber')})" if d.get("url") else ""))
            elif ev["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                out.append(f"{e.get('source')}: {e.get('text')}" + (f" ({e['url']})" if e.get("url") else ""))
        return out

    def screenshot(self, path) -> None:
        import base64

        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})
