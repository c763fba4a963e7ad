/* Temporary files and directories, as programs make them: mkstemp,
   mkstemps (a suffix after the letters), mkdtemp with a file inside,
   tmpfile, and mktemp's name created by the caller. libc makes the letters
   up from the clock and a stack address (mktemp: from getrandom), so every
   variant draws its own; the program must still run as natively and
   print the same (the names themselves are not printed: they differ from
   run to run natively too).

   The names go in the directory of argv[1] (default /tmp). With DMVX_EVIL
   set the template itself is another: a variant whose behaviour an exploit
   changed, which must still be caught. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int round_trip(int fd, const char *text) {
    size_t length = strlen(text);
    char back[64] = {0};
    if (write(fd, text, length) != (ssize_t)length) return 1;
    if (lseek(fd, 0, SEEK_SET) != 0) return 2;
    if (read(fd, back, sizeof back - 1) != (ssize_t)length) return 3;
    return strcmp(back, text) != 0 ? 4 : 0;
}

int main(int argc, char **argv) {
    char base[256];
    snprintf(base, sizeof base, "%s/%s", argc > 1 ? argv[1] : "/tmp",
             getenv("DMVX_EVIL") ? "dmvx-evil-" : "dmvx-temp-");
    char name[320];

    snprintf(name, sizeof name, "%sXXXXXX", base);
    int fd = mkstemp(name);
    if (fd < 0) { perror("mkstemp"); return 1; }
    printf("mkstemp: %s, round trip %d\n", strncmp(name, base, strlen(base)) ? "odd name" : "made",
           round_trip(fd, "first"));
    struct stat st;
    int got = stat(name, &st);
    printf("stat by name: %d, mode %o\n", got, st.st_mode & 0777);
    close(fd);
    printf("unlink: %d\n", unlink(name));

    snprintf(name, sizeof name, "%sXXXXXX.txt", base);
    fd = mkstemps(name, 4);
    if (fd < 0) { perror("mkstemps"); return 2; }
    printf("mkstemps: round trip %d, suffix %s\n", round_trip(fd, "second"), name + strlen(name) - 4);
    close(fd);
    char renamed[336];
    snprintf(renamed, sizeof renamed, "%s.old", name);
    got = rename(name, renamed);
    printf("rename: %d, unlink: %d\n", got, unlink(renamed));

    snprintf(name, sizeof name, "%sXXXXXX", base);
    if (!mkdtemp(name)) { perror("mkdtemp"); return 3; }
    char inside[336];
    snprintf(inside, sizeof inside, "%s/inside", name);
    fd = open(inside, O_RDWR | O_CREAT | O_EXCL, 0600);
    printf("mkdtemp: file inside %s, round trip %d\n", fd >= 0 ? "made" : "refused", round_trip(fd, "third"));
    close(fd);
    got = unlink(inside);
    printf("unlink: %d, rmdir: %d\n", got, rmdir(name));

    snprintf(name, sizeof name, "%sXXXXXX", base);
    if (!*mktemp(name)) { perror("mktemp"); return 5; }
    fd = open(name, O_RDWR | O_CREAT, 0600);  /* no O_EXCL: the name was only probed */
    printf("mktemp: %s, round trip %d\n", fd >= 0 ? "made" : "refused", round_trip(fd, "fifth"));
    close(fd);
    printf("unlink: %d\n", unlink(name));

    FILE *file = tmpfile();
    if (!file) { perror("tmpfile"); return 4; }
    fputs("fourth", file);
    rewind(file);
    char back[16] = {0};
    printf("tmpfile: read back %s\n", fgets(back, sizeof back, file) ? back : "(nothing)");
    fclose(file);
    return 0;
}
