/* A compromised variant: it reaches for its monitor (its parent as it sees
   it: getppid() is the leader's monitor in every variant), for dmvx, for
   everything, and for a process outside the run, one way per argument:

     mem        open /proc/<monitor>/mem read-write, read and write a word
     environ    open /proc/<monitor>/environ (where a run key could be)
     ptrace     PTRACE_ATTACH to the monitor
     vm-write   process_vm_writev into the monitor
     vm-read    process_vm_readv from the monitor
     kill-parent  kill(monitor, SIGKILL)
     kill-group   kill(0, SIGKILL): its own process group (itself)
     kill-all     kill(-1, 0): whether it may signal every process (signal 0
                  only asks: a real signal to -1 would end every process of
                  the machine the variant may signal, should the run let it)
     kill-dmvx    kill(-<monitor's group>, SIGKILL): dmvx's process group
     kill PID     kill(PID, SIGUSR1): a process outside the run
     own-tree   the same calls at its own child: these work

   Each prints what it got ("<what> <result> <errno name>") and the program
   exits 0: whether the call was refused is in the output, and the run's
   end (a verdict, a status, nothing left running) is the test's to check. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *what, long result) {
    printf("%s %ld %s\n", what, result, result < 0 ? strerrorname_np(errno) : "ok");
    fflush(stdout);
}

static void proc_file(pid_t pid, const char *entry, int flags) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, entry);
    int fd = open(path, flags);
    say(entry, fd);
    if (fd < 0) return;
    char word[8];
    /* mem: where a non-PIE interpreter's image starts (a read of an
       unmapped address fails with EIO, which says the file was open);
       environ: its beginning. */
    off_t at = flags & O_RDWR ? 0x400000 : 0;
    say("read", pread(fd, word, sizeof word, at));
    if (flags & O_RDWR) say("write", pwrite(fd, word, sizeof word, at));
    close(fd);
}

static void vm(pid_t pid, int write_it) {
    char word[8] = "hostile";
    struct iovec local = {word, sizeof word}, remote = {(void *)0x400000, sizeof word};
    long got = write_it ? process_vm_writev(pid, &local, 1, &remote, 1, 0)
                        : process_vm_readv(pid, &local, 1, &remote, 1, 0);
    say(write_it ? "vm-write" : "vm-read", got);
}

static void own_tree(void) {
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    say("own-kill", kill(child, SIGTERM));
    int status;
    say("own-wait", waitpid(child, &status, 0) == child && WIFSIGNALED(status) ? 0 : -1);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *how = argv[1];
    pid_t monitor = getppid();
    if (!strcmp(how, "mem")) proc_file(monitor, "mem", O_RDWR);
    else if (!strcmp(how, "environ")) proc_file(monitor, "environ", O_RDONLY);
    else if (!strcmp(how, "ptrace")) say("ptrace", ptrace(PTRACE_ATTACH, monitor, 0, 0));
    else if (!strcmp(how, "vm-write")) vm(monitor, 1);
    else if (!strcmp(how, "vm-read")) vm(monitor, 0);
    else if (!strcmp(how, "kill-parent")) say("kill-parent", kill(monitor, SIGKILL));
    else if (!strcmp(how, "kill-group")) say("kill-group", kill(0, SIGKILL));
    else if (!strcmp(how, "kill-all")) say("kill-all", kill(-1, 0));
    else if (!strcmp(how, "kill-dmvx")) say("kill-dmvx", kill(-getpgid(monitor), SIGKILL));
    else if (!strcmp(how, "kill") && argc > 2) say("kill", kill(atoi(argv[2]), SIGUSR1));
    else if (!strcmp(how, "own-tree")) own_tree();
    else return 2;
    return 0;
}
