"""Summarises interleaved wrk rounds per path: median req/s, p50, p99 and CPU per request of
idemproxy, nginx (the same request proxied without a key) and Redis, with ratios to nginx.

Input lines: path contender round rps p50 p99 cpu_us redis_us ("-" when Redis is not used).
nginx's POST rows (path "post") are the baseline of every POST path; its GET rows of "get".
"""
import statistics
import sys

from summarize import millis


rows = {}
order = []
for line in open(sys.argv[1]):
    path, contender, _round, rps, p50, p99, cpu, redis = line.split()
    key = (path, contender)
    if key not in rows:
        rows[key] = []
        order.append(key)
    rows[key].append((float(rps), millis(p50), millis(p99), float(cpu), float("nan") if redis == "-" else float(redis)))


def median(key):
    return tuple(statistics.median(col) for col in zip(*rows[key]))


print()
header = f"{'path':<18}{'nginx µs/req':>13}{'idemproxy µs/req':>18}{'cpu vs nginx':>13}{'redis µs/req':>13}{'proxy+redis':>12}{'req/s nginx':>12}{'req/s idem':>11}{'req/s ratio':>12}{'p50 ms':>8}{'p99 ms':>8}"
print(header)
for path, contender in order:
    if contender != "idemproxy":
        continue
    base_key = ("get", "nginx") if path == "get" else ("post", "nginx")
    if base_key not in rows:
        continue
    idem, base = median((path, contender)), median(base_key)
    redis = idem[4]
    redis_text = "-" if redis != redis else f"{redis:.1f}"
    both = idem[3] + (0 if redis != redis else redis)
    print(
        f"{path:<18}{base[3]:>13.1f}{idem[3]:>18.1f}{idem[3] / base[3]:>12.2f}x{redis_text:>13}{both / base[3]:>11.2f}x"
        f"{base[0]:>12.0f}{idem[0]:>11.0f}{idem[0] / base[0]:>11.2f}x{idem[1]:>8.3f}{idem[2]:>8.3f}"
    )
print()
print("nginx p50/p99 ms: " + ", ".join(f"{p} {median((p, 'nginx'))[1]:.3f}/{median((p, 'nginx'))[2]:.3f}" for p in ("get", "post") if (p, "nginx") in rows))
