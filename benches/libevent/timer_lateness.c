/* W4late: how far from their deadlines a libevent program's timers fire, on whichever
 * libevent the dynamic linker loads (libevent, or rouse-libevent through LD_LIBRARY_PATH).
 * The precision counterpart of W4scale's CPU figure: W4a's timers (n, deadlines 1-100 ms
 * from an LCG, evtimer_assign + evtimer_add, then event_base_dispatch on a default base),
 * each timer's error its callback's CLOCK_MONOTONIC reading minus (the reading just before
 * its evtimer_add + its timeout); negative: early. One JSON line per n.
 * Usage: timer_lateness [N...]   (default: 1000 10000) */
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct timer {
	int64_t due_ns;
	struct event ev;
};

static int64_t *errs;
static int fired;

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct timer *t = arg;
	errs[fired++] = now_ns() - t->due_ns;
	(void)fd;
	(void)what;
}

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void run(int n)
{
	struct event_base *base = event_base_new();
	struct timer *ts = calloc((size_t)n, sizeof *ts);
	uint64_t lcg = 1;
	double abs_sum = 0;
	int i, early = 0;

	errs = calloc((size_t)n, sizeof *errs);
	if (!base || !ts || !errs) {
		fprintf(stderr, "timer_lateness: out of memory\n");
		exit(1);
	}
	fired = 0;
	for (i = 0; i < n; i++) {
		uint64_t us;
		struct timeval tv;

		lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
		us = 1000 + (lcg >> 33) % 99001;
		tv.tv_sec = (time_t)(us / 1000000);
		tv.tv_usec = (suseconds_t)(us % 1000000);
		ts[i].due_ns = now_ns() + (int64_t)us * 1000;
		evtimer_assign(&ts[i].ev, base, on_timer, &ts[i]);
		evtimer_add(&ts[i].ev, &tv);
	}
	event_base_dispatch(base);
	if (fired != n) {
		fprintf(stderr, "timer_lateness: %d of %d timers fired\n", fired, n);
		exit(1);
	}
	for (i = 0; i < n; i++) {
		abs_sum += (double)llabs(errs[i]);
		early += errs[i] < 0;
	}
	qsort(errs, (size_t)n, sizeof *errs, cmp);
	printf("{\"impl\":\"%s\",\"workload\":\"W4late\",\"timers\":%d,\"method\":\"%s\","
	       "\"mean_abs_us\":%.0f,\"min_us\":%.0f,\"p50_us\":%.0f,\"p90_us\":%.0f,"
	       "\"p99_us\":%.0f,\"max_us\":%.0f,\"early\":%d,"
	       "\"deadline_us\":\"[1000,100000] LCG\"}\n",
	    event_get_version(), n, event_base_get_method(base), abs_sum / n / 1e3,
	    errs[0] / 1e3, errs[n / 2] / 1e3, errs[n * 9 / 10] / 1e3, errs[n * 99 / 100] / 1e3,
	    errs[n - 1] / 1e3, early);
	fflush(stdout);
	free(errs);
	free(ts);
	event_base_free(base);
}

int main(int argc, char **argv)
{
	int i;

	if (argc < 2) {
		run(1000);
		run(10000);
	}
	for (i = 1; i < argc; i++)
		run(atoi(argv[i]));
	return 0;
}
