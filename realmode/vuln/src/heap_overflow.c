/* heap_overflow: a heap buffer overflow into the next chunk's code pointer.

   usage: heap_overflow PORT REQUESTS ADMIN_COMMAND

   GET /hello?name=N allocates a 32-byte name buffer and, right after it, a
   `struct handler` whose `reply` is called once the name is stored. The
   name is copied into its buffer WITHOUT a bounds check: bytes past it run
   over the allocator's header of the next chunk into `reply`. An exploit
   that rewrites the header as it was and puts the absolute address of
   `admin_reply` (in the attacked process) into `reply` gets ADMIN_COMMAND
   run through /bin/sh. Elsewhere -- another load address, or an i386
   allocator whose chunks are laid out differently -- the same bytes make
   the variant jump into nothing. */
#include "common.h"

struct handler {
    void (*reply)(int fd, const char *name, const char *arg);
};

static void plain_reply(int fd, const char *name, const char *arg) {
    (void)arg;
    char body[64];
    int len = snprintf(body, sizeof body, "hello %.31s", name);
    reply(fd, "200 OK", body, (size_t)len);
}

__attribute__((noinline, used)) static void admin_reply(int fd, const char *name, const char *arg) {
    (void)fd;
    (void)name;
    run_admin_command(arg);
}

static void handle_hello(int fd, const char *value, size_t len, const char *arg) {
    char *name = malloc(32);
    struct handler *h = malloc(sizeof *h);
    if (!name || !h) _exit(1);
    h->reply = plain_reply;
    memcpy(name, value, len); /* the bug: len is not checked against the 32 bytes allocated */
    name[len < 32 ? len : 31] = 0;
    h->reply(fd, name, arg);
    free(h);
    free(name);
}

int main(int argc, char **argv) {
    (void)admin_reply;
    return serve_main(argc, argv);
}
