/* Seeds a generator from one word of getrandom without blocking -- the
   shape of glibc's own draws, which dmvx runs locally in each variant --
   and prints what it drew. Natively a new number each run; under MVX the
   same in every variant only when getrandom is replicated
   (`dmvx run --route getrandom=replicate`). */
#include <stdio.h>
#include <sys/random.h>

int main(void) {
    unsigned long long seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed) {
        perror("getrandom");
        return 1;
    }
    printf("%016llx\n", seed);
    return 0;
}
