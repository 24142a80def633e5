import CSystemShims
import EventLoop
import Glibc
import Idempotency
import Synchronization

/// Starts one worker per configured loop, each on its own thread with its own SO_REUSEPORT
/// listener, and stops them gracefully.
public final class ProxyServer: @unchecked Sendable {
    public let settings: ProxySettings
    private var workers: [Worker] = []
    private var threads: [LoopThread] = []
    /// The bound port (useful when the configuration asked for port 0).
    public private(set) var port: UInt16 = 0
    /// The admin endpoint's bound port, if enabled.
    public private(set) var adminPort: UInt16?
    private var admin: AdminEndpoint?
    /// Connections the admin endpoint holds open now (each closes after its one response).
    public var adminConnections: Int { admin?.openConnections.load(ordering: .relaxed) ?? 0 }
    private var probe: UpstreamProbe?
    private var shared: SharedState?
    /// Each worker's loop, for tests that check nothing outlives the server.
    var loops: [EventLoop] { workers.map(\.loop) }
    private let drained = DrainCounter()

    /// Counts workers that finished draining; a class so loop closures can share it.
    private final class DrainCounter: Sendable {
        let value = Atomic<Int>(0)
    }

    /// Binds every listener before any thread starts, so "address in use" is a startup error.
    public let metrics = ProxyMetrics()

    /// `memoryStore` overrides the store the memory backend would create (several servers in
    /// one process can then share one store, as loops of one server do).
    public init(settings: ProxySettings, memoryStore: MemoryStore? = nil) throws(IOError) {
        self.settings = settings
        var fds: [Int32] = []
        // SO_REUSEPORT would let this listener share a port that another socket already
        // serves (same user), silently splitting that port's traffic — even when asking for
        // port 0, the kernel may hand out a port held by another SO_REUSEPORT listener. A
        // plain bind first makes a taken port the startup error an operator expects, and for
        // port 0 it picks a port nobody holds, which the workers then share.
        let portCheck = try Socket.listen(on: settings.listen, reusePort: false, backlog: 1)
        port = Socket.localPort(portCheck)
        Socket.close(portCheck)
        let address = settings.listen.port == port
            ? settings.listen : try Socket.Address.resolve(host: Self.hostText(settings.listen), port: port)
        for _ in 0..<settings.workers {
            let fd: Int32
            do {
                fd = try Socket.listen(on: address, reusePort: true)
            } catch {
                fds.forEach(Socket.close)
                throw error
            }
            fds.append(fd)
        }
        let shared = SharedState(settings: settings, metrics: metrics, memoryStore: memoryStore)
        self.shared = shared
        var adminFD: Int32 = -1
        do throws(IOError) {
            for (index, fd) in fds.enumerated() {
                workers.append(try Worker(index: index, settings: settings, listenFD: fd, shared: shared))
            }
            if let adminAddress = settings.adminListen {
                // Bound here so a busy admin port is a startup error like the main port; served
                // by the first loop (registered before its thread starts).
                adminFD = try Socket.listen(on: adminAddress, reusePort: false, backlog: 64)
                adminPort = Socket.localPort(adminFD)
                admin = try AdminEndpoint(fd: adminFD, loop: workers[0].loop, metrics: metrics, settings: settings, store: workers[0].store)
                probe = UpstreamProbe(
                    loop: workers[0].loop, address: settings.upstreamAddress, metrics: metrics,
                    connectTimeoutMillis: settings.connectTimeoutMillis)
            }
        } catch {
            // A failed start leaves nothing bound. Each worker made so far has its listener
            // registered on its loop, and the registration and the worker's loop keep each
            // other alive, so without this the main port would stay taken for the rest of the
            // process (an embedding, or a test, that tries again).
            for worker in workers { worker.closeListener() }
            fds[workers.count...].forEach(Socket.close)
            workers = []
            if adminFD >= 0 { Socket.close(adminFD) }
            admin = nil
            shared.accessLogWriter?.stop()
            throw error
        }
    }

    private static func hostText(_ address: Socket.Address) -> String {
        let text = address.description
        guard let colon = text.lastIndex(of: ":") else { return text }
        return String(text[..<colon])
    }

    public func start() {
        let probe = UncheckedTask { [probe] in probe?.start() }
        workers[0].loop.execute(probe.run)
        for worker in workers {
            let thread = LoopThread(name: "idemproxy-\(worker.loop.index)") {
                worker.startOnLoop()
                worker.loop.run()
            }
            threads.append(thread)
        }
    }

    /// Stops accepting, lets in-flight exchanges finish for up to `shutdown_grace`, closes
    /// what remains and returns once every loop thread has ended. Callable from any thread.
    public func shutdown() {
        metrics.shuttingDown.store(true, ordering: .relaxed)
        let total = workers.count
        for worker in workers {
            let loop = worker.loop
            let drained = self.drained
            loop.execute {
                worker.onDrained = {
                    worker.onDrained = nil
                    _ = drained.value.add(1, ordering: .acquiringAndReleasing)
                }
                worker.beginShutdown()
            }
        }
        // The admin endpoint's answers count as in-flight exchanges too: a purge waits out its
        // settle time on the store, and one cut without an answer leaves the operator not
        // knowing whether the record went.
        let deadline = csys_monotonic_millis() + settings.shutdownGraceMillis
        while drained.value.load(ordering: .acquiring) < total || (admin?.connectionsHoldingAnAnswer.load(ordering: .relaxed) ?? 0) > 0,
              csys_monotonic_millis() < deadline {
            usleep(10_000)
        }
        let admin = UncheckedTask { [admin, probe] in
            admin?.close()
            probe?.stop()
        }
        workers[0].loop.execute(admin.run)
        for worker in workers {
            worker.loop.execute {
                // A worker that never drained still holds this callback, which holds the
                // worker: the pair would outlive the server, and with it the worker's loop.
                worker.onDrained = nil
                worker.forceClose()
                worker.accessLog?.flush()
                worker.loop.stop()
            }
        }
        for thread in threads { thread.join() }
        shared?.accessLogWriter?.drain()
        shared?.accessLogWriter?.stop()
    }

    /// Installs the process-wide signal policy: SIGPIPE ignored (writes to closed sockets
    /// return EPIPE instead of killing the process), SIGTERM/SIGINT blocked in every thread
    /// so `waitForTerminationSignal` receives them synchronously. Call before `start()`.
    public static func prepareSignals() {
        csys_ignore_sigpipe()
        _ = csys_block_termination_signals()
    }

    /// Puts every thread's allocations in glibc's main arena, which grows in 128 KiB steps,
    /// instead of per-thread arenas that grow a page or two per system call (a store of new
    /// records paid one about every sixth request). Call before any thread starts.
    public static func prepareAllocator() {
        csys_use_one_allocation_arena()
    }

    /// Blocks until SIGTERM or SIGINT arrives; returns its number.
    public static func waitForTerminationSignal() -> Int32 {
        csys_wait_termination_signal()
    }
}
