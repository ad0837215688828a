/* Bases, events, I/O, timers, accessors, versions, methods. */
#include "check.h"

static int n_read, n_timer, got_fd, got_res;
static void *got_arg;

static void on_read(evutil_socket_t fd, short res, void *arg)
{
	char buf[16];
	n_read++;
	got_fd = fd;
	got_res = res;
	got_arg = arg;
	if (read(fd, buf, sizeof buf) < 0) {
	}
}

static void on_timer(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)arg;
	CHECK(res == EV_TIMEOUT);
	n_timer++;
}

static int n_self;
static void free_self(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	n_self++;
	event_free(arg); /* an event may free itself from its callback */
}

static struct event *rearm_ev;
static void rearm(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	struct timeval tv = {0, 1000};
	if (++n_self < 5)
		CHECK(event_add(rearm_ev, &tv) == 0); /* re-add a one-shot from its callback */
}

int main(void)
{
	test_start(10);
	CHECK(strcmp(event_get_version(), "2.1.12-stable") == 0);
	CHECK(event_get_version_number() == 0x02010c00);
	const char **m = event_get_supported_methods();
	CHECK(m && m[0] && m[1] && m[2] == NULL);

	struct event_base *b = event_base_new();
	CHECK(b);
	const char *method = event_base_get_method(b);
	CHECK(strcmp(method, "epoll") == 0 || strcmp(method, "poll") == 0 || strcmp(method, "kqueue") == 0);
	CHECK(event_base_get_npriorities(b) == 1);

	int fds[2];
	pair(fds);
	struct event *r = event_new(b, fds[0], EV_READ | EV_PERSIST, on_read, (void *)0x1234);
	CHECK(r);
	CHECK(event_get_fd(r) == fds[0]);
	CHECK(event_get_base(r) == b);
	CHECK(event_get_events(r) == (EV_READ | EV_PERSIST));
	CHECK(event_get_callback(r) == on_read);
	CHECK(event_get_callback_arg(r) == (void *)0x1234);
	CHECK(event_get_priority(r) == 0);
	struct event_base *ab;
	evutil_socket_t afd;
	short aev;
	event_callback_fn acb;
	void *aarg;
	event_get_assignment(r, &ab, &afd, &aev, &acb, &aarg);
	CHECK(ab == b && afd == fds[0] && aev == (EV_READ | EV_PERSIST) && acb == on_read && aarg == (void *)0x1234);

	CHECK(event_pending(r, EV_READ, NULL) == 0);
	CHECK(event_add(r, NULL) == 0);
	CHECK(event_pending(r, EV_READ | EV_WRITE | EV_TIMEOUT, NULL) == EV_READ);

	/* A one-shot timer of 20 ms, with event_pending reporting its expiry. */
	struct event *t = evtimer_new(b, on_timer, NULL);
	CHECK(t);
	struct timeval tv = {0, 20000}, exp;
	struct timeval before;
	gettimeofday(&before, NULL);
	CHECK(evtimer_add(t, &tv) == 0);
	CHECK(evtimer_pending(t, &exp) == EV_TIMEOUT);
	double dt = (exp.tv_sec - before.tv_sec) * 1e3 + (exp.tv_usec - before.tv_usec) / 1e3;
	CHECK(dt > 10 && dt < 1000);

	/* Nothing ready: the timer fires first, never early. */
	double t0 = now_ms();
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
	CHECK(n_timer == 1 && n_read == 0);
	CHECK(now_ms() - t0 >= 19.0);
	CHECK(evtimer_pending(t, NULL) == 0);

	CHECK(write(fds[1], "abc", 3) == 3);
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
	CHECK(n_read == 1 && got_fd == fds[0] && got_res == EV_READ && got_arg == (void *)0x1234);

	/* Non-blocking: nothing ready, returns at once. */
	t0 = now_ms();
	CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	CHECK(now_ms() - t0 < 50);
	CHECK(n_read == 1);

	/* event_active runs the callback with the given result bits. */
	event_active(r, EV_WRITE, 1);
	CHECK(event_pending(r, EV_WRITE, NULL) == EV_WRITE);
	CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	CHECK(n_read == 2 && got_res == EV_WRITE);

	/* Deleted: dispatch with nothing pending returns 1. */
	CHECK(event_del(r) == 0);
	CHECK(event_del(r) == 0); /* deleting a non-pending event is fine */
	CHECK(event_pending(r, EV_READ, NULL) == 0);
	CHECK(event_base_dispatch(b) == 1);

	/* event_self_cbarg: the callback gets the event itself. */
	struct event *s = event_new(b, -1, 0, on_read, event_self_cbarg());
	CHECK(event_get_callback_arg(s) == s);
	event_free(s);

	/* A caller-allocated timer (evtimer_assign), several add/del cycles. */
	struct event ev;
	CHECK(evtimer_assign(&ev, b, on_timer, NULL) == 0);
	for (int i = 0; i < 100; i++) {
		struct timeval big = {100, 0};
		CHECK(evtimer_add(&ev, &big) == 0);
		CHECK(evtimer_pending(&ev, NULL) == EV_TIMEOUT);
		CHECK(evtimer_del(&ev) == 0);
		CHECK(evtimer_pending(&ev, NULL) == 0);
	}
	struct timeval zero = {0, 0};
	CHECK(evtimer_add(&ev, &zero) == 0);
	CHECK(event_base_dispatch(b) == 1);
	CHECK(n_timer == 2);

	/* event_remove_timer keeps the I/O part pending. */
	struct timeval long_tv = {50, 0};
	CHECK(event_add(r, &long_tv) == 0);
	CHECK(event_pending(r, EV_READ | EV_TIMEOUT, NULL) == (EV_READ | EV_TIMEOUT));
	CHECK(event_remove_timer(r) == 0);
	CHECK(event_pending(r, EV_READ | EV_TIMEOUT, NULL) == EV_READ);

	/* Self-freeing and self-re-arming callbacks. */
	struct event *sf = event_new(b, -1, 0, free_self, event_self_cbarg());
	event_active(sf, 0, 0);
	CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	CHECK(n_self == 1);
	n_self = 0;
	rearm_ev = evtimer_new(b, rearm, NULL);
	struct timeval ms = {0, 1000};
	CHECK(evtimer_add(rearm_ev, &ms) == 0);
	CHECK(event_del(r) == 0);
	CHECK(event_base_dispatch(b) == 1);
	CHECK(n_self == 5);
	event_free(rearm_ev);

	event_free(r);
	event_free(t);
	event_base_free(b);
	printf("ok\n");
	return 0;
}
