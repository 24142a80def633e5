"""Holds N slow clients open against a proxy for a while, the way hostile or broken clients
behave, so a benchmark can measure what they cost everyone else.

Three kinds, in equal parts:
  slowloris  - a request head dribbled one byte a second, never finished;
  trickle    - a complete POST head announcing 1 MB, then one body byte a second;
  nonreader  - a GET for a large download whose response is never read (tiny receive buffer).

Usage: slow_clients.py HOST PORT COUNT SECONDS DOWNLOAD_PATH
Prints one line per kind: how many were opened and how many the proxy closed (a send
failed, or the socket reported EOF/reset) before the end.
"""
import resource
import select
import socket
import sys
import time

host, port, count, seconds, download = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))

KINDS = ("slowloris", "trickle", "nonreader")
clients = []  # [kind, socket, bytes_to_dribble, offset, closed]
for i in range(count):
    kind = KINDS[i % 3]
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if kind == "nonreader":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        s.connect((host, port))
    except OSError:
        s.close()
        clients.append([kind, None, b"", 0, True])
        continue
    s.setblocking(False)
    if kind == "slowloris":
        payload = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"z" * 10000
    elif kind == "trickle":
        s.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n")
        payload = b"y" * 1000000
    else:
        s.send(("GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % download).encode())
        payload = b""
    clients.append([kind, s, payload, 0, False])

start = time.time()
while time.time() - start < seconds:
    for c in clients:
        kind, s, payload, offset, closed = c
        if closed:
            continue
        try:
            if payload:
                s.send(payload[offset:offset + 1])
                c[3] = offset + 1
            else:
                # A non-reader only looks for an error or EOF without consuming the response.
                r, _, x = select.select([s], [], [s], 0)
                if x:
                    c[4] = True
                elif r:
                    data = s.recv(1, socket.MSG_PEEK)
                    if not data:
                        c[4] = True
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            c[4] = True
    time.sleep(1)

for kind in KINDS:
    mine = [c for c in clients if c[0] == kind]
    print("%s opened %d closed_by_proxy %d" % (kind, len(mine), sum(1 for c in mine if c[4])))
for c in clients:
    if c[1] is not None:
        c[1].close()
