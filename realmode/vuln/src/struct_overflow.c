/* struct_overflow: a data-only attack on an adjacent field.

   usage: struct_overflow PORT REQUESTS SECRET_FILE

   GET /hello?name=N stores N in the session. The copy has NO bounds check,
   so bytes past `name` overwrite `expires` and then `admin`. No pointer is
   involved: the attacker only needs the *relative* offset of `admin` from
   `name`, the same at any load address. An admin session is sent the
   contents of SECRET_FILE (the attacker's goal) instead of a greeting.

   The offset is a property of the ABI: `expires` is a long, 8 bytes on
   x86-64 and 4 on i386, so `admin` sits 24 bytes after `name` on x86-64 and
   20 on i386. An input crafted for one ABI leaves the other's flag alone. */
#include <fcntl.h>

#include "common.h"

struct session {
    char name[16];
    long expires;
    int admin;
    char note[32];
};

static struct session session;

static void send_secret(int fd, const char *path) {
    static char secret[512];
    int file = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = file < 0 ? 0 : read(file, secret, sizeof secret);
    if (file >= 0) close(file);
    reply(fd, "200 OK", secret, n > 0 ? (size_t)n : 0);
}

static void handle_hello(int fd, const char *value, size_t len, const char *arg) {
    session.expires = 3600;
    memcpy(session.name, value, len); /* the bug: len is not checked against sizeof session.name */
    if (session.admin) {
        send_secret(fd, arg);
        return;
    }
    char body[64];
    int n = snprintf(body, sizeof body, "hello %.16s", session.name);
    reply(fd, "200 OK", body, (size_t)n);
}

int main(int argc, char **argv) {
    return serve_main(argc, argv);
}
