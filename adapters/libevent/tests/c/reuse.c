/* Caller-allocated events: a re-assigned event reuses its registration; memory freed after
 * event_del (or after a one-shot event fired) and allocated again for other events leaves at
 * most a bounded number of registrations behind, whether or not the allocator hands the same
 * addresses out again; an event whose idle registration was reclaimed meanwhile still works. */
#include "check.h"

int rouse_libevent_slot_count(struct event_base *b);

/* rouse-libevent keeps fewer idle registrations of freed events than this (its first look
 * for them comes after 4 096 registrations; see the README). */
#define BOUND (4096 + 64)

static int n, kept_fired, finalized;
static void cb(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	n++;
}
static void kept_cb(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	kept_fired++;
}
static void fin_cb(struct event *ev, void *arg)
{
	(void)ev;
	(void)arg;
	finalized++;
}

int main(void)
{
	test_start(20);
	struct event_base *b = event_base_new();
	int fds[2];
	pair(fds);
	struct timeval tv = {10, 0}, zero = {0, 0};

	/* Events that stay alive, idle, while the program churns through others: each has a
	 * registration (made by an add) that the churn below gets reclaimed. */
	struct event kept[4];
	for (int i = 0; i < 4; i++) {
		CHECK(evtimer_assign(&kept[i], b, kept_cb, NULL) == 0);
		CHECK(evtimer_add(&kept[i], &tv) == 0);
		CHECK(evtimer_del(&kept[i]) == 0);
	}

	/* malloc'd per "connection", freed after event_del (unbound, nsd, many servers). */
	for (int i = 0; i < 20000; i++) {
		struct event *e = malloc(sizeof *e);
		CHECK(event_assign(e, b, fds[0], EV_READ, cb, NULL) == 0);
		CHECK(event_add(e, &tv) == 0);
		CHECK(event_del(e) == 0);
		free(e);
	}
	CHECK(rouse_libevent_slot_count(b) >= 0);
	CHECK(rouse_libevent_slot_count(b) < BOUND);

	/* The kept events work after their registrations were reclaimed: an add that fires, an
	 * activation, a priority change, a finalize. */
	int c = rouse_libevent_slot_count(b);
	CHECK(evtimer_add(&kept[0], &zero) == 0);
	CHECK(rouse_libevent_slot_count(b) == c + 1); /* it was reclaimed: made afresh */
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
	CHECK(kept_fired == 1);
	event_active(&kept[1], EV_TIMEOUT, 0);
	CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	CHECK(kept_fired == 2);
	CHECK(event_priority_set(&kept[2], 0) == 0);
	CHECK(evtimer_add(&kept[2], &zero) == 0);
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
	CHECK(kept_fired == 3);
	CHECK(event_finalize(0, &kept[3], fin_cb) == 0);
	CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	CHECK(finalized == 1);

	/* One-shot timers that fire, then the memory is freed from the callback's caller. */
	for (int i = 0; i < 2000; i++) {
		struct event *e = malloc(sizeof *e);
		CHECK(evtimer_assign(e, b, cb, NULL) == 0);
		CHECK(evtimer_add(e, &zero) == 0);
		CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
		free(e);
	}
	CHECK(n == 2000);
	CHECK(rouse_libevent_slot_count(b) < BOUND);

	/* del + assign (same fd and events) + add: one registration throughout (bench W3). */
	struct event ev;
	CHECK(event_assign(&ev, b, fds[0], EV_READ, cb, NULL) == 0);
	CHECK(event_add(&ev, NULL) == 0);
	int before = rouse_libevent_slot_count(b);
	for (int i = 0; i < 1000; i++) {
		CHECK(event_del(&ev) == 0);
		CHECK(event_assign(&ev, b, fds[0], EV_READ, cb, NULL) == 0);
		CHECK(event_add(&ev, NULL) == 0);
	}
	CHECK(rouse_libevent_slot_count(b) == before);
	CHECK(write(fds[1], "x", 1) == 1);
	n = 0;
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
	CHECK(n == 1);
	/* Changing the events gives a new registration, not an extra one. */
	CHECK(event_del(&ev) == 0);
	CHECK(event_assign(&ev, b, fds[0], EV_READ | EV_PERSIST, cb, NULL) == 0);
	CHECK(event_add(&ev, NULL) == 0);
	CHECK(rouse_libevent_slot_count(b) == before);
	CHECK(event_del(&ev) == 0);
	event_base_free(b);
	printf("ok\n");
	return 0;
}
