import Observability
import Testing

/// Exposition checked as golden text, as Prometheus parses it.
struct PrometheusTextTests {
    @Test func countersCarryLabelsAndEscapes() {
        var text = PrometheusText()
        text.counter("idemproxy_requests_total", help: "Requests by outcome.", samples: [
            ([("outcome", "forwarded")], 3), ([("outcome", "we\"ird\\")], 0),
        ])
        #expect(text.text == """
        # HELP idemproxy_requests_total Requests by outcome.
        # TYPE idemproxy_requests_total counter
        idemproxy_requests_total{outcome="forwarded"} 3
        idemproxy_requests_total{outcome="we\\"ird\\\\"} 0

        """)
    }

    @Test func histogramBucketsAreCumulativeWithInfSumAndCount() {
        let histogram = Histogram(bounds: [0.001, 0.01])
        histogram.observe(nanoseconds: 500_000)      // 0.5 ms → first bucket
        histogram.observe(nanoseconds: 5_000_000)    // 5 ms → second
        histogram.observe(nanoseconds: 2_000_000_000) // 2 s → +Inf
        var text = PrometheusText()
        text.histogram("idemproxy_store_duration_seconds", help: "Store calls.", series: [([("operation", "claim")], histogram)])
        #expect(text.text == """
        # HELP idemproxy_store_duration_seconds Store calls.
        # TYPE idemproxy_store_duration_seconds histogram
        idemproxy_store_duration_seconds_bucket{operation="claim",le="0.001"} 1
        idemproxy_store_duration_seconds_bucket{operation="claim",le="0.01"} 2
        idemproxy_store_duration_seconds_bucket{operation="claim",le="+Inf"} 3
        idemproxy_store_duration_seconds_sum{operation="claim"} 2.0055
        idemproxy_store_duration_seconds_count{operation="claim"} 3

        """)
    }

    @Test func boundaryValuesFallInTheirOwnBucket() {
        let histogram = Histogram(bounds: [0.001])
        histogram.observe(nanoseconds: 1_000_000)
        #expect(histogram.snapshot().cumulative == [1, 1])
    }

    /// Every default bound: a value on it counts in its bucket, one nanosecond more in the next.
    @Test func eachDefaultBoundIsExactToTheNanosecond() {
        let bounds = Histogram.latencyBounds
        for (index, bound) in bounds.enumerated() {
            let histogram = Histogram()
            let nanos = UInt64((bound * 1e9).rounded())
            histogram.observe(nanoseconds: nanos)
            histogram.observe(nanoseconds: nanos + 1)
            let cumulative = histogram.snapshot().cumulative
            #expect(cumulative[index] == 1, "\(bound)")
            #expect(cumulative[index + 1] == 2, "\(bound)")
            if index > 0 { #expect(cumulative[index - 1] == 0, "\(bound)") }
        }
        let histogram = Histogram()
        histogram.observe(nanoseconds: 0)
        histogram.observe(nanoseconds: .max)
        #expect(histogram.snapshot().cumulative.first == 1 && histogram.snapshot().cumulative.last == 2)
    }
}
