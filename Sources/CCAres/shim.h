// c-ares (libc-ares-dev), the asynchronous resolver Envoy uses. RemoraDNS drives it from
// an event loop: ares_getaddrinfo, the socket-state callback, ares_process_fd, ares_timeout.
#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
