import Glibc

/// Two pages mapped back to back with the second one made inaccessible, so a
/// buffer placed at the very end of the first page faults on any read past its
/// end. This catches word-at-a-time loads that step over the caller's bytes.
final class GuardedMemory {
    private let base: UnsafeMutableRawPointer
    private let pageSize: Int
    private let capacity: Int

    init(capacity: Int = 64 * 1024) {
        pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let dataPages = (capacity + pageSize - 1) / pageSize
        self.capacity = dataPages * pageSize
        let mapped = mmap(nil, self.capacity + pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        precondition(mapped != MAP_FAILED, "mmap failed")
        base = mapped!
        precondition(mprotect(base + self.capacity, pageSize, PROT_NONE) == 0, "mprotect failed")
    }

    deinit {
        munmap(base, capacity + pageSize)
    }

    /// Runs `body` with `bytes` copied so that they end exactly at the guard page.
    func withBytesAtEnd<R>(_ bytes: ArraySlice<UInt8>, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(bytes.count <= capacity)
        let start = base + (capacity - bytes.count)
        bytes.withUnsafeBytes { source in
            if let address = source.baseAddress { start.copyMemory(from: address, byteCount: source.count) }
        }
        return try body(UnsafeRawBufferPointer(start: start, count: bytes.count))
    }
}
