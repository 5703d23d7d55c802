// The C boundary for what Swift cannot import from Glibc cleanly: epoll's packed
// event struct, eventfd/signalfd, accept4, SO_ORIGINAL_DST, sockaddr plumbing.
#ifndef REMORA_CSHIMS_H
#define REMORA_CSHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

// epoll_event is packed on x86_64; Swift gets this unpacked copy instead.
typedef struct {
    uint32_t events;
    uint64_t data;
} remora_event;

enum {
    REMORA_EV_IN = 0x001,     // EPOLLIN
    REMORA_EV_OUT = 0x004,    // EPOLLOUT
    REMORA_EV_ERR = 0x008,    // EPOLLERR
    REMORA_EV_HUP = 0x010,    // EPOLLHUP
    REMORA_EV_RDHUP = 0x2000, // EPOLLRDHUP
    REMORA_EV_ET = (int)(1u << 31),
};

int remora_epoll_create(void);
int remora_epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
int remora_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data);
int remora_epoll_del(int epfd, int fd);
// Returns the number of events written to `out`, or -1 with errno (EINTR is retried by the caller).
int remora_epoll_wait(int epfd, remora_event *out, int max, int timeout_ms);

int remora_eventfd(void);
int remora_eventfd_signal(int fd);
void remora_eventfd_drain(int fd);

// Blocks SIGTERM/SIGINT/SIGHUP in the calling thread (threads created later inherit
// the mask), ignores SIGPIPE, and returns a signalfd for those signals.
int remora_signals_setup(void);
// Reads one signal from the signalfd; returns its number, or 0 when none is pending.
int remora_signal_read(int fd);

// Raises RLIMIT_NOFILE to the hard limit; returns the new soft limit.
long remora_raise_nofile(void);

uint64_t remora_now_ns(void);  // CLOCK_MONOTONIC

// A numeric IPv4/IPv6 address and port as a sockaddr. Returns 0, or -1 if `host` is not numeric.
typedef struct {
    struct sockaddr_storage storage;
    socklen_t len;
} remora_addr;
int remora_addr_make(const char *host, int port, remora_addr *out);
// Formats the address without its port into buf; returns the length.
int remora_addr_ip(const remora_addr *a, char *buf, size_t buflen);
int remora_addr_port(const remora_addr *a);

// A non-blocking listening socket with SO_REUSEADDR and (if reuseport) SO_REUSEPORT.
// Returns the fd or -errno.
int remora_listen(const remora_addr *a, int backlog, int reuseport);
// The port a socket is bound to (for port 0).
int remora_local_port(int fd);
// accept4(SOCK_NONBLOCK|SOCK_CLOEXEC) with TCP_NODELAY; peer written to `peer`. Returns fd or -errno.
int remora_accept(int lfd, remora_addr *peer);
// A non-blocking connect with TCP_NODELAY. Returns the fd (connect may be in progress) or -errno.
int remora_connect(const remora_addr *a);
// The pending socket error (SO_ERROR), 0 if none.
int remora_socket_error(int fd);
// The pre-redirect destination of an iptables-redirected connection (SO_ORIGINAL_DST,
// IPv4 then IPv6). Returns 0 or -errno.
int remora_original_dst(int fd, remora_addr *out);
// The local address of a connected socket.
int remora_local_addr(int fd, remora_addr *out);

// read/write that return -errno instead of setting errno.
ssize_t remora_read(int fd, void *buf, size_t len);
ssize_t remora_write(int fd, const void *buf, size_t len);
int remora_close(int fd);
int remora_shutdown_write(int fd);
// Sets SO_LINGER 0 so close() sends RST (a reset upstream must look reset).
void remora_set_linger_zero(int fd);

#endif
