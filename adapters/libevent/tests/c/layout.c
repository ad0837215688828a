/* struct event: libevent's public layout (offsetof on the installed event_struct.h) is the
 * one rouse-libevent reads and writes; programs that touch the fields directly work. */
#include "check.h"
#include <stddef.h>

static int fired_fd = -2, fired_res = -1, seen_res = -1;
static struct event *seen;

static void cb(evutil_socket_t fd, short res, void *arg)
{
	struct event *ev = arg;
	fired_fd = fd;
	fired_res = res;
	seen_res = ev->ev_res; /* kept current, as libevent does */
	seen = ev;
}

int main(void)
{
	test_start(10);
	size_t n = 0;
	const size_t *off = rouse_libevent_layout(&n);
	CHECK(n == 10);
	CHECK(off[0] == sizeof(struct event));
	CHECK(off[1] == offsetof(struct event, ev_fd));
	CHECK(off[2] == offsetof(struct event, ev_base));
	CHECK(off[3] == offsetof(struct event, ev_events));
	CHECK(off[4] == offsetof(struct event, ev_res));
	CHECK(off[5] == offsetof(struct event, ev_timeout));
	CHECK(off[6] == offsetof(struct event, ev_evcallback.evcb_cb_union.evcb_callback));
	CHECK(off[7] == offsetof(struct event, ev_evcallback.evcb_arg));
	CHECK(off[8] == offsetof(struct event, ev_evcallback.evcb_flags));
	CHECK(off[9] == offsetof(struct event, ev_evcallback.evcb_pri));
	CHECK(event_get_struct_event_size() == sizeof(struct event));
#if defined(__x86_64__)
	CHECK(sizeof(struct event) == 128);
#endif

	/* Zeroed memory is not an initialized event. */
	struct event ev;
	memset(&ev, 0, sizeof ev);
	CHECK(event_initialized(&ev) == 0);
	memset(&ev, 0xa5, sizeof ev);
	CHECK(event_initialized(&ev) == 0);

	struct event_base *b = event_base_new();
	CHECK(b);
	int a[2], c[2];
	pair(a);
	pair(c);
	CHECK(event_assign(&ev, b, a[0], EV_READ, cb, &ev) == 0);
	CHECK(event_initialized(&ev) == 1);
	CHECK(ev.ev_base == b); /* memcached reads ev_base */
	CHECK(ev.ev_fd == a[0]);
	CHECK(ev.ev_events == EV_READ);
	CHECK(ev.ev_evcallback.evcb_cb_union.evcb_callback == cb);
	CHECK(ev.ev_evcallback.evcb_arg == &ev);
	CHECK(ev.ev_evcallback.evcb_flags & EVLIST_INIT);

	/* nsd/unbound style: rewrite ev_fd and ev_events directly, then re-add. */
	ev.ev_fd = c[0];
	ev.ev_events = EV_READ | EV_PERSIST;
	CHECK(event_add(&ev, NULL) == 0);
	CHECK(ev.ev_evcallback.evcb_flags & EVLIST_INSERTED);
	CHECK(write(c[1], "x", 1) == 1);
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
	CHECK(fired_fd == c[0]);
	CHECK(fired_res == EV_READ);
	CHECK(seen_res == EV_READ);
	CHECK(seen == &ev);
	CHECK(event_pending(&ev, EV_READ, NULL) == EV_READ); /* persistent: still pending */

	/* The callback pointer and argument are read when the event fires. */
	char buf[8];
	CHECK(read(c[0], buf, sizeof buf) == 1);
	CHECK(event_del(&ev) == 0);
	CHECK(!(ev.ev_evcallback.evcb_flags & EVLIST_INSERTED));
	ev.ev_fd = a[0];
	ev.ev_events = EV_WRITE;
	fired_fd = -2;
	CHECK(event_add(&ev, NULL) == 0);
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
	CHECK(fired_fd == a[0] && fired_res == EV_WRITE);
	CHECK(event_pending(&ev, EV_WRITE, NULL) == 0); /* one-shot */

	event_base_free(b);
	printf("ok\n");
	return 0;
}
