/// Guarded exchanges a connection let go of while something else still held them: a store
/// that answers later (Redis) keeps the exchange until its completion is acknowledged, and by
/// then the client's next request has started. Once nothing else holds one, a guarded request
/// on any connection of the loop reuses it with its buffers, instead of allocating a new
/// exchange and growing its buffers again (about ten allocations per request on Redis).
///
/// Bounded in count; each kept exchange holds its buffers trimmed to their kept capacities
/// (`GuardedExchange.releaseLargeBuffers`), and its copy of the request head (at most
/// `max_header_bytes`, as every connection's own kept exchange does). Owned by one event loop.
/// Only the oldest few are examined per request, so while those stay held (a long store
/// outage) reuse waits, and requests allocate as they did without this.
struct RetiredExchanges<Exchange: RetirableExchange> {
    private var exchanges: [Exchange] = []

    /// How many are kept; more are dropped (freed when their last holder lets go).
    static var limit: Int { 64 }
    /// How many are examined per request: the oldest come first and are the likeliest to be free.
    static var examined: Int { 8 }

    var count: Int { exchanges.count }

    mutating func retire(_ exchange: Exchange) {
        guard exchanges.count < Self.limit else { return }
        exchange.releaseLargeBuffers()
        exchanges.append(exchange)
    }

    /// An exchange nothing else references and that is finished, or nil.
    mutating func takeReusable() -> Exchange? {
        var index = 0
        while index < min(exchanges.count, Self.examined) {
            if isKnownUniquelyReferenced(&exchanges[index]) && exchanges[index].isFinished {
                return exchanges.remove(at: index)
            }
            index += 1
        }
        return nil
    }
}

/// What `RetiredExchanges` needs of an exchange (a protocol so the bookkeeping is tested alone).
protocol RetirableExchange: AnyObject {
    /// Nothing can still act on it: no claim owned, no store answer or owner awaited.
    var isFinished: Bool { get }
    /// Frees buffers past their kept sizes (a no-op until the exchange is finished).
    func releaseLargeBuffers()
}

extension GuardedExchange: RetirableExchange {}
