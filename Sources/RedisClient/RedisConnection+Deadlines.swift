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
        // Truly unresponsive: nothing answered long past the oldest command's deadline. What
        // was written times out (it may have run); what never left this process was surely
        // not applied, as `teardown` tells it.
        if phase == .ready && now >= pending[pendingHead].deadline + configuration.unresponsiveGraceMillis {
            let reason = "redis stopped answering (no reply for \(configuration.unresponsiveGraceMillis) ms past a command's deadline)"
            let written = writtenBytes
            for command in pending[pendingHead...] {
                complete(command, .failure(command.streamEnd > written ? .notConnected(reason) : .timeout))
            }
            teardown(reason)
            return
        }
        // Otherwise each command past its own deadline fails alone; the others keep waiting.
        // While connecting nothing was sent, and an expired command is removed before anything
        // is (`becameReady`), so it surely is not applied. The same holds for a command queued
        // behind setup commands still unanswered (AUTH, SELECT, ROLE): nothing after them was
        // written, and an expired one is removed below, before anything else is.
        let expired: RedisClientError = connecting ? .notConnected("still connecting") : .timeout
        let heldBehindSetup = phase == .ready && setupOutstanding > 0
        let generation = self.generation
        var next = UInt64.max
        var droppedBehindSetup = false
        var index = pendingHead
        while index < pending.count {
            let command = pending[index]
            index += 1
            guard !command.completed else { continue }
            if command.deadline <= now {
                if heldBehindSetup && command.streamStart >= setupEnd {
                    droppedBehindSetup = true
                    complete(command, .failure(.notConnected("waiting for the connection's setup commands")))
                } else {
                    complete(command, .failure(expired))
                }
                guard generation == self.generation else { return }
            } else {
                next = min(next, command.deadline)
            }
        }
        if droppedBehindSetup && setupOutstanding > 0 { dropCompletedUnsent(from: setupEnd) }
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

    /// Removes from the output the commands that completed (expired) without being sent,
    /// among those from `streamOffset` on, none of which has been written (the bytes before it,
    /// a TLS write may be retrying, are left as they are). Their replies will never come, so
    /// they leave the FIFO too.
    func dropCompletedUnsent(from streamOffset: UInt64) {
        precondition(writtenBytes <= streamOffset && streamOffset <= queuedBytes, "dropCompletedUnsent: bytes from the offset were written")
        let base = streamBase
        var tail: [UInt8] = []
        var end = streamOffset
        var kept: [PendingCommand] = []
        for command in pending[pendingHead...] {
            guard command.streamStart >= streamOffset else {
                kept.append(command)
                continue
            }
            if command.completed { continue }
            let length = command.streamEnd - command.streamStart
            tail.append(contentsOf: out[Int(command.streamStart - base)..<Int(command.streamEnd - base)])
            command.streamStart = end
            command.streamEnd = end + length
            end += length
            kept.append(command)
        }
        out.removeSubrange(Int(streamOffset - base)...)
        out.append(contentsOf: tail)
        queuedBytes = end
        pending = kept
        pendingHead = 0
    }
}
