/* event_base_dump_events, event_base_foreach_event, counts, the running event,
 * event_base_active_by_fd / _by_signal, cached time. */
#include "check.h"

static struct event_base *b;
static struct event *running_seen;
static int n_fd;
static void cb(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	running_seen = event_base_get_running_event(b);
	CHECK(running_seen == arg);
	n_fd++;
}

static int n_each;
static int each(const struct event_base *base, const struct event *ev, void *arg)
{
	CHECK(base == b);
	CHECK(ev == arg || arg == NULL);
	n_each++;
	return 0;
}
static int stop_at_first(const struct event_base *base, const struct event *ev, void *arg)
{
	(void)base;
	(void)ev;
	(void)arg;
	return 42;
}

int main(void)
{
	test_start(10);
	b = event_base_new();
	int fds[2];
	pair(fds);
	struct event *r = event_new(b, fds[0], EV_READ | EV_PERSIST, cb, NULL);
	event_assign(r, b, fds[0], EV_READ | EV_PERSIST, cb, r);
	struct event *t = evtimer_new(b, cb, NULL);
	struct event *idle = evtimer_new(b, cb, NULL); /* never added: not listed */
	struct timeval tv = {10, 0};
	CHECK(event_add(r, NULL) == 0);
	CHECK(event_add(t, &tv) == 0);
	CHECK(event_base_get_num_events(b, EVENT_BASE_COUNT_ADDED) == 2);
	CHECK(event_base_get_num_events(b, EVENT_BASE_COUNT_ACTIVE) == 0);
	CHECK(event_base_get_max_events(b, EVENT_BASE_COUNT_ADDED, 0) >= 2);

	FILE *f = tmpfile();
	CHECK(f);
	event_base_dump_events(b, f);
	rewind(f);
	char text[4096];
	size_t len = fread(text, 1, sizeof text - 1, f);
	text[len] = 0;
	fclose(f);
	CHECK(strstr(text, "Inserted events:"));
	CHECK(strstr(text, "Active events:"));
	char fdtag[32];
	snprintf(fdtag, sizeof fdtag, "[fd %d] Read", fds[0]);
	CHECK(strstr(text, fdtag));
	CHECK(strstr(text, "Timeout="));

	CHECK(event_base_foreach_event(b, each, NULL) == 0);
	CHECK(n_each == 2);
	CHECK(event_base_foreach_event(b, stop_at_first, NULL) == 42);

	/* active_by_fd wakes the read event (not the timer); the callback sees itself running. */
	event_base_active_by_fd(b, fds[0], EV_READ);
	CHECK(event_base_get_num_events(b, EVENT_BASE_COUNT_ACTIVE) == 1);
	CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	CHECK(n_fd == 1 && running_seen == r);
	CHECK(event_base_get_running_event(b) == NULL);

	struct timeval now;
	CHECK(event_base_gettimeofday_cached(b, &now) == 0 && now.tv_sec > 1000000000);
	CHECK(event_base_update_cache_time(b) == 0);
	struct timeval mono;
	CHECK(event_gettime_monotonic(b, &mono) == 0);
	CHECK(event_base_get_features(b) != 0 || strcmp(event_base_get_method(b), "poll") == 0);

	event_free(r);
	event_free(t);
	event_free(idle);
	event_base_free(b);
	printf("ok\n");
	return 0;
}
