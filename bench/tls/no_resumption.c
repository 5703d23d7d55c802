/*
 * no_resumption.so — an LD_PRELOAD interposer that makes h2load do a full TLS
 * handshake on every connection, and counts the handshakes it saw.
 *
 * h2load (nghttp2 1.52) keeps a client's SSL object across reconnections (when the
 * server closes an HTTP/1.1 connection, `Connection: close`, it connects again and
 * starts the next handshake on the same SSL object), and OpenSSL then offers the
 * previous connection's session: every handshake after a client's first is a
 * resumption (TLS 1.2 ticket or session id, TLS 1.3 PSK), measured: 1 968 of 2 000
 * with -c32 -n2000. h2load has no option against it, and an OpenSSL config cannot
 * stop a TLS 1.3 client from offering a PSK.
 *
 * So: SSL_set_connect_state, which h2load calls before every handshake, is wrapped to
 * drop the SSL object's session (SSL_set_session(ssl, NULL)): the ClientHello then
 * carries no PSK, no ticket and no session id, and the server does a full handshake.
 * SSL_do_handshake is wrapped to count the handshakes completed, and those that
 * resumed a session anyway (SSL_session_reused); at exit one line goes to stderr:
 *
 *   no_resumption: handshakes=N resumed=M
 *
 * which the bench parses and checks (M must be 0).
 *
 * No OpenSSL headers are needed: the three functions are resolved with dlsym from
 * the libssl h2load has already loaded.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

static unsigned long handshakes, resumed;

void SSL_set_connect_state(SSL *ssl) {
    static void (*real)(SSL *);
    static int (*set_session)(SSL *, SSL_SESSION *);
    if (!real) {
        real = (void (*)(SSL *))dlsym(RTLD_NEXT, "SSL_set_connect_state");
        set_session = (int (*)(SSL *, SSL_SESSION *))dlsym(RTLD_DEFAULT, "SSL_set_session");
    }
    real(ssl);
    if (set_session) set_session(ssl, NULL);
}

int SSL_do_handshake(SSL *ssl) {
    static int (*real)(SSL *);
    static int (*reused)(const SSL *);
    if (!real) {
        real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_do_handshake");
        reused = (int (*)(const SSL *))dlsym(RTLD_DEFAULT, "SSL_session_reused");
    }
    int rv = real(ssl);
    if (rv == 1) {
        handshakes++;
        if (reused && reused(ssl)) resumed++;
    }
    return rv;
}

__attribute__((destructor)) static void report(void) {
    fprintf(stderr, "no_resumption: handshakes=%lu resumed=%lu\n", handshakes, resumed);
}
