import CHiredis

/// Turns the bytes a Redis connection reads into replies, with hiredis' `redisReader` (RESP2)
/// as the parser: the only part of hiredis 0.14 this client uses.
///
/// One reader per socket: after a protocol error the reader never recovers, and neither can
/// the connection (the reply boundaries are lost), so both go.
final class ReplyReader {
    enum Next {
        case reply(RedisValue)
        case needMore
        case broken(String)
    }

    /// The most bytes a reply may have buffered while incomplete. hiredis 0.14 accepts any
    /// announced length (`$3000000000` waits for three gigabytes); Redis itself refuses
    /// bulks over 512 MB (`proto-max-bulk-len`), and a stored response is far smaller.
    static let maxIncompleteBytes = 600 * 1024 * 1024

    private let reader: UnsafeMutablePointer<redisReader>

    init() {
        reader = redisReaderCreate()
        // 0: keep the buffer between replies instead of freeing it whenever it empties.
        reader.pointee.maxbuf = 0
    }

    deinit { redisReaderFree(reader) }

    func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.withMemoryRebound(to: CChar.self) { redisReaderFeed(reader, $0.baseAddress, $0.count) } == REDIS_OK
    }

    func next() -> Next {
        var raw: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &raw) == REDIS_OK else {
            return .broken(withUnsafeBytes(of: reader.pointee.errstr) { bytes in
                "redis protocol error: " + String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            })
        }
        guard let raw else {
            if reader.pointee.len - reader.pointee.pos > Self.maxIncompleteBytes {
                return .broken("redis reply larger than \(Self.maxIncompleteBytes) bytes")
            }
            return .needMore
        }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        return .reply(RedisValue(copying: reply))
    }
}
