/* Signals with handlers that make calls, from a timer and from another
 * process, interrupting blocking calls (tests/test_real_signal_points.py).
 *
 *   signals restart  a timer's SIGALRM interrupts a blocking pipe read; its
 *                    handler writes; SA_RESTART: the read goes on
 *   signals eintr    the same without SA_RESTART: the read fails with EINTR
 *                    and the program reads again
 *   signals nested   SIGALRM's handler waits in pause() for the SIGUSR1 a
 *                    child sends; SIGUSR1's handler writes inside it
 *   signals late     a child's SIGCHLD comes while the program computes
 *                    (between calls); it then blocks every signal and,
 *                    unless the handler ran, waits in sigsuspend: dash's
 *                    `wait` (waitproc). Natively the handler runs during
 *                    the computation; under dmvx the leader's is held for
 *                    its next compared call, the sigsuspend
 *
 * Each prints the same lines in every run: the timer fires long before the
 * child writes or signals.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *text) { write(1, text, strlen(text)); }

static void on_alarm(int sig) { (void)sig; say("tick\n"); }

static void on_usr1(int sig) { (void)sig; say("usr1\n"); }

static void on_nested_alarm(int sig) {
    (void)sig;
    say("alarm in\n");
    pause(); /* until the child's SIGUSR1 */
    say("alarm out\n");
}

static void handle(int sig, void (*handler)(int), int flags) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    action.sa_flags = flags;
    sigemptyset(&action.sa_mask);
    sigaction(sig, &action, NULL);
}

static void timer_in(long usec) {
    struct itimerval timer = {{0, 0}, {0, usec}};
    setitimer(ITIMER_REAL, &timer, NULL);
}

static int child_writes_late(int fds[2]) {
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        usleep(400000);
        write(fds[1], "data\n", 5);
        _exit(0);
    }
    close(fds[1]);
    return pid;
}

static int blocking_read(int restart) {
    int fds[2];
    char buffer[64];
    if (pipe(fds) != 0) return 1;
    handle(SIGALRM, on_alarm, restart ? SA_RESTART : 0);
    pid_t pid = child_writes_late(fds);
    timer_in(100000);
    ssize_t n;
    while ((n = read(fds[0], buffer, sizeof buffer)) < 0 && errno == EINTR) say("read: EINTR\n");
    if (n > 0) write(1, buffer, n);
    int status;
    waitpid(pid, &status, 0);
    printf("child %d\n", WEXITSTATUS(status));
    return 0;
}

static int nested(void) {
    handle(SIGUSR1, on_usr1, SA_RESTART);
    handle(SIGALRM, on_nested_alarm, SA_RESTART);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(400000);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    timer_in(100000);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) say("waitpid: EINTR\n");
    printf("child %d\n", WEXITSTATUS(status));
    return 0;
}

static volatile sig_atomic_t child_signalled;

static void on_child(int sig) {
    (void)sig;
    child_signalled = 1;
}

static int late(void) {
    handle(SIGCHLD, on_child, 0);
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    for (volatile long i = 0; i < 500000000L; i++) {
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    while (!child_signalled) sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    int status;
    waitpid(pid, &status, 0);
    printf("child %d\n", WEXITSTATUS(status));
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "restart")) return blocking_read(1);
    if (!strcmp(mode, "eintr")) return blocking_read(0);
    if (!strcmp(mode, "nested")) return nested();
    if (!strcmp(mode, "late")) return late();
    fprintf(stderr, "usage: signals restart|eintr|nested|late\n");
    return 2;
}
