import EventLoop
import Idempotency
import RedisClient

/// `IdempotencyStore` on Redis, one instance (and one hiredis connection) per event loop.
/// Scripts are loaded once per connection (`SCRIPT LOAD`) and called with `EVALSHA`; a
/// `NOSCRIPT` reply (Redis restarted or flushed its script cache) falls back to `EVAL`,
/// which loads the script again.
public final class RedisIdempotencyStore: IdempotencyStore, @unchecked Sendable {
    public let connection: RedisConnection
    private var shas: [String?] = Array(repeating: nil, count: RedisScripts.all.count)

    private enum Script: Int { case claim, complete, release, markUnknown, refresh }

    public init(connection: RedisConnection) {
        self.connection = connection
        connection.onReady = { [weak self] connection in
            self?.loadScripts(connection)
            self?.retryDeferredReleases()
        }
    }

    /// Releases that could not reach Redis. A claim whose reply was lost may still have been
    /// applied; releasing it is a compare-and-set on our owner token, so it is retried after
    /// the next reconnect rather than leaving the key in flight for a request never forwarded.
    private var deferredReleases: [(key: String, owner: [UInt8])] = []
    private static let maxDeferredReleases = 10_000

    private func retryDeferredReleases() {
        let releases = deferredReleases
        deferredReleases.removeAll()
        for release in releases {
            self.release(key: release.key, owner: release.owner) { _ in }
        }
    }

    public var isReady: Bool { connection.state == .ready }

    private func loadScripts(_ connection: RedisConnection) {
        for (index, source) in RedisScripts.all.enumerated() {
            connection.send(["SCRIPT", "LOAD", source]) { [weak self] result in
                if case .success(let value) = result, let sha = value.text { self?.shas[index] = sha }
            }
        }
    }

    /// Runs a script by SHA (or by source until the SHA is known, or after NOSCRIPT).
    /// `argumentCount` and `appendArguments` describe ARGV; KEYS is always the one key.
    private func run(
        _ script: Script, key: String, argumentCount: Int, _ appendArguments: @escaping (inout RedisCommand) -> Void,
        completion: @escaping (Result<RedisValue, StoreError>) -> Void
    ) {
        let finish: (Result<RedisValue, RedisClientError>) -> Void = { result in
            switch result {
            case .success(.error(let message)):
                completion(.failure(.unavailable("redis: \(message)")))
            case .success(let value):
                completion(.success(value))
            case .failure(.timeout):
                completion(.failure(.timeout))
            case .failure(let error):
                completion(.failure(.unavailable(error.description)))
            }
        }
        func command(_ verb: String, _ scriptOrSHA: String) -> RedisCommand {
            var command = RedisCommand(argumentCount: 4 + argumentCount, capacity: 256 + (verb == "EVAL" ? scriptOrSHA.utf8.count : 0))
            command.append(verb)
            command.append(scriptOrSHA)
            command.append("1")
            command.append(key)
            appendArguments(&command)
            return command
        }
        let source = RedisScripts.all[script.rawValue]
        guard let sha = shas[script.rawValue] else {
            connection.send(command("EVAL", source), completion: finish)
            return
        }
        connection.send(command("EVALSHA", sha)) { [weak self] result in
            if case .success(.error(let message)) = result, message.hasPrefix("NOSCRIPT") {
                self?.shas[script.rawValue] = nil
                self?.connection.send(command("EVAL", source), completion: finish)
                if let self { self.loadScripts(self.connection) }
                return
            }
            finish(result)
        }
    }

    private static func flag(_ completion: @escaping (Result<Bool, StoreError>) -> Void) -> (Result<RedisValue, StoreError>) -> Void {
        { result in completion(result.map { $0.integer == 1 }) }
    }

    // MARK: IdempotencyStore

    public func claim(
        key: String, owner: [UInt8], fingerprint: [UInt8], lease: Duration, ttl: Duration,
        expiredLease: IndeterminatePolicy, completion: @escaping (Result<ClaimOutcome, StoreError>) -> Void
    ) {
        let policy = expiredLease == .hold ? "hold" : "release"
        let leaseMillis = lease.milliseconds, ttlMillis = ttl.milliseconds
        run(.claim, key: key, argumentCount: 5, { command in
            command.append(owner)
            command.append(fingerprint)
            command.append(leaseMillis)
            command.append(ttlMillis)
            command.append(policy)
        }) { result in
            switch result {
            case .success(.integer(1)):
                completion(.success(.claimed))
            case .success(.string(let bytes)):
                do {
                    completion(.success(.existing(try RecordCodec.decode(bytes))))
                } catch {
                    completion(.failure(.corrupt("\(error)")))
                }
            case .success(let other):
                completion(.failure(.corrupt("unexpected claim reply \(other)")))
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    public func complete(key: String, owner: [UInt8], response: StoredResponse, ttl: Duration, completion: @escaping (Result<Bool, StoreError>) -> Void) {
        // Only the response section travels; the script keeps the stored fingerprint and owner.
        let placeholder = IdempotencyRecord(
            state: .completed, fingerprint: [UInt8](repeating: 0, count: RecordCodec.fingerprintLength),
            owner: owner, leaseDeadlineMillis: 0, response: response)
        let encoded = RecordCodec.encode(placeholder)
        let ttlMillis = ttl.milliseconds
        run(.complete, key: key, argumentCount: 3, { command in
            command.append(owner)
            encoded.withUnsafeBytes { command.append(UnsafeRawBufferPointer(rebasing: $0[RecordCodec.Offset.flags...])) }
            command.append(ttlMillis)
        }, completion: Self.flag(completion))
    }

    public func release(key: String, owner: [UInt8], completion: @escaping (Result<Bool, StoreError>) -> Void) {
        run(.release, key: key, argumentCount: 1, { $0.append(owner) }) { [weak self] result in
            if case .failure = result {
                if let self, self.deferredReleases.count < Self.maxDeferredReleases {
                    self.deferredReleases.append((key, owner))
                }
            }
            completion(result.map { $0.integer == 1 })
        }
    }

    public func markUnknown(key: String, owner: [UInt8], ttl: Duration, completion: @escaping (Result<Bool, StoreError>) -> Void) {
        let ttlMillis = ttl.milliseconds
        run(.markUnknown, key: key, argumentCount: 2, { $0.append(owner); $0.append(ttlMillis) }, completion: Self.flag(completion))
    }

    public func refreshLease(key: String, owner: [UInt8], lease: Duration, completion: @escaping (Result<Bool, StoreError>) -> Void) {
        let leaseMillis = lease.milliseconds
        run(.refresh, key: key, argumentCount: 2, { $0.append(owner); $0.append(leaseMillis) }, completion: Self.flag(completion))
    }

    public func get(key: String, completion: @escaping (Result<IdempotencyRecord?, StoreError>) -> Void) {
        connection.send([Array("GET".utf8), Array(key.utf8)]) { result in
            switch result {
            case .success(.null):
                completion(.success(nil))
            case .success(.string(let bytes)):
                do { completion(.success(try RecordCodec.decode(bytes))) } catch { completion(.failure(.corrupt("\(error)"))) }
            case .success(let other):
                completion(.failure(.unavailable("unexpected GET reply \(other)")))
            case .failure(.timeout):
                completion(.failure(.timeout))
            case .failure(let error):
                completion(.failure(.unavailable(error.description)))
            }
        }
    }
}
