"""Summarises interleaved wrk rounds: median req/s, p50, p99 per target, ratios to nginx."""
import statistics
import sys

def millis(text):
    text = text.strip()
    for suffix, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float("nan")

def main():
    rows = {}
    order = []
    for line in open(sys.argv[1]):
        name, _round, rps, p50, p99 = line.split()
        if name not in rows:
            rows[name] = []
            order.append(name)
        rows[name].append((float(rps), millis(p50), millis(p99)))

    med = {name: tuple(statistics.median(col) for col in zip(*values)) for name, values in rows.items()}
    base = med.get("nginx")
    print()
    print(f"{'target':<16}{'req/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'req/s vs nginx':>16}{'p99 vs nginx':>14}")
    for name in order:
        rps, p50, p99 = med[name]
        ratio = f"{rps / base[0]:.2f}x" if base else "-"
        pratio = f"{p99 / base[2]:.2f}x" if base else "-"
        print(f"{name:<16}{rps:>12.0f}{p50:>10.3f}{p99:>10.3f}{ratio:>16}{pratio:>14}")

    if "--added-latency" in sys.argv and "origin" in med:
        print()
        for name in order:
            if name != "origin":
                print(f"median latency added over the origin by {name}: {(med[name][1] - med['origin'][1]):.3f} ms")


if __name__ == "__main__":
    main()
