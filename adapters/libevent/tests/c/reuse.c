/* Caller-allocated events: a re-assigned event reuses its registration; memory freed after
 * event_del and allocated again for another event leaves no registration behind. */
#include "check.h"

int rouse_libevent_slot_count(struct event_base *b);

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
	test_start(20);
	struct event_base *b = event_base_new();
	int fds[2];
	pair(fds);
	struct timeval tv = {10, 0}, zero = {0, 0};

	/* malloc'd per "connection", freed after event_del (unbound, nsd, many servers). */
	for (int i = 0; i < 20000; i++) {
		struct event *e = malloc(sizeof *e);
		CHECK(event_assign(e, b, fds[0], EV_READ, cb, NULL) == 0);
		CHECK(event_add(e, &tv) == 0);
		CHECK(event_del(e) == 0);
		free(e);
	}
	/* The bound is the allocator's reuse of addresses (valgrind's quarantine defeats it). */
	int reuses = getenv("ROUSE_TEST_NO_ADDRESS_REUSE") == NULL;
	CHECK(rouse_libevent_slot_count(b) >= 0);
	CHECK(!reuses || rouse_libevent_slot_count(b) < 64);

	/* One-shot timers that fire, then the memory is freed from the callback's caller. */
	for (int i = 0; i < 2000; i++) {
		struct event *e = malloc(sizeof *e);
		CHECK(evtimer_assign(e, b, cb, NULL) == 0);
		CHECK(evtimer_add(e, &zero) == 0);
		CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
		free(e);
	}
	CHECK(n == 2000);
	CHECK(!reuses || rouse_libevent_slot_count(b) < 64);

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
