#include "CTLS.h"

void ctls_ctx_set_partial_moving_writes(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

int ctls_ctx_set_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

int ctls_set_sni(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

int ctls_error_is_unexpected_eof(unsigned long error) {
    return ERR_GET_REASON(error) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}
