"""Prints MEMORY USAGE and value length of a few idempotency records in the bench Redis."""
import socket
import sys

port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")

def command(*args):
    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() if isinstance(x, str) else x for x in args)))
    return read()

def read():
    line = f.readline()
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+", b"-"):
        return rest.decode()
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data
    if kind == b"*":
        return [read() for _ in range(int(rest))]

cursor, keys = command("SCAN", "0", "COUNT", "100")
sizes = []
for key in keys[:20]:
    usage = command("MEMORY", "USAGE", key)
    length = command("STRLEN", key)
    sizes.append((usage, length))
print(f"  records sampled: {len(sizes)}; value bytes {sorted(set(l for _, l in sizes))}; MEMORY USAGE {sorted(set(u for u, _ in sizes))}")
print(f"  keys in the store after the run: {command('DBSIZE')}")
