#ifndef IDEMPROXY_CLIBCRYPTO_SHIM_H
#define IDEMPROXY_CLIBCRYPTO_SHIM_H

// SHA-256 goes through the EVP interface: OpenSSL 3.0 marks SHA256_Init,
// SHA256_Update and SHA256_Final OSSL_DEPRECATEDIN_3_0, while
// EVP_MD_CTX_new / EVP_DigestInit_ex / EVP_DigestUpdate / EVP_DigestFinal_ex
// are the supported path.
#include <openssl/evp.h>

// getrandom(2) lives in <sys/random.h>, which Swift's Glibc module does not
// export. Owner tokens for idempotency records are drawn from it, so the one
// declaration rides along in this otherwise crypto-only shim rather than
// costing the build another C target.
#include <sys/random.h>

#endif
