import Idempotency
import RedisClient

/// What the operator's commands read and change (`idemproxy records`, `/records`): a record
/// as stored, its remaining life and lease, and a purge that reaches every replica's cache.
extension RedisIdempotencyStore {
    /// How much longer than a command a purge takes to answer (see `purge`).
    public static var purgeSettleMillis: UInt64 { RedisPurgeLog.settleMillis }

    public func get(key: String, completion: @escaping (Result<IdempotencyRecord?, StoreError>) -> Void) {
        connection.send([Array("GET".utf8), Array(key.utf8)], key: key) { result in
            switch Self.storeResult(result) {
            case .success(.null):
                completion(.success(nil))
            case .success(.string(let bytes)):
                completion(Self.decode(bytes).map { $0 })
            case .success(let other):
                completion(.failure(.unavailable("unexpected GET reply \(other)")))
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    public func inspect(key: String, completion: @escaping (Result<RecordInspection?, StoreError>) -> Void) {
        run(.inspect, key: key, argumentCount: 0, { _ in }) { result, _ in
            switch result {
            case .success(.null):
                completion(.success(nil))
            case .success(.array(let items)):
                guard items.count == 3, case .string(let bytes) = items[0], let ttl = items[1].integer, let now = items[2].integer else {
                    completion(.failure(.corrupt("unexpected inspect reply \(items)")))
                    return
                }
                let nowMillis = UInt64(max(0, now))
                completion(Self.decode(bytes).map { record in
                    // PTTL is -1 for a key without expiry (never written so by idemproxy).
                    let expires = ttl < 0 ? UInt64.max : UInt64(ttl)
                    return RecordInspection(
                        record: record, expiresInMillis: expires,
                        leaseRemainingMillis: Self.leaseRemaining(record, expiresInMillis: expires, nowMillis: nowMillis))
                })
            case .success(let other):
                completion(.failure(.corrupt("unexpected inspect reply \(other)")))
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    /// An in-flight record's remaining lease: what the key has left beyond the time it outlives
    /// its lease, or (a record of an earlier version) its deadline against Redis' clock.
    static func leaseRemaining(_ record: IdempotencyRecord, expiresInMillis: UInt64, nowMillis: UInt64) -> UInt64 {
        guard record.state == .inFlight else { return 0 }
        let field = record.leaseDeadlineMillis
        if field & RecordCodec.leaseByExpiry != 0 {
            let keep = field & ~RecordCodec.leaseByExpiry
            return expiresInMillis > keep ? expiresInMillis - keep : 0
        }
        return field > nowMillis ? field - nowMillis : 0
    }

    /// Deletes the record, then announces the purge to every replica's replay cache (see
    /// `RedisPurgeLog`); a purge counts as done only once both are and no cache anywhere can
    /// still serve the record (`RedisPurgeLog.settleMillis` later): the answer means the key may
    /// be used again (SPEC §8), on every worker of every replica. When the delete went through
    /// but the announcement did not, the error says the purge may have been applied: purging
    /// again announces it (a purge of an absent record is announced too).
    ///
    /// With `min_replicas_acked`, the delete and the announcement each count only once that many
    /// replicas hold them (`WAIT`), as claims and completions do: an acknowledged purge that a
    /// failover then lost would bring the record back, and with it the replays the operator
    /// purged. A delete that timed out or lost its connection may still have been applied, so it
    /// is announced all the same where a connection can still take the announcement (in a
    /// Cluster, another node's; a single connection that was lost fails it at once); the answer
    /// is the delete's failure either way, and purging again announces it.
    ///
    /// Unless `evenInFlight`, the delete is a script that leaves a live claim alone (see
    /// `RedisScripts.purgeUnlessInFlight`); nothing was deleted then, so nothing is announced.
    public func purge(key: String, evenInFlight: Bool, completion: @escaping (Result<PurgeResult, StoreError>) -> Void) {
        delete(key, evenInFlight: evenInFlight) { deleted, server in
            switch deleted {
            case .success(.stillInFlight(let lease)):
                completion(.success(.stillInFlight(leaseRemainingMillis: lease)))
            case .success(let found):
                self.awaitReplicas(on: server) { replicated in
                    self.announcePurge(key) { announced in
                        switch (replicated, announced) {
                        case (.success, .success):
                            self.purgeLog.afterEveryCacheHasSeenAPurge { completion(.success(found)) }
                        case (.failure(let error), _):
                            completion(.failure(.notReplicated("the delete is not known to have reached the replicas, so a failover may bring the record back (\(error)); purge again")))
                        case (.success, .failure(.notReplicated(let why))):
                            completion(.failure(.notReplicated("the purge was announced, but the announcement is not known to have reached the replicas (\(why)); purge again")))
                        case (.success, .failure(let error)):
                            completion(.failure(.connectionLost("the record was deleted, but replicas' replay caches were not told (\(error)); purge again")))
                        }
                    }
                }
            case .failure(let error) where error.mayHaveBeenApplied:
                self.announcePurge(key) { _ in completion(.failure(error)) }
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    /// The purge's delete: a plain `DEL`, or the script that leaves a live claim alone.
    private func delete(
        _ key: String, evenInFlight: Bool, completion: @escaping (Result<PurgeResult, StoreError>, RedisConnection?) -> Void
    ) {
        guard !evenInFlight else {
            var command = RedisCommand(argumentCount: 2)
            command.append("DEL")
            command.append(key)
            connection.send(command, key: key, timeoutMillis: nil) { result, server in
                completion(Self.storeResult(result).flatMap { value in
                    guard let count = value.integer else { return .failure(.corrupt("unexpected DEL reply \(value)")) }
                    return .success(count > 0 ? .purged : .absent)
                }, server)
            }
            return
        }
        run(.purgeUnlessInFlight, key: key, argumentCount: 0, { _ in }) { result, server in
            completion(result.flatMap { value in
                switch value {
                case .array(let items) where items.count == 1 && items[0].integer == 1: return .success(.purged)
                case .array(let items) where items.count == 1 && items[0].integer == 0: return .success(.absent)
                case .array(let items) where items.count == 2 && items[0].integer == 2:
                    guard let lease = items[1].integer else { break }
                    // At least 1 ms: the script saw the lease running; -1 for one without end.
                    return .success(.stillInFlight(leaseRemainingMillis: lease < 0 ? .max : UInt64(max(1, lease))))
                default: break
                }
                return .failure(.corrupt("unexpected purge reply \(value)"))
            }, server)
        }
    }

    /// Writes the purge to the log (and, with `min_replicas_acked`, waits for replicas to hold it).
    private func announcePurge(_ key: String, then: @escaping (Result<Void, StoreError>) -> Void) {
        purgeLog.purgedHere(key)
        run(.announcePurge, key: purgeLog.streamKey, argumentCount: 2, { command in
            command.append(key)
            command.append(UInt64(RedisPurgeLog.streamLength))
        }) { announced, server in
            switch announced {
            case .success: self.awaitReplicas(on: server, then)
            case .failure(let error): then(.failure(error))
            }
        }
    }
}
