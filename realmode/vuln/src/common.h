/* common.h: what the vulnerable targets share: the serving loop of
   serve_loop.h and every answer but the buggy one.

   usage: PROG PORT REQUESTS ARG

   ARG is the target's own: the command an "admin" runs (stack, heap) or
   the file holding the secret (struct). Requests:

     GET /file          -> 200 with FILE_BYTES bytes of a fixed pattern
     GET /hello?name=N  -> the target's handler (where its bug is)
     anything else      -> 404

   The query value is URL-decoded (%XX) into a scratch buffer that is large
   enough; the bugs are the targets' own unchecked copies out of it. Nothing
   here allocates, prints or depends on time, so every variant of a target
   makes the same system calls for the same input. */
#ifndef DMVX_VULN_COMMON_H
#define DMVX_VULN_COMMON_H

#include "serve_loop.h"

#define FILE_BYTES 1024

static char request_buf[4096];
static char response_buf[8192];

/* The target's handler for GET /hello?name=VALUE: `value` holds `len`
   decoded bytes (any byte, NUL included) and is followed by a NUL. */
static void handle_hello(int fd, const char *value, size_t len, const char *arg);

static void reply(int fd, const char *status, const char *body, size_t len) {
    int head = snprintf(response_buf, sizeof response_buf, "HTTP/1.0 %s\r\nContent-Length: %zu\r\n\r\n", status, len);
    if (len > sizeof response_buf - (size_t)head) len = sizeof response_buf - (size_t)head;
    memcpy(response_buf + head, body, len);
    write_all(fd, response_buf, (size_t)head + len);
}

static int hex(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode a query value ending at ' ', '&', CR, LF or NUL into dst (at most
   cap - 1 bytes, then a NUL); the number of bytes decoded. */
static size_t url_decode(char *dst, const char *src, size_t cap) {
    size_t n = 0;
    while (*src && *src != ' ' && *src != '&' && *src != '\r' && *src != '\n' && n + 1 < cap) {
        if (src[0] == '%' && hex(src[1]) >= 0 && hex(src[2]) >= 0) {
            dst[n++] = (char)(hex(src[1]) * 16 + hex(src[2]));
            src += 3;
        } else {
            dst[n++] = *src == '+' ? ' ' : *src;
            src++;
        }
    }
    dst[n] = 0;
    return n;
}

static void serve(int fd, char **args) {
    static char value[2048];
    read_request(fd, request_buf, sizeof request_buf, 0);
    if (!strncmp(request_buf, "GET /file", 9)) {
        static char body[FILE_BYTES];
        for (size_t i = 0; i < sizeof body; i++) body[i] = (char)('a' + i % 26);
        reply(fd, "200 OK", body, sizeof body);
    } else if (!strncmp(request_buf, "GET /hello?name=", 16)) {
        size_t len = url_decode(value, request_buf + 16, sizeof value);
        handle_hello(fd, value, len, args[0]);
    } else {
        reply(fd, "404 Not Found", "", 0);
    }
}

static int serve_main(int argc, char **argv) {
    return serve_connections(argc, argv, "ARG", 1, "bind/listen", serve);
}

/* What an admin may do: run a command through the shell (execve, in this
   process: the harmful call the monitors must stop). */
__attribute__((noinline, used)) static void run_admin_command(const char *command) {
    char *args[] = {"/bin/sh", "-c", (char *)command, NULL};
    execve("/bin/sh", args, NULL);
    _exit(127);
}

#endif
