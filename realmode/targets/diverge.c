/* Programs that behave differently in one variant. The variant that
   misbehaves is the one whose environment has DMVX_EVIL set (the test
   gives it to one variant only), standing in for a variant whose memory an
   exploit has corrupted. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "branch";
    int evil = getenv("DMVX_EVIL") != NULL;
    char line[128];
    int local = 0;
    write(1, "start\n", 6);
    if (!strcmp(mode, "address")) {
        /* An information leak: the address differs under ASLR. */
        snprintf(line, sizeof line, "leak %p\n", (void *)&local);
        write(1, line, strlen(line));
    } else if (!strcmp(mode, "branch")) {
        write(1, evil ? "evil\n" : "good\n", 5);
    } else if (!strcmp(mode, "execve")) {
        if (evil) {
            char *args[] = {"/bin/sh", "-c", argc > 2 ? argv[2] : "true", NULL};
            execve("/bin/sh", args, NULL);
        }
        write(1, "no exec\n", 8);
    } else if (!strcmp(mode, "crash")) {
        if (evil) *(volatile int *)8 = 1; /* a real crash: no system call first */
        sleep(1);
    } else if (!strcmp(mode, "hang")) {
        if (evil) for (volatile int spin = 1; spin;) {}
        write(1, "done\n", 5);
    } else if (!strcmp(mode, "compute")) {
        /* Not misbehaviour: a long computation between two calls, slower
           in one variant (a busier CPU, another ABI). */
        long spins = evil && argc > 2 ? atol(argv[2]) : 0;
        for (volatile long i = 0; i < spins; i++) {}
        write(1, "done\n", 5);
    } else if (!strcmp(mode, "sleep")) {
        sleep(argc > 2 ? atoi(argv[2]) : 30);
    }
    write(1, "end\n", 4);
    return 0;
}
