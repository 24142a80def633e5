import CHiredis

/// A Redis reply copied out of hiredis' `redisReply` inside the callback: hiredis frees the
/// reply as soon as the callback returns, so nothing may point into it afterwards.
public enum RedisValue: Sendable, Equatable {
    case string([UInt8])
    case status(String)
    case integer(Int64)
    case array([RedisValue])
    case null
    case error(String)

    init(copying reply: UnsafePointer<redisReply>) {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            self = .string(r.str.map { Array(UnsafeRawBufferPointer(start: $0, count: r.len)) } ?? [])
        case REDIS_REPLY_STATUS:
            self = .status(r.str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: r.len), as: UTF8.self) } ?? "")
        case REDIS_REPLY_ERROR:
            self = .error(r.str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: r.len), as: UTF8.self) } ?? "")
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisValue] = []
            items.reserveCapacity(r.elements)
            for i in 0..<r.elements {
                if let element = r.element[i] { items.append(RedisValue(copying: element)) } else { items.append(.null) }
            }
            self = .array(items)
        default:
            self = .null
        }
    }

    public var bytes: [UInt8]? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var text: String? {
        switch self {
        case .string(let value): return String(decoding: value, as: UTF8.self)
        case .status(let value): return value
        default: return nil
        }
    }

    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }
}

/// Why a command did not get a reply. Closed set, so a flat enum.
public enum RedisClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No connection is established (connecting, or backing off after a failure).
    case notConnected(String)
    /// No reply within the command's deadline. The command may still be applied; the
    /// connection stays up unless the server stops answering altogether.
    case timeout
    /// The connection broke while the command was outstanding: it may have been applied.
    case disconnected(String)
    /// hiredis refused to queue the command: it was never sent.
    case notQueued

    public var description: String {
        switch self {
        case .notConnected(let why): return "redis not connected: \(why)"
        case .timeout: return "redis command timed out"
        case .disconnected(let why): return "redis connection lost: \(why)"
        case .notQueued: return "redis command could not be queued"
        }
    }
}
