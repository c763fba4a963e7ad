/* net_server: the small network server of `dmvx real`'s demo.

   usage: net_server PORT REQUESTS BODY_BYTES ADMIN_COMMAND

   One process, one connection at a time (HTTP/1.0 style: a request, a
   response, close), REQUESTS connections, then exit 0. Requests:

     GET /file         -> 200 with BODY_BYTES bytes of a fixed pattern
     GET /hello?name=N -> 200 "hello N"; N is copied into the session
                          WITHOUT a bounds check (the planted bug)
     anything else     -> 404

   The bug is a data-only one: 16 bytes of name and one more byte overwrite
   whatever follows `name` in `struct session`. The two builds lay the
   struct out differently (-DLAYOUT=0 or 1), as diversified variants would:
   in layout 0 the byte after `name` is the `admin` flag, and an admin
   session runs ADMIN_COMMAND through /bin/sh (execve: the harmful call);
   in layout 1 it lands in unused space and nothing happens. The same input
   thus makes one variant misbehave, and only the monitors' comparison can
   tell. */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef LAYOUT
#define LAYOUT 0
#endif

struct session {
#if LAYOUT == 0
    char name[16];
    int admin;
    char spare[44];
#else
    int admin;
    char spare[12];
    char name[16];
    char tail[32];
#endif
};

static struct session session;
static char request[2048];
static char response[1 << 16];

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n <= 0) return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void serve(int fd, size_t body_bytes, const char *admin_command) {
    size_t have = 0;
    while (have < sizeof request - 1) {
        ssize_t n = read(fd, request + have, sizeof request - 1 - have);
        if (n <= 0) break;
        have += (size_t)n;
        request[have] = 0;
        if (strstr(request, "\r\n\r\n") || strstr(request, "\n\n")) break;
    }
    request[have] = 0;
    int len;
    if (!strncmp(request, "GET /file", 9)) {
        if (body_bytes > sizeof response - 128) body_bytes = sizeof response - 128;
        len = snprintf(response, 128, "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\n\r\n", body_bytes);
        for (size_t i = 0; i < body_bytes; i++) response[len + i] = (char)('a' + i % 26);
        len += (int)body_bytes;
    } else if (!strncmp(request, "GET /hello?name=", 16)) {
        char *name = request + 16;
        size_t n = strcspn(name, " \r\n");
        memcpy(session.name, name, n); /* the bug: n is not checked against 16 */
        if (session.admin) {
            char *argv[] = {"/bin/sh", "-c", (char *)admin_command, NULL};
            execve("/bin/sh", argv, NULL);
        }
        len = snprintf(response, sizeof response, "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\n\r\nhello %.*s",
                       6 + (n < 16 ? n : 16), (int)(n < 16 ? n : 16), name);
    } else {
        len = snprintf(response, sizeof response, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    write_all(fd, response, (size_t)len);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s PORT REQUESTS BODY_BYTES ADMIN_COMMAND\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    long requests = atol(argv[2]);
    size_t body_bytes = (size_t)atol(argv[3]);
    int one = 1;
    int server = socket(AF_INET, SOCK_STREAM, 0);
    if (server < 0) return 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (bind(server, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(server, 16) < 0) {
        perror("net_server: bind/listen");
        return 1;
    }
    for (long i = 0; i < requests; i++) {
        int fd = accept(server, NULL, NULL);
        if (fd < 0) return 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        serve(fd, body_bytes, argv[4]);
        close(fd);
    }
    close(server);
    return 0;
}
