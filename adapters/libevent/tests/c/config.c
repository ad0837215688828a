/* event_config: avoided methods, required features, flags, EVENT_NO* variables (and
 * EVENT_BASE_FLAG_IGNORE_ENV), dispatch limits. */
#include "check.h"

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
	test_start(10);
	unsetenv("ROUSE_POLLER");
	struct event_config *c = event_config_new();
	CHECK(c);
	CHECK(event_config_avoid_method(c, "epoll") == 0);
	CHECK(event_config_avoid_method(c, "kqueue") == 0);
	struct event_base *b = event_base_new_with_config(c);
	CHECK(b);
	CHECK(strcmp(event_base_get_method(b), "poll") == 0);
	CHECK(event_base_get_features(b) == EV_FEATURE_FDS);
	event_base_free(b);
	event_config_free(c);

	/* poll cannot do O(1): nothing left once it is avoided too. */
	c = event_config_new();
	CHECK(event_config_require_features(c, EV_FEATURE_O1) == 0);
	CHECK(event_config_avoid_method(c, "epoll") == 0);
	CHECK(event_config_avoid_method(c, "kqueue") == 0);
	CHECK(event_base_new_with_config(c) == NULL);
	event_config_free(c);

	c = event_config_new();
	CHECK(event_config_require_features(c, EV_FEATURE_FDS) == 0);
	b = event_base_new_with_config(c);
	CHECK(b && strcmp(event_base_get_method(b), "epoll") != 0); /* epoll cannot watch files */
	event_base_free(b);
	event_config_free(c);

	/* EVENT_NOEPOLL, unless the base ignores the environment. */
	setenv("EVENT_NOEPOLL", "1", 1);
	setenv("EVENT_NOKQUEUE", "1", 1);
	b = event_base_new();
	CHECK(strcmp(event_base_get_method(b), "poll") == 0);
	event_base_free(b);
	c = event_config_new();
	CHECK(event_config_set_flag(c, EVENT_BASE_FLAG_IGNORE_ENV) == 0);
	CHECK(event_config_set_flag(c, EVENT_BASE_FLAG_NOLOCK) == 0);
	CHECK(event_config_set_num_cpus_hint(c, 2) == 0);
	b = event_base_new_with_config(c);
	CHECK(strcmp(event_base_get_method(b), "poll") != 0);
	event_base_free(b);
	event_config_free(c);
	unsetenv("EVENT_NOEPOLL");
	unsetenv("EVENT_NOKQUEUE");

	/* Dispatch limits: at most 2 callbacks of priority >= 0 per pass; all still run. */
	c = event_config_new();
	struct timeval ms = {0, 1000};
	CHECK(event_config_set_max_dispatch_interval(c, &ms, 2, 0) == 0);
	b = event_base_new_with_config(c);
	CHECK(b);
	struct event *e[5];
	for (int i = 0; i < 5; i++) {
		e[i] = event_new(b, -1, 0, cb, NULL);
		event_active(e[i], 0, 0);
	}
	CHECK(event_base_dispatch(b) == 1);
	CHECK(n == 5);
	for (int i = 0; i < 5; i++)
		event_free(e[i]);
	event_base_free(b);
	event_config_free(c);
	printf("ok\n");
	return 0;
}
