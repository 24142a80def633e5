#ifndef IDEMPROXY_CLIBCRYPTO_SHIM_H
#define IDEMPROXY_CLIBCRYPTO_SHIM_H

// SHA-256 goes through OpenSSL's SHA256_Init / SHA256_Update / SHA256_Final on
// a SHA256_CTX the caller owns (on the stack or inline in a struct). OpenSSL 3.0
// marks them deprecated in favour of EVP, but EVP costs a guarded request more
// than its hashing: EVP_DigestInit_ex frees and allocates the provider's context
// on every initialisation in 3.0, and each update is a provider call. These
// functions run the same assembly (SHA extensions where the CPU has them) and
// allocate nothing. The define keeps their declarations free of the deprecation
// attribute, which Swift would report at every call.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>

// getrandom(2) lives in <sys/random.h>, which Swift's Glibc module does not
// export. Owner tokens for idempotency records are drawn from it, so the one
// declaration rides along in this otherwise crypto-only shim rather than
// costing the build another C target.
#include <sys/random.h>

#endif
