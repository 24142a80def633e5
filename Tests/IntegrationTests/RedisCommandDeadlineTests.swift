import EventLoop
import Foundation
import RedisClient
import Testing
import TestSupport

/// A command past its deadline fails alone; the connection is dropped only when Redis stops
/// answering altogether (RedisConnection's timeout rule), shown with replies withheld by a relay.
@Suite(.serialized) struct RedisCommandDeadlineTests {
    final class Rig {
        let redis: RedisServer
        let relay: FaultRelay
        let loop: EventLoop
        let connection: RedisConnection

        init() throws {
            redis = try RedisServer()
            relay = try FaultRelay(targetPort: redis.port)
            loop = try EventLoop()
            connection = RedisConnection(configuration: .init(host: "127.0.0.1", port: relay.port, commandTimeoutMillis: 100), loop: loop)
            connection.connect()
            try #require(run(until: { self.connection.state == .ready }))
        }

        @discardableResult
        func run(seconds: Double = 3, until done: () -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if done() { return true }
                loop.runOnce(maxWaitMillis: 10)
            }
            return done()
        }

        func stop() { relay.stop() }
    }

    @Test func aSlowReplyFailsOnlyItsOwnCommand() throws {
        let rig = try Rig()
        defer { rig.stop() }
        rig.relay.withholdReplies = true
        var short: Result<RedisValue, RedisClientError>?
        var long: Result<RedisValue, RedisClientError>?
        var command = RedisCommand(argumentCount: 2, capacity: 32)
        command.append("ECHO")
        command.append("short")
        rig.connection.send(command) { short = $0 }
        var second = RedisCommand(argumentCount: 2, capacity: 32)
        second.append("ECHO")
        second.append("long")
        rig.connection.send(second, timeoutMillis: 900) { long = $0 }
        #expect(rig.run(seconds: 1) { short != nil })
        #expect(short == .failure(.timeout))
        #expect(long == nil)
        rig.relay.withholdReplies = false
        #expect(rig.run { long != nil })
        // The late reply to the first command was discarded; the second got its own reply.
        #expect(long == .success(.string(Array("long".utf8))))
        #expect(rig.connection.state == .ready)
        #expect(rig.relay.connectionsAccepted == 1)  // never dropped
        var after: Result<RedisValue, RedisClientError>?
        rig.connection.send(["PING"]) { after = $0 }
        #expect(rig.run { after != nil })
        #expect(after == .success(.status("PONG")))
    }

    @Test func aServerThatStopsAnsweringIsDroppedAndReconnected() throws {
        let rig = try Rig()
        defer { rig.stop() }
        rig.relay.withholdReplies = true
        var result: Result<RedisValue, RedisClientError>?
        let started = Date()
        rig.connection.send(["PING"]) { result = $0 }
        #expect(rig.run(seconds: 1) { result != nil })
        #expect(result == .failure(.timeout))
        // Still connected until the grace (max(2 × 100 ms, 1 s)) past the deadline has passed.
        #expect(rig.connection.state == .ready)
        #expect(rig.run(seconds: 3) { rig.connection.state != .ready })
        #expect(Date().timeIntervalSince(started) >= 1.0)
        rig.relay.withholdReplies = false
        #expect(rig.run(seconds: 3) { rig.connection.state == .ready })
        // The relay counts a connection when it accepts it, which may trail the client's connect.
        #expect(rig.run(seconds: 1) { rig.relay.connectionsAccepted >= 2 })
    }
}
