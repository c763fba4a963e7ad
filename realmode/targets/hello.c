/* A well-behaved program: greets, echoes stdin, exits with the given status.
   Under dmvx its stdout, stderr and exit status must equal a native run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char cwd[256], buf[4096];
    ssize_t n;
    const char *name = strrchr(argv[0], '/');
    printf("hello from %s\n", name ? name + 1 : argv[0]);
    if (getcwd(cwd, sizeof cwd)) printf("cwd %s\n", cwd);
    fflush(stdout);
    fprintf(stderr, "a line on stderr\n");
    if (argc > 2) {
        while ((n = read(0, buf, sizeof buf)) > 0) write(1, buf, (size_t)n);
    }
    return argc > 1 ? atoi(argv[1]) : 0;
}
