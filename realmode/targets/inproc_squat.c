/* A follower that holds a descriptor its monitor does not know at the number
   the leader's next accept4 returns (tests/test_real_inproc.py, x86-64):

     inproc_squat squat   copies its standard input to the lowest free
                          number with a dup3 from the trampoline (which a
                          follower's seccomp filter lets through there,
                          unseen by the core), then accepts one connection
     inproc_squat plain   accepts one connection (what the leader runs)

   A follower's in-process library once made its accept4's descriptor with a
   dup3 to the leader's number, which closed whatever the follower held there
   without a word; now it must never replace it (the traced path then finds
   the number taken). Before the accept the squatter computes for a while, so
   that the leader's entry is in its ring when it gets there (the fast path).
   Prints "accepted" and exits 0 when the connection was accepted. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TRAMPOLINE 0x7ffd1e000000L

static long via_trampoline(long nr, long a1, long a2, long a3) {
    long ret;
    __asm__ volatile("sub $128, %%rsp\n\tcall *%[t]\n\tadd $128, %%rsp"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), [t] "r"(TRAMPOLINE)
                     : "rcx", "r11", "memory");
    return ret;
}

int main(int argc, char **argv) {
    int squat = argc > 1 && strcmp(argv[1], "squat") == 0, one = 1;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&addr, sizeof addr) || listen(l, 16) || getsockname(l, (struct sockaddr *)&addr, &len))
        return 2;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&addr, sizeof addr)) return 3;
    if (squat) {
        /* The lowest free number: the one the leader's accept4 returns. */
        if (via_trampoline(SYS_dup3, 0, c + 1, 0) != c + 1) return 4;
        for (volatile long i = 0; i < 50000000L; i++) {
        }
    }
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0) return 5;
    printf("accepted\n");
    return 0;
}
