/* Priorities: default n/2, lower numbers first, range checks. */
#include "check.h"

static int order[16], n;
static void rec(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	order[n++] = (int)(long)arg;
}

int main(void)
{
	test_start(10);
	struct event_base *b = event_base_new();
	CHECK(event_base_priority_init(b, 0) == -1);
	CHECK(event_base_priority_init(b, 3) == 0);
	CHECK(event_base_get_npriorities(b) == 3);
	struct event *e[3];
	for (int i = 0; i < 3; i++) {
		e[i] = event_new(b, -1, 0, rec, (void *)(long)i);
		CHECK(event_get_priority(e[i]) == 1); /* n/2 */
		CHECK(event_priority_set(e[i], i) == 0);
		CHECK(event_get_priority(e[i]) == i);
	}
	CHECK(event_priority_set(e[0], 3) == -1);
	CHECK(event_priority_set(e[0], -1) == -1);
	event_active(e[2], 0, 0);
	event_active(e[1], 0, 0);
	event_active(e[0], 0, 0);
	CHECK(event_priority_set(e[0], 1) == -1); /* active */
	CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	while (n < 3)
		CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	CHECK(order[0] == 0 && order[1] == 1 && order[2] == 2);

	/* Priority set while added (not active) moves the event. */
	CHECK(event_priority_set(e[2], 0) == 0);
	CHECK(event_priority_set(e[0], 2) == 0);
	n = 0;
	event_active(e[0], 0, 0);
	event_active(e[2], 0, 0);
	while (n < 2)
		CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	CHECK(order[0] == 2 && order[1] == 0);

	/* Compat: event_priority_init on the current base. */
	struct event_base *cur = event_init();
	CHECK(cur);
	CHECK(event_priority_init(4) == 0);
	CHECK(event_base_get_npriorities(cur) == 4);
	struct event ev;
	event_set(&ev, -1, 0, rec, NULL);
	CHECK(event_get_priority(&ev) == 2);
	for (int i = 0; i < 3; i++)
		event_free(e[i]);
	event_base_free(b);
	event_base_free(cur);
	printf("ok\n");
	return 0;
}
