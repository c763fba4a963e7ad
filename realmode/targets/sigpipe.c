/* Writes to stdout until its reader is gone, with a SIGPIPE handler that
   says so on stderr and exits 7 (as sort's cleans up its temporary files
   and re-raises). Run with stdout a pipe closed early (`| head -c 1`): the
   handler must run at the same write in every variant, never the error
   path after it. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_pipe(int sig) {
    (void)sig;
    static const char message[] = "handled SIGPIPE\n";
    if (write(2, message, sizeof message - 1) < 0) _exit(8);
    _exit(7);
}

int main(void) {
    signal(SIGPIPE, on_pipe);
    char buffer[4096];
    memset(buffer, 'x', sizeof buffer);
    for (;;) {
        if (write(1, buffer, sizeof buffer) < 0) {
            perror("write");
            return 3;
        }
    }
}
