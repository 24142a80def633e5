import Glibc

/// A failed system call: the errno it returned and the operation that failed, so a log line
/// reads "connect: Connection refused (errno 111)" rather than a bare number.
public struct IOError: Error, Sendable, Equatable, CustomStringConvertible {
    public let errno: Int32
    public let operation: String

    public init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
    }

    /// An `accept` that failed for lack of descriptors or kernel memory: the connection stays
    /// in the backlog, so a level-triggered listener would report it again at once and spin a
    /// core; the caller must stop listening for a while instead (SPEC §5).
    public var isOutOfDescriptors: Bool {
        errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM
    }
}

/// The result of a non-blocking call: would-block is an expected value, not an error.
public enum IOResult<Value> {
    case processed(Value)
    case wouldBlock
}

/// The one place that turns a raw syscall return into a value or an error. `EINTR` is retried
/// here so no caller has to remember; `EAGAIN`/`EWOULDBLOCK` become `.wouldBlock`.
@inline(__always)
public func syscallRetrying(_ operation: @autoclosure () -> String, _ body: () -> Int) throws(IOError) -> IOResult<Int> {
    while true {
        let result = body()
        if result >= 0 { return .processed(result) }
        let code = Glibc.errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK { return .wouldBlock }
        throw IOError(errno: code, operation: operation())
    }
}
