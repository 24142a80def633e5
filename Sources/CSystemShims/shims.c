#include <errno.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <malloc.h>
#include <pthread.h>
#include <string.h>
#include "CSystemShims.h"

int csys_block_termination_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int csys_wait_termination_signal(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {}
    return sig;
}

// glibc gives each thread that allocates its own arena, and an arena other than the main one
// grows its heap with one mprotect call for every page or two it adds (grow_heap in malloc/arena.c
// ignores M_TOP_PAD). A memory store that keeps every new record then pays a system call about
// every sixth request. The main arena grows by brk in M_TOP_PAD steps (128 KiB), so with one
// arena those calls all but vanish (measured in BENCHMARKS.md). Threads then share the arena's
// lock, but only when their per-thread cache (tcache) misses. Call before any thread starts.
void csys_use_one_allocation_arena(void) {
    mallopt(M_ARENA_MAX, 1);
}

void csys_ignore_sigpipe(void) {
    signal(SIGPIPE, SIG_IGN);
}

int csys_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    return accept4(fd, addr, len, flags);
}

void csys_set_thread_name(const char *name) {
    char truncated[16];
    strncpy(truncated, name, 15);
    truncated[15] = 0;
    pthread_setname_np(pthread_self(), truncated);
}

int csys_sem_wait_until_monotonic(sem_t *sem, uint64_t deadline_nanos) {
    struct timespec deadline = {
        .tv_sec = (time_t)(deadline_nanos / 1000000000u),
        .tv_nsec = (long)(deadline_nanos % 1000000000u),
    };
    int result;
    while ((result = sem_clockwait(sem, CLOCK_MONOTONIC, &deadline)) != 0 && errno == EINTR) {}
    return result;
}

int csys_unacknowledged_bytes(int fd) {
    int bytes = 0;
    return ioctl(fd, SIOCOUTQ, &bytes) == 0 ? bytes : -1;
}
