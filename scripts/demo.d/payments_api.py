#!/usr/bin/env python3
"""A legacy "payments" API with no idempotency, for scripts/demo.

POST /v1/charges  executes a charge every time it is called and answers 201
                  {"id": ..., "amount": ...}; some calls answer slowly.
GET  /stats       {"executed": n, "by_key": {key: n}, "in_progress": n}
POST /reset       forgets every charge (each demo run starts from zero)

Which calls are slow is decided per (seed, Idempotency-Key, n-th execution of
that key) rather than by one shared random stream: with concurrent clients the
order of calls varies, but the same key still gets the same delays, so a run's
numbers do not depend on thread timing.
"""
import argparse
import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.executed = 0
            self.by_key = {}
            self.in_progress = 0

    def record(self, key):
        """Counts the charge before the (possibly slow) answer: it has happened
        whether or not the client is still waiting for the response."""
        with self.lock:
            self.executed += 1
            self.by_key[key] = self.by_key.get(key, 0) + 1
            self.in_progress += 1
            return self.executed, self.by_key[key]

    def answered(self):
        with self.lock:
            self.in_progress -= 1

    def stats(self):
        with self.lock:
            return {"executed": self.executed, "by_key": dict(self.by_key), "in_progress": self.in_progress}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the proxy's upstream pool expects

    def do_GET(self):
        if self.path == "/stats":
            self.reply(200, self.server.ledger.stats())
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/reset":
            self.server.ledger.reset()
            self.reply(200, {"reset": True})
            return
        if self.path != "/v1/charges":
            self.reply(404, {"error": "not found"})
            return
        key = self.headers.get("Idempotency-Key", "")
        number, nth = self.server.ledger.record(key)
        try:
            rng = random.Random(f"{self.server.seed}:{key}:{nth}")
            if rng.random() < self.server.slow_ratio:
                time.sleep(self.server.slow_seconds)
            self.reply(201, {"id": f"ch_{number:05d}", "amount": body.get("amount")})
        finally:
            self.server.ledger.answered()

    def reply(self, status, document):
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass  # the demo's output is the client's summary, not an access log


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that timed out has closed its socket before the slow answer:
        # that is the point of the demo, not an error worth a traceback.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", default="1")
    parser.add_argument("--slow-ratio", type=float, default=0.35)
    parser.add_argument("--slow-seconds", type=float, default=1.2)
    args = parser.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    server.ledger = Ledger()
    server.seed = args.seed
    server.slow_ratio = args.slow_ratio
    server.slow_seconds = args.slow_seconds
    server.serve_forever()


if __name__ == "__main__":
    main()
