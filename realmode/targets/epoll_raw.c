/* epoll_ctl issued three ways (tests/test_real_inproc.py, x86-64):

     epoll_raw asm N       the system call instruction inline, as a program
                           that bypasses libc does: dmvx's in-process
                           library never sees the registration
     epoll_raw syscall N   through syscall(2)
     epoll_raw libc N      through libc's epoll_ctl

   It registers a pipe's read end with a pointer of its own as the event's
   data (as libevent, nginx and lighttpd do: an address, which differs in
   every variant), then N times writes a byte, waits with libc's epoll_wait
   and reads the byte back. Prints "rounds N bad B": B the events whose data
   was not its own pointer (natively 0). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

static long raw_epoll_ctl(long epfd, long op, long fd, struct epoll_event *event) {
    long ret;
    register long r10 __asm__("r10") = (long)event;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"((long)SYS_epoll_ctl), "D"(epfd), "S"(op), "d"(fd), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "libc";
    int n = argc > 2 ? atoi(argv[2]) : 20, bad = 0, p[2];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    char *mine = malloc(64);
    if (ep < 0 || !mine || pipe(p)) return 2;
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = mine};
    long r;
    if (strcmp(how, "asm") == 0)
        r = raw_epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &event);
    else if (strcmp(how, "syscall") == 0)
        r = syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, p[0], &event);
    else
        r = epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &event);
    if (r != 0) return 3;
    for (int i = 0; i < n; i++) {
        struct epoll_event got[4];
        char byte;
        if (write(p[1], "x", 1) != 1) return 4;
        int k = epoll_wait(ep, got, 4, 5000);
        if (k != 1) return 5;
        if (got[0].data.ptr != mine) bad++;
        if (read(p[0], &byte, 1) != 1) return 6;
    }
    printf("rounds %d bad %d\n", n, bad);
    return 0;
}
