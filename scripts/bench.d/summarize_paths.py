"""Summarises interleaved wrk rounds per path: median req/s, p50, p99 and CPU per request of
idemproxy, nginx (the same request proxied without a key) and Redis, with ratios to nginx.

Input lines: path contender round rps p50 p99 cpu_us redis_us ("-" when Redis is not used).
Each path's nginx rows are the runs paired with idemproxy's in the same round, so every ratio
is taken within a round (idemproxy's run over the nginx run beside it) and the median of the
rounds' ratios is reported, with each round's ratio after it.
"""
import statistics
import sys

from summarize import millis

RPS, P50, P99, CPU, REDIS = range(5)

runs = {}  # (path, contender) -> {round: row}
order = []
for line in open(sys.argv[1]):
    path, contender, round_, rps, p50, p99, cpu, redis = line.split()
    if path not in order:
        order.append(path)
    row = (float(rps), millis(p50), millis(p99), float(cpu), float("nan") if redis == "-" else float(redis))
    runs.setdefault((path, contender), {})[round_] = row


def median(values):
    return statistics.median(values) if values else float("nan")


def ratios(path, of):
    """Each round's ratio of idemproxy to the nginx run beside it, for of(row) (a number)."""
    idem, base = runs.get((path, "idemproxy"), {}), runs.get((path, "nginx"), {})
    return [of(idem[r]) / of(base[r]) for r in sorted(idem) if r in base]


print()
print(f"{'path':<18}{'nginx µs/req':>13}{'idemproxy µs/req':>18}{'cpu vs nginx':>13}{'redis µs/req':>13}{'proxy+redis':>12}"
      f"{'req/s nginx':>12}{'req/s idem':>11}{'req/s ratio':>12}{'p50 ms':>8}{'p99 ms':>8}   cpu ratio per round")
for path in order:
    idem, base = runs.get((path, "idemproxy"), {}), runs.get((path, "nginx"), {})
    if not idem or not base:
        continue
    col = lambda rows, i: median([row[i] for row in rows.values()])
    redis = col(idem, REDIS)
    uses_redis = redis == redis
    cpu_ratios = ratios(path, lambda row: row[CPU])
    both = median(ratios(path, lambda row: row[CPU] + (row[REDIS] if row[REDIS] == row[REDIS] else 0)))
    print(
        f"{path:<18}{col(base, CPU):>13.1f}{col(idem, CPU):>18.1f}{median(cpu_ratios):>12.2f}x"
        f"{(f'{redis:.1f}' if uses_redis else '-'):>13}{both:>11.2f}x"
        f"{col(base, RPS):>12.0f}{col(idem, RPS):>11.0f}{median(ratios(path, lambda row: row[RPS])):>11.2f}x"
        f"{col(idem, P50):>8.3f}{col(idem, P99):>8.3f}   " + " ".join(f"{r:.2f}x" for r in cpu_ratios)
    )
print()
posts = [row for (path, contender), rows in runs.items() if contender == "nginx" and path != "get" for row in rows.values()]
gets = list(runs.get(("get", "nginx"), {}).values())
parts = [f"{name} {median([r[P50] for r in rows]):.3f}/{median([r[P99] for r in rows]):.3f}" for name, rows in (("get", gets), ("post", posts)) if rows]
print("nginx p50/p99 ms: " + ", ".join(parts))
