/* A server loop in one process, for the in-process path's descriptor calls
   (tests/test_real_inproc.py): N times a client socket connects to the
   process's own listening socket, and the server side waits for it
   (epoll_wait), accepts it (accept4), registers it with a pointer of its own
   as epoll data (epoll_ctl), waits for its request, checks the event names
   that pointer, reads the request, deregisters it and both ends close.
   Prints "served N bad B": B counts events whose data was not the
   connection's own pointer (a follower handed the leader's would). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
    int fd;
    char buf[16];
};

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10, bad = 0, one = 1;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&addr, sizeof addr) || listen(l, 16) || getsockname(l, (struct sockaddr *)&addr, &len))
        return 2;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l}, got[4];
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    for (int i = 0; i < n; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&addr, sizeof addr) || write(c, "ping", 4) != 4) return 3;
        int k = epoll_wait(ep, got, 4, 5000);
        if (k < 1 || got[0].data.ptr != &l) bad++;
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        int s = accept4(l, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
        if (s < 0) return 4;
        struct conn *cn = malloc(sizeof *cn);
        cn->fd = s;
        ev.data.ptr = cn;
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
        k = epoll_wait(ep, got, 4, 5000);
        int found = 0;
        for (int j = 0; j < k; j++) found |= got[j].data.ptr == cn;
        if (!found) bad++;
        if (read(s, cn->buf, 4) != 4) return 5;
        epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
        close(s);
        close(c);
        free(cn);
    }
    printf("served %d bad %d\n", n, bad);
    return 0;
}
