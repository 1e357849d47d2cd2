/* The runtime's clocks: see clock.h and mqpipe/runtime.h. */
#include <time.h>

#include "clock.h"
#include "mqpipe/runtime.h"

int64_t mqp_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t mqp_now_ms(void)
{
	return mqp_now_us() / 1000;
}

int64_t clock__mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int clock__wait_for(int (*cond)(void *arg), void *arg, int ms)
{
	int64_t until = clock__mono_ms() + ms;
	while (!cond(arg)) {
		if (clock__mono_ms() >= until)
			return 0;
		nanosleep(&(struct timespec){0, 5000000L}, NULL);
	}
	return 1;
}
