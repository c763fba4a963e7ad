/* Calls a follower's in-process library takes from the leader's entry
   (tests/test_real_inproc.py): N times an accept4 on a non-blocking
   listening socket with nobody connecting (EAGAIN: no descriptor to make)
   and a read of each interval clock and of the date; then one connection
   that is there, whose accept4 makes a descriptor (a follower's stops: its
   tracer makes it at the leader's number). Prints "again A accepted 1 clocks
   C": A the EAGAINs, C the clock reads that did not go back in time. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10, again = 0, clocks = 0, one = 1;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&addr, sizeof addr) || listen(l, 16) || getsockname(l, (struct sockaddr *)&addr, &len))
        return 2;
    struct timespec last = {0, 0}, now;
    for (int i = 0; i < n; i++) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        if (accept4(l, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC) < 0 && errno == EAGAIN) again++;
        if (clock_gettime(CLOCK_MONOTONIC, &now)) return 3;
        if (now.tv_sec > last.tv_sec || (now.tv_sec == last.tv_sec && now.tv_nsec >= last.tv_nsec)) clocks++;
        last = now;
        if (clock_gettime(CLOCK_REALTIME, &now)) return 3;
    }
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&addr, sizeof addr)) return 4;
    int s = -1;
    for (int tries = 0; s < 0 && tries < 1000; tries++) {
        s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (s < 0) usleep(1000);
    }
    if (s < 0) return 5;
    close(s);
    close(c);
    printf("again %d accepted 1 clocks %d\n", again, clocks);
    return 0;
}
