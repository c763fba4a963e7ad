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
   tell.

   The serving loop (accept, read the request, answer, close) is the one
   the vulnerable targets of the attack suite use. */
#include "../vuln/src/serve_loop.h"

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

/* args: BODY_BYTES ADMIN_COMMAND */
static void serve(int fd, char **args) {
    size_t body_bytes = (size_t)atol(args[0]);
    const char *admin_command = args[1];
    read_request(fd, request, sizeof request, 1);
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
    return serve_connections(argc, argv, "BODY_BYTES ADMIN_COMMAND", 2, "net_server: bind/listen", serve);
}
