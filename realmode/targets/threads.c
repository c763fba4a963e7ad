/* Threads under real mode.

   threads io [WORKERS [ROUNDS [DIR]]]: worker threads doing independent I/O.
     Each worker writes its own file in DIR (default /tmp), reads it back,
     reads /etc/passwd, and keeps a checksum; the main thread joins them and
     prints one line per worker, in worker order, so the output is the same
     whatever order the threads ran in. Workers create and close descriptors
     concurrently: the numbers each gets depend on how the threads interleave.
   threads exit-group: workers block in read and loop in getppid; the main
     thread exits with status 3 (exit_group) while they are at it.
   threads self-exit: a worker ends itself (pthread_exit) while the main
     thread goes on making calls.
   threads exec: a worker (not the thread group's leader) runs execve of
     /bin/echo while the main thread blocks in read.
   threads signal: the main thread signals a worker (pthread_kill), which
     takes it in sigwait, then the whole process (kill), whose SIGUSR1
     handler runs in the main thread when it unblocks the signal. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

struct work {
    int index, rounds;
    const char *dir;
    unsigned long sum, bytes;
    int failed;
};

static unsigned long checksum(int fd, unsigned long *bytes) {
    char buf[1024];
    unsigned long sum = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) sum = sum * 31 + (unsigned char)buf[i];
        *bytes += (unsigned long)n;
    }
    return sum;
}

static void *worker(void *arg) {
    struct work *w = arg;
    char path[4096], line[128];
    snprintf(path, sizeof path, "%s/dmvx-thread-%d-%d", w->dir, (int)getpid(), w->index);
    for (int r = 0; r < w->rounds; r++) {
        int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
        if (fd < 0) { w->failed = 1; return NULL; }
        int len = snprintf(line, sizeof line, "worker %d round %d\n", w->index, r);
        for (int i = 0; i <= w->index; i++)
            if (write(fd, line, (size_t)len) != len) w->failed = 1;
        close(fd);
        fd = open(path, O_RDONLY);
        if (fd < 0) { w->failed = 1; return NULL; }
        w->sum += checksum(fd, &w->bytes);
        close(fd);
        fd = open("/etc/passwd", O_RDONLY);
        if (fd >= 0) {
            unsigned long ignored = 0;
            w->sum ^= checksum(fd, &ignored);
            close(fd);
        }
    }
    unlink(path);
    return NULL;
}

static int pipe_fds[2];

static void *blocked_reader(void *arg) {
    char c;
    (void)arg;
    ssize_t n = read(pipe_fds[0], &c, 1); /* never written: the group's end takes it */
    return (void *)n;
}

static void *busy(void *arg) {
    (void)arg;
    for (;;) getppid();
    return NULL;
}

static int exit_group_mode(void) {
    pthread_t t;
    if (pipe(pipe_fds)) return 2;
    pthread_create(&t, NULL, blocked_reader, NULL);
    pthread_create(&t, NULL, busy, NULL);
    pthread_create(&t, NULL, busy, NULL);
    for (int i = 0; i < 50; i++) getppid();
    printf("main exits with 3\n");
    fflush(stdout);
    exit(3);
}

static void *ends_itself(void *arg) {
    (void)arg;
    printf("worker ends itself\n");
    fflush(stdout);
    pthread_exit(NULL);
}

static int self_exit_mode(void) {
    pthread_t t;
    pthread_create(&t, NULL, ends_itself, NULL);
    pthread_join(t, NULL);
    for (int i = 0; i < 20; i++) getppid();
    printf("main goes on after the worker\n");
    return 0;
}

static void *execs(void *arg) {
    (void)arg;
    char *argv[] = {"echo", "exec from a worker thread", NULL};
    execv("/bin/echo", argv);
    perror("execv");
    return NULL;
}

static int exec_mode(void) {
    pthread_t t;
    if (pipe(pipe_fds)) return 2;
    pthread_create(&t, NULL, execs, NULL);
    char c;
    ssize_t n = read(pipe_fds[0], &c, 1); /* the exec ends this thread */
    printf("not reached: %zd\n", n);
    return 1;
}

static volatile sig_atomic_t handled;

static void on_usr1(int sig) {
    (void)sig;
    handled++;
    char line[] = "handler ran\n";
    write(1, line, sizeof line - 1);
}

static void *waits_for_signal(void *arg) {
    sigset_t *set = arg;
    int sig = 0;
    sigwait(set, &sig);
    printf("worker took signal %d\n", sig);
    fflush(stdout);
    return NULL;
}

static int signal_mode(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, &old); /* the worker inherits the mask */
    pthread_t t;
    pthread_create(&t, NULL, waits_for_signal, &set);
    pthread_kill(t, SIGUSR1); /* to the worker: it takes it in sigwait */
    pthread_join(t, NULL);
    kill(getpid(), SIGUSR1); /* to the group: the main thread alone can take it */
    pthread_sigmask(SIG_SETMASK, &old, NULL); /* the handler runs here */
    printf("handled %d\n", (int)handled);
    return 0;
}

static int io_mode(int argc, char **argv) {
    int workers = argc > 2 ? atoi(argv[2]) : 4;
    int rounds = argc > 3 ? atoi(argv[3]) : 20;
    const char *dir = argc > 4 ? argv[4] : "/tmp";
    if (workers < 1 || workers > 64) { fprintf(stderr, "threads: 1 to 64 workers\n"); return 2; }
    pthread_t threads[64];
    struct work work[64];
    memset(work, 0, sizeof work);
    for (int i = 0; i < workers; i++) {
        work[i].index = i;
        work[i].rounds = rounds;
        work[i].dir = dir;
        if (pthread_create(&threads[i], NULL, worker, &work[i])) { perror("pthread_create"); return 3; }
    }
    int failed = 0;
    for (int i = 0; i < workers; i++) {
        pthread_join(threads[i], NULL);
        printf("worker %d: %lu bytes, checksum %08lx%s\n", i, work[i].bytes, work[i].sum & 0xffffffffUL,
               work[i].failed ? " FAILED" : "");
        failed |= work[i].failed;
    }
    printf("%d workers done\n", workers);
    return failed;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "io";
    if (!strcmp(mode, "io")) return io_mode(argc, argv);
    if (!strcmp(mode, "exit-group")) return exit_group_mode();
    if (!strcmp(mode, "self-exit")) return self_exit_mode();
    if (!strcmp(mode, "exec")) return exec_mode();
    if (!strcmp(mode, "signal")) return signal_mode();
    fprintf(stderr, "threads: unknown mode %s\n", mode);
    return 2;
}
