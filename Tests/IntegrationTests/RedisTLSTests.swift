import Foundation
import Glibc
import Testing
import TestSupport

/// `rediss://` against a real redis-server with TLS, certificates made by the `openssl` CLI
/// for each test: the guarded flow works, and a server the proxy cannot verify gets no store
/// traffic at all (SPEC §6: 503 store-unavailable, never plaintext).
@Suite(.serialized) struct RedisTLSTests {
    let pki: TestCertificates

    init() throws { pki = try TestCertificates() }

    /// A `store:` section for TLS on `port`; `tls` is the inside of `tls: { … }`.
    func yaml(port: UInt16, host: String = "localhost", tls: String, prefix: String) -> String {
        "store: { backend: redis, unavailable: reject, redis: { url: \"rediss://\(host):\(port)/0\", key_prefix: \"\(prefix)\", command_timeout: 500ms, tls: { \(tls) } } }\n"
    }

    func readiness(_ proxy: ProxyHarness) throws -> Int {
        try proxy.admin("/readyz").status
    }

    @Test func guardedTrafficGoesOverVerifiedTLS() throws {
        let redis = try RedisServer(tls: pki)
        let origin = CountingOrigin()
        let prefix = StoreKind.uniquePrefix()
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder),
            yaml: yaml(port: try #require(redis.tlsPort), tls: "ca_file: \(pki.caFile)", prefix: prefix))
        defer { proxy.stop() }
        #expect(try eventually { try readiness(proxy) == 200 })
        let key = uniqueKey()
        let first = try proxy.request(post(key: key))
        #expect(first.status == 201)
        let retry = try proxy.request(post(key: key))
        #expect(retry.status == 201)
        #expect(retry.value("idempotent-replayed") == "true")
        #expect(origin.count == 1)
        // The record is in this Redis (read over its plain port, which only the test uses).
        #expect(try redis.command("KEYS \(prefix)*").contains(prefix))
        // The proxy's connection is on the TLS port (CLIENT LIST names each client's local address).
        let clients = try redis.command("CLIENT LIST")
        #expect(clients.split(separator: "\n").filter { $0.contains("laddr=127.0.0.1:\(redis.tlsPort!)") }.count >= 1)
    }

    @Test func anIPAddressIsCheckedAgainstTheCertificatesAddresses() throws {
        let redis = try RedisServer(tls: pki)
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: CountingOrigin().responder),
            yaml: yaml(port: try #require(redis.tlsPort), host: "127.0.0.1", tls: "ca_file: \(pki.caFile)", prefix: StoreKind.uniquePrefix()))
        defer { proxy.stop() }
        #expect(try eventually { try readiness(proxy) == 200 })
        #expect(try proxy.request(post(key: uniqueKey())).status == 201)
    }

    @Test(arguments: ["wrong CA", "wrong name"])
    func aServerThatCannotBeVerifiedGetsNoStoreTraffic(_ fault: String) throws {
        let redis = try RedisServer(tls: pki)
        let origin = CountingOrigin()
        let prefix = StoreKind.uniquePrefix()
        let tls = fault == "wrong CA" ? "ca_file: \(pki.otherCAFile)" : "ca_file: \(pki.caFile), server_name: redis.internal.example"
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder),
            yaml: yaml(port: try #require(redis.tlsPort), tls: tls, prefix: prefix))
        defer { proxy.stop() }
        usleep(300_000)
        #expect(try readiness(proxy) == 503)
        let refused = try proxy.request(post(key: uniqueKey()))
        #expect(refused.status == 503)
        #expect(refused.bodyText.contains("store-unavailable"))
        #expect(origin.count == 0)
        #expect(try redis.command("KEYS \(prefix)*").hasPrefix("*0"))
    }

    /// Whatever the proxy sends first to a `rediss://` address is a TLS ClientHello (record
    /// type 22), never RESP, even when the handshake then fails.
    @Test func nothingIsEverSentInPlaintext() throws {
        let listener = FirstBytesListener()
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: CountingOrigin().responder),
            yaml: yaml(port: listener.port, host: "127.0.0.1", tls: "ca_file: \(pki.caFile)", prefix: StoreKind.uniquePrefix()))
        defer { proxy.stop() }
        _ = try proxy.request(post(key: uniqueKey()))
        #expect(eventually { !listener.firstBytes.isEmpty })
        for bytes in listener.firstBytes {
            #expect(bytes.first == 0x16, "first byte \(bytes.first.map(String.init) ?? "none") is not a TLS handshake record")
        }
    }

    @Test func aClientCertificateIsPresentedWhenTheServerRequiresOne() throws {
        let redis = try RedisServer(tls: pki, clientCertificates: .required)
        let port = try #require(redis.tlsPort)
        let without = try ProxyHarness(
            upstream: TestUpstream(behaviour: CountingOrigin().responder),
            yaml: yaml(port: port, tls: "ca_file: \(pki.caFile)", prefix: StoreKind.uniquePrefix()))
        usleep(300_000)
        #expect(try readiness(without) == 503)
        #expect(try without.request(post(key: uniqueKey())).status == 503)
        without.stop()

        let with = try ProxyHarness(
            upstream: TestUpstream(behaviour: CountingOrigin().responder),
            yaml: yaml(port: port, tls: "ca_file: \(pki.caFile), cert_file: \(pki.clientCertFile), key_file: \(pki.clientKeyFile)",
                       prefix: StoreKind.uniquePrefix()))
        defer { with.stop() }
        #expect(try eventually { try readiness(with) == 200 })
        let key = uniqueKey()
        #expect(try with.request(post(key: key)).status == 201)
        #expect(try with.request(post(key: key)).value("idempotent-replayed") == "true")
    }

    @Test func theRecordsCommandSpeaksTLSToo() throws {
        let redis = try RedisServer(tls: pki)
        let prefix = StoreKind.uniquePrefix()
        let config = "upstream: { url: http://127.0.0.1:3000 }\nidempotency: { scope: { header: \"\" } }\n"
            + yaml(port: try #require(redis.tlsPort), tls: "ca_file: \(pki.caFile)", prefix: prefix)
        let missing = try IdemproxyCLI.run(["records", "get", "--key", "nothing-here"], yaml: config)
        #expect(missing.status == 1, "\(missing.stderr)")
        let wrong = config.replacingOccurrences(of: pki.caFile, with: pki.otherCAFile)
        let refused = try IdemproxyCLI.run(["records", "get", "--key", "nothing-here"], yaml: wrong)
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("certificate"), "\(refused.stderr)")
    }
}

/// Accepts connections on a loopback port and keeps the first bytes each one sends.
final class FirstBytesListener: @unchecked Sendable {
    let port: UInt16
    private let fd: Int32
    private let lock = NSLock()
    private var captured: [[UInt8]] = []

    var firstBytes: [[UInt8]] { lock.lock(); defer { lock.unlock() }; return captured }

    init() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 16)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = UInt16(bigEndian: address.sin_port)
        let listenFD = fd
        Thread { [weak self] in
            while true {
                let client = accept(listenFD, nil, nil)
                guard client >= 0 else { return }
                var buffer = [UInt8](repeating: 0, count: 16)
                let count = read(client, &buffer, buffer.count)
                close(client)
                guard let self else { return }
                if count > 0 {
                    self.lock.lock()
                    self.captured.append(Array(buffer[..<count]))
                    self.lock.unlock()
                }
            }
        }.start()
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
