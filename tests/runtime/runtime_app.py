"""A tiny stdlib HTTP app for the runtime tests (the "runtime test image").

GET /       -> JSON: env, cwd, argv, whether stdin is at EOF
GET /ready  -> 200 once the file named by READY_FILE exists (503 before)
GET /alive  -> 200 unless the file named by DEAD_FILE exists
GET /sleep/S -> 200 after S seconds
GET /file/PATH -> the file at /PATH (404 with the error when it cannot be read)
GET /write/PATH=TEXT -> writes TEXT to /PATH (403 with the error when it cannot)
Environment: EXIT_CODE makes it print EXIT_MESSAGE and exit at once;
IGNORE_TERM=1 makes it ignore SIGTERM; it exits with 3 at start while CRASH_FILE exists.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        print("request", self.path, flush=True)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/sleep/"):
            import time

            time.sleep(float(self.path.split("/")[2]))
            self._send(200, b"slept")
            return
        if self.path == "/ready":
            ok = os.path.exists(os.environ.get("READY_FILE", "/nonexistent"))
            self._send(200 if ok else 503, b"ready" if ok else b"not yet")
            return
        if self.path.startswith("/file/"):
            try:
                with open(self.path[len("/file") :], "rb") as f:
                    self._send(200, f.read())
            except OSError as exc:
                self._send(404, str(exc).encode())
            return
        if self.path.startswith("/write/"):
            target, _, text = self.path[len("/write") :].partition("=")
            try:
                with open(target, "w") as f:
                    f.write(text)
                self._send(200, b"written")
            except OSError as exc:
                self._send(403, str(exc).encode())
            return
        if self.path == "/alive":
            dead = os.path.exists(os.environ.get("DEAD_FILE", "/nonexistent"))
            self._send(500 if dead else 200, b"alive?")
            return
        body = json.dumps(
            {
                "env": dict(os.environ),
                "cwd": os.getcwd(),
                "argv": sys.argv,
                "stdin": sys.stdin.read(),
                "pid": os.getpid(),
            }
        ).encode()
        self._send(200, body)

    do_POST = do_GET


def main() -> None:
    crash_file = os.environ.get("CRASH_FILE")
    if crash_file and os.path.exists(crash_file):
        print("crashing: found", crash_file, flush=True)
        sys.exit(3)
    if "EXIT_CODE" in os.environ:
        print(os.environ.get("EXIT_MESSAGE", "exiting"), flush=True)
        sys.exit(int(os.environ["EXIT_CODE"]))
    if os.environ.get("IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("listening on", os.environ["PORT"], flush=True)
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()


if __name__ == "__main__":
    main()
