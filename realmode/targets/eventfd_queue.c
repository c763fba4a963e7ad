/* A worker woken through an eventfd (memcached's pattern, issue 15 item 3):
 * the main thread queues an item, then writes the eventfd; the worker waits
 * in epoll_wait, reads the eventfd, and writes a line per item it finds in
 * the queue. Natively every wake finds the item that caused it. Under dmvx
 * eventfd reads and writes run in the leader only, so a follower's worker is
 * woken by the leader's results, not by its own main thread, and may find
 * its queue empty: docs/realmode.md, The corpus (memcached). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define ITEMS 20

static int efd, queue[ITEMS], head, tail;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg) {
    int ep = epoll_create1(0), done = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = efd};
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
    while (done < ITEMS) {
        uint64_t count;
        epoll_wait(ep, &ev, 1, -1);
        if (read(efd, &count, sizeof count) != sizeof count)
            continue;
        /* As memcached does: take as many items as the counter says were
         * queued, no more (an item queued since is taken at its own wake). */
        for (uint64_t taken = 0; taken < count; taken++) {
            pthread_mutex_lock(&lock);
            int item = head < tail ? queue[head++] : 0;
            pthread_mutex_unlock(&lock);
            if (!item)
                break;
            char line[32];
            int n = snprintf(line, sizeof line, "item %d\n", item);
            if (write(1, line, n) != n)
                return arg;
            done++;
        }
    }
    return arg;
}

int main(void) {
    pthread_t thread;
    efd = eventfd(0, EFD_NONBLOCK);
    pthread_create(&thread, 0, worker, 0);
    for (int k = 1; k <= ITEMS; k++) {
        for (volatile long spin = 0; spin < 3000000; spin++) {
        } /* the work that makes an item */
        pthread_mutex_lock(&lock);
        queue[tail++] = k;
        pthread_mutex_unlock(&lock);
        uint64_t one = 1;
        if (write(efd, &one, sizeof one) != sizeof one)
            return 1;
        usleep(2000);
    }
    pthread_join(thread, 0);
    return 0;
}
