/* Idle registrations reclaimed while other threads use their events (evthread_use_pthreads):
 * one thread churns through caller-allocated events it frees after event_del, so that
 * rouse-libevent looks for idle registrations every few thousand and reclaims them; the main
 * thread meanwhile adds and activates events that sit idle between uses, so their
 * registrations are reclaimed under it; a third thread runs the loop. No add and no
 * activation may be lost, and the churn leaves a bounded number of registrations behind. */
#include "check.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

int rouse_libevent_slot_count(struct event_base *b);

#define KEPT 8
#define ROUNDS 3000
/* Registrations before rouse-libevent's first look for idle ones (see reuse.c). */
#define LOOK 4096
/* Churned events per round: about ten looks in all, spread over the rounds, and few enough
 * that valgrind's quarantine of freed blocks never hands an address out again (memory at an
 * event's old address still holds its words, which valgrind calls undefined). */
#define PER_ROUND 13

static struct event_base *b;
static struct event kept[KEPT];
static atomic_int fired[KEPT];
static atomic_int round_now;
static atomic_long churned;

static void on_kept(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	fired[(intptr_t)arg]++;
}
static void on_churn(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	CHECK(!"a deleted churn timer ran");
}

static void *run_base(void *arg)
{
	(void)arg;
	CHECK(event_base_loop(b, EVLOOP_NO_EXIT_ON_EMPTY) == 0);
	return NULL;
}

static void *churn(void *arg)
{
	(void)arg;
	struct timeval hour = {3600, 0};
	/* Paced by the main thread's rounds; a churner that fell behind (a loaded machine)
	 * catches up after them, so the total is exact. */
	while (churned < (long)ROUNDS * PER_ROUND) {
		if (churned >= (long)(round_now + 1) * PER_ROUND) {
			sched_yield();
			continue;
		}
		struct event *e = malloc(sizeof *e);
		CHECK(e != NULL);
		CHECK(evtimer_assign(e, b, on_churn, NULL) == 0);
		CHECK(evtimer_add(e, &hour) == 0);
		CHECK(evtimer_del(e) == 0);
		free(e);
		churned++;
	}
	return NULL;
}

static void wait_for(atomic_int *v, int want, int round)
{
	const char *scale = getenv("ROUSE_TEST_TIMEOUT_SCALE"); /* valgrind runs slower */
	double t0 = now_ms(), bound = 5000.0 * (scale ? atoi(scale) : 1);
	while (*v < want) {
		if (now_ms() - t0 > bound) {
			fprintf(stderr, "round %d: the event's callback never ran (lost)\n", round);
			exit(1);
		}
		usleep(100);
	}
}

int main(void)
{
	test_start(60);
	CHECK(evthread_use_pthreads() == 0);
	b = event_base_new();
	CHECK(b != NULL);
	for (intptr_t k = 0; k < KEPT; k++)
		CHECK(evtimer_assign(&kept[k], b, on_kept, (void *)k) == 0);
	pthread_t loop, churner;
	CHECK(pthread_create(&loop, NULL, run_base, NULL) == 0);
	CHECK(pthread_create(&churner, NULL, churn, NULL) == 0);

	struct timeval zero = {0, 0};
	for (int r = 0; r < ROUNDS; r++) {
		round_now = r;
		int k = r % KEPT, want = fired[k] + 1;
		if (r % 2)
			CHECK(evtimer_add(&kept[k], &zero) == 0);
		else
			event_active(&kept[k], EV_TIMEOUT, 0);
		wait_for(&fired[k], want, r);
	}
	round_now = ROUNDS;
	pthread_join(churner, NULL);
	CHECK(event_base_loopbreak(b) == 0);
	pthread_join(loop, NULL);

	/* Several looks happened, and they kept the churn's leftovers bounded. */
	CHECK(churned == (long)ROUNDS * PER_ROUND && churned >= 4 * LOOK);
	CHECK(rouse_libevent_slot_count(b) < LOOK + 64);
	for (int k = 0; k < KEPT; k++)
		CHECK(fired[k] == ROUNDS / KEPT);
	CHECK(n_logs == 0);
	event_base_free(b);
	printf("ok\n");
	return 0;
}
