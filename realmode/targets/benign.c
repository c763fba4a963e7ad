/* Benign divergence: values that differ between variants by nature (pid,
   time, randomness, addresses, /proc/self, environment) but must not be
   reported, because the leader's values are what every variant sees. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void hex(const char *label, const unsigned char *p, size_t n) {
    printf("%s ", label);
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
    printf("\n");
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "all";
    int all = strcmp(what, "all") == 0;
    if (all || !strcmp(what, "pid")) {
        printf("pid %d tid %ld ppid %d\n", getpid(), (long)syscall(SYS_gettid), getppid());
    }
    if (all || !strcmp(what, "time")) {
        struct timespec ts; struct timeval tv;
        clock_gettime(CLOCK_REALTIME, &ts);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        gettimeofday(&tv, NULL);
        printf("time %ld.%09ld %ld.%06ld %ld\n", (long)ts.tv_sec, ts.tv_nsec, (long)tv.tv_sec,
               (long)tv.tv_usec, (long)time(NULL));
    }
    if (all || !strcmp(what, "random")) {
        unsigned char r[16], u[16];
        if (getrandom(r, sizeof r, 0) != sizeof r) return 10;
        int fd = open("/dev/urandom", O_RDONLY);
        if (fd < 0 || read(fd, u, sizeof u) != sizeof u) return 11;
        close(fd);
        hex("getrandom", r, sizeof r);
        hex("urandom", u, sizeof u);
    }
    if (all || !strcmp(what, "pointers")) {
        /* A heap and a stack address go into system calls as pointers. */
        char *heap = malloc(64);
        char stack[64];
        snprintf(heap, 64, "heap\n");
        write(1, heap, strlen(heap));
        snprintf(stack, sizeof stack, "stack\n");
        write(1, stack, strlen(stack));
        free(heap);
    }
    if (all || !strcmp(what, "proc")) {
        char path[64], buf[256];
        snprintf(path, sizeof path, "/proc/%d/stat", getpid());
        int fd = open(path, O_RDONLY);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
        int fd2 = open("/proc/self/status", O_RDONLY);
        printf("proc %s %s\n", n > 0 ? "read" : "failed", fd2 >= 0 ? "self" : "noself");
        ssize_t l = readlink("/proc/self/exe", buf, sizeof buf - 1);
        printf("exe %s\n", l > 0 ? "ok" : "missing");
    }
    if (all || !strcmp(what, "env")) {
        /* The variants' environments differ (other variables, other sizes,
           so other stack layouts); the variable the program uses does not. */
        const char *v = getenv("HOME");
        printf("env HOME=%s\n", v ? v : "(unset)");
    }
    return 0;
}
