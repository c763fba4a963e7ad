/* Signals while the leader runs fast calls (tests/test_real_inproc.py).
 *
 *   inproc_signals spin  a 5 ms timer's SIGALRM comes while the program
 *                        makes getpid calls in a loop (fast, no stop); its
 *                        handler writes a line; 5 rounds
 *   inproc_signals wait  the same while it waits in epoll_wait on an empty
 *                        set (fast in the leader, blocking): each tick ends
 *                        or restarts a wait
 *   inproc_signals child a vforked child exits at once: its SIGCHLD comes
 *                        as the parent's vfork returns, while the fast path
 *                        is off (the child ran in this memory); the parent
 *                        then runs without a call for ~0.3 s (the monitor
 *                        turns the fast path on again meanwhile) and makes
 *                        getpid calls (fast) until the handler ran
 *
 * Prints "tick" 5 times (or "chld" once) and "done": every variant must
 * take each signal at the same point of its calls, or the handler's write
 * would come at a different place in each (a divergence).
 */
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <unistd.h>
#include <x86intrin.h>

static volatile sig_atomic_t ticks;

static void on_alarm(int sig) {
    (void)sig;
    ticks++;
    write(1, "tick\n", 5);
}

static volatile sig_atomic_t reaped;

static void on_child(int sig) {
    (void)sig;
    reaped = 1;
    write(1, "chld\n", 5);
}

/* SIGCHLD while the fast path is off and nothing is in the ring: placed by
   the core at the next compared call, which must then be a stop, not a
   fast getpid made after the monitor turned the fast path on again. */
static int child(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_child;
    sigaction(SIGCHLD, &sa, NULL);
    pid_t pid = vfork();
    if (pid == 0)
        _exit(0);
    if (pid < 0)
        return 2;
    unsigned long long start = __rdtsc();
    while (__rdtsc() - start < 600000000ULL) /* ~0.3 s at 2 GHz, no call */
        ;
    for (int i = 0; i < 100000 && !reaped; i++)
        getpid();
    write(1, "done\n", 5);
    return reaped ? 0 : 3;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        return child();
    int wait = argc > 1 && strcmp(argv[1], "wait") == 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    /* One shot at a time: a tracer slower than the timer never sees a new
       signal pending each time it places one. */
    struct itimerval once = {{0, 0}, {0, 5000}};
    int ep = epoll_create1(0);
    struct epoll_event got[1];
    for (int round = 0; round < 5; round++) {
        sig_atomic_t before = ticks;
        setitimer(ITIMER_REAL, &once, NULL);
        while (ticks == before) {
            if (wait)
                epoll_wait(ep, got, 1, 50);
            else
                getpid();
        }
    }
    write(1, "done\n", 5);
    return 0;
}
