import Foundation

/// A throwaway PKI made with the `openssl` CLI for one test: a CA, a server certificate for
/// `localhost` and 127.0.0.1 (subjectAltName: names are checked there, not in the CN), a
/// client certificate, and a second, unrelated CA for "wrong CA" cases. EC P-256 keys, which
/// take milliseconds to make.
public final class TestCertificates: @unchecked Sendable {
    public let directory: String
    public var caFile: String { directory + "/ca.crt" }
    public var otherCAFile: String { directory + "/other-ca.crt" }
    public var serverCertFile: String { directory + "/server.crt" }
    public var serverKeyFile: String { directory + "/server.key" }
    public var clientCertFile: String { directory + "/client.crt" }
    public var clientKeyFile: String { directory + "/client.key" }

    public struct Failure: Error, CustomStringConvertible { public var description: String }

    public init() throws {
        directory = NSTemporaryDirectory() + "idemproxy-pki-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try makeCA("ca")
        try makeCA("other-ca")
        try makeLeaf("server", subject: "/CN=localhost", extensions: "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        try makeLeaf("client", subject: "/CN=idemproxy-test-client", extensions: "extendedKeyUsage=clientAuth\n")
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    private func makeCA(_ name: String) throws {
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", "\(name).key", "-out", "\(name).crt", "-subj", "/CN=idemproxy test \(name)", "-days", "2"])
    }

    private func makeLeaf(_ name: String, subject: String, extensions: String) throws {
        try extensions.write(toFile: "\(directory)/\(name).ext", atomically: true, encoding: .utf8)
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", "\(name).key", "-out", "\(name).csr", "-subj", subject])
        try openssl(["x509", "-req", "-in", "\(name).csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "\(name).crt", "-days", "2", "-extfile", "\(name).ext"])
    }

    private func openssl(_ arguments: [String]) throws {
        let output = try Subprocess.run("/usr/bin/openssl", arguments, directory: directory)
        guard output.status == 0 else {
            throw Failure(description: "openssl \(arguments.joined(separator: " ")): \(output.stderr)")
        }
    }
}
