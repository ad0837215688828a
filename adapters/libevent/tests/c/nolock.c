/* Which bases get a lock (libevent's rule: made after evthread_use_pthreads() and without
 * EVENT_BASE_FLAG_NOLOCK), which clock times their timeouts (coarse unless
 * EVENT_BASE_FLAG_PRECISE_TIMER or EVENT_PRECISE_TIMER), and that a base without a lock made
 * on one thread runs on another (memcached makes its workers' NOLOCK bases on the main
 * thread). */
#include "check.h"
#include <pthread.h>

int rouse_libevent_base_kind(struct event_base *base);

#define THREADED 1
#define PRECISE 2

static int n_read, n_timer;
static char got;

static void on_read(evutil_socket_t fd, short res, void *arg)
{
	CHECK(res & EV_READ);
	CHECK(read(fd, &got, 1) == 1);
	n_read++;
	(void)arg;
}

static void on_timer(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	CHECK(res == EV_TIMEOUT);
	n_timer++;
	/* The read event is the base's last: deleting it ends the run. */
	CHECK(event_del(arg) == 0);
}

/* Runs a base that another thread made (its events too): the handover is the pthread_create
 * below, which orders everything the maker did before it. */
static void *run_base(void *arg)
{
	CHECK(event_base_dispatch(arg) == 1);
	return NULL;
}

static struct event_base *with_flags(int flags)
{
	struct event_config *c = event_config_new();
	CHECK(c);
	CHECK(event_config_set_flag(c, flags) == 0);
	struct event_base *b = event_base_new_with_config(c);
	CHECK(b);
	event_config_free(c);
	return b;
}

static double tv_ms(struct timeval tv)
{
	return tv.tv_sec * 1e3 + tv.tv_usec / 1e3;
}

/* ev_timeout holds the deadline on CLOCK_MONOTONIC: read by the base's clock (a coarse one up
 * few milliseconds behind: a tick, more after the CPU idled) plus the timeout. Also after a
 * delete and a re-add outside a run (the timeout pushed back: the parked re-add's path). */
static void check_ev_timeout(struct event_base *b, int precise)
{
	struct event *e = evtimer_new(b, on_timer, NULL);
	struct timeval tv = {2, 500000}, tv2 = {1, 250123}, left;
	double before = now_ms();
	CHECK(event_add(e, &tv) == 0);
	double after = now_ms(), at = tv_ms(e->ev_timeout);
	CHECK(at <= after + 2500.001);
	CHECK(at >= before + 2500 - (precise ? 0.001 : 20));
	CHECK(event_pending(e, EV_TIMEOUT, &left));
	CHECK(event_del(e) == 0);
	before = now_ms();
	CHECK(event_add(e, &tv2) == 0);
	after = now_ms();
	at = tv_ms(e->ev_timeout);
	CHECK(at <= after + 1250.124);
	CHECK(at >= before + 1250.123 - (precise ? 0.001 : 20));
	CHECK(e->ev_timeout.tv_usec >= 0 && e->ev_timeout.tv_usec < 1000000);
	/* event_pending's time is the wall clock's, as libevent's. */
	CHECK(event_pending(e, EV_TIMEOUT, &left));
	struct timeval wall;
	gettimeofday(&wall, NULL);
	CHECK(tv_ms(left) <= tv_ms(wall) + 1250.124);
	CHECK(tv_ms(left) >= tv_ms(wall) + 1250.123 - 100);
	event_free(e);
}

/* A base made here, run by another thread: an fd event and a timer that ends the run. */
static void run_elsewhere(struct event_base *b)
{
	int fds[2];
	pair(fds);
	n_read = n_timer = 0;
	struct event *r = event_new(b, fds[0], EV_READ | EV_PERSIST, on_read, NULL);
	struct event *t = evtimer_new(b, on_timer, r);
	struct timeval tv = {0, 20000};
	CHECK(event_add(r, NULL) == 0);
	CHECK(event_add(t, &tv) == 0);
	CHECK(write(fds[1], "x", 1) == 1);
	double t0 = now_ms();
	pthread_t th;
	CHECK(pthread_create(&th, NULL, run_base, b) == 0);
	CHECK(pthread_join(th, NULL) == 0);
	/* The timer fired no earlier than a coarse start allows (its lag: well under 20 ms). */
	CHECK(now_ms() - t0 >= 5 && now_ms() - t0 < 5000);
	CHECK(n_read == 1 && got == 'x' && n_timer == 1);
	event_free(r);
	event_free(t);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	test_start(20);
	unsetenv("EVENT_PRECISE_TIMER");
	CHECK(rouse_libevent_base_kind(NULL) == -1);
	CHECK(n_logs == 1); /* reported */
	n_logs = 0;

	/* Before evthread_use_pthreads: no lock, coarse clock. */
	struct event_base *before = event_base_new();
	CHECK(rouse_libevent_base_kind(before) == 0);
	struct event_base *precise = with_flags(EVENT_BASE_FLAG_PRECISE_TIMER);
	CHECK(rouse_libevent_base_kind(precise) == PRECISE);
	setenv("EVENT_PRECISE_TIMER", "1", 1);
	struct event_base *env = event_base_new();
	CHECK(rouse_libevent_base_kind(env) == PRECISE);
	struct event_base *ignored = with_flags(EVENT_BASE_FLAG_IGNORE_ENV);
	CHECK(rouse_libevent_base_kind(ignored) == 0);
	unsetenv("EVENT_PRECISE_TIMER");

	CHECK(evthread_use_pthreads() == 0);
	/* A base made before keeps having no lock; later ones have one, unless NOLOCK. */
	CHECK(rouse_libevent_base_kind(before) == 0);
	struct event_base *after = event_base_new();
	CHECK(rouse_libevent_base_kind(after) == THREADED);
	struct event_base *nolock = with_flags(EVENT_BASE_FLAG_NOLOCK);
	CHECK(rouse_libevent_base_kind(nolock) == 0);
	struct event_base *both = with_flags(EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_PRECISE_TIMER);
	CHECK(rouse_libevent_base_kind(both) == PRECISE);

	check_ev_timeout(before, 0);
	check_ev_timeout(after, 0);
	check_ev_timeout(precise, 1);
	check_ev_timeout(both, 1);

	/* Every kind runs on a thread other than its maker's. */
	struct event_base *all[] = {before, precise, env, ignored, after, nolock, both};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		run_elsewhere(all[i]);
		event_base_free(all[i]);
	}
	if (n_logs)
		fprintf(stderr, "logged: %s\n", last_log);
	CHECK(n_logs == 0);
	printf("ok\n");
	return 0;
}
