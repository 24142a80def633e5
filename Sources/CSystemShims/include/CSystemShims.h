// CSystemShims: the few Linux interfaces that `import Glibc` does not expose to Swift 6.
//
// Swift's Glibc overlay does not import <sys/epoll.h> or <sys/eventfd.h>, and it cannot
// call variadic or macro-based APIs. This header includes those headers so the
// EventLoop module can use them directly, and adds prefixed wrappers only where the
// importer cannot cope (a packed struct, a function-like macro). Every wrapper says why.
#ifndef CSYSTEMSHIMS_H
#define CSYSTEMSHIMS_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

// `struct epoll_event` is declared __attribute__((packed)) on x86_64, and Swift imports the
// `data` union awkwardly; these accessors keep the packing concerns in C.
static inline void csys_epoll_event_set(struct epoll_event *ev, uint32_t events, uint64_t data) {
    ev->events = events;
    ev->data.u64 = data;
}
static inline uint32_t csys_epoll_event_events(const struct epoll_event *ev) { return ev->events; }
static inline uint64_t csys_epoll_event_data(const struct epoll_event *ev) { return ev->data.u64; }
static inline size_t csys_epoll_event_size(void) { return sizeof(struct epoll_event); }

// Monotonic milliseconds; CLOCK_MONOTONIC never jumps with wall-clock changes, which is what
// timeouts and leases need.
static inline uint64_t csys_monotonic_millis(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
// Bytes written to a TCP socket that its peer has not acknowledged yet (SIOCOUTQ, tcp(7));
// -1 on error. `ioctl` is variadic, which Swift cannot call.
int csys_unacknowledged_bytes(int fd);

static inline uint64_t csys_monotonic_nanos(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// Blocks SIGTERM/SIGINT in the calling thread (inherited by threads it creates) so that a
// dedicated thread can receive them with sigwait; returns 0 on success.
int csys_block_termination_signals(void);
// Waits for SIGTERM or SIGINT; returns the signal number.
int csys_wait_termination_signal(void);
// SIGPIPE would kill the process when a peer closes a socket we write to (hiredis writes with
// plain write(2)); ignoring it turns the event into EPIPE, which every caller handles.
void csys_ignore_sigpipe(void);
// One malloc arena for every thread (see shims.c): stops a growing store from costing a
// system call every few requests.
void csys_use_one_allocation_arena(void);

// accept4 and pthread_setname_np are GNU extensions that the Swift importer does not see
// without _GNU_SOURCE; the wrappers are compiled with it (see Package.swift).
int csys_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
void csys_set_thread_name(const char *name);
// sem_clockwait (glibc 2.30, also GNU): waits on `sem` until CLOCK_MONOTONIC reads
// `deadline_nanos`, so a wall-clock step cannot stretch the wait. 0 once the semaphore was
// taken, -1 with errno ETIMEDOUT after the deadline (EINTR is retried inside).
int csys_sem_wait_until_monotonic(sem_t *sem, uint64_t deadline_nanos);

#endif
