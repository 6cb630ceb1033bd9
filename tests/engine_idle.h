/*
 * engine_idle.h - for the tests of the serve engine (test_engine.c,
 * test_faults.c): wait until it has nothing to do.
 */
#ifndef W8_TEST_ENGINE_IDLE_H
#define W8_TEST_ENGINE_IDLE_H

#include <time.h>

#include "../src/serve/engine.h"

/* 1 once the engine runs and queues nothing and every KV block is free
 * (polled for up to 10 s), else 0. */
static inline int engine_idle(w8_engine *e) {
    for (int i = 0; i < 1000; i++) {
        w8_engine_stats s;
        w8_engine_get_stats(e, &s);
        if (s.running == 0 && s.waiting == 0 && s.free_blocks == s.total_blocks) return 1;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

#endif
