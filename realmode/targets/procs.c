/* Processes under MVX: a make-like parent, pid arithmetic, vfork, signals.
   Every variant forks its own children, so their real pids differ; the
   program must still see the leader's pids everywhere and print the same. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t children_done;

static void on_child(int sig) { (void)sig; children_done++; }

/* A make-like parent: start jobs, each a child that runs a shell command,
   collect them in the order they finish (which varies from run to run),
   report each status in job order. */
static int make(int jobs) {
    pid_t pids[16];
    int statuses[16];
    if (jobs > 16) jobs = 16;
    for (int i = 0; i < jobs; i++) {
        pid_t pid = fork();
        if (pid < 0) return 20;
        if (pid == 0) {
            char command[128];
            snprintf(command, sizeof command, "echo job %d from parent $PPID >/dev/null; exit %d", i, i + 1);
            execl("/bin/sh", "sh", "-c", command, (char *)NULL);
            _exit(127);
        }
        pids[i] = pid;
    }
    int sum = 0;
    for (int i = 0; i < jobs; i++) {
        int status;
        pid_t done = waitpid(-1, &status, 0);
        int which = -1;
        for (int j = 0; j < jobs; j++) if (pids[j] == done) which = j;
        if (which < 0 || !WIFEXITED(status)) return 21;
        sum += WEXITSTATUS(status);
        statuses[which] = WEXITSTATUS(status);
    }
    for (int i = 0; i < jobs; i++) printf("job %d exited %d\n", i, statuses[i]);
    printf("sum %d\n", sum);
    return 0;
}

/* Pids seen from both sides of a fork, signals between them. */
static int pids(void) {
    int channel[2];
    if (pipe(channel)) return 30;
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        pid_t me = getpid();
        close(channel[0]);
        /* The child's own view: its pid, its parent's, sent to the parent. */
        int ok = getppid() == parent;
        if (write(channel[1], &me, sizeof me) != sizeof me) _exit(31);
        pause();  /* until the parent's SIGTERM */
        _exit(ok ? 0 : 32);
    }
    close(channel[1]);
    pid_t told;
    if (read(channel[0], &told, sizeof told) != sizeof told) return 33;
    printf("fork said %s the child said\n", told == child ? "what" : "other than what");
    if (kill(child, SIGTERM)) return 34;
    int status;
    if (waitpid(child, &status, 0) != child) return 35;
    printf("child %s by signal %d\n", WIFSIGNALED(status) ? "ended" : "exited", WTERMSIG(status));
    printf("kill(0 children) %d\n", kill(child, 0) == -1 && errno == ESRCH);
    return 0;
}

/* vfork + exec, as posix_spawn and shells do. */
static int spawn(void) {
    pid_t pid = vfork();
    if (pid == 0) {
        execl("/bin/echo", "echo", "spawned", (char *)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) return 40;
    printf("spawned child exited %d\n", WEXITSTATUS(status));
    return 0;
}

/* A SIGCHLD handler that only counts, children that exit at different times. */
static int signals(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_child;
    sigaction(SIGCHLD, &action, NULL);
    for (int i = 0; i < 3; i++) {
        if (fork() == 0) {
            usleep(1000 * (3 - i));
            _exit(i);
        }
    }
    int reaped = 0;
    while (reaped < 3) {
        int status;
        pid_t pid = wait(&status);
        if (pid > 0) reaped++;
        else if (errno != EINTR) return 50;
    }
    printf("reaped %d\n", reaped);
    return 0;
}

/* Polling for a child's end with WNOHANG: how many polls come back empty
   depends on timing, and must be the leader's count in every variant. */
static int poll_child(void) {
    pid_t pid = fork();
    if (pid == 0) {
        usleep(30000);
        _exit(7);
    }
    int status, empty = 0;
    pid_t done;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0) {
        empty++;
        usleep(2000);
    }
    if (done != pid || !WIFEXITED(status)) return 60;
    printf("child exited %d after %s\n", WEXITSTATUS(status), empty > 0 ? "some empty polls" : "no poll");
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "make";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(mode, "make")) return make(argc > 2 ? atoi(argv[2]) : 4);
    if (!strcmp(mode, "pids")) return pids();
    if (!strcmp(mode, "spawn")) return spawn();
    if (!strcmp(mode, "signals")) return signals();
    if (!strcmp(mode, "poll")) return poll_child();
    return 2;
}
