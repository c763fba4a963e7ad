/* New processes beside the in-process path (tests/test_real_inproc.py).
 *
 *   inproc_clone raw   the child comes from a raw clone(SIGCHLD) system call
 *   inproc_clone fork  from glibc's fork() (which runs pthread_atfork handlers)
 *   inproc_clone _Fork from glibc's _Fork() (which does not)
 *   inproc_clone spawn glibc's posix_spawn of /bin/echo child (a clone3 with
 *                      CLONE_VM|CLONE_VFORK: the child runs in the parent's
 *                      memory until it execs)
 *
 * Parent and child each make 200 getpid calls (fast in the parent), the child
 * prints "child" and exits, the parent waits for it and prints "parent". A
 * child that used its parent's shared area would put its calls in the
 * parent's ring (or take the parent's entries): a divergence, or a ring the
 * monitor cannot parse.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern pid_t _Fork(void);
extern char **environ;

static void calls(void) {
    for (int i = 0; i < 200; i++) getpid();
}

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "raw";
    calls();
    pid_t pid;
    if (strcmp(how, "fork") == 0)
        pid = fork();
    else if (strcmp(how, "_Fork") == 0)
        pid = _Fork();
    else if (strcmp(how, "spawn") == 0) {
        char *echo[] = {"/bin/echo", "child", NULL};
        if (posix_spawn(&pid, echo[0], NULL, NULL, echo, environ) != 0) return 2;
    }
    else
        pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) return 2;
    calls();
    if (pid == 0) {
        write(1, "child\n", 6);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    calls();
    write(1, "parent\n", 7);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
}
