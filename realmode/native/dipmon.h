/* The shared layout between a variant's in-process DIP-MON (dipmon.c) and its
   monitor (realmode/inproc/layout.py, which must say the same numbers).

   One shared-memory area per traced process, made by the monitor (a memfd the
   variant inherits at DIPMON_FD). Everything in it that the variant writes is
   untrusted: the monitor parses it with bounds checks. */
#ifndef DMVX_DIPMON_H
#define DMVX_DIPMON_H
#include <stdint.h>

#define DIPMON_MAGIC 0x31504944584d5644ULL /* "DVMXDIP1" little-endian */
#define DIPMON_VERSION 2
/* Every build carries "<tag><DIPMON_VERSION> <digest of its sources>" (dipmon.c:
   dipmon_abi), which the monitor reads from the file before a run
   (realmode/native/build.py: check): a library of another layout or other
   sources is not preloaded, and the run says why. Bump DIPMON_VERSION with
   any change to this layout. */
#define DIPMON_ABI_TAG "dmvx-dipmon-abi "
#define DIPMON_FD 1000                      /* where the variant finds the area */
#define DIPMON_ENV "DMVX_DIPMON"            /* set (to "1") when the area is there */
/* The trampoline: one `syscall; ret` at a fixed address the seccomp filter
   knows. Replicated calls issued from here are allowed; from anywhere else
   they stop in the tracer. Sensitive calls stop wherever they come from. */
#define DIPMON_TRAMPOLINE 0x7ffd1e000000ULL
/* An i386 variant's (gcc -m32): `int $0x80; ret`, below 4 GiB. */
#define DIPMON_TRAMPOLINE32 0x7ffd1000UL
#define DIPMON_TRAMPOLINE_SIZE 4096

#define DIPMON_HEADER 4096
#define DIPMON_NR_TABLE 512   /* call_route: by the process's own raw number (x86-64 or i386) */
#define DIPMON_FD_TABLE 1024  /* fd_route: by descriptor */

/* Header offsets (bytes). */
#define H_MAGIC 0       /* u64 */
#define H_VERSION 8     /* u32 */
#define H_ENABLED 12    /* u32: the monitor's switch (0: every call stops) */
#define H_ROLE 16       /* u32: 0 leader, 1 follower */
#define H_WAITING 20    /* u32: the variant sleeps on H_WAKE: WAIT_ROOM or WAIT_ENTRY */
#define H_WAKE 24       /* u32: bumped by whoever the other side may wait for */
#define H_LOADED 28     /* u32: the library set it: this process runs the fast path */
#define H_SEQ 32        /* u64: last compared call of this process, either path */
#define H_OUT_HEAD 40   /* u64: bytes the variant appended to the out ring */
#define H_OUT_TAIL 48   /* u64: bytes the monitor consumed from it */
#define H_IN_HEAD 56    /* u64: bytes the monitor appended to the in ring */
#define H_IN_TAIL 64    /* u64: bytes the variant consumed from it */
#define H_RING 72       /* u64: bytes of each ring */
#define H_FAST 80       /* u64: calls taken on the fast path (the variant counts) */
#define H_FALLBACK 88   /* u64: follower calls that fell back to the tracer */
#define H_INCALL 96     /* u32: the leader is inside a fast call (it may block): heartbeats go on */
#define H_SOCKET_BITS 100 /* u32: the fd_route byte of a socket the leader's fast accept4 made (the core's) */
#define H_HEARD 104     /* u32: bumped by a follower's monitor whenever it hears from the leader */
#define H_WAITED 108    /* u32: ns a follower's library waited for an entry, unheard, before its last fallback */
#define H_CALL_ROUTE 1024 /* u8[512]: 0 stops, 1 fast, 2 fast per fd_route */
#define H_FD_ROUTE 2048   /* u8[1024]: bit k: fd call k (FD_KINDS) is fast on it */

/* What the variant waits for while it sleeps on H_WAKE (H_WAITING): room in
   its out ring (its monitor wakes it when it drains), or a follower's next
   entry in its in ring (its monitor wakes it when it feeds the ring). */
#define WAIT_ROOM 1
#define WAIT_ENTRY 2

/* The fd calls of H_FD_ROUTE, bit by bit (layout.py: FD_KINDS). */
#define FDK_READ 0   /* read, pread64 */
#define FDK_WRITE 1  /* writev, write */
#define FDK_CLOSE 2
#define FDK_RECV 3   /* recvfrom */
#define FDK_SEND 4   /* sendto */
#define FDK_SHUTDOWN 5
#define FDK_ACCEPT 6 /* accept4: the listening socket */

/* A record (both rings), 8-byte aligned:
   u32 len, u32 nr, u64 seq, i64 result, u64 args[6], u32 nregions, u32 flags,
   (an i386 library writes its raw 32-bit registers zero-extended, its result
   sign-extended, and the call numbers of its own ABI),
   then nregions x { u64 addr, u32 len, u32 pad, bytes padded to 8 }.
   Out ring: regions are memory the call read or wrote, at the variant's own
   addresses. In ring (follower): regions are where outputs go, addr =
   (arg index + 1) << 40 | offset into that argument's buffer. */
#define REC_HEAD 80
#define REG_HEAD 16
#define REC_PAD 0xffffffffu   /* nr of a padding record: skip to the ring's start */
#define RF_NOTFAST 1          /* in ring: this seq is not for the fast path */
#define RF_PREDICTED 2        /* in ring: the result is the follower's own prediction */
#define ARG_SHIFT 40
/* Out ring: a region whose address has this bit is memory as it was before
   the call (an in/out argument's input: accept4's addrlen), for decoding the
   call; the others are as the call left them. */
#define REG_BEFORE (1ULL << 63)
/* Out ring: a record's flags word is the call's duration in TSC ticks
   (saturating), for --record's ns. */
/* What the tracer makes a leader's fast call return when a signal it holds
   back interrupted it before it did anything: issue it again from the
   traced path (no record), where the signal is placed. Not an errno. */
#define DIPMON_RETRACE (-4000L)

#endif
