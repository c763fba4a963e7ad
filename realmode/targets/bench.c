/* System-call microbenchmark: COUNT calls of one kind, nanoseconds per call
   on stdout. "local" is a call the seccomp filter lets through untraced;
   "getppid" and "uname" are what `dmvx calibrate` prices real mode's tracer
   with (calls the calibration check does not predict, so that it checks,
   not echoes): one without output, one with an output buffer; "alternate"
   (getppid and getuid by turns) gives the in-process path no two records
   alike in a row, so it takes each alone, as a server's; "alternate_read"
   (getppid and a read of 4 KiB by turns) the same with bytes in every
   other record. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <sched.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *kind = argc > 1 ? argv[1] : "getpid";
    long count = argc > 2 ? atol(argv[2]) : 10000;
    char buf[256];
    static char page[4096];
    struct utsname names;
    sigset_t set;
    int fd = open("/dev/zero", O_RDONLY);
    sigemptyset(&set);
    double start = now();
    for (long i = 0; i < count; i++) {
        if (!strcmp(kind, "getpid")) syscall(SYS_getpid);
        else if (!strcmp(kind, "getppid")) syscall(SYS_getppid);
        else if (!strcmp(kind, "uname")) uname(&names);
        else if (!strcmp(kind, "read")) read(fd, buf, 1);
        else if (!strcmp(kind, "getcwd")) getcwd(buf, sizeof buf);
        else if (!strcmp(kind, "sched_yield")) sched_yield();
        else if (!strcmp(kind, "alternate")) syscall(i & 1 ? SYS_getuid : SYS_getppid);
        else if (!strcmp(kind, "alternate_read")) {
            if (i & 1) read(fd, page, sizeof page);
            else syscall(SYS_getppid);
        }
        else if (!strcmp(kind, "local")) sigprocmask(SIG_BLOCK, &set, NULL);
        else return 2;
    }
    double end = now();
    printf("%s %ld %.1f\n", kind, count, (end - start) / count);
    return 0;
}
