/* event_compat.h: the current base of event_init. */
#include "check.h"

static int n;
static void cb(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	n++;
}

int main(void)
{
	test_start(10);
	struct event_base *b = event_init();
	CHECK(b);
	CHECK(event_get_method() && strcmp(event_get_method(), event_base_get_method(b)) == 0);
	struct event ev;
	event_set(&ev, -1, 0, cb, NULL);
	CHECK(event_get_base(&ev) == b);
	struct timeval tv = {0, 1000};
	CHECK(event_add(&ev, &tv) == 0);
	CHECK(event_dispatch() == 1);
	CHECK(n == 1);

	CHECK(event_once(-1, EV_TIMEOUT, cb, NULL, &tv) == 0);
	CHECK(event_loop(EVLOOP_ONCE) == 0);
	CHECK(n == 2);

	/* memcached: event_set, then event_base_set to another base. */
	struct event_base *w = event_base_new();
	event_set(&ev, -1, 0, cb, NULL);
	CHECK(event_base_set(w, &ev) == 0);
	CHECK(ev.ev_base == w);
	CHECK(event_add(&ev, &tv) == 0);
	CHECK(event_base_set(b, &ev) == -1); /* pending */
	CHECK(event_base_dispatch(w) == 1);
	CHECK(n == 3);

	struct timeval soon = {0, 10000};
	CHECK(event_loopexit(&soon) == 0);
	CHECK(event_loop(EVLOOP_NO_EXIT_ON_EMPTY) == 0);
	CHECK(event_loopbreak() == 0);
	CHECK(event_loop(EVLOOP_NO_EXIT_ON_EMPTY) == 0);
	event_base_free(w);
	event_base_free(b);
	printf("ok\n");
	return 0;
}
