/* Loop control: ONCE, NONBLOCK, NO_EXIT_ON_EMPTY, loopbreak, loopexit, loopcontinue (and
 * that it re-polls before the rest of the pass),
 * got_break/got_exit, reentrancy, and a break requested before the loop starts (libevent
 * loses it; rouse keeps it for the next run, the fixed behaviour). */
#include "check.h"

static struct event_base *b;
static int n;

static void breaker(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	n++;
	CHECK(event_base_loop(b, 0) == -1); /* reentrant */
	event_base_loopbreak(b);
}

static int order[8], n_order;
static void rec(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	order[n_order++] = (int)(long)arg;
	if ((long)arg == 1)
		event_base_loopcontinue(b);
}

/* loopcontinue's effect: e1 (priority 1) makes a read ready and asks for a re-poll; the
 * read (priority 0) then runs before e2 (priority 1), which a pass without the re-poll would
 * run first. */
static struct event_base *b2;
static int fds2[2];
static int order2[4], n_order2;
static void rec2(evutil_socket_t fd, short res, void *arg)
{
	(void)res;
	long id = (long)arg;
	if (n_order2 < 4)
		order2[n_order2++] = (int)id;
	if (id == 1) {
		CHECK(write(fds2[1], "x", 1) == 1);
		CHECK(event_base_loopcontinue(b2) == 0);
	} else if (id == 3) {
		char c;
		CHECK(read(fd, &c, 1) == 1);
	}
}

/* The same from an event_base_once callback: it makes the read ready, activates c2 and
 * asks for a re-poll, so the read runs before c2. */
static struct event *c2_once;
static void once_cont(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	order2[n_order2++] = 1;
	CHECK(write(fds2[1], "x", 1) == 1);
	event_active(c2_once, 0, 0);
	CHECK(event_base_loopcontinue(b2) == 0);
}

static void tick(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(*(int *)arg)++;
}

int main(void)
{
	test_start(10);
	/* The precise clock: the checks below hold timeouts to "never early" exactly (a coarse
	 * start may come a few milliseconds early, as tests/c/nolock.c checks). */
	struct event_config *cfg = event_config_new();
	CHECK(cfg && event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) == 0);
	b = event_base_new_with_config(cfg);
	CHECK(b);
	event_config_free(cfg);

	/* loopbreak from a callback stops a NO_EXIT_ON_EMPTY loop. */
	struct event *u = event_new(b, -1, EV_PERSIST, breaker, NULL);
	event_active(u, 0, 0);
	CHECK(event_base_loop(b, EVLOOP_NO_EXIT_ON_EMPTY) == 0);
	CHECK(n == 1);
	CHECK(event_base_got_break(b) == 1);
	CHECK(event_base_got_exit(b) == 0);

	/* loopexit after 30 ms with nothing pending keeps a NO_EXIT_ON_EMPTY loop alive until then. */
	struct timeval tv = {0, 30000};
	double t0 = now_ms();
	CHECK(event_base_loopexit(b, &tv) == 0);
	CHECK(event_base_loop(b, EVLOOP_NO_EXIT_ON_EMPTY) == 0);
	double dt = now_ms() - t0;
	CHECK(dt >= 29 && dt < 2000);
	CHECK(event_base_got_exit(b) == 1);
	CHECK(event_base_got_break(b) == 0);

	/* A persistent 5 ms timer and loopexit(40 ms): the loop runs the timer several times. */
	int ticks = 0;
	struct event *p = event_new(b, -1, EV_PERSIST, tick, &ticks);
	struct timeval five = {0, 5000}, forty = {0, 40000};
	double added = now_ms();
	CHECK(event_add(p, &five) == 0);
	CHECK(event_base_loopexit(b, &forty) == 0);
	double late = now_ms() - added; /* the exit deadline counts from here */
	CHECK(event_base_dispatch(b) == 0);
	/* Never early: at most (40 + late) / 5 ticks. */
	CHECK(ticks >= 1 && ticks <= (int)((40.0 + late) / 5.0));
	event_free(p);

	/* A break before the loop starts: the next run returns at once (rouse keeps it). */
	CHECK(event_base_loopbreak(b) == 0);
	t0 = now_ms();
	CHECK(event_base_loop(b, EVLOOP_NO_EXIT_ON_EMPTY) == 0);
	CHECK(now_ms() - t0 < 1000);
	CHECK(event_base_got_break(b) == 1);

	/* loopcontinue: the rest of the queue still runs, in order. */
	struct event *e1 = event_new(b, -1, 0, rec, (void *)1);
	struct event *e2 = event_new(b, -1, 0, rec, (void *)2);
	event_active(e1, 0, 0);
	event_active(e2, 0, 0);
	CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	if (n_order < 2) /* libevent runs e2 in the next pass; rouse may run it after re-polling */
		CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	CHECK(n_order == 2 && order[0] == 1 && order[1] == 2);

	/* EVLOOP_ONCE with only an active event: runs it and returns. */
	event_active(e2, EV_READ, 0);
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
	CHECK(n_order == 3);

	/* Nothing at all: dispatch returns 1 at once. */
	CHECK(event_base_dispatch(b) == 1);
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 1);

	/* loopcontinue polls before the rest of the pass (see rec2); outside a callback it does
	 * nothing. */
	b2 = event_base_new();
	CHECK(b2 && event_base_priority_init(b2, 2) == 0);
	CHECK(event_base_loopcontinue(b2) == 0);
	pair(fds2);
	struct event *c1 = event_new(b2, -1, 0, rec2, (void *)1);
	struct event *c2 = event_new(b2, -1, 0, rec2, (void *)2);
	struct event *cr = event_new(b2, fds2[0], EV_READ, rec2, (void *)3);
	CHECK(event_priority_set(c1, 1) == 0 && event_priority_set(c2, 1) == 0);
	CHECK(event_priority_set(cr, 0) == 0);
	CHECK(event_add(cr, NULL) == 0);
	event_active(c1, 0, 0);
	event_active(c2, 0, 0);
	CHECK(event_base_dispatch(b2) >= 0);
	CHECK(n_order2 == 3);
	CHECK(order2[0] == 1 && order2[1] == 3 && order2[2] == 2);
	event_free(c1);
	event_free(c2);
	event_free(cr);
	event_base_free(b2);
	close(fds2[0]);
	close(fds2[1]);

	b2 = event_base_new();
	CHECK(b2 && event_base_priority_init(b2, 2) == 0);
	pair(fds2);
	n_order2 = 0;
	c2_once = event_new(b2, -1, 0, rec2, (void *)2);
	cr = event_new(b2, fds2[0], EV_READ, rec2, (void *)3);
	CHECK(event_priority_set(c2_once, 1) == 0 && event_priority_set(cr, 0) == 0);
	CHECK(event_add(cr, NULL) == 0);
	struct timeval zero = {0, 0};
	CHECK(event_base_once(b2, -1, EV_TIMEOUT, once_cont, NULL, &zero) == 0);
	CHECK(event_base_dispatch(b2) >= 0);
	CHECK(n_order2 == 3);
	CHECK(order2[0] == 1 && order2[1] == 3 && order2[2] == 2);
	event_free(c2_once);
	event_free(cr);
	event_base_free(b2);
	close(fds2[0]);
	close(fds2[1]);

	event_free(e1);
	event_free(e2);
	event_free(u);
	event_base_free(b);
	printf("ok\n");
	return 0;
}
