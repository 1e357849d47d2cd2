/* The runtime's clocks (internal). Wall-clock time (mqp_now_ms/us in
 * mqpipe/runtime.h) is what gets stored and published; the monotonic clock
 * here is for waits and timers, which must not jump with the wall clock. */
#ifndef MQPIPE_LIB_CLOCK_H
#define MQPIPE_LIB_CLOCK_H

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC (an arbitrary origin). */
int64_t clock__mono_ms(void);

/* Waits up to ms for cond(arg) to hold, looking every 5 ms. Returns 1 when
 * it held, 0 when the time ran out. */
int clock__wait_for(int (*cond)(void *arg), void *arg, int ms);

#endif
