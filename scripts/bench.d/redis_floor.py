"""What Redis's own CPU per guarded request is made of: the claim and the completion that
idemproxy sends, against the cheapest pair of writes any claim-then-complete protocol needs.

Usage: redis_floor.py PORT REDIS_PID SWIFT_SOURCE_OF_THE_SCRIPTS [keys] [batch] [rounds]

For each variant it writes `keys` fresh keys in pipelined batches (as the proxy does under
load), in interleaved rounds, and prints the median of Redis's utime + stime per key from /proc,
with `INFO commandstats`' time per call of each command it ran:

- claim only: `SET key in-flight-record NX PX ms GET`, idemproxy's claim;
- claim + SET: the claim, then an unconditional `SET key record PX ms` (a completion that
  compares nothing; not safe, since a stale owner would overwrite the next owner's claim);
  the floor of any protocol with a claim and a completion;
- claim + script: the claim, then `EVALSHA` of idemproxy's completion script (the owner's
  compare-and-set), read from the Swift source so it is the script the proxy runs.
"""
import os
import re
import socket
import sys

port, redis_pid, source = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
keys = int(sys.argv[4]) if len(sys.argv) > 4 else 30000
batch = int(sys.argv[5]) if len(sys.argv) > 5 else 16
rounds = int(sys.argv[6]) if len(sys.argv) > 6 else 3

sock = socket.create_connection(("127.0.0.1", port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
stream = sock.makefile("rb")


def encode(*args):
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        arg = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def read():
    line = stream.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"-":
        raise SystemExit(f"redis error: {rest.decode()}")
    if kind == b"+":
        return rest.decode()
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else stream.read(n + 2)[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read() for _ in range(n)]
    raise SystemExit(f"unexpected reply {line!r}")


def command(*args):
    sock.sendall(encode(*args))
    return read()


def completion_script():
    text = open(source).read()
    found = re.search(r'static let complete = ownerFlags \+ """\n(.*?)\n    """', text, re.S)
    flags = re.search(r'static let ownerFlags = "(.*?)\\n"', text)
    if not found or not flags:
        raise SystemExit(f"the completion script was not found in {source}")
    # The Swift literal's indentation and its escaped backslashes, undone.
    body = "\n".join(line[4:] for line in found.group(1).split("\n")).replace("\\\\", "\\")
    return flags.group(1) + "\n" + body + "\n"


def cpu_ticks():
    fields = open(f"/proc/{redis_pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def commandstats():
    text = command("INFO", "commandstats").decode()
    return {m.group(1): (int(m.group(2)), int(m.group(3))) for m in re.finditer(r"cmdstat_(\w+):calls=(\d+),usec=(\d+)", text)}


owner = os.urandom(16)
# RecordCodec version 2: version, state, fingerprint (32), owner (16), lease deadline (8,
# carried by the key's expiry: top bit set), created at (8); then the response section.
ttl = 86400000
lease_by_expiry = ((1 << 63) | ttl).to_bytes(8, "big")
in_flight = b"\x02\x01" + os.urandom(32) + owner + lease_by_expiry + os.urandom(8) + b"\x00\x00\x00"
response = b"\x01\x00\xc9" + os.urandom(233)  # flags, status 201: a 305-byte record, as the bench stores
completed = in_flight[:1] + b"\x02" + in_flight[2:50] + b"\x00" * 8 + in_flight[58:66] + response
sha = command("SCRIPT", "LOAD", completion_script()).decode()
prefix = os.urandom(6).hex()
print(f"  Redis CPU per key, {keys} fresh keys per variant and round in pipelined batches of {batch}, median of {rounds} interleaved rounds:")
variants = ("claim only", "claim + SET", "claim + script")
results = {variant: [] for variant in variants}
# The first pass warms Redis up (its tables grow, the script is compiled) and is not shown.
for round_, variant in [(0, "warm-up")] + [(r, v) for r in range(1, rounds + 1) for v in variants]:
    before_ticks, before_stats = cpu_ticks(), commandstats()
    names_of = lambda start: [f"floor:{prefix}:{round_}:{variant[-3:]}:{i}" for i in range(start, min(keys, start + batch))]
    for start in range(0, keys, batch):
        names = names_of(start)
        sock.sendall(b"".join(encode("SET", k, in_flight, "NX", "PX", str(ttl + 30000), "GET") for k in names))
        for _ in names:
            if read() is not None:
                raise SystemExit("a fresh key was not free")
        if variant == "claim + SET":
            sock.sendall(b"".join(encode("SET", k, completed, "PX", str(ttl)) for k in names))
        elif variant in ("claim + script", "warm-up"):
            sock.sendall(b"".join(encode("EVALSHA", sha, "1", k, owner, response, str(ttl)) for k in names))
        else:
            continue
        for _ in names:
            reply = read()
            if reply not in ("OK", 1):
                raise SystemExit(f"{variant}: unexpected reply {reply!r}")
    after_ticks, after_stats = cpu_ticks(), commandstats()
    for start in range(0, keys, batch):
        command("UNLINK", *names_of(start))
    if variant == "warm-up":
        continue
    per_key = (after_ticks - before_ticks) * 1e6 / os.sysconf("SC_CLK_TCK") / keys
    calls = []
    for name in ("set", "evalsha"):
        calls_, usec = (a - b for a, b in zip(after_stats.get(name, (0, 0)), before_stats.get(name, (0, 0))))
        if calls_:
            calls.append(f"{name.upper()} {usec / calls_:.2f} µs per call")
    results[variant].append((per_key, calls))
for variant in variants:
    per_key, calls = sorted(results[variant], key=lambda result: result[0])[len(results[variant]) // 2]
    spread = ", ".join(f"{result[0]:.1f}" for result in results[variant])
    print(f"    {variant:<15} {per_key:6.1f} µs per key (rounds {spread}; in that round, inside the commands: {', '.join(calls)})")
