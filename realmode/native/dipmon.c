/* dmvx's in-process DIP-MON: libc wrappers that take replicated calls off
   the ptrace path (docs/realmode.md, "The in-process path").

   Loaded with LD_PRELOAD into a variant whose monitor made a shared area for
   it (DIPMON_ENV, DIPMON_FD). A wrapped call the monitor's tables mark fast:

   * leader: runs the call from the trampoline page (which the seccomp filter
     lets replicated calls through from) and appends a record -- sequence
     number, call, result, the bytes it read and wrote -- to the out ring;
     its monitor drains the ring into the core off this path;
   * follower: takes the leader's entry for its next sequence number from
     the in ring (which its monitor fills from the CONNECTOR), checks its own
     call against it (number, compared arguments), writes the leader's
     outputs into its own buffers and returns the leader's result, then
     appends its own call to its out ring for the core to check.

   Whenever anything is off -- the area is missing, the monitor cleared the
   switch, the entry is not there in time or does not match, the buffer is
   too big for the ring -- the call is issued from an ordinary syscall
   instruction instead, which the filter stops: the tracer and the core then
   handle it as without this library. No call is ever lost or decided here.

   Built for x86-64 and, with gcc -m32, for i386 (build.py): the run preloads
   the one of the variant's ELF class. The i386 build issues its calls with
   `int $0x80` (its trampoline holds one), numbers them in its own ABI and
   widens its 32-bit registers into the record's 64-bit words. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/epoll.h>

#include "dipmon.h"

/* The library's identity, which the monitor reads from the file before a
   run (dipmon.h: DIPMON_ABI_TAG; build.py passes the digest). */
#ifndef DIPMON_SOURCE_DIGEST
#define DIPMON_SOURCE_DIGEST "unknown"
#endif
#define DIPMON_STR_(x) #x
#define DIPMON_STR(x) DIPMON_STR_(x)
__attribute__((used)) static const char dipmon_abi[] =
    DIPMON_ABI_TAG DIPMON_STR(DIPMON_VERSION) " " DIPMON_SOURCE_DIGEST;

/* The largest data one record may carry; bigger calls take the traced path. */
#define MAX_DATA (256 * 1024)
#define MAX_REGIONS 8
/* A follower waits for its entry while its monitor hears from the leader; after
   this long without a word (H_HEARD unchanged) it lets the tracer wait, where
   the core sees the wait, and tells its monitor how long it waited (H_WAITED:
   the stall is reckoned from the last word, as if it had stopped at once).
   Longer than a loaded leader's monitor may go without a CPU (a fallback at
   20 ms: ~5% of lighttpd's requests under load), shorter than the heartbeat
   period (0.5 s), so a server waiting for its next client stops once. */
#define FOLLOWER_WAIT_NS 200000000L
#define WAIT_SLICE_NS 1000000L
/* A follower's slice of its wait for an entry: the feed wakes it at once, so
   the slice only paces its patience (1 ms slices woke a follower waiting for
   its next request ~10 times a request, ~150 us of its CPU). */
#define FOLLOWER_SLICE_NS 20000000L
/* Pauses a follower spins for its entry before it sleeps on the futex (its
   monitor's feed wakes it). Few: on a shared CPU (split placement puts the
   follower's program beside every monitor) a spin only holds off the
   monitor that brings the entry, and 200 cost a caught-up follower's
   program ~6x its CPU a lighttpd request once the wake-ups worked. */
#define FOLLOWER_SPINS 16

static volatile uint8_t *area;
static int role;     /* 0 leader, 1 follower */
static uint32_t call_ticks; /* the call append() records next took this many TSC ticks (0: not run here) */
/* This process (not a child made without CLONE_VM) runs the fast path: the
   word lives in a private page the kernel wipes in such a child (fork, a raw
   clone, glibc's _Fork: none need run pthread_atfork handlers), which then
   reads 0 and never touches its parent's area -- nor could it: the area and
   the trampoline are not mapped in it (MADV_DONTFORK). */
static int inactive;
static volatile int *active = &inactive;
static int busy;     /* inside a wrapper: a signal handler's call takes the traced path */
static uint64_t ring_size;

#define U32(off) (*(volatile uint32_t *)(area + (off)))
#define U64(off) (*(volatile uint64_t *)(area + (off)))
#define OUT_RING (area + DIPMON_HEADER)
#define IN_RING (area + DIPMON_HEADER + ring_size)

/* -- issuing calls ---------------------------------------------------------- */

#if defined(__x86_64__)
#define TRAMPOLINE DIPMON_TRAMPOLINE

/* From the trampoline (allowed for fast calls by the filter). */
static inline long tramp(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("call *%[t]"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9),
                       [t] "r"((long)DIPMON_TRAMPOLINE)
                     : "rcx", "r11", "memory");
    return ret;
}

/* From this library's own text: the filter stops it, the tracer handles it. */
static inline long traced(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__i386__)
#define TRAMPOLINE DIPMON_TRAMPOLINE32

/* i386 takes six arguments in ebx ecx edx esi edi ebp; ebx (the PIC
   register) and ebp cannot all be asm operands, so one small function loads
   them from an array and issues the call from the trampoline (``site``
   nonzero: `call` to its `int $0x80; ret`) or from its own `int $0x80`
   (which the filter stops). */
long dipmon_call32(long nr, const long *a, long site) __attribute__((visibility("hidden")));
__asm__(".text\n"
        ".globl dipmon_call32\n"
        ".hidden dipmon_call32\n"
        ".type dipmon_call32,@function\n"
        "dipmon_call32:\n"
        "  push %ebp\n  push %ebx\n  push %esi\n  push %edi\n" /* nr at 20(%esp), a 24, site 28 */
        "  mov 20(%esp), %eax\n"
        "  mov 28(%esp), %edx\n"
        "  mov 24(%esp), %ebp\n"
        "  mov 0(%ebp), %ebx\n  mov 4(%ebp), %ecx\n  mov 12(%ebp), %esi\n  mov 16(%ebp), %edi\n"
        "  test %edx, %edx\n"
        "  jz 1f\n"
        "  push %edx\n"
        "  mov 8(%ebp), %edx\n  mov 20(%ebp), %ebp\n"
        "  call *(%esp)\n"
        "  add $4, %esp\n"
        "  jmp 2f\n"
        "1:\n"
        "  mov 8(%ebp), %edx\n  mov 20(%ebp), %ebp\n"
        "  int $0x80\n"
        "2:\n"
        "  pop %edi\n  pop %esi\n  pop %ebx\n  pop %ebp\n"
        "  ret\n"
        ".size dipmon_call32, .-dipmon_call32\n");

static inline long tramp(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
    long a[6] = {a1, a2, a3, a4, a5, a6};
    return dipmon_call32(nr, a, (long)TRAMPOLINE);
}

static inline long traced(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
    long a[6] = {a1, a2, a3, a4, a5, a6};
    return dipmon_call32(nr, a, 0);
}
#else
#error "dipmon.c is for x86-64 and i386"
#endif

/* A register as the record's 64-bit word: zero-extended, as ptrace gives an
   i386 process's registers (a no-op on x86-64). */
#define WORD(x) ((uint64_t)(unsigned long)(x))

static inline long ret_errno(long r) {
    if (r < 0 && r > -4096) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

static long futex_wait(volatile uint32_t *word, uint32_t value, long ns) {
    struct timespec t = {0, ns};
    return tramp(SYS_futex, (long)word, FUTEX_WAIT, value, (long)&t, 0, 0);
}

/* -- the tables ------------------------------------------------------------- */

static inline int fast_nr(long nr) {
    return *active && !busy && U32(H_ENABLED) && nr >= 0 && nr < DIPMON_NR_TABLE && area[H_CALL_ROUTE + nr];
}

static inline int fast_fd(long nr, long fd, int kind) {
    if (!fast_nr(nr)) return 0;
    if (area[H_CALL_ROUTE + nr] == 1) return 1;
    return fd >= 0 && fd < DIPMON_FD_TABLE && (area[H_FD_ROUTE + fd] >> kind) & 1;
}

/* -- records ---------------------------------------------------------------- */

struct region {
    uint64_t addr;
    uint32_t len;
    const void *src; /* where the bytes are now, if not at addr (a REG_BEFORE copy) */
};

static inline uint64_t pad8(uint64_t n) { return (n + 7) & ~7ULL; }

/* Room for ``size`` bytes at the out ring's head (a padding record first if
   the ring's end is too close); the offset to write at. Waits while full. */
static uint64_t reserve(uint64_t size) {
    for (;;) {
        uint64_t head = U64(H_OUT_HEAD), tail = __atomic_load_n((uint64_t *)(area + H_OUT_TAIL), __ATOMIC_ACQUIRE);
        uint64_t pos = head % ring_size, need = size, used = head - tail;
        if (pos + size > ring_size) need += ring_size - pos;
        if (used <= ring_size && ring_size - used >= need) { /* (a tail past the head is never room) */
            if (pos + size > ring_size) {
                volatile uint8_t *pad = OUT_RING + pos;
                *(uint32_t *)pad = (uint32_t)(ring_size - pos);
                *(uint32_t *)(pad + 4) = REC_PAD;
                __atomic_store_n((uint64_t *)(area + H_OUT_HEAD), head + (ring_size - pos), __ATOMIC_RELEASE);
                continue;
            }
            return head;
        }
        uint32_t wake = U32(H_WAKE);
        U32(H_WAITING) = WAIT_ROOM;
        futex_wait((volatile uint32_t *)(area + H_WAKE), wake, WAIT_SLICE_NS);
        U32(H_WAITING) = 0;
    }
}

static void append(uint64_t seq, long nr, const long a[6], long result, const struct region *r, int n) {
    uint64_t size = REC_HEAD;
    for (int i = 0; i < n; i++) size += REG_HEAD + pad8(r[i].len);
    uint64_t head = reserve(size);
    uint8_t *p = (uint8_t *)(OUT_RING + head % ring_size);
    *(uint32_t *)p = (uint32_t)size;
    *(uint32_t *)(p + 4) = (uint32_t)nr;
    *(uint64_t *)(p + 8) = seq;
    *(int64_t *)(p + 16) = result;
    for (int i = 0; i < 6; i++) *(uint64_t *)(p + 24 + 8 * i) = WORD(a[i]);
    *(uint32_t *)(p + 72) = (uint32_t)n;
    *(uint32_t *)(p + 76) = call_ticks; /* out ring: the call's duration (dipmon.h) */
    call_ticks = 0;
    p += REC_HEAD;
    for (int i = 0; i < n; i++) {
        *(uint64_t *)p = r[i].addr;
        *(uint32_t *)(p + 8) = r[i].len;
        *(uint32_t *)(p + 12) = 0;
        if (r[i].len) memcpy(p + REG_HEAD, r[i].src ? r[i].src : (const void *)(uintptr_t)r[i].addr, r[i].len);
        p += REG_HEAD + pad8(r[i].len);
    }
    __atomic_store_n((uint64_t *)(area + H_OUT_HEAD), head + size, __ATOMIC_RELEASE);
}

/* -- the follower's side ---------------------------------------------------- */

/* The in-ring record for sequence number ``seq``, waiting for it a while;
   NULL when it is not there in time or the ring holds a later one. */
static const uint8_t *entry_for(uint64_t seq) {
    long waited = 0; /* since the monitor last heard from the leader (H_HEARD) */
    int spins = 0;
    uint32_t heard = U32(H_HEARD);
    for (;;) {
        uint64_t tail = U64(H_IN_TAIL), head = __atomic_load_n((uint64_t *)(area + H_IN_HEAD), __ATOMIC_ACQUIRE);
        while (tail < head) {
            const uint8_t *p = (const uint8_t *)(IN_RING + tail % ring_size);
            uint32_t len = *(const uint32_t *)p;
            if (len < 8 || len > ring_size || (len & 7)) return NULL; /* the monitor's own bytes: never */
            if (*(const uint32_t *)(p + 4) == REC_PAD || *(const uint64_t *)(p + 8) < seq) {
                tail += len;
                __atomic_store_n((uint64_t *)(area + H_IN_TAIL), tail, __ATOMIC_RELEASE);
                continue;
            }
            return *(const uint64_t *)(p + 8) == seq ? p : NULL;
        }
        if (!U32(H_ENABLED)) return NULL;
        if (waited >= FOLLOWER_WAIT_NS) {
            U32(H_WAITED) = (uint32_t)waited;
            return NULL;
        }
        if (spins < FOLLOWER_SPINS) {
            spins++;
            __builtin_ia32_pause();
            continue;
        }
        uint32_t wake = U32(H_WAKE);
        U32(H_WAITING) = WAIT_ENTRY;
        if (__atomic_load_n((uint64_t *)(area + H_IN_HEAD), __ATOMIC_ACQUIRE) == head)
            futex_wait((volatile uint32_t *)(area + H_WAKE), wake, FOLLOWER_SLICE_NS);
        U32(H_WAITING) = 0;
        /* A slice counts against the patience unless the leader was heard
           meanwhile: a leader that is slow, not silent, is waited for here,
           without a stop (its next entry only came late: a fallback cost a
           ptrace stop and the same wait at the tracer). */
        uint32_t now = U32(H_HEARD);
        if (now != heard) {
            heard = now;
            waited = 0;
        } else {
            waited += FOLLOWER_SLICE_NS;
        }
    }
}

/* Serve a follower's call from the leader's entry: 1 and *result if served.
   ``mask``: the arguments that must equal the leader's; ``room[i]``: bytes
   this call may have written at argument i (0: none). */

/* The in-ring entry for this follower's next call when it is this call
   (number, compared arguments) and its outputs fit this call's buffers;
   NULL otherwise (nothing taken yet: the traced path may still run it). */
static const uint8_t *entry_match(long nr, const long a[6], unsigned mask, const uint64_t room[6]) {
    const uint8_t *p = entry_for(U64(H_SEQ) + 1);
    if (!p) return NULL;
    uint32_t len = *(const uint32_t *)p, n = *(const uint32_t *)(p + 72), flags = *(const uint32_t *)(p + 76);
    if ((flags & RF_NOTFAST) || *(const uint32_t *)(p + 4) != (uint32_t)nr || len < REC_HEAD) return NULL;
    const uint64_t *la = (const uint64_t *)(p + 24);
    /* The entry's words are the core's values (an int sign-extended, a size
       not): a 32-bit register matches either; the core checks the call again. */
    for (int i = 0; i < 6; i++)
        if ((mask >> i) & 1 && la[i] != WORD(a[i]) && la[i] != (uint64_t)(int64_t)a[i]) return NULL;
    /* Every region must fit this call's own buffers before anything is written. */
    const uint8_t *q = p + REC_HEAD, *end = p + len;
    for (uint32_t i = 0; i < n; i++) {
        if (q + REG_HEAD > end) return NULL;
        uint64_t addr = *(const uint64_t *)q, rl = *(const uint32_t *)(q + 8);
        uint64_t arg = (addr >> ARG_SHIFT) - 1, off = addr & ((1ULL << ARG_SHIFT) - 1);
        if (arg >= 6 || off + rl > room[arg] || q + REG_HEAD + pad8(rl) > end) return NULL;
        q += REG_HEAD + pad8(rl);
    }
    return p;
}

/* Take the entry entry_match() gave: its outputs into this call's buffers,
   its result, and the sequence number is this process's. */
static void entry_take(const uint8_t *p, const long a[6], long *result) {
    uint32_t len = *(const uint32_t *)p, n = *(const uint32_t *)(p + 72);
    const uint8_t *q = p + REC_HEAD;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t addr = *(const uint64_t *)q, rl = *(const uint32_t *)(q + 8);
        if (rl) memcpy((uint8_t *)a[(addr >> ARG_SHIFT) - 1] + (addr & ((1ULL << ARG_SHIFT) - 1)), q + REG_HEAD, rl);
        q += REG_HEAD + pad8(rl);
    }
    *result = *(const int64_t *)(p + 16);
    __atomic_store_n((uint64_t *)(area + H_SEQ), U64(H_SEQ) + 1, __ATOMIC_RELEASE);
    __atomic_store_n((uint64_t *)(area + H_IN_TAIL), U64(H_IN_TAIL) + len, __ATOMIC_RELEASE);
}

static int follow(long nr, const long a[6], unsigned mask, const uint64_t room[6], long *result) {
    const uint8_t *p = entry_match(nr, a, mask, room);
    if (!p) return 0;
    entry_take(p, a, result);
    return 1;
}

/* -- one call, either role -------------------------------------------------- */

/* Run (leader) or take (follower) one fast call; 0 if it must take the
   traced path. ``out_before``: regions the call writes, sized by the
   caller's buffers (follower); ``collect`` builds the record's regions from
   the result (both roles). */
typedef int (*collect_fn)(const long a[6], long result, struct region *r);
static const uint64_t NO_ROOM_EACH[6];

static int fast_call(long nr, const long a[6], unsigned mask, const uint64_t room[6], collect_fn collect,
                     long *result) {
    struct region r[MAX_REGIONS] = {{0}};
    int n;
    busy = 1;
    if (role == 0) {
        U32(H_INCALL) = 1;
        uint64_t t0 = __builtin_ia32_rdtsc();
        long res = tramp(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        uint64_t took = __builtin_ia32_rdtsc() - t0;
        U32(H_INCALL) = 0;
        call_ticks = took > 0xffffffffULL ? 0xffffffffU : (uint32_t)took;
        if (res == DIPMON_RETRACE) { /* a signal the tracer holds came first: place it there */
            busy = 0;
            return 0;
        }
        n = collect ? collect(a, res, r) : 0;
        uint64_t seq = U64(H_SEQ) + 1;
        __atomic_store_n((uint64_t *)(area + H_SEQ), seq, __ATOMIC_RELEASE); /* one store on i386 too */
        append(seq, nr, a, res, r, n);
        *result = res;
    } else {
        long res;
        if (!follow(nr, a, mask, room, &res)) {
            U64(H_FALLBACK) += 1;
            busy = 0;
            return 0;
        }
        n = collect ? collect(a, res, r) : 0;
        append(U64(H_SEQ), nr, a, res, r, n);
        *result = res;
    }
    U64(H_FAST) += 1;
    busy = 0;
    return 1;
}

/* A call every variant runs on its own descriptor (close): the leader as
   fast_call; a follower takes the leader's entry (the same call, compared),
   runs its own from the trampoline and returns its own result, which the
   core compares with the leader's as at a stop. 0: the traced path. */
__attribute__((unused)) static int fast_each(long nr, const long a[6], unsigned mask, long *result) {
    if (role == 0) return fast_call(nr, a, mask, NO_ROOM_EACH, NULL, result);
    long leaders;
    busy = 1;
    if (!follow(nr, a, mask, NO_ROOM_EACH, &leaders)) {
        U64(H_FALLBACK) += 1;
        busy = 0;
        return 0;
    }
    uint64_t t0 = __builtin_ia32_rdtsc();
    long res = tramp(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    uint64_t took = __builtin_ia32_rdtsc() - t0;
    call_ticks = took > 0xffffffffULL ? 0xffffffffU : (uint32_t)took;
    append(U64(H_SEQ), nr, a, res, NULL, 0);
    *result = res;
    U64(H_FAST) += 1;
    busy = 0;
    return 1;
}

/* -- what each wrapped call reads and writes -------------------------------- */

static int out_buf1(const long a[6], long res, struct region *r) { /* read, pread64, recvfrom w/o address */
    r[0].addr = WORD(a[1]);
    r[0].len = res > 0 ? (uint32_t)res : 0;
    return res > 0 ? 1 : 0;
}

static int out_buf0(const long a[6], long res, struct region *r) { /* getcwd */
    r[0].addr = WORD(a[0]);
    r[0].len = res > 0 ? (uint32_t)res : 0;
    return res > 0 ? 1 : 0;
}

static int in_iov(const long a[6], long res, struct region *r) { /* writev: the iovecs and their bytes */
    (void)res;
    const struct iovec *iov = (const struct iovec *)a[1];
    int count = (int)a[2], n = 0;
    r[n].addr = WORD(a[1]);
    r[n++].len = (uint32_t)(count * sizeof(struct iovec));
    for (int i = 0; i < count && n < MAX_REGIONS; i++) {
        r[n].addr = (uintptr_t)iov[i].iov_base;
        r[n++].len = (uint32_t)iov[i].iov_len;
    }
    return n;
}

static int in_buf1(const long a[6], long res, struct region *r) { /* sendto without an address */
    (void)res;
    r[0].addr = WORD(a[1]);
    r[0].len = (uint32_t)a[2];
    return 1;
}

/* -- the wrappers ------------------------------------------------------------ */

static const uint64_t NO_ROOM[6];

static long simple(long nr) {
    long a[6] = {0}, res;
    if (fast_nr(nr) && fast_call(nr, a, 0, NO_ROOM, NULL, &res)) return ret_errno(res);
    return ret_errno(traced(nr, 0, 0, 0, 0, 0, 0));
}

pid_t getpid(void) { return (pid_t)simple(SYS_getpid); }
pid_t getppid(void) { return (pid_t)simple(SYS_getppid); }
int sched_yield(void) { return (int)simple(SYS_sched_yield); }

/* syscall(2): the calls without arguments go the fast way; the rest as issued. */
long syscall(long nr, ...) {
    va_list ap;
    long a[6];
    va_start(ap, nr);
    for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
    va_end(ap);
    switch (nr) {
    case SYS_getpid:
    case SYS_getppid:
    case SYS_sched_yield:
    case SYS_getuid:
    case SYS_geteuid:
    case SYS_getgid:
    case SYS_getegid:
    case SYS_getpgrp:
        return simple(nr);
#if defined(__x86_64__)
    case SYS_epoll_ctl: /* the follower's registrations stay known (ep_apply) */
        return epoll_ctl((int)a[0], (int)a[1], (int)a[2], (struct epoll_event *)a[3]);
#endif
    default:
        return ret_errno(traced(nr, a[0], a[1], a[2], a[3], a[4], a[5]));
    }
}

static long read_like(long nr, int fd, void *buf, size_t count, off64_t offset) {
#if defined(__i386__) /* pread64's offset in two registers, low word first */
    long a[6] = {fd, (long)buf, (long)count, (long)(uint32_t)offset, (long)(uint32_t)((uint64_t)offset >> 32), 0}, res;
#else
    long a[6] = {fd, (long)buf, (long)count, offset, 0, 0}, res;
#endif
    uint64_t room[6] = {0, count, 0, 0, 0, 0};
    unsigned mask = nr == SYS_pread64 ? 0xd : 0x5;
    if (count <= MAX_DATA && fast_fd(nr, fd, FDK_READ) && fast_call(nr, a, mask, room, out_buf1, &res))
        return ret_errno(res);
    return ret_errno(traced(nr, a[0], a[1], a[2], a[3], a[4], 0));
}

ssize_t read(int fd, void *buf, size_t count) { return read_like(SYS_read, fd, buf, count, 0); }
ssize_t pread64(int fd, void *buf, size_t count, off64_t offset) { return read_like(SYS_pread64, fd, buf, count, offset); }
ssize_t pread(int fd, void *buf, size_t count, off_t offset) { return read_like(SYS_pread64, fd, buf, count, offset); }

char *getcwd(char *buf, size_t size) {
    long a[6] = {(long)buf, (long)size, 0, 0, 0, 0}, res;
    uint64_t room[6] = {size, 0, 0, 0, 0, 0};
    if (buf == NULL) { /* glibc allocates: leave that to it */
        char *(*next)(char *, size_t) = NULL;
        extern void *dlsym(void *, const char *);
        next = (char *(*)(char *, size_t))dlsym((void *)-1L /* RTLD_NEXT */, "getcwd");
        return next ? next(buf, size) : NULL;
    }
    if (size <= MAX_DATA && fast_nr(SYS_getcwd) && fast_call(SYS_getcwd, a, 0x2, room, out_buf0, &res)) {
    } else {
        res = traced(SYS_getcwd, (long)buf, (long)size, 0, 0, 0, 0);
    }
    if (res < 0 && res > -4096) {
        errno = (int)-res;
        return NULL;
    }
    return buf;
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    long a[6] = {fd, (long)iov, iovcnt, 0, 0, 0}, res;
    size_t total = 0;
    for (int i = 0; i < iovcnt && i < MAX_REGIONS; i++) total += iov[i].iov_len;
    if (iovcnt > 0 && iovcnt < MAX_REGIONS && total <= MAX_DATA && fast_fd(SYS_writev, fd, FDK_WRITE) &&
        fast_call(SYS_writev, a, 0x5, NO_ROOM, in_iov, &res))
        return ret_errno(res);
    return ret_errno(traced(SYS_writev, fd, (long)iov, iovcnt, 0, 0, 0));
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr, socklen_t *alen) {
    long a[6] = {fd, (long)buf, (long)len, flags, (long)addr, (long)alen}, res;
    uint64_t room[6] = {0, len, 0, 0, 0, 0};
    if (addr == NULL && alen == NULL && len <= MAX_DATA && fast_fd(SYS_recvfrom, fd, FDK_RECV) &&
        fast_call(SYS_recvfrom, a, 0x3d, room, out_buf1, &res))
        return ret_errno(res);
    return ret_errno(traced(SYS_recvfrom, fd, (long)buf, (long)len, flags, (long)addr, (long)alen));
}

ssize_t recv(int fd, void *buf, size_t len, int flags) { return recvfrom(fd, buf, len, flags, NULL, NULL); }

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr, socklen_t alen) {
    long a[6] = {fd, (long)buf, (long)len, flags, (long)addr, (long)alen}, res;
    if (addr == NULL && alen == 0 && len <= MAX_DATA && fast_fd(SYS_sendto, fd, FDK_SEND) &&
        fast_call(SYS_sendto, a, 0x3d, NO_ROOM, in_buf1, &res))
        return ret_errno(res);
    return ret_errno(traced(SYS_sendto, fd, (long)buf, (long)len, flags, (long)addr, (long)alen));
}

ssize_t send(int fd, const void *buf, size_t len, int flags) { return sendto(fd, buf, len, flags, NULL, 0); }

int shutdown(int fd, int how) {
    long a[6] = {fd, how, 0, 0, 0, 0}, res;
    if (fast_fd(SYS_shutdown, fd, FDK_SHUTDOWN) && fast_call(SYS_shutdown, a, 0x3, NO_ROOM, NULL, &res))
        return (int)ret_errno(res);
    return (int)ret_errno(traced(SYS_shutdown, fd, how, 0, 0, 0, 0));
}

#if defined(__x86_64__)
/* -- descriptors and epoll (x86-64) ------------------------------------------ */
#include <sys/epoll.h>

/* accept4, leader only: a follower needs a descriptor of its own at the
   leader's number (a placeholder), which its tracer makes at a stop. The
   new socket's fd_route byte is the core's for a socket (H_SOCKET_BITS):
   the core's table learns the descriptor from this record before it
   checks any later call on it. */
static uint32_t accept_len_before;

static int out_accept(const long a[6], long res, struct region *r) {
    if (!a[2]) return 0;
    r[0].addr = WORD(a[2]) | REG_BEFORE; /* addrlen as the call read it */
    r[0].len = 4;
    r[0].src = &accept_len_before;
    if (res < 0) return 1;
    r[1].addr = WORD(a[2]);
    r[1].len = 4;
    if (!a[1]) return 2;
    uint32_t got = *(const uint32_t *)a[2];
    r[2].addr = WORD(a[1]);
    r[2].len = got < accept_len_before ? got : accept_len_before;
    return 3;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags) {
    long a[6] = {fd, (long)addr, (long)alen, flags, 0, 0}, res;
    if (role == 0 && (addr == NULL || alen != NULL) && fast_nr(SYS_accept4)) {
        accept_len_before = alen ? *alen : 0;
        if (fast_call(SYS_accept4, a, 0, NO_ROOM, out_accept, &res)) {
            if (res >= 0 && res < DIPMON_FD_TABLE) area[H_FD_ROUTE + res] = (uint8_t)U32(H_SOCKET_BITS);
            return (int)ret_errno(res);
        }
    } else if (role == 1 && (addr == NULL || alen != NULL) && fast_nr(SYS_accept4)) {
        /* A follower takes the leader's entry. An error (a non-blocking
           socket's EAGAIN, every other accept4 of an event loop) makes
           nothing. A new connection needs a descriptor at the leader's
           number: a copy of this follower's own listening socket -- a
           follower's socket is its tracer's placeholder, /dev/null; the
           core's table has it (its byte is not 0) and not the new number --
           made with dup from the trampoline (tables.FOLLOWER_PLACES: the
           follower's filter lets dup, dup3 and close through from there),
           which takes the lowest free number as the tracer's placeholder
           open would, so never one this follower has open (a dup3 to the
           leader's number would have closed whatever was there). If it
           does not land at the leader's number, it is closed again and the
           traced path takes the call (the tracer checks where its own
           placeholder lands). SOCK_CLOEXEC: a dup3 over the copy just made. */
        accept_len_before = alen ? *alen : 0;
        uint64_t room[6] = {0, alen ? accept_len_before : 0, alen ? sizeof *alen : 0, 0, 0, 0};
        struct region r[MAX_REGIONS] = {{0}};
        busy = 1;
        const uint8_t *p = entry_match(SYS_accept4, a, 0x9, room);
        if (p) {
            long made = *(const int64_t *)(p + 16);
            int placed = made < 0 && made > -4096;
            if (!placed && made > 2 && made < DIPMON_FD_TABLE && fd >= 0 && fd < DIPMON_FD_TABLE &&
                area[H_FD_ROUTE + fd] && !area[H_FD_ROUTE + made]) {
                long got = tramp(SYS_dup, fd, 0, 0, 0, 0, 0);
                placed = got == made &&
                         (!(flags & SOCK_CLOEXEC) || tramp(SYS_dup3, fd, made, O_CLOEXEC, 0, 0, 0) == made);
                if (!placed && got >= 0) tramp(SYS_close, got, 0, 0, 0, 0, 0);
            }
            if (placed) {
                entry_take(p, a, &res);
                if (res >= 0) area[H_FD_ROUTE + res] = (uint8_t)U32(H_SOCKET_BITS);
                append(U64(H_SEQ), SYS_accept4, a, res, r, out_accept(a, res, r));
                U64(H_FAST) += 1;
                busy = 0;
                return (int)ret_errno(res);
            }
        }
        U64(H_FALLBACK) += 1;
        busy = 0;
    }
    return (int)ret_errno(traced(SYS_accept4, fd, (long)addr, (long)alen, flags, 0, 0));
}

static int out_timespec(const long a[6], long res, struct region *r) { /* clock_gettime */
    if (res != 0 || !a[1]) return 0;
    r[0].addr = WORD(a[1]);
    r[0].len = sizeof(struct timespec);
    return 1;
}

/* clock_gettime: the vDSO is hidden from variants (every clock read is a
   call), and the leader's reading is every variant's (the core replicates
   it), so a server's per-request clock read need not stop. The clock is
   compared; a follower copies the leader's timespec into its own. */
int clock_gettime(clockid_t clock, struct timespec *ts) {
    long a[6] = {clock, (long)ts, 0, 0, 0, 0}, res;
    __asm__("" : "+r"(a[1])); /* glibc says ts is never NULL; a program may pass it anyway */
    uint64_t room[6] = {0, a[1] ? sizeof *ts : 0, 0, 0, 0, 0};
    if (a[1] && fast_nr(SYS_clock_gettime) && fast_call(SYS_clock_gettime, a, 0x1, room, out_timespec, &res))
        return (int)ret_errno(res);
    return (int)ret_errno(traced(SYS_clock_gettime, clock, (long)ts, 0, 0, 0, 0));
}

/* A follower's own epoll registrations, (epfd, fd) -> data, kept from its
   epoll_ctl calls whichever path they took (realmode/epoll.py's EpollMap,
   which its monitor keeps from the same calls): a follower's fast
   epoll_wait turns the leader's events, which name descriptors, into its
   own data with it. One set per descriptor: a descriptor registered in two
   sets is not translated here (its events take the traced path). */
static uint64_t ep_data[DIPMON_FD_TABLE];
static int ep_owner[DIPMON_FD_TABLE]; /* epfd + 1; 0: none; -1: in more than one set */
static uint8_t ep_is_set[DIPMON_FD_TABLE];
#define EP_UNKNOWN (1ULL << 63) /* realmode/epoll.py: UNKNOWN */
#define EP_FD_LIMIT (1ULL << 31)

static void ep_apply(int epfd, int op, int fd, const struct epoll_event *event) {
    if (epfd < 0 || epfd >= DIPMON_FD_TABLE) return;
    if (fd < 0 || fd >= DIPMON_FD_TABLE) return; /* never asked for: its events fall back (ep_known) */
    ep_is_set[epfd] = 1;
    int owner = ep_owner[fd];
    if (owner == -1) return;
    if (owner != 0 && owner != epfd + 1) {
        ep_owner[fd] = -1;
        return;
    }
    if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && event) {
        ep_owner[fd] = epfd + 1;
        ep_data[fd] = event->data.u64;
    } else {
        ep_owner[fd] = 0;
    }
}

/* ``fd`` was closed: an epoll set of that number is gone (EpollMap.forget_fd). */
static void ep_forget_set(int fd) {
    if (fd < 0 || fd >= DIPMON_FD_TABLE || !ep_is_set[fd]) return;
    ep_is_set[fd] = 0;
    for (int i = 0; i < DIPMON_FD_TABLE; i++)
        if (ep_owner[i] == fd + 1) ep_owner[i] = 0;
}

/* Whether every event of the entry ``p`` (canonical: u32 flags, u64 fd or
   data | EP_UNKNOWN, packed) can be turned into this follower's own data:
   a descriptor must be registered in ``epfd`` as this library saw it. One
   it never saw there -- registered by a raw system call (inline asm, which
   the filter stops: the tracer and the monitor's map have it), before this
   library was loaded, or in another set too -- leaves the call to the
   tracer, which writes the data its monitor's map holds (written as the
   descriptor number, the monitor found other data than its map's: a
   protocol-error). */
static int ep_known(const uint8_t *p, int epfd) {
    uint32_t len = *(const uint32_t *)p, n = *(const uint32_t *)(p + 72);
    const uint8_t *q = p + REC_HEAD, *end = p + len;
    for (uint32_t i = 0; i < n && q + REG_HEAD <= end; i++) {
        uint32_t rl = *(const uint32_t *)(q + 8);
        for (uint32_t off = 0; off + 12 <= rl; off += 12) {
            uint64_t value;
            memcpy(&value, q + REG_HEAD + off + 4, 8);
            if (value & EP_UNKNOWN || value >= EP_FD_LIMIT) continue;
            if (value >= DIPMON_FD_TABLE || ep_owner[value] != epfd + 1) return 0;
        }
        q += REG_HEAD + pad8(rl);
    }
    return 1;
}

/* The leader's events, copied into ``events``, become this follower's own
   (EpollMap.from_canonical, which its monitor checks the record against). */
static void ep_translate(struct epoll_event *events, long count, int epfd) {
    for (long i = 0; i < count; i++) {
        uint64_t value = events[i].data.u64, data = value;
        if (value & EP_UNKNOWN)
            data = value & ~EP_UNKNOWN;
        else if (value < DIPMON_FD_TABLE && ep_owner[value] == epfd + 1)
            data = ep_data[value];
        events[i].data.u64 = data;
    }
}

/* close: every variant closes its own descriptor; its byte goes to 0 (the
   monitor gives it again once the core's table has a new one there). */
int close(int fd) {
    long a[6] = {fd, 0, 0, 0, 0, 0}, res;
    if (fast_fd(SYS_close, fd, FDK_CLOSE) && fast_each(SYS_close, a, 0x1, &res)) {
        if (fd >= 0 && fd < DIPMON_FD_TABLE) area[H_FD_ROUTE + fd] = 0;
        if (res == 0) ep_forget_set(fd);
        return (int)ret_errno(res);
    }
    res = traced(SYS_close, fd, 0, 0, 0, 0, 0);
    if (*active && fd >= 0 && fd < DIPMON_FD_TABLE && res == 0) area[H_FD_ROUTE + fd] = 0;
    if (res == 0) ep_forget_set(fd);
    return (int)ret_errno(res);
}

static int in_event(const long a[6], long res, struct region *r) { /* epoll_ctl's event: this variant's data */
    (void)res;
    if (!a[3]) return 0;
    r[0].addr = WORD(a[3]);
    r[0].len = sizeof(struct epoll_event);
    return 1;
}

/* epoll_ctl: only the leader's set exists (a follower's is not made: the
   core routes it to the leader, predicted); each variant's record carries
   its own data, which its monitor keeps per (epfd, fd) (realmode/epoll.py). */
int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event) {
    long a[6] = {epfd, op, fd, (long)event, 0, 0}, res;
    if (!(fast_nr(SYS_epoll_ctl) && fast_call(SYS_epoll_ctl, a, 0x7, NO_ROOM, in_event, &res)))
        res = traced(SYS_epoll_ctl, epfd, op, fd, (long)event, 0, 0);
    if (res == 0 && role == 1 && *active) ep_apply(epfd, op, fd, event);
    return (int)ret_errno(res);
}

static int out_events(const long a[6], long res, struct region *r) {
    r[0].addr = WORD(a[1]);
    r[0].len = res > 0 ? (uint32_t)(res * sizeof(struct epoll_event)) : 0;
    return res > 0 ? 1 : 0;
}

/* epoll_wait: the leader's events carry the leader's data, which its
   monitor turns into descriptors; a follower takes them from the entry and
   writes its own data for each descriptor (ep_translate). */
int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout) {
    long a[6] = {epfd, (long)events, maxevents, timeout, 0, 0}, res;
    int fits = maxevents > 0 && (size_t)maxevents * sizeof(struct epoll_event) <= MAX_DATA;
    if (role == 0 && fits && fast_nr(SYS_epoll_wait) && fast_call(SYS_epoll_wait, a, 0, NO_ROOM, out_events, &res))
        return (int)ret_errno(res);
    if (role == 1 && fits && epfd >= 0 && epfd < DIPMON_FD_TABLE && fast_nr(SYS_epoll_wait)) {
        /* A follower takes the leader's events, which name descriptors, and
           writes its own data for them (ep_translate); an event it cannot
           translate so leaves the call to its tracer. Its record carries
           the events as it got them, which its monitor checks against its
           own registrations. epfd and maxevents compared; the core
           compares the call again. */
        uint64_t room[6] = {0, (uint64_t)maxevents * sizeof(struct epoll_event), 0, 0, 0, 0};
        struct region r[MAX_REGIONS] = {{0}};
        busy = 1;
        const uint8_t *p = entry_match(SYS_epoll_wait, a, 0x5, room);
        if (p && ep_known(p, epfd)) {
            entry_take(p, a, &res);
            if (res > 0) ep_translate(events, res < maxevents ? res : maxevents, epfd);
            append(U64(H_SEQ), SYS_epoll_wait, a, res, r, out_events(a, res, r));
            U64(H_FAST) += 1;
            busy = 0;
            return (int)ret_errno(res);
        }
        U64(H_FALLBACK) += 1;
        busy = 0;
    }
    return (int)ret_errno(traced(SYS_epoll_wait, epfd, (long)events, maxevents, timeout, 0, 0));
}
#endif

/* -- set-up ------------------------------------------------------------------ */

/* Take this library's variables out of the program's environment: a native
   run has none, and a program that prints its environment must not differ. */
static void scrub_environment(void) {
    extern char **environ;
    char **in = environ, **out = environ;
    if (!in) return;
    for (; *in; in++)
        if (strncmp(*in, DIPMON_ENV "=", sizeof DIPMON_ENV) != 0 && strncmp(*in, "LD_PRELOAD=", 11) != 0)
            *out++ = *in;
    *out = NULL;
}

__attribute__((constructor)) static void dipmon_init(void) {
    if (!getenv(DIPMON_ENV)) return;
    scrub_environment();
    void *head = mmap(NULL, DIPMON_HEADER, PROT_READ | PROT_WRITE, MAP_SHARED, DIPMON_FD, 0);
    if (head == MAP_FAILED) return;
    if (*(uint64_t *)head != DIPMON_MAGIC || *(uint32_t *)((uint8_t *)head + H_VERSION) != DIPMON_VERSION) {
        munmap(head, DIPMON_HEADER);
        return;
    }
    uint64_t size = *(uint64_t *)((uint8_t *)head + H_RING);
    munmap(head, DIPMON_HEADER);
    if (size < 4096 || size > (1ULL << 30) || (size & 7)) return;
    void *all = mmap(NULL, DIPMON_HEADER + 2 * size, PROT_READ | PROT_WRITE, MAP_SHARED, DIPMON_FD, 0);
    if (all == MAP_FAILED) return;
    uint8_t *page = mmap((void *)TRAMPOLINE, DIPMON_TRAMPOLINE_SIZE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (page != (uint8_t *)TRAMPOLINE) {
        if (page != MAP_FAILED) munmap(page, DIPMON_TRAMPOLINE_SIZE);
        munmap(all, DIPMON_HEADER + 2 * size);
        return;
    }
#if defined(__x86_64__)
    page[0] = 0x0f; /* syscall */
    page[1] = 0x05;
#else
    page[0] = 0xcd; /* int $0x80 */
    page[1] = 0x80;
#endif
    page[2] = 0xc3; /* ret */
    if (mprotect(page, DIPMON_TRAMPOLINE_SIZE, PROT_READ | PROT_EXEC) != 0) return;
    int *word = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (word == MAP_FAILED) return;
    if (madvise(word, 4096, MADV_WIPEONFORK) != 0 || madvise(all, DIPMON_HEADER + 2 * size, MADV_DONTFORK) != 0 ||
        madvise(page, DIPMON_TRAMPOLINE_SIZE, MADV_DONTFORK) != 0) {
        munmap(word, 4096);
        return;
    }
    traced(SYS_close, DIPMON_FD, 0, 0, 0, 0, 0);
    area = all;
    ring_size = size;
    role = (int)U32(H_ROLE);
    *word = 1;
    active = word;
    U32(H_LOADED) = 1;
}
