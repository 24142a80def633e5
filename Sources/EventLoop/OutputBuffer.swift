/// Bytes waiting to be written to one socket. Appends go to `bytes`; `flush` writes from
/// `sent` onwards and resets the buffer once everything has gone, keeping a modest capacity
/// so a keep-alive connection does not reallocate per response, but releasing a large one
/// so an idle connection after a big download holds no memory.
public struct OutputBuffer {
    public var bytes: [UInt8] = []
    public private(set) var sent = 0
    /// Bytes written to the socket over the buffer's life: with `pendingCount`, a position in
    /// the stream that survives the resets after each drain.
    public private(set) var totalWritten: UInt64 = 0

    public init() {}

    /// Keeps written bytes after a drain (until `reset()`), so a request can be re-sent on a
    /// fresh connection without having been copied up front.
    public var retainAfterDrain = false

    public var pendingCount: Int { bytes.count - sent }
    public var isEmpty: Bool { sent == bytes.count }

    public enum FlushResult { case drained, partial }

    /// Writes as much as the socket accepts now.
    public mutating func flush(to fd: Int32) throws(IOError) -> FlushResult {
        while sent < bytes.count {
            let start = sent
            let attempt = bytes.withUnsafeBytes { raw in
                Result { () throws(IOError) in try Socket.write(fd, UnsafeRawBufferPointer(rebasing: raw[start...])) }
            }
            switch try attempt.get() {
            case .processed(let count):
                sent += count
                totalWritten &+= UInt64(count)
            case .wouldBlock: return .partial
            }
        }
        if !retainAfterDrain { reset() }
        return .drained
    }

    public mutating func reset() {
        retainAfterDrain = false
        // Emptying an array costs a call and a uniqueness check even when it is empty already.
        if bytes.capacity > 64 * 1024 { bytes = [] } else if !bytes.isEmpty { bytes.removeAll(keepingCapacity: true) }
        sent = 0
    }

    /// Keeps only the first `count` unsent bytes, dropping what was queued after them.
    public mutating func keepPending(first count: Int) {
        precondition(count >= 0 && count <= pendingCount)
        bytes.removeSubrange((sent + count)...)
    }

    @inline(__always)
    public mutating func append(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }
}
