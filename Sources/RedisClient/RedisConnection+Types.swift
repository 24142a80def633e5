/// The values a `RedisConnection` is made from and hands out: its configuration, the
/// address it connects to, and the record of each command awaiting its reply.
extension RedisConnection {
    public struct Configuration: Sendable {
        /// An IP literal (resolve names once at startup).
        public var host: String
        public var port: UInt16
        public var username: String?
        public var password: String?
        public var database: Int
        public var commandTimeoutMillis: UInt64
        /// Reconnect back-off starts at 50 ms and doubles up to this cap.
        public var maxBackoffMillis: UInt64
        /// Present for `rediss://`: every byte goes through TLS, never plaintext instead.
        public var tls: RedisTLSContext?
        /// The name the server's certificate must carry; nil: the host connected to.
        public var tlsServerName: String?
        /// Only a primary will do (Sentinel): `ROLE` is checked on every connect, and a
        /// `READONLY` reply (the primary was demoted) ends the connection.
        public var requirePrimary = false
        /// Where to report command latency, errors and readiness by node (metrics).
        public var stats: (any RedisNodeStatsRegistry)?

        /// How long past its deadline the oldest unanswered command may stay unanswered before
        /// the server counts as unresponsive and the connection is dropped.
        public var unresponsiveGraceMillis: UInt64 { max(commandTimeoutMillis * 2, 1000) }

        public init(host: String, port: UInt16, username: String? = nil, password: String? = nil, database: Int = 0,
                    commandTimeoutMillis: UInt64 = 250, maxBackoffMillis: UInt64 = 500, tls: RedisTLSContext? = nil,
                    tlsServerName: String? = nil) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.commandTimeoutMillis = commandTimeoutMillis
            self.maxBackoffMillis = maxBackoffMillis
            self.tls = tls
            self.tlsServerName = tlsServerName
        }
    }

    /// Why the primary could not be located.
    public struct LocateError: Error, Sendable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: UInt16
        public init(host: String, port: UInt16) {
            self.host = host
            self.port = port
        }
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// What runs when a command is answered: a plain completion, or one that is also told which
    /// connection answered (`RedisChannel`). Kept apart so neither needs a wrapping closure.
    enum Callback {
        case plain(Completion)
        case answered((Result<RedisValue, RedisClientError>, RedisConnection?) -> Void)
    }

    final class PendingCommand {
        /// Dropped once run: an answered command may wait in the FIFO a while, and its closure
        /// can hold a large payload.
        var callback: Callback?
        let deadline: UInt64
        /// Where the command's bytes lie in this connection's output stream.
        var streamStart: UInt64
        var streamEnd: UInt64
        /// When it was sent (monotonic), for latency by node; 0 when nobody measures.
        let startNanos: UInt64
        init(callback: Callback, deadline: UInt64, streamStart: UInt64, streamEnd: UInt64, startNanos: UInt64) {
            self.callback = callback
            self.deadline = deadline
            self.streamStart = streamStart
            self.streamEnd = streamEnd
            self.startNanos = startNanos
        }

        /// The completion ran (reply, timeout or teardown).
        var completed: Bool { callback == nil }

        /// Runs the completion, once; later calls do nothing. `connection` is the one that
        /// answered, nil when it is being torn down (nothing may be sent on it then).
        func finish(_ result: Result<RedisValue, RedisClientError>, from connection: RedisConnection?) {
            guard let callback else { return }
            self.callback = nil
            switch callback {
            case .plain(let completion): completion(result)
            case .answered(let answered): answered(result, connection)
            }
        }
    }
}
