import EventLoop

/// What the exchange using an upstream connection hears from it. Every callback runs on the
/// connection's loop thread.
public protocol UpstreamConnectionDelegate: AnyObject {
    /// The non-blocking connect failed (refused, unreachable) or timed out.
    func upstreamConnectFailed(_ connection: UpstreamConnection, error: IOError)
    /// Bytes arrived: everything not yet consumed, oldest first. Returns how many bytes were
    /// consumed; the rest is offered again, with more, on the next read.
    func upstream(_ connection: UpstreamConnection, didRead bytes: UnsafeRawBufferPointer) -> Int
    /// The upstream closed (EOF, reset). `error` is nil for an orderly EOF.
    func upstreamDidClose(_ connection: UpstreamConnection, error: IOError?)
    /// Everything queued in `outbound` has been written.
    func upstreamDidDrain(_ connection: UpstreamConnection)
    /// The connection's timer fired (connect timeout or response timeout, as armed by the delegate).
    func upstreamTimedOut(_ connection: UpstreamConnection)
}

/// One TCP connection to the upstream. It moves bytes and reports events; HTTP framing is the
/// delegate's business.
public final class UpstreamConnection: EventHandler {
    public enum State { case connecting, open, closed }

    public let id: Int
    public let fd: Int32
    /// The pool's loop. Strong: a call through a strong `let` needs no reference counting,
    /// one through `unowned(unsafe)` an atomic retain and release (see `ClientConnection.worker`).
    /// The cycle with the loop's registration ends when the connection closes.
    public let loop: EventLoop
    /// Strong, not `weak`: a weak reference would give every client connection a side table
    /// and slow each of its retains. The cycle it makes with the client's `upstream` is broken
    /// whenever the client lets the connection go: `close()` clears it and the pool's
    /// `release` replaces it with the pool.
    public var delegate: (any UpstreamConnectionDelegate)?
    public private(set) var state: State = .connecting
    /// Bytes to send; appended by the delegate, flushed by `flush()`.
    public var outbound = OutputBuffer()
    /// Received bytes not yet consumed by the delegate (usually empty).
    private var inbound: [UInt8] = []
    /// Exchanges completed on this connection; a reused connection has served at least one.
    public internal(set) var exchangesServed = 0
    /// True once any byte of the current exchange's response arrived.
    public var receivedResponseBytes = false
    /// Bytes of the current exchange written to the socket: zero means the upstream cannot
    /// have received the request (SPEC §4: safe to release the key).
    public private(set) var bytesWrittenThisExchange = 0
    /// While an exchange is active, the timer is re-armed with this on connect, on every
    /// write that makes progress and on every read, and armed (if stopped) by a write that
    /// leaves bytes queued: an upstream that stops reading the request or stops answering is
    /// noticed (0 = the delegate manages the timer itself).
    public var activityTimeoutMillis: UInt64 = 0
    private var wantsRead = true
    /// `unowned(unsafe)` for the reason given at `ClientConnection.timer`; cancelled in deinit.
    private let timer = Timer()

    init(id: Int, fd: Int32, loop: EventLoop) throws(IOError) {
        self.id = id
        self.fd = fd
        self.loop = loop
        timer.onFire { [unowned(unsafe) self] in
            let connection = self
            withExtendedLifetime(connection) { connection.delegate?.upstreamTimedOut(connection) }
        }
        try loop.register(fd, handler: self, interest: [.write])
    }

    deinit {
        timer.cancel()  // it captures this object unretained
    }

    // MARK: delegate API

    /// Writes queued bytes now if connected; otherwise they go once the connect completes.
    public func flush() {
        // Nothing queued is not a drain: the delegate would take it as the upstream having read
        // everything just now, and restart its timer. The proxy flushes after every read from
        // the client, so a client trickling a pipelined request would keep a silent upstream's
        // timer from ever firing.
        guard state == .open, !outbound.isEmpty else { return }
        do {
            let before = outbound.pendingCount
            let result = try outbound.flush(to: fd)
            let written = before - outbound.pendingCount
            if written > 0 {
                bytesWrittenThisExchange += written
                if activityTimeoutMillis > 0 { armTimer(afterMillis: activityTimeoutMillis) }
            }
            switch result {
            case .drained:
                updateInterest()
                delegate?.upstreamDidDrain(self)
            case .partial:
                // Bytes wait that the upstream does not take: its inactivity, so the timer runs
                // even when this write moved nothing. The delegate may have stopped it at the
                // last drain (the wait was then the client's); armed only on progress, it
                // would stay stopped for an upstream that never reads again.
                if activityTimeoutMillis > 0 && !timer.isArmed { armTimer(afterMillis: activityTimeoutMillis) }
                updateInterest()
            }
        } catch {
            fail(error)
        }
    }

    /// Stops or resumes reading (back-pressure when the client cannot keep up).
    public func setReading(_ reading: Bool) {
        wantsRead = reading
        updateInterest()
    }

    public func armTimer(afterMillis millis: UInt64) { loop.arm(timer, after: millis) }
    public func cancelTimer() { timer.cancel() }

    /// Reads are paused (`setReading(false)`, back-pressure for a slow client) and the
    /// upstream has sent bytes, or the EOF that ends a close-delimited body, that wait unread:
    /// it is answering, not stalled. One `MSG_PEEK` byte, asked only when a timer fires.
    public var hasInputWaitingWhilePaused: Bool {
        guard !wantsRead, state == .open else { return false }
        return Socket.hasInputWaiting(fd)
    }

    public func close() {
        guard state != .closed else { return }
        state = .closed
        timer.cancel()
        loop.deregister(fd)
        Socket.close(fd)
        delegate = nil
    }

    // MARK: events

    public func handleEvent(readable: Bool, writable: Bool) {
        if state == .connecting {
            guard readable || writable else { return }
            let code = Socket.pendingError(fd)
            if code != 0 {
                let delegate = self.delegate
                close()
                delegate?.upstreamConnectFailed(self, error: IOError(errno: code, operation: "connect"))
                return
            }
            state = .open
            if activityTimeoutMillis > 0 { armTimer(afterMillis: activityTimeoutMillis) } else { timer.cancel() }
            // With nothing queued, `flush()` returns at once, and the interest asked for the
            // connect (writability only) would stay: the loop would wake on it every pass and
            // never read what the upstream sends.
            if outbound.isEmpty { updateInterest() } else { flush() }
            return
        }
        if readable && state == .open { readAvailable() }
        if writable && state == .open { flush() }
    }

    private func readAvailable() {
        let buffer = loop.upstreamReadBuffer
        do {
            switch try Socket.read(fd, into: buffer) {
            case .wouldBlock:
                return
            case .processed(0):
                let delegate = self.delegate
                close()
                delegate?.upstreamDidClose(self, error: nil)
            case .processed(let count):
                receivedResponseBytes = true
                if activityTimeoutMillis > 0 { armTimer(afterMillis: activityTimeoutMillis) }
                deliver(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
            }
        } catch {
            fail(error)
        }
    }

    /// Hands bytes to the delegate straight from the loop's read buffer when nothing is
    /// pending, so a whole small response is never copied here. The pending bytes are moved
    /// out during the call because the delegate may finish the exchange and the pool may hand
    /// this connection to another exchange before the call returns.
    private func deliver(_ fresh: UnsafeRawBufferPointer) {
        guard let delegate else { return }
        if inbound.isEmpty {
            let consumed = delegate.upstream(self, didRead: fresh)
            if consumed < fresh.count && state == .open {
                inbound.append(contentsOf: UnsafeRawBufferPointer(rebasing: fresh[consumed...]))
            }
            return
        }
        var pending = inbound
        inbound = []
        pending.append(contentsOf: fresh)
        let consumed = pending.withUnsafeBytes { delegate.upstream(self, didRead: $0) }
        if consumed < pending.count && state == .open {
            pending.removeFirst(consumed)
            inbound = pending
        }
    }

    private func fail(_ error: IOError) {
        let delegate = self.delegate
        close()
        delegate?.upstreamDidClose(self, error: error)
    }

    private func updateInterest() {
        guard state == .open else { return }
        var interest: Interest = wantsRead ? [.read] : []
        if !outbound.isEmpty { interest.insert(.write) }
        loop.setInterest(fd, interest)
    }

    /// Prepares a parked connection for a new exchange.
    func beginExchange() {
        receivedResponseBytes = false
        bytesWrittenThisExchange = 0
        inbound.removeAll(keepingCapacity: true)
        wantsRead = true
        updateInterest()
    }
}
