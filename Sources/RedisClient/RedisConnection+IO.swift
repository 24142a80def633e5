import EventLoop

/// The socket side of a `RedisConnection`: readiness events, the handshake, writing the
/// output buffer and reading replies into the FIFO of commands.
extension RedisConnection {
    public func handleEvent(readable: Bool, writable: Bool) {
        switch phase {
        case .idle, .locating:
            return
        case .connectingTCP:
            let code = Socket.pendingError(fd)
            guard code == 0 else {
                teardown(IOError(errno: code, operation: "connect \(endpoint)").description)
                return
            }
            phase = .handshaking
            continueHandshake()
        case .handshaking:
            continueHandshake()
        case .ready:
            let generation = self.generation
            if readable || (writable && readWaitsForWritable) { readReplies() }
            guard generation == self.generation, phase == .ready else { return }
            if writable || (readable && writeWaitsForReadable) { writeOut() }
        }
    }

    func continueHandshake() {
        guard let transport else { return }
        switch transport.handshake() {
        case .bytes: becameReady()
        case .wantRead: loop.setInterest(fd, [.read])
        case .wantWrite: loop.setInterest(fd, [.write])
        case .closed: teardown("connection closed during the TLS handshake")
        case .failed(let why): teardown(why)
        }
    }

    func writeOut() {
        guard let transport else { return }
        writeWaitsForReadable = false
        while outStart < writableEnd {
            let end = writableEnd
            let step = out.withUnsafeBytes { transport.write(UnsafeRawBufferPointer(rebasing: $0[outStart..<end])) }
            switch step {
            case .bytes(let count):
                outStart += count
                writtenBytes += UInt64(count)
            case .wantWrite:
                trimWritten()
                updateInterest()
                return
            case .wantRead:
                writeWaitsForReadable = true
                trimWritten()
                updateInterest()
                return
            case .closed, .failed:
                streamEnded(step)
                return
            }
        }
        // All written (or all that may be for now). A buffer grown for one large command is not kept.
        if outStart == out.count {
            if out.capacity > 256 * 1024 { out = [] } else { out.removeAll(keepingCapacity: true) }
            outStart = 0
        } else {
            trimWritten()
        }
        updateInterest()
    }

    /// The peer closed the stream or it broke: the connection ends.
    func streamEnded(_ step: TransportStep) {
        if case .failed(let why) = step { teardown(why) } else { teardown("connection closed by server") }
    }

    /// While Redis reads slower than commands arrive, drops the written prefix now and then,
    /// so the buffer holds what is still to send, not all traffic of the backlog. Safe during
    /// a TLS write retry: the unwritten bytes keep their content and length.
    func trimWritten() {
        guard outStart >= 64 * 1024, outStart * 2 >= out.count else { return }
        out.removeFirst(outStart)
        outStart = 0
    }

    func readReplies() {
        guard let transport, let reader else { return }
        readWaitsForWritable = false
        let generation = self.generation
        while true {
            let step = transport.read(into: readBuffer)
            switch step {
            case .bytes(let count):
                guard reader.feed(UnsafeRawBufferPointer(rebasing: readBuffer[..<count])) else {
                    teardown("redis reply parser failed")
                    return
                }
                deliverReplies(reader)
                guard generation == self.generation else { return }
                // A short read drained the socket; TLS may still hold decrypted bytes epoll
                // cannot see.
                if count < readBuffer.count && !transport.hasBufferedInput { return }
            case .wantRead:
                return
            case .wantWrite:
                readWaitsForWritable = true
                updateInterest()
                return
            case .closed, .failed:
                streamEnded(step)
                return
            }
        }
    }

    func deliverReplies(_ reader: ReplyReader) {
        let generation = self.generation
        while true {
            switch reader.next() {
            case .needMore:
                dropAnswered()
                return
            case .broken(let why):
                teardown(why)
                return
            case .reply(let value):
                // A subscribed connection's messages can come before the reply to a command
                // (its PING): they are never that reply.
                if let onPush, case .array(let items) = value, let kind = items.first?.text, kind == "message" || kind == "subscribe" {
                    onPush(value)
                    guard generation == self.generation else { return }
                    continue
                }
                guard pendingHead < pending.count else {
                    if let onPush {
                        onPush(value)
                        guard generation == self.generation else { return }
                        continue
                    }
                    teardown("redis sent a reply nobody asked for")
                    return
                }
                let command = pending[pendingHead]
                pendingHead += 1
                if !command.completed {
                    complete(command, .success(value))
                    guard generation == self.generation else { return }
                }
                // The primary was demoted (a failover): writes must go to the new one.
                if configuration.requirePrimary, case .error(let message) = value, message.contains("READONLY") {
                    teardown("\(endpoint) is no longer the primary (\(message))")
                    return
                }
            }
        }
    }

    /// Runs a command's completion once, reporting it to this node's stats first.
    func complete(_ command: PendingCommand, _ result: Result<RedisValue, RedisClientError>) {
        guard !command.completed else { return }
        if let nodeStats, command.startNanos != 0 {
            let failed: Bool
            switch result {
            case .failure: failed = true
            case .success(.error(let message)): failed = !(message.hasPrefix("MOVED ") || message.hasPrefix("ASK "))
            case .success: failed = false
            }
            nodeStats.commandFinished(nanoseconds: EventLoop.monotonicNanos() &- command.startNanos, failed: failed)
        }
        command.finish(result, from: self)
    }

    /// Forgets answered commands. The timer is left armed: when it fires it finds the next
    /// deadline itself, which keeps this per-reply path free of a scan.
    func dropAnswered() {
        if pendingHead == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingHead = 0
            if phase == .ready { timeoutTimer.cancel() }
        } else if pendingHead > 64 {
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
    }
}
