import CTLS
import Glibc

/// Why TLS to Redis cannot be set up (a file that does not load, a key that does not match).
public struct RedisTLSError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ what: String) {
        description = what + Self.openSSLReason()
    }

    /// The oldest queued OpenSSL error, as text (": " prefixed), and the queue cleared.
    static func openSSLReason() -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return "" }
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &text, text.count)
        return ": " + String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The OpenSSL client context for `rediss://`, built once at startup and shared by every
/// loop's connections (an SSL_CTX is safe to share once configured).
///
/// Verification cannot be turned off (SPEC §6): the chain is checked against `ca_file` or
/// the system store, and the name against `server_name` (default: the URL's host). In client
/// mode `SSL_VERIFY_NONE` would complete the handshake whatever the check found, so
/// `SSL_VERIFY_PEER` is what makes a failed check fail the handshake.
public final class RedisTLSContext: @unchecked Sendable {
    let context: OpaquePointer

    public init(caFile: String?, certFile: String?, keyFile: String?) throws(RedisTLSError) {
        // OpenSSL writes with write(2), not send(MSG_NOSIGNAL): a peer that reset the
        // connection would otherwise kill the process with SIGPIPE instead of failing a write.
        signal(SIGPIPE, SIG_IGN)
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw RedisTLSError("cannot create a TLS context") }
        self.context = context
        // Redis 7 speaks TLS 1.2 and 1.3 (`tls-protocols`); nothing older is worth allowing.
        guard ctls_ctx_set_min_tls12(context) == 1 else { throw RedisTLSError("cannot require TLS 1.2") }
        ctls_ctx_set_partial_moving_writes(context)
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        if let caFile {
            guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                throw RedisTLSError("tls.ca_file \(caFile) does not load")
            }
        } else if SSL_CTX_set_default_verify_paths(context) != 1 {
            throw RedisTLSError("the system CA store does not load")
        }
        switch (certFile, keyFile) {
        case (nil, nil):
            break
        case (let certFile?, let keyFile?):
            guard SSL_CTX_use_certificate_chain_file(context, certFile) == 1 else {
                throw RedisTLSError("tls.cert_file \(certFile) does not load")
            }
            guard SSL_CTX_use_PrivateKey_file(context, keyFile, SSL_FILETYPE_PEM) == 1 else {
                throw RedisTLSError("tls.key_file \(keyFile) does not load")
            }
            guard SSL_CTX_check_private_key(context) == 1 else {
                throw RedisTLSError("tls.key_file \(keyFile) is not the key of tls.cert_file \(certFile)")
            }
        default:
            throw RedisTLSError("tls.cert_file and tls.key_file go together: give both or neither")
        }
    }

    deinit { SSL_CTX_free(context) }

    static func isIPLiteral(_ text: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}

/// TLS over a connected socket (OpenSSL on a non-blocking fd). Every SSL call starts with a
/// clear error queue and is classified by `SSL_get_error` right after, as OpenSSL requires.
final class TLSTransport: RedisTransport {
    private let ssl: OpaquePointer
    /// After a fatal error OpenSSL must not be asked to send close_notify.
    private var broken = false

    /// `serverName`: what the certificate must carry, a DNS name (also sent as SNI) or an IP
    /// literal (matched against the certificate's IP addresses; RFC 6066 §3 keeps it out of SNI).
    init(fd: Int32, context: RedisTLSContext, serverName: String) throws(RedisTLSError) {
        guard let ssl = SSL_new(context.context) else { throw RedisTLSError("cannot create a TLS session") }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        SSL_set_connect_state(ssl)
        if RedisTLSContext.isIPLiteral(serverName) {
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) == 1 else {
                throw RedisTLSError("cannot set the expected server address \(serverName)")
            }
        } else {
            // The name check: hiredis_ssl 0.14–1.x checks only the chain; a certificate for any
            // other host would pass there.
            guard SSL_set1_host(ssl, serverName) == 1, ctls_set_sni(ssl, serverName) == 1 else {
                throw RedisTLSError("cannot set the expected server name \(serverName)")
            }
        }
    }

    deinit { SSL_free(ssl) }

    func handshake() -> TransportStep {
        clearErrors()
        let result = SSL_connect(ssl)
        if result == 1 { return .bytes(0) }
        let step = classify(result)
        guard case .failed(let why) = step else { return step }
        let verification = SSL_get_verify_result(ssl)
        if verification != X509_V_OK {
            return .failed("TLS handshake: certificate not accepted: " + String(cString: X509_verify_cert_error_string(verification)))
        }
        return .failed("TLS handshake: " + why)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TransportStep {
        clearErrors()
        let result = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
        return result > 0 ? .bytes(Int(result)) : classify(result)
    }

    /// At most one TLS record per call, and after a WANT_* exactly the same length again.
    /// With longer writes OpenSSL may finish one record, block on the next and report -1 while
    /// the first is already on the wire; counting it unsent would call a command "never sent"
    /// that Redis may have run.
    func write(_ bytes: UnsafeRawBufferPointer) -> TransportStep {
        guard !bytes.isEmpty else { return .bytes(0) }
        let length = retryLength ?? min(bytes.count, Self.recordBytes)
        precondition(length <= bytes.count, "a TLS write retry must offer the same bytes again")
        clearErrors()
        let result = SSL_write(ssl, bytes.baseAddress, Int32(length))
        if result > 0 {
            retryLength = nil
            return .bytes(Int(result))
        }
        let step = classify(result)
        if step == .wantRead || step == .wantWrite { retryLength = length }
        return step
    }

    /// The most plaintext one TLS record carries (RFC 8446 §5.1).
    static let recordBytes = 16 * 1024
    /// The length of a write that must be repeated (OpenSSL: same bytes, same length).
    private var retryLength: Int?

    /// OpenSSL reads its own error queue and, for SSL_ERROR_SYSCALL, errno: neither may hold
    /// leftovers from an earlier call.
    private func clearErrors() {
        ERR_clear_error()
        errno = 0
    }

    var hasBufferedInput: Bool { SSL_pending(ssl) > 0 }

    func shutdown() {
        guard !broken else { return }
        ERR_clear_error()
        // One call sends our close_notify; the socket closes right after, so no need to wait
        // for the peer's.
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    private func classify(_ result: Int32) -> TransportStep {
        let code = SSL_get_error(ssl, result)
        switch code {
        case SSL_ERROR_WANT_READ:
            return .wantRead
        case SSL_ERROR_WANT_WRITE:
            return .wantWrite
        case SSL_ERROR_ZERO_RETURN:
            return .closed
        case SSL_ERROR_SYSCALL:
            broken = true
            let savedErrno = errno
            let reason = RedisTLSError.openSSLReason()
            return savedErrno == 0 ? .closed : .failed(String(cString: strerror(savedErrno)) + reason)
        default:
            broken = true
            // OpenSSL 3 reports a TCP close without close_notify as an SSL error.
            if ctls_error_is_unexpected_eof(ERR_peek_last_error()) != 0 {
                ERR_clear_error()
                return .closed
            }
            let reason = RedisTLSError.openSSLReason()
            return .failed(reason.isEmpty ? "TLS error \(code)" : String(reason.dropFirst(2)))
        }
    }
}
