#!/usr/bin/env python3
"""The retrying payments client of scripts/demo, and its small helpers.

  client.py wait URL [--seconds S] [--pid P]
        until URL answers 2xx (exit 1 if it never does or process P exits)
  client.py run --target URL --api URL [--charges N] [--timeout S] ...
        N intended charges, each with its own Idempotency-Key, retried with the
        same key after a timeout; prints one line of key=value results
  client.py show --target URL --api URL --key K
        one more retry of K, printed as it came off the wire, and how often the
        payments API executed K
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import sys
import time
import urllib.parse
import urllib.request
import zlib

SCOPE = "Bearer demo-merchant"  # the proxy scopes keys per Authorization value


def key_for(index):
    return f"order-{index:03d}"


def body_for(key):
    # Retries must send the same bytes: the proxy fingerprints the body and
    # answers 422 key-reused to a different request under the same key.
    return json.dumps({"amount": 100 + zlib.crc32(key.encode()) % 9900, "currency": "eur"}).encode()


def headers_for(key):
    return {"Authorization": SCOPE, "Idempotency-Key": key, "Content-Type": "application/json"}


def api_call(api, method, path):
    request = urllib.request.Request(api + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def post_charge(target, key, timeout):
    """One attempt on a fresh connection: (status, headers) or an exception on timeout."""
    url = urllib.parse.urlsplit(target)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        connection.request("POST", "/v1/charges", body=body_for(key), headers=headers_for(key))
        response = connection.getresponse()
        response.read()
        return response.status, response.headers
    finally:
        connection.close()


def charge(target, key, timeout, max_attempts, deadline_seconds):
    """Retries with the same key until a response: timeouts count against
    max_attempts; 409 in-flight is waited out (Retry-After) until the deadline."""
    result = {"key": key, "attempts": 0, "replayed": False, "in_flight_waits": 0, "status": None}
    deadline = time.monotonic() + deadline_seconds
    while result["attempts"] < max_attempts and time.monotonic() < deadline:
        result["attempts"] += 1
        try:
            status, headers = post_charge(target, key, timeout)
        except (OSError, http.client.HTTPException):
            continue  # timed out or cut off: retry with the same key
        if status == 409 and headers.get("Retry-After"):
            result["in_flight_waits"] += 1
            result["attempts"] -= 1  # the original is still running; this was not a failed try
            time.sleep(float(headers["Retry-After"]))
            continue
        result["status"] = status
        result["replayed"] = headers.get("Idempotent-Replayed") == "true"
        return result
    return result


def wait_until_idle(api, seconds=5):
    """Charges whose client gave up may still be running on the API; count them too."""
    deadline = time.monotonic() + seconds
    while True:
        stats = api_call(api, "GET", "/stats")
        if stats["in_progress"] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def run(args):
    api_call(args.api, "POST", "/reset")
    keys = [key_for(index) for index in range(1, args.charges + 1)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(
            lambda key: charge(args.target, key, args.timeout, args.max_attempts, args.deadline), keys))
    stats = wait_until_idle(args.api)
    by_key = stats["by_key"]
    retried = [r["key"] for r in results if r["replayed"]] or [k for k in keys if by_key.get(k, 0) > 1]
    fields = {
        "intended": len(keys),
        "executed": stats["executed"],
        "duplicates": sum(max(by_key.get(k, 0) - 1, 0) for k in keys),
        "replays": sum(r["replayed"] for r in results),
        "in_flight_waits": sum(r["in_flight_waits"] for r in results),
        "gave_up": sum(r["status"] is None for r in results),
        "retried_key": retried[0] if retried else "-",
    }
    print(" ".join(f"{name}={value}" for name, value in fields.items()))
    if fields["gave_up"] == len(keys):
        print(f"no charge got an answer from {args.target}", file=sys.stderr)
        return 1


def show(args):
    """A curl -si style view of one retry: the raw response head and body."""
    url = urllib.parse.urlsplit(args.target)
    body = body_for(args.key)
    print(f"$ curl -si -X POST {args.target}/v1/charges " + " ".join(
        f"-H '{name}: {value}'" for name, value in headers_for(args.key).items()) + f" -d '{body.decode()}'")
    head = f"POST /v1/charges HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers_for(args.key).items())
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    print(received.decode(errors="replace").replace("\r\n", "\n").rstrip("\n"))
    executed = api_call(args.api, "GET", "/stats")["by_key"].get(args.key, 0)
    print(f"\npayments API executions of {args.key}: {executed}")


def process_running(pid):
    """Exists and is not a zombie (a dead child its shell has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait(args):
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        if args.pid and not process_running(args.pid):
            print(f"process {args.pid} exited before {args.url} answered", file=sys.stderr)
            return 1
        try:
            with urllib.request.urlopen(args.url, timeout=1) as response:
                if 200 <= response.status < 300:
                    return 0
        except OSError:
            pass
        time.sleep(0.1)
    print(f"{args.url} did not answer within {args.seconds} s", file=sys.stderr)
    return 1


def main():
    # Die of Ctrl-C rather than exit with a traceback: bash runs scripts/demo's INT trap only
    # when its foreground command was killed by SIGINT, not when it exited on its own.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    waiting = commands.add_parser("wait")
    waiting.add_argument("url")
    waiting.add_argument("--seconds", type=float, default=10)
    waiting.add_argument("--pid", type=int, help="stop waiting when this process has exited")
    running = commands.add_parser("run")
    running.add_argument("--target", required=True)
    running.add_argument("--api", required=True)
    running.add_argument("--charges", type=int, default=40)
    running.add_argument("--timeout", type=float, default=0.5)
    running.add_argument("--max-attempts", type=int, default=5)
    running.add_argument("--deadline", type=float, default=20, help="seconds per charge, in-flight waits included")
    running.add_argument("--workers", type=int, default=8)
    showing = commands.add_parser("show")
    showing.add_argument("--target", required=True)
    showing.add_argument("--api", required=True)
    showing.add_argument("--key", required=True)
    args = parser.parse_args()
    return {"wait": wait, "run": run, "show": show}[args.command](args) or 0


if __name__ == "__main__":
    sys.exit(main())
