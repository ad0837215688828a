/* event_finalize, event_free_finalize, event_del_noblock/_block, EV_FINALIZE, and
 * finalizers run by event_base_free. */
#include "check.h"
#include <pthread.h>
#include <stdatomic.h>

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

/* A callback that stays inside until main releases it. */
static atomic_int gate_in, gate_release, gate_out, gate_runs;
static void gated(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	atomic_fetch_add(&gate_runs, 1);
	atomic_store(&gate_in, 1);
	while (!atomic_load(&gate_release))
		sched_yield(); /* bounded by the test's alarm */
	atomic_store(&gate_out, 1);
}
static void *run_loop(void *b)
{
	CHECK(event_base_dispatch(b) == 1);
	return NULL;
}

/* event_del_noblock from another thread returns while the callback still runs (event_del
 * would wait); the event keeps its registration and does not run again. */
static void del_noblock_while_running(void)
{
	struct event_base *b = event_base_new();
	struct event *ev = event_new(b, -1, EV_PERSIST, gated, NULL);
	struct timeval soon = {0, 1000};
	CHECK(event_add(ev, &soon) == 0);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, run_loop, b) == 0);
	while (!atomic_load(&gate_in))
		sched_yield();
	CHECK(event_del_noblock(ev) == 0);
	CHECK(!atomic_load(&gate_out)); /* returned with the callback inside */
	CHECK(event_pending(ev, EV_TIMEOUT, NULL) == 0);
	atomic_store(&gate_release, 1);
	CHECK(pthread_join(t, NULL) == 0); /* nothing pending: the loop ends */
	CHECK(atomic_load(&gate_runs) == 1);
	struct timeval zero = {0, 0};
	CHECK(event_add(ev, &zero) == 0); /* re-addable */
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
	CHECK(atomic_load(&gate_runs) == 2);
	event_free(ev);
	event_base_free(b);
}

int main(void)
{
	test_start(10);
	CHECK(evthread_use_pthreads() == 0);
	del_noblock_while_running();
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
