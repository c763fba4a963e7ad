/* format_string: a format-string bug that leaks a code pointer.

   usage: format_string PORT REQUESTS UNUSED

   GET /hello?name=N answers "hello " followed by N passed to snprintf AS
   THE FORMAT (the bug): "%7$p" prints the seventh argument slot, that is,
   whatever the stack holds there. One of those slots holds a code pointer
   into this program (`greet` keeps the address of its `done` callback in a
   local, as callback-style code does); with ASLR or another load address
   the printed value differs from variant to variant -- and, under MVX,
   so do the bytes the variants try to send. */
#include "common.h"

static void finish(int fd) {
    (void)fd;
}

__attribute__((noinline)) static void greet(int fd, const char *name) {
    void (*volatile done)(int) = finish;
    char body[512];
    int len = snprintf(body, sizeof body, "hello ");
    len += snprintf(body + len, sizeof body - (size_t)len, name); /* the bug: name is the format */
    if (len > (int)sizeof body - 1) len = (int)sizeof body - 1;
    reply(fd, "200 OK", body, (size_t)len);
    done(fd);
}

static void handle_hello(int fd, const char *value, size_t len, const char *arg) {
    (void)len;
    (void)arg;
    greet(fd, value);
}

int main(int argc, char **argv) {
    return serve_main(argc, argv);
}
