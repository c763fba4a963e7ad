/* stack_overflow: a stack buffer overflow that overwrites a code pointer.

   usage: stack_overflow PORT REQUESTS ADMIN_COMMAND

   GET /hello?name=N greets N through a `struct greeting` on the stack whose
   `reply` member is called afterwards. The name is copied into it WITHOUT a
   bounds check: bytes past `name` overwrite `reply`. An attacker who knows
   where `admin_reply` is in the attacked process (an absolute address)
   writes it there and gets ADMIN_COMMAND run through /bin/sh. In a variant
   whose code is elsewhere (another load address, another ABI) the same
   bytes point at nothing and the variant crashes.

   The same bug also takes a relative exploit: overwriting only the lowest
   byte of `reply` turns `plain_reply` into `admin_reply` (the two share
   every other address bit) at any load address, since images are loaded
   at page boundaries. Only a build whose code is laid out differently
   (another ABI or ISA) stops that one. */
#include "common.h"

struct greeting {
    char name[32];
    void (*reply)(int fd, const char *name, const char *arg);
};

/* Aligned so that admin_reply, right after it, shares every address bit
   but the lowest byte: a one-byte overwrite turns one into the other. */
__attribute__((noinline, aligned(256))) static void plain_reply(int fd, const char *name, const char *arg) {
    (void)arg;
    char body[64];
    int len = snprintf(body, sizeof body, "hello %.31s", name);
    reply(fd, "200 OK", body, (size_t)len);
}

/* Never reached by a well-formed request: the gadget an exploit aims at. */
__attribute__((noinline, used)) static void admin_reply(int fd, const char *name, const char *arg) {
    (void)fd;
    (void)name;
    run_admin_command(arg);
}

static void handle_hello(int fd, const char *value, size_t len, const char *arg) {
    struct greeting g;
    g.reply = plain_reply;
    memcpy(g.name, value, len); /* the bug: len is not checked against sizeof g.name */
    g.name[len < sizeof g.name ? len : sizeof g.name - 1] = 0;
    g.reply(fd, g.name, arg);
}

int main(int argc, char **argv) {
    (void)admin_reply;
    return serve_main(argc, argv);
}
