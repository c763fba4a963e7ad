/* File work for ABI-diverse variants: open, read, fstat, stat, lseek,
   getdents (readdir), write. Built for x86-64 and for i386 (-m32), the two
   builds make the same requests through different calls and structures
   (fstat is newfstatat on x86-64 and statx on i386, struct stat differs),
   and must print exactly the same.

   With DMVX_EVIL set the program opens another file: a variant whose
   behaviour an exploit changed. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/etc/passwd";
    const char *dir = argc > 2 ? argv[2] : "/etc/apt";
    if (getenv("DMVX_EVIL")) path = "/etc/hostname";
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror(path); return 1; }
    struct stat st;
    if (fstat(fd, &st)) { perror("fstat"); return 2; }
    printf("%s: size %lld mode %o links %ld uid %d mtime %lld\n", path, (long long)st.st_size,
           st.st_mode & 07777, (long)st.st_nlink, (int)st.st_uid, (long long)st.st_mtime);
    char buf[4096];
    unsigned long sum = 0, total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) sum = sum * 31 + (unsigned char)buf[i];
        total += (unsigned long)n;
    }
    off_t end = lseek(fd, 0, SEEK_END);
    close(fd);
    printf("read %lu bytes, checksum %08lx, end at %lld\n", total, sum & 0xffffffffUL, (long long)end);
    struct stat by_path;
    if (stat(dir, &by_path) == 0) printf("%s: directory %d\n", dir, S_ISDIR(by_path.st_mode));
    DIR *d = opendir(dir);
    if (!d) { perror(dir); return 3; }
    char *names[256];
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) && count < 256) names[count++] = strdup(entry->d_name);
    closedir(d);
    qsort(names, (size_t)count, sizeof names[0], by_name);
    for (int i = 0; i < count; i++) printf("  %s\n", names[i]);
    write(1, "done\n", 5);
    return 0;
}
