/* A stopped epoll_wait while the leader's core is behind its ring
   (tests/test_real_inproc.py): each round the program makes N fast calls
   (getppid: past the connector buffer, so the leader's core holds its
   records and the ring fills behind them), then registers a pipe's read end
   with a pointer of its own as epoll data (a fast epoll_ctl, in the ring),
   then waits with syscall(SYS_epoll_wait) -- which the library hands to the
   tracer: a stop, which the leader runs ahead of the core -- and checks the
   event names its own pointer. Prints "rounds R bad B": B counts events
   whose data was not this variant's own pointer (a follower handed the
   leader's would). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 3, calls = argc > 2 ? atoi(argv[2]) : 6000, bad = 0, p[2];
    if (pipe(p) || write(p[1], "x", 1) != 1) return 2;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < calls; i++) getppid();
        int *mine = malloc(64);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = mine}, got[4];
        if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev)) return 3;
        long k = syscall(SYS_epoll_wait, ep, got, 4, 5000);
        if (k != 1 || got[0].data.ptr != mine) bad++;
        epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL);
        free(mine);
    }
    printf("rounds %d bad %d\n", rounds, bad);
    return 0;
}
