/* evthread_use_pthreads: another thread's event_active, event_add, event_del and loopbreak
 * wake a loop blocked in its poller; a cross-thread event_del waits for a running callback;
 * threads making the first call on one event at once share one registration. */
#include "check.h"
#include <pthread.h>
#include <stdatomic.h>

static struct event_base *b;
static struct event *user, *slow, *tmr;
static atomic_int n_user, n_timer, slow_in, slow_done;

static void on_user(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)arg;
	CHECK(res == EV_READ);
	n_user++;
}
static void on_timer(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	n_timer++;
}
static void on_slow(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	slow_in = 1;
	usleep(100 * 1000);
	slow_done = 1;
}

static void *run_base(void *arg)
{
	CHECK(event_base_dispatch(arg) == 1);
	return NULL;
}

static void wait_for(atomic_int *v, int want)
{
	double t0 = now_ms();
	while (*v < want) {
		CHECK(now_ms() - t0 < 5000);
		usleep(1000);
	}
}

static void *other(void *arg)
{
	(void)arg;
	usleep(20 * 1000); /* the loop is asleep by now */
	event_active(user, EV_READ, 0);
	wait_for(&n_user, 1);

	struct timeval tv = {0, 1000};
	CHECK(event_add(tmr, &tv) == 0);
	wait_for(&n_timer, 1);

	/* A far timer, then deleted from here: the loop must not stay asleep on it. */
	struct timeval far = {100, 0};
	CHECK(event_add(tmr, &far) == 0);
	CHECK(event_del(tmr) == 0);

	/* Delete while the callback runs on the loop thread: returns after it returned. */
	event_active(slow, 0, 0);
	wait_for(&slow_in, 1);
	CHECK(event_del(slow) == 0);
	CHECK(slow_done == 1);

	usleep(20 * 1000);
	CHECK(event_base_loopbreak(b) == 0);
	return NULL;
}

/* Four threads' first event_active of a fresh event at once: each makes the event's rouse
 * registration if none exists; they must end up sharing one (no key goes stale under a
 * thread, which logs "not registered" and loses that thread's activation). */
#define MAX_RACERS 4
static struct event *race_ev;
static int racers;
static atomic_int n_race, race_round, race_arrived, race_done;
static void on_race(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	n_race++;
}
static void *racer(void *arg)
{
	(void)arg;
	for (int round = 1;; round++) {
		while (race_round >= 0 && race_round < round)
			;
		if (race_round < 0)
			return NULL;
		/* a spinning rendezvous: once the last racer is here, all start within nanoseconds */
		race_arrived++;
		while (race_arrived < racers * round)
			;
		for (int i = 0; i < 50; i++)
			event_active(race_ev, EV_READ, 0);
		race_done++;
	}
}
static void first_calls_race(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	racers = cpus < 2 ? 2 : cpus > MAX_RACERS ? MAX_RACERS : (int)cpus;
	struct event_base *r = event_base_new();
	CHECK(r);
	pthread_t t[MAX_RACERS];
	for (int i = 0; i < racers; i++)
		CHECK(pthread_create(&t[i], NULL, racer, NULL) == 0);
	/* Under valgrind (which runs one thread at a time, so spinning is slow) a few rounds;
	 * natively enough that the old race showed in nearly every run. */
	int rounds = getenv("ROUSE_TEST_TIMEOUT_SCALE") ? 20 : 1000;
	int logs = n_logs;
	for (int round = 1; round <= rounds; round++) {
		race_ev = event_new(r, -1, 0, on_race, NULL);
		CHECK(race_ev);
		n_race = 0;
		race_done = 0;
		race_round = round;
		while (race_done < racers)
			usleep(100);
		CHECK(event_base_loop(r, EVLOOP_NONBLOCK) == 0);
		if (n_logs != logs)
			fprintf(stderr, "round %d: %s\n", round, last_log);
		CHECK(n_logs == logs);
		CHECK(n_race == 1);
		CHECK(event_base_get_num_events(r, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE) == 0);
		event_free(race_ev);
	}
	race_round = -1;
	for (int i = 0; i < racers; i++)
		pthread_join(t[i], NULL);
	event_base_free(r);
}

int main(void)
{
	test_start(20);
	CHECK(evthread_use_pthreads() == 0);
	b = event_base_new();
	CHECK(b);
	CHECK(evthread_make_base_notifiable(b) == 0);
	user = event_new(b, -1, EV_PERSIST, on_user, NULL);
	slow = event_new(b, -1, 0, on_slow, NULL);
	tmr = evtimer_new(b, on_timer, NULL);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, other, NULL) == 0);
	double t0 = now_ms();
	CHECK(event_base_loop(b, EVLOOP_NO_EXIT_ON_EMPTY) == 0);
	CHECK(event_base_got_break(b));
	CHECK(now_ms() - t0 < 10000);
	pthread_join(t, NULL);
	CHECK(n_user == 1 && n_timer == 1 && slow_done == 1);

	/* A base created on one thread and run on another (memcached's workers). */
	struct event_base *w = event_base_new();
	struct event *e = event_new(w, -1, 0, on_timer, NULL);
	struct timeval tv = {0, 1000};
	CHECK(event_add(e, &tv) == 0);
	pthread_t t2;
	CHECK(pthread_create(&t2, NULL, run_base, w) == 0);
	pthread_join(t2, NULL);
	CHECK(n_timer == 2);
	event_free(e);
	event_base_free(w);

	first_calls_race();

	event_free(user);
	event_free(slow);
	event_free(tmr);
	event_base_free(b);
	printf("ok\n");
	return 0;
}
