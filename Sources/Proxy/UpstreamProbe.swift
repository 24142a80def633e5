import EventLoop

/// Re-checks an upstream marked unreachable, once a second, with a plain TCP connect: a pod
/// taken out of rotation because of a failed connect gets no traffic, so without this its
/// readiness could never recover.
final class UpstreamProbe: EventHandler {
    private unowned let loop: EventLoop
    private let address: Socket.Address
    private let metrics: ProxyMetrics
    private let connectTimeoutMillis: UInt64
    private var fd: Int32 = -1
    private var attemptDeadline: UInt64 = 0
    private lazy var timer = Timer { [weak self] in self?.tick() }

    init(loop: EventLoop, address: Socket.Address, metrics: ProxyMetrics, connectTimeoutMillis: UInt64) {
        self.loop = loop
        self.address = address
        self.metrics = metrics
        self.connectTimeoutMillis = connectTimeoutMillis
    }

    func start() { loop.arm(timer, after: 1000) }

    func stop() {
        timer.cancel()
        finishAttempt()
    }

    private func tick() {
        defer { loop.arm(timer, after: 1000) }
        if fd >= 0 {
            if loop.now >= attemptDeadline { finishAttempt() }
            return
        }
        guard !metrics.upstreamReachable.load(ordering: .relaxed) else { return }
        guard let socket = try? Socket.connect(to: address) else { return }
        do {
            try loop.register(socket, handler: self, interest: [.write])
            fd = socket
            attemptDeadline = loop.now + connectTimeoutMillis
        } catch {
            Socket.close(socket)
        }
    }

    func handleEvent(readable: Bool, writable: Bool) {
        guard fd >= 0 else { return }
        if Socket.pendingError(fd) == 0 { metrics.upstreamReachable.store(true, ordering: .relaxed) }
        finishAttempt()
    }

    private func finishAttempt() {
        guard fd >= 0 else { return }
        loop.deregister(fd)
        Socket.close(fd)
        fd = -1
    }
}
