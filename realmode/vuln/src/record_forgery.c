/* record_forgery.c: a compromised leader lying in its in-process ring
   (scenarios/attacks/record-forgery.yml, docs/attacks.md).

   usage: record_forgery [K]

   Reads requests of REQ bytes from stdin with read(2) and answers each on
   stdout with writev(2) -- "answer: " and the request. Under dmvx run
   --in-process on both calls go through the in-process library
   (realmode/native/dipmon.c): no stop, a record in the variant's ring.

   With K (the leader: a variant an earlier exploit already owns), request K
   (0-based) is read behind the library's back -- from the trampoline, so the
   filter lets it through and nothing records it -- and the record the
   library would have written is forged: the same read, with the bytes of a
   benign request as its output. The followers are fed those bytes and
   answer the benign request; the leader answers the one it really got, with
   the library's writev, which runs at once. Without an in-process area (the
   ptrace path) it says so and exits 3. Every variant reads /proc/self/maps
   at start (the leader finds its area there), so all make the same calls.

   Built like the other targets (x86-64 and gcc -m32, any layout). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define REQ 32
static const char BENIGN[REQ] = "GET /index.html                \n";

/* The shared area's header and record layout (realmode/native/dipmon.h). */
#define H_SEQ 32
#define H_OUT_HEAD 40
#define H_RING 72
#define HEADER 4096
#define REC_HEAD 80
#define REG_HEAD 16

#if defined(__x86_64__)
#define TRAMPOLINE 0x7ffd1e000000UL
static long via_trampoline(long nr, long a1, long a2, long a3) {
    long ret;
    __asm__ volatile("sub $128, %%rsp\n\tcall *%[t]\n\tadd $128, %%rsp"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), [t] "r"(TRAMPOLINE)
                     : "rcx", "r11", "memory");
    return ret;
}
#else
#define TRAMPOLINE 0x7ffd1000UL
static long via_trampoline(long nr, long a1, long a2, long a3) {
    long ret;
    __asm__ volatile("call *%[t]" : "=a"(ret) : "a"(nr), "b"(a1), "c"(a2), "d"(a3), [t] "D"(TRAMPOLINE) : "memory");
    return ret;
}
#endif

static volatile uint8_t *find_area(void) {
    char line[512];
    unsigned long start = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) return NULL;
    while (fgets(line, sizeof line, maps))
        if (strstr(line, "dmvx-dipmon")) {
            sscanf(line, "%lx-", &start);
            break;
        }
    fclose(maps);
    return (volatile uint8_t *)start;
}

/* Read request K from the trampoline and append the record of a read that
   returned BENIGN: the next sequence number, read(0, buf, REQ) = REQ, one
   region at buf. 0, or -1 if there is no area or no room at the ring's end. */
static int forged_read(volatile uint8_t *area, char *buf) {
    if (!area) return -1;
    uint64_t head = *(volatile uint64_t *)(area + H_OUT_HEAD), ring = *(volatile uint64_t *)(area + H_RING);
    uint64_t size = REC_HEAD + REG_HEAD + REQ;
    if (head % ring + size > ring) return -1;
    long got = via_trampoline(SYS_read, 0, (long)buf, REQ);
    if (got <= 0) return -1;
    uint64_t seq = *(volatile uint64_t *)(area + H_SEQ) + 1;
    volatile uint8_t *p = area + HEADER + head % ring;
    uint64_t args[6] = {0, (uint64_t)(uintptr_t)buf, REQ, 0, 0, 0};
    *(volatile uint32_t *)p = (uint32_t)size;
    *(volatile uint32_t *)(p + 4) = SYS_read;
    *(volatile uint64_t *)(p + 8) = seq;
    *(volatile int64_t *)(p + 16) = REQ;
    for (int i = 0; i < 6; i++) *(volatile uint64_t *)(p + 24 + 8 * i) = args[i];
    *(volatile uint32_t *)(p + 72) = 1;
    *(volatile uint32_t *)(p + 76) = 0;
    *(volatile uint64_t *)(p + REC_HEAD) = (uint64_t)(uintptr_t)buf;
    *(volatile uint32_t *)(p + REC_HEAD + 8) = REQ;
    *(volatile uint32_t *)(p + REC_HEAD + 12) = 0;
    for (int i = 0; i < REQ; i++) p[REC_HEAD + REG_HEAD + i] = (uint8_t)BENIGN[i];
    __atomic_store_n((uint64_t *)(area + H_SEQ), seq, __ATOMIC_RELEASE);
    __atomic_store_n((uint64_t *)(area + H_OUT_HEAD), head + size, __ATOMIC_RELEASE);
    return 0;
}

int main(int argc, char **argv) {
    long lie_at = argc > 1 ? atol(argv[1]) : -1;
    char buf[REQ];
    static const char prefix[] = "answer: ";
    /* Every variant looks for the area at start, so that they all make the
       same calls (an exploit's code would find it in the library's memory). */
    volatile uint8_t *area = find_area();
    for (long k = 0;; k++) {
        if (k == lie_at) {
            if (forged_read(area, buf) != 0) {
                fprintf(stderr, "record_forgery: no in-process area to lie in\n");
                return 3;
            }
        } else if (read(0, buf, REQ) != REQ) {
            return 0;
        }
        struct iovec iov[2] = {{(void *)prefix, sizeof prefix - 1}, {buf, REQ}};
        if (writev(1, iov, 2) < 0) return 1;
    }
}
