/* event_del of a timer followed by event_add of the same timer (a timeout pushed back) is
 * applied as one re-arm: rouse-libevent holds the delete back until the base is used again.
 * Nothing of that may show: a deleted timer never fires, the loop sees it gone (exits when
 * nothing else is pending), an activation the delete removed stays removed, a freed event is
 * never touched again, and introspection does not list it. On a base without locking and on
 * a locked one used from several threads. */
#include "check.h"
#include <pthread.h>
#include <sys/time.h>
#include <unistd.h>

static int fired[8];
static double fired_at[8];
static double t0;
static void cb(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	int i = (int)(intptr_t)arg;
	fired[i]++;
	fired_at[i] = now_ms() - t0;
}

/* How early a timer may fire, by this test's precise clock: libevent's default clock is the
 * coarse one (a few ms behind), and rouse-libevent's timing has 1 ms of slack. */
#define EARLY 8

static struct timeval ms(int n)
{
	struct timeval tv = {n / 1000, (n % 1000) * 1000};
	return tv;
}

static void reset(void)
{
	memset(fired, 0, sizeof fired);
	t0 = now_ms();
}

/* A persistent tick that pushes a watchdog back each time, then deletes both. */
static struct event *tick, *watchdog;
static int ticks;
static void tick_cb(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	struct timeval w = ms(30);
	CHECK(event_del(watchdog) == 0);
	CHECK(event_add(watchdog, &w) == 0);
	CHECK(event_pending(watchdog, EV_TIMEOUT, NULL));
	if (++ticks == 5) {
		CHECK(event_del(watchdog) == 0);
		CHECK(!event_pending(watchdog, EV_TIMEOUT, NULL));
		/* Last: its delete is the one still held back when the callback returns. */
		CHECK(event_del(tick) == 0);
	}
}

/* A persistent timer that deletes itself on its third period. */
static struct event *periodic;
static int periods;
static double third_at;
static void periodic_cb(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	if (++periods == 3) {
		third_at = now_ms() - t0;
		CHECK(event_del(periodic) == 0);
	}
}

static int listed;
static struct event *wanted;
static int foreach_cb(const struct event_base *b, const struct event *e, void *arg)
{
	(void)b;
	(void)arg;
	listed += e == wanted;
	return 0;
}

static void scenarios(struct event_base *b)
{
	struct event *t1 = evtimer_new(b, cb, (void *)1);
	struct event *t2 = evtimer_new(b, cb, (void *)2);
	struct timeval tv;

	/* A: deleted, it never fires, and the loop has nothing to wait for. */
	reset();
	tv = ms(50);
	CHECK(evtimer_add(t1, &tv) == 0);
	CHECK(evtimer_del(t1) == 0);
	CHECK(event_base_dispatch(b) == 1);
	CHECK(fired[1] == 0);

	/* B: deleted and added again later: one firing, at the new deadline; and added again
	 * earlier than it was. */
	reset();
	tv = ms(20);
	CHECK(evtimer_add(t1, &tv) == 0);
	CHECK(evtimer_del(t1) == 0);
	tv = ms(60);
	CHECK(evtimer_add(t1, &tv) == 0);
	CHECK(event_base_dispatch(b) == 1);
	CHECK(fired[1] == 1);
	CHECK(fired_at[1] >= 60 - EARLY);
	reset();
	tv = ms(200);
	CHECK(evtimer_add(t1, &tv) == 0);
	CHECK(evtimer_del(t1) == 0);
	tv = ms(10);
	CHECK(evtimer_add(t1, &tv) == 0);
	CHECK(event_base_dispatch(b) == 1);
	CHECK(fired[1] == 1);
	CHECK(fired_at[1] < 150);

	/* C: deleted, then another timer added: only that one fires. */
	reset();
	tv = ms(10);
	CHECK(evtimer_add(t1, &tv) == 0);
	CHECK(evtimer_del(t1) == 0);
	tv = ms(30);
	CHECK(evtimer_add(t2, &tv) == 0);
	CHECK(event_base_dispatch(b) == 1);
	CHECK(fired[1] == 0 && fired[2] == 1);

	/* D: activated, deleted, added again: the delete took the activation away (whatever
	 * result bits it was activated with). */
	short res[] = {EV_TIMEOUT, EV_READ, 0};
	for (int i = 0; i < 3; i++) {
		reset();
		tv = ms(30);
		CHECK(evtimer_add(t1, &tv) == 0);
		event_active(t1, res[i], 1);
		CHECK(evtimer_del(t1) == 0);
		CHECK(evtimer_add(t1, &tv) == 0);
		CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
		CHECK(fired[1] == 0);
		CHECK(event_base_dispatch(b) == 1);
		CHECK(fired[1] == 1 && fired_at[1] >= 30 - EARLY);
	}

	/* E: pushed back from callbacks, deleted in the last one: it never fires, and the loop
	 * ends when the last callback returns, not at the watchdog's old deadline. */
	reset();
	ticks = 0;
	tick = event_new(b, -1, EV_PERSIST, tick_cb, NULL);
	watchdog = evtimer_new(b, cb, (void *)4);
	tv = ms(30);
	CHECK(evtimer_add(watchdog, &tv) == 0);
	tv = ms(5);
	CHECK(evtimer_add(tick, &tv) == 0);
	CHECK(event_base_dispatch(b) == 1);
	CHECK(ticks == 5);
	CHECK(fired[4] == 0);
	event_free(tick);
	event_free(watchdog);

	/* F: a caller-allocated event, deleted, then overwritten and freed: never touched. */
	reset();
	struct event *e = malloc(sizeof *e);
	CHECK(evtimer_assign(e, b, cb, (void *)5) == 0);
	tv = ms(10);
	CHECK(evtimer_add(e, &tv) == 0);
	CHECK(evtimer_del(e) == 0);
	memset(e, 0xa5, sizeof *e);
	free(e);
	CHECK(event_base_dispatch(b) == 1);
	CHECK(fired[5] == 0);

	/* G: introspection does not see a deleted timer. */
	tv = ms(1000);
	int added = event_base_get_num_events(b, EVENT_BASE_COUNT_ADDED);
	CHECK(evtimer_add(t1, &tv) == 0);
	CHECK(event_base_get_num_events(b, EVENT_BASE_COUNT_ADDED) == added + 1);
	CHECK(evtimer_del(t1) == 0);
	CHECK(!evtimer_pending(t1, NULL));
	CHECK(event_base_get_num_events(b, EVENT_BASE_COUNT_ADDED) == added);
	CHECK(evtimer_add(t1, &tv) == 0);
	CHECK(evtimer_del(t1) == 0);
	listed = 0;
	wanted = t1;
	CHECK(event_base_foreach_event(b, foreach_cb, NULL) == 0);
	CHECK(listed == 0);

	/* I: added again outside the loop, the re-add is held back in turn (the base untouched
	 * until the loop runs or is asked something). Its timeout still counts from the add:
	 * the program's work before the loop does not move it. */
	reset();
	tv = ms(1000);
	CHECK(evtimer_add(t1, &tv) == 0);
	CHECK(evtimer_del(t1) == 0);
	tv = ms(200);
	CHECK(evtimer_add(t1, &tv) == 0);
	usleep(300 * 1000);
	double d0 = now_ms();
	CHECK(event_base_dispatch(b) == 1);
	CHECK(fired[1] == 1);
	CHECK(fired_at[1] >= 200 - EARLY);
	CHECK(now_ms() - d0 < 100); /* due on entry, not 200 ms after it */
	/* Pushed back a thousand times, then deleted: it never fires. */
	reset();
	for (int i = 0; i < 1000; i++) {
		tv = ms(10 + i % 7);
		CHECK(evtimer_add(t1, &tv) == 0);
		CHECK(evtimer_del(t1) == 0);
	}
	CHECK(event_base_dispatch(b) == 1);
	CHECK(fired[1] == 0);
	/* Pushed back a thousand times: once, at the last deadline. */
	reset();
	for (int i = 0; i < 1000; i++) {
		tv = ms(1000 - i);
		CHECK(evtimer_add(t1, &tv) == 0);
		CHECK(evtimer_del(t1) == 0);
	}
	tv = ms(40);
	CHECK(evtimer_add(t1, &tv) == 0);
	/* Asked about, it is pending with the re-add's timeout. */
	struct timeval expiry, wall;
	CHECK(gettimeofday(&wall, NULL) == 0);
	CHECK(evtimer_pending(t1, &expiry));
	double in_ms = (expiry.tv_sec - wall.tv_sec) * 1000.0 +
		       (expiry.tv_usec - wall.tv_usec) / 1000.0;
	CHECK(in_ms > 40 - EARLY - 2 && in_ms <= 42);
	CHECK(event_base_get_num_events(b, EVENT_BASE_COUNT_ADDED) == added + 1);
	CHECK(event_base_dispatch(b) == 1);
	CHECK(fired[1] == 1);
	CHECK(fired_at[1] >= 40 - EARLY && fired_at[1] < 1000);
	/* A persistent timer re-added with a new interval before the loop: every period is
	 * that interval, counted from the add. */
	reset();
	periodic = event_new(b, -1, EV_PERSIST, periodic_cb, NULL);
	periods = 0;
	tv = ms(1000);
	CHECK(event_add(periodic, &tv) == 0);
	CHECK(event_del(periodic) == 0);
	tv = ms(60);
	CHECK(event_add(periodic, &tv) == 0);
	usleep(40 * 1000);
	CHECK(event_base_dispatch(b) == 1);
	CHECK(periods == 3);
	CHECK(third_at >= 180 - EARLY);
	event_free(periodic);

	/* Freed while its delete is held back, with another held back at the base's end. */
	CHECK(evtimer_add(t1, &tv) == 0);
	CHECK(evtimer_del(t1) == 0);
	event_free(t1);
	CHECK(evtimer_add(t2, &tv) == 0);
	CHECK(evtimer_del(t2) == 0);
	event_free(t2);
}

/* H (locked base): a delete held back by another thread before the loop starts here; and
 * deletes from another thread while the loop runs there (not held back: the loop may sleep
 * towards the deleted deadline), checked by a later timer that ends the loop. */
static struct event_base *hb;
static struct event *ht;
static void *del_before(void *arg)
{
	(void)arg;
	struct timeval tv = ms(20);
	CHECK(evtimer_add(ht, &tv) == 0);
	CHECK(evtimer_del(ht) == 0);
	return NULL;
}
/* Pushes `ht` back 5 000 times, the last add's time kept (the other thread's questions
 * overlap the pushes where threads run at once; under valgrind they may not). */
static int pushed;
static double last_add_at;
static void *push_back(void *arg)
{
	(void)arg;
	struct timeval tv = ms(40);
	for (int i = 0; i < 5000; i++) {
		CHECK(evtimer_del(ht) == 0);
		last_add_at = now_ms() - t0;
		CHECK(evtimer_add(ht, &tv) == 0);
	}
	__atomic_store_n(&pushed, 1, __ATOMIC_RELEASE);
	return NULL;
}
static int loop_ticks;
static void up_cb(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	__atomic_fetch_add(&loop_ticks, 1, __ATOMIC_ACQ_REL);
}
/* Waits, without using the base, until the loop ran `n` more ticks of `keep`. */
static void wait_ticks(int n)
{
	int until = __atomic_load_n(&loop_ticks, __ATOMIC_ACQUIRE) + n;
	while (__atomic_load_n(&loop_ticks, __ATOMIC_ACQUIRE) < until)
		usleep(500);
}
static void *run_loop(void *arg)
{
	(void)arg;
	CHECK(event_base_dispatch(hb) == 0);
	return NULL;
}
static void end_cb(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	CHECK(event_base_loopbreak(hb) == 0);
}

static void threaded(void)
{
	hb = event_base_new();
	ht = evtimer_new(hb, cb, (void *)6);
	reset();
	pthread_t th;
	CHECK(pthread_create(&th, NULL, del_before, NULL) == 0);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK(event_base_dispatch(hb) == 1);
	CHECK(fired[6] == 0);

	/* Re-adds held back by one thread while another asks about the event (each question
	 * applies the one held back): it fires once, at the last add's deadline. */
	reset();
	CHECK(pthread_create(&th, NULL, push_back, NULL) == 0);
	while (!__atomic_load_n(&pushed, __ATOMIC_ACQUIRE)) {
		(void)evtimer_pending(ht, NULL); /* either, mid-push */
	}
	CHECK(pthread_join(th, NULL) == 0);
	CHECK(event_base_dispatch(hb) == 1);
	CHECK(fired[6] == 1);
	CHECK(fired_at[6] >= last_add_at + 40 - EARLY);

	/* The loop runs on another thread, kept alive by a persistent event. */
	struct event *keep = event_new(hb, -1, EV_PERSIST, up_cb, NULL);
	struct timeval tv = ms(50);
	CHECK(event_add(keep, &tv) == 0);
	CHECK(pthread_create(&th, NULL, run_loop, NULL) == 0);
	wait_ticks(1);
	reset();
	/* Deadlines well past the coarse clock's lag (a shorter timer may be due at once). */
	for (int i = 0; i < 200; i++) {
		tv = ms(20);
		CHECK(evtimer_add(ht, &tv) == 0);
		CHECK(evtimer_del(ht) == 0);
	}
	tv = ms(20);
	CHECK(evtimer_add(ht, &tv) == 0);
	CHECK(evtimer_del(ht) == 0);
	/* Not touching the base, past every deadline deleted above (two 50 ms ticks, and no
	 * other callback before the first: the loop sleeps until then): it must not have fired
	 * the timer. Then a timer of its own ends the loop. */
	wait_ticks(2);
	CHECK(fired[6] == 0);
	struct event *end = evtimer_new(hb, end_cb, NULL);
	tv = ms(1);
	CHECK(evtimer_add(end, &tv) == 0);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK(fired[6] == 0);
	event_free(end);
	event_free(keep);
	event_free(ht);
	event_base_free(hb);
}

int main(void)
{
	test_start(30);
	struct event_config *cfg = event_config_new();
	CHECK(event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK) == 0);
	struct event_base *b = event_base_new_with_config(cfg);
	event_config_free(cfg);
	scenarios(b);
	event_base_free(b);

	CHECK(evthread_use_pthreads() == 0);
	b = event_base_new();
	scenarios(b);
	event_base_free(b);
	threaded();
	puts("ok");
	return 0;
}
