/* epoll with a heap pointer in epoll_event.data, as lighttpd and nginx do.
 *
 * Registers the read ends of a few pipes, each with a pointer to its own
 * malloc'd connection record, writes to them in turn and, for every event
 * epoll_wait reports, follows the pointer it got back: a variant handed
 * another variant's pointer (another heap layout under ASLR) reads garbage
 * or crashes. Prints what it read through each pointer; exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct conn {
    int fd;
    char name[16];
};

int main(void) {
    enum { N = 4 };
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int pipes[N][2];
    /* ASLR alone makes the heap addresses differ between the variants. */
    for (int i = 0; i < N; i++) {
        if (pipe(pipes[i]) != 0) return 2;
        struct conn *c = malloc(sizeof *c);
        c->fd = pipes[i][0];
        snprintf(c->name, sizeof c->name, "conn-%d", i);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) return 3;
    }
    /* MOD one registration to a new record, then DEL another. */
    struct conn *moved = malloc(sizeof *moved);
    moved->fd = pipes[1][0];
    snprintf(moved->name, sizeof moved->name, "moved-1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = moved};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, moved->fd, &ev) != 0) return 4;
    if (epoll_ctl(ep, EPOLL_CTL_DEL, pipes[3][0], NULL) != 0) return 5;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++)
            if (write(pipes[i][1], "x", 1) != 1) return 6;
        struct epoll_event events[8];
        int n = epoll_wait(ep, events, 8, 1000);
        if (n < 0) return 7;
        for (int k = 0; k < n; k++) {
            struct conn *c = events[k].data.ptr;
            char byte;
            if (read(c->fd, &byte, 1) != 1) return 8;
            printf("round %d: %s fd %d\n", round, c->name, c->fd);
        }
    }
    fflush(stdout);
    return 0;
}
