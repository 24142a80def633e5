import EventLoop
import Glibc

/// What one read, write or handshake step on a Redis connection's byte stream did.
enum TransportStep: Equatable {
    /// This many bytes moved (a read of 0 is never reported: it is `.closed`).
    case bytes(Int)
    /// Nothing to do until the socket is readable (again).
    case wantRead
    /// Nothing to do until the socket is writable (again).
    case wantWrite
    /// The peer ended the stream.
    case closed
    /// The stream is broken; the text says why (for logs and readiness).
    case failed(String)
}

/// The byte stream under one Redis connection: plain TCP, or TLS over it. `RedisConnection`
/// owns the socket and the event loop registration; a transport only moves bytes, so plain
/// and TLS connections share one code path for connecting, batching, replies and timeouts.
protocol RedisTransport: AnyObject {
    /// Runs after the TCP connect completed: `.bytes(0)` when the stream is ready for
    /// commands, `.wantRead`/`.wantWrite` to be called again on that readiness.
    func handshake() -> TransportStep
    func read(into buffer: UnsafeMutableRawBufferPointer) -> TransportStep
    func write(_ bytes: UnsafeRawBufferPointer) -> TransportStep
    /// Input already taken off the socket but not yet returned by `read` (decrypted TLS
    /// records): level-triggered epoll cannot see it, so the reader must drain it first.
    var hasBufferedInput: Bool { get }
    /// Ends the stream politely where the protocol has a way to (TLS close_notify); the
    /// connection closes the socket itself afterwards.
    func shutdown()
}

/// Plain TCP: `read(2)` and `send(2)` on the socket.
final class PlainTransport: RedisTransport {
    private let fd: Int32

    init(fd: Int32) { self.fd = fd }

    func handshake() -> TransportStep { .bytes(0) }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TransportStep {
        do {
            switch try Socket.read(fd, into: buffer) {
            case .processed(0): return .closed
            case .processed(let count): return .bytes(count)
            case .wouldBlock: return .wantRead
            }
        } catch {
            return .failed("\(error)")
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> TransportStep {
        do {
            switch try Socket.write(fd, bytes) {
            case .processed(let count): return .bytes(count)
            case .wouldBlock: return .wantWrite
            }
        } catch {
            return .failed("\(error)")
        }
    }

    var hasBufferedInput: Bool { false }

    func shutdown() {}
}
