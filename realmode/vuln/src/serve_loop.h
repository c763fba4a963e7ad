/* serve_loop.h: the serving loop of real mode's small network servers --
   the vulnerable targets (common.h, beside this file) and the demo server
   of `dmvx real` (realmode/targets/net_server.c, which includes it by a
   relative path, so any plain gcc command builds it).

   usage: PROG PORT REQUESTS ARGS...

   One process, one connection at a time (HTTP/1.0 style: one request, one
   response, close), REQUESTS connections, then exit 0. Per connection the
   system calls are accept, setsockopt (TCP_NODELAY), the reads of the
   request, the program's own calls, close: the sequence the monitors
   compare, so what a request does is all that differs from server to
   server. Nothing here allocates, prints on success or depends on time. */
#ifndef DMVX_SERVE_LOOP_H
#define DMVX_SERVE_LOOP_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A server's answer to one connection: `fd` is the accepted socket (closed
   by the loop afterwards), `args` the program's arguments after REQUESTS. */
typedef void serve_fn(int fd, char **args);

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n <= 0) return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read a request into `buf` (`cap` bytes, the NUL that ends it included)
   until the blank line after its head -- "\r\n\r\n", or also a bare
   "\n\n" if `bare_lf` -- or EOF, an error or a full buffer. */
static void read_request(int fd, char *buf, size_t cap, int bare_lf) {
    size_t have = 0;
    while (have < cap - 1) {
        ssize_t n = read(fd, buf + have, cap - 1 - have);
        if (n <= 0) break;
        have += (size_t)n;
        buf[have] = 0;
        if (strstr(buf, "\r\n\r\n") || (bare_lf && strstr(buf, "\n\n"))) break;
    }
    buf[have] = 0;
}

/* The whole program but its answers: check that the `nargs` arguments
   `usage` names follow PORT REQUESTS (else print the usage, exit status 2),
   listen on PORT (`bind_error` is perror's label if that fails: exit
   status 1) and serve REQUESTS connections with `serve`. */
static int serve_connections(int argc, char **argv, const char *usage, int nargs, const char *bind_error,
                             serve_fn *serve) {
    if (argc < 3 + nargs) {
        fprintf(stderr, "usage: %s PORT REQUESTS %s\n", argv[0], usage);
        return 2;
    }
    int port = atoi(argv[1]);
    long requests = atol(argv[2]);
    int one = 1;
    int server = socket(AF_INET, SOCK_STREAM, 0);
    if (server < 0) return 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (bind(server, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(server, 16) < 0) {
        perror(bind_error);
        return 1;
    }
    for (long i = 0; i < requests; i++) {
        int fd = accept(server, NULL, NULL);
        if (fd < 0) return 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        serve(fd, argv + 3);
        close(fd);
    }
    close(server);
    return 0;
}

#endif
