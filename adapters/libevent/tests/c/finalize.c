/* event_finalize, event_free_finalize, event_del_noblock/_block, EV_FINALIZE, and
 * finalizers run by event_base_free. */
#include "check.h"

static int n_fin, n_cb;
static void *fin_arg;
static void fin(struct event *ev, void *arg)
{
	(void)ev;
	fin_arg = arg;
	n_fin++;
}
static void cb(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	n_cb++;
}

int main(void)
{
	test_start(10);
	struct event_base *b = event_base_new();
	struct event *e = event_new(b, -1, EV_PERSIST, cb, (void *)7);
	struct timeval tv = {1, 0};
	CHECK(event_add(e, &tv) == 0);
	CHECK(event_finalize(0, e, fin) == 0);
	CHECK(n_fin == 0); /* on the loop */
	CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	CHECK(n_fin == 1 && fin_arg == (void *)7 && n_cb == 0);
	event_free(e);

	struct event *f = event_new(b, -1, 0, cb, (void *)8);
	event_active(f, 0, 0);
	CHECK(event_free_finalize(0, f, fin) == 0); /* freed after the finalizer */
	CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	CHECK(n_fin == 2 && fin_arg == (void *)8 && n_cb == 0);

	/* EV_FINALIZE events and event_del_noblock: no waiting, re-addable. */
	struct event *g = event_new(b, -1, EV_FINALIZE, cb, NULL);
	CHECK(event_add(g, &tv) == 0);
	CHECK(event_del(g) == 0);
	CHECK(event_pending(g, EV_TIMEOUT, NULL) == 0);
	struct timeval zero = {0, 0};
	CHECK(event_add(g, &zero) == 0);
	CHECK(event_base_dispatch(b) == 1);
	CHECK(n_cb == 1);
	CHECK(event_add(g, &tv) == 0);
	CHECK(event_del_noblock(g) == 0);
	CHECK(event_add(g, &zero) == 0);
	CHECK(event_del_block(g) == 0);
	CHECK(event_base_dispatch(b) == 1);
	CHECK(n_cb == 1);
	event_free(g);

	/* Finalizers still queued run when the base is freed. */
	struct event *h = event_new(b, -1, 0, cb, (void *)9);
	CHECK(event_add(h, &tv) == 0);
	CHECK(event_free_finalize(0, h, fin) == 0);
	event_base_free(b);
	CHECK(n_fin == 3 && fin_arg == (void *)9);
	printf("ok\n");
	return 0;
}
