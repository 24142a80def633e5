import CLibCrypto
import Glibc

/// One spare `EVP_MD_CTX` per thread, so a request's hashes (its fingerprint and its storage
/// key) reuse a context instead of allocating and freeing one each: with OpenSSL 3.0 a fresh
/// context costs three allocations per digest, a reused one costs one (the provider's state,
/// which `EVP_DigestInit_ex` replaces on every initialisation).
///
/// Per thread rather than shared, so taking and returning a context needs no lock; each event
/// loop is one thread and hashes one request at a time, so one spare is enough.
enum DigestContextCache {
    /// The thread's spare context; the key's destructor frees it when the thread ends.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key) { spare in
            EVP_MD_CTX_free(OpaquePointer(spare))
        }
        precondition(status == 0, "pthread_key_create failed")
        return key
    }()

    /// The SHA-256 implementation, fetched once. OpenSSL 3 otherwise looks the algorithm up
    /// in its provider tables on every `EVP_DigestInit_ex(ctx, EVP_sha256(), nil)`, which
    /// costs more than hashing a small request.
    nonisolated(unsafe) static let sha256: OpaquePointer = {
        guard let md = EVP_MD_fetch(nil, "SHA256", nil) else { fatalError("EVP_MD_fetch(SHA256) failed") }
        return md
    }()

    /// A context initialised for SHA-256: the thread's spare if it has one, else a new one.
    static func take() -> OpaquePointer {
        let context: OpaquePointer
        if let spare = pthread_getspecific(key) {
            pthread_setspecific(key, nil)
            context = OpaquePointer(spare)
        } else {
            guard let fresh = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
            context = fresh
        }
        // Discards whatever state the context held from its previous digest.
        let ok = EVP_DigestInit_ex(context, sha256, nil)
        precondition(ok == 1, "EVP_DigestInit_ex(SHA-256) failed")
        return context
    }

    /// Keeps `context` as the thread's spare, or frees it when the thread already has one.
    static func give(_ context: OpaquePointer) {
        if pthread_getspecific(key) == nil {
            pthread_setspecific(key, UnsafeRawPointer(context))
        } else {
            EVP_MD_CTX_free(context)
        }
    }
}
