// CTLS: the system OpenSSL (libssl 3) for TLS to Redis.
//
// The Swift importer cannot call OpenSSL's function-like macros (SSL_CTX_set_mode,
// SSL_set_tlsext_host_name, SSL_CTX_set_min_proto_version are all SSL_ctrl wrappers), so
// each has a prefixed wrapper here. Everything else is called directly.
#ifndef CTLS_H
#define CTLS_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

/// SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER):
/// a write may take part of the buffer, and a retry may pass the (grown, reallocated) buffer
/// again. The pair redis-server itself uses.
void ctls_ctx_set_partial_moving_writes(SSL_CTX *ctx);

/// SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION). Returns 1 on success.
int ctls_ctx_set_min_tls12(SSL_CTX *ctx);

/// SSL_set_tlsext_host_name(ssl, name): Server Name Indication (RFC 6066 §3). Returns 1 on success.
int ctls_set_sni(SSL *ssl, const char *name);

/// True when `reason` of the last error is SSL_R_UNEXPECTED_EOF_WHILE_READING: the peer closed
/// TCP without close_notify (OpenSSL 3 reports it as SSL_ERROR_SSL).
int ctls_error_is_unexpected_eof(unsigned long error);

#endif
