/// Command and connect deadlines of a `RedisConnection` (see the type's comment for what a
/// command timeout means).
extension RedisConnection {
    func checkTimeouts() {
        let now = loop.now
        let connecting = phase == .locating || phase == .connectingTCP || phase == .handshaking
        if (phase == .connectingTCP || phase == .handshaking) && now >= connectDeadline {
            teardown(phase == .connectingTCP ? "connect timed out" : "TLS handshake timed out")
            return
        }
        guard pendingHead < pending.count else {
            if connecting && phase != .locating { loop.arm(timeoutTimer, at: connectDeadline) }
            return
        }
        // Truly unresponsive: nothing answered long past the oldest command's deadline.
        if phase == .ready && now >= pending[pendingHead].deadline + configuration.unresponsiveGraceMillis {
            for command in pending[pendingHead...] { complete(command, .failure(.timeout)) }
            teardown("redis stopped answering (no reply for \(configuration.unresponsiveGraceMillis) ms past a command's deadline)")
            return
        }
        // Otherwise each command past its own deadline fails alone; the others keep waiting.
        // While connecting nothing was sent, and an expired command is removed before anything
        // is (`becameReady`), so it surely is not applied.
        let expired: RedisClientError = connecting ? .notConnected("still connecting") : .timeout
        let generation = self.generation
        var next = UInt64.max
        var index = pendingHead
        while index < pending.count {
            let command = pending[index]
            index += 1
            guard !command.completed else { continue }
            if command.deadline <= now {
                complete(command, .failure(expired))
                guard generation == self.generation else { return }
            } else {
                next = min(next, command.deadline)
            }
        }
        // The grace deadline only applies to a server that owes replies; a connect (and its
        // TLS handshake) has its own; locating has none (each Sentinel probe is bounded).
        if phase == .ready && pendingHead < pending.count {
            next = min(next, pending[pendingHead].deadline + configuration.unresponsiveGraceMillis)
        }
        if phase == .connectingTCP || phase == .handshaking { next = min(next, connectDeadline) }
        guard next != .max else { return }
        // Never in the past: the loop would pop the timer again in the same pass, forever.
        loop.arm(timeoutTimer, at: max(next, now + 1))
    }
}
