/* A compromised variant that knows the in-process monitor's trampoline (the
   one `syscall` -- i386: `int $0x80` -- instruction the seccomp filter lets
   replicated calls through from, realmode/native/dipmon.h) and jumps to it
   directly, skipping the library's records (x86-64 or gcc -m32):

     inproc_hostile mkdir PATH  mkdirat(PATH) from the trampoline: a
                                sensitive (lockstep) call, which must still
                                stop and wait for the other variants
     inproc_hostile getpid      getpid from the trampoline: a replicated
                                call the filter lets through unrecorded
     inproc_hostile forge       five genuine getpid records, then a forged
                                record in its own ring (found in
                                /proc/self/maps), then an ordinary getpid:
                                the monitor must hand the core the genuine
                                ones and end the run with a verdict
     inproc_hostile plain       none of these (what an honest follower does)

   Then it writes "done" and exits 0. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define TRAMPOLINE 0x7ffd1e000000L

static long via_trampoline(long nr, long a1, long a2, long a3, long a4) {
    long ret;
    register long r10 __asm__("r10") = a4;
    __asm__ volatile("sub $128, %%rsp\n\tcall *%[t]\n\tadd $128, %%rsp"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), [t] "r"(TRAMPOLINE)
                     : "rcx", "r11", "memory");
    return ret;
}
#else /* i386 (gcc -m32): the trampoline is `int $0x80; ret` below 4 GiB */
#define TRAMPOLINE 0x7ffd1000L

static long via_trampoline(long nr, long a1, long a2, long a3, long a4) {
    long ret;
    __asm__ volatile("call *%[t]"
                     : "=a"(ret)
                     : "a"(nr), "b"(a1), "c"(a2), "d"(a3), "S"(a4), [t] "D"(TRAMPOLINE)
                     : "memory");
    return ret;
}
#endif

/* Append a record whose length runs past the ring to this process's out ring. */
static int forge(void) {
    char line[512];
    unsigned long start = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) return -1;
    while (fgets(line, sizeof line, maps))
        if (strstr(line, "dmvx-dipmon")) {
            sscanf(line, "%lx-", &start);
            break;
        }
    fclose(maps);
    if (!start) return -1;
    volatile unsigned char *area = (volatile unsigned char *)start;
    unsigned long head = *(volatile unsigned long *)(area + 40), ring = *(volatile unsigned long *)(area + 72);
    volatile unsigned int *rec = (volatile unsigned int *)(area + 4096 + head % ring);
    rec[0] = 0x7ffffff8; /* longer than the ring */
    rec[1] = SYS_getpid;
    *(volatile unsigned long *)(area + 40) = head + 80;
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "plain";
    long r = 0;
    if (!strcmp(mode, "mkdir") && argc > 2)
        r = via_trampoline(SYS_mkdirat, AT_FDCWD, (long)argv[2], 0700, 0);
    else if (!strcmp(mode, "forge")) {
        for (int i = 0; i < 5; i++) getpid();
        r = forge();
        getpid();
    } else if (!strcmp(mode, "getpid"))
        r = via_trampoline(SYS_getpid, 0, 0, 0, 0);
    printf("done\n");
    return r < 0 ? 3 : 0;
}
