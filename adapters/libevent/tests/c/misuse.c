/* Bad input never crashes rouse: NULL, zeroed or garbage events, freed bases, pointers that
 * are not bases; each returns -1/NULL and is reported through the log callback. */
#include "check.h"

static void cb(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
}

static struct event_base *fb;
static void free_base_cb(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	event_base_free(fb); /* from its own callback: freed when the loop returns */
}

#define REPORTED(expr)                      \
	do {                                \
		int before = n_logs;        \
		expr;                       \
		CHECK(n_logs > before);     \
	} while (0)

int main(void)
{
	test_start(10);
	struct event zero;
	memset(&zero, 0, sizeof zero);
	struct event junk;
	memset(&junk, 0x5a, sizeof junk);

	REPORTED(CHECK(event_add(NULL, NULL) == -1));
	REPORTED(CHECK(event_add(&zero, NULL) == -1));
	CHECK(strstr(last_log, "not initialized"));
	REPORTED(CHECK(event_add(&junk, NULL) == -1));
	REPORTED(CHECK(event_del(&zero) == -1));
	REPORTED(event_active(&zero, EV_READ, 0));
	CHECK(event_pending(&zero, EV_READ, NULL) == 0);
	CHECK(event_initialized(NULL) == 0);
	REPORTED(CHECK(event_get_fd(&zero) == -1));
	REPORTED(CHECK(event_priority_set(&zero, 0) == -1));
	REPORTED(CHECK(event_assign(NULL, NULL, -1, 0, cb, NULL) == -1));
	event_free(NULL);

	REPORTED(CHECK(event_base_dispatch(NULL) == -1));
	REPORTED(CHECK(event_base_loopbreak(NULL) == -1));
	REPORTED(CHECK(event_base_get_method(NULL) == NULL));
	REPORTED(CHECK(event_new((struct event_base *)&junk, -1, 0, cb, NULL) == NULL));
	CHECK(strstr(last_log, "not an event_base"));
	REPORTED(CHECK(event_base_loop((struct event_base *)&zero, 0) == -1));
	REPORTED(CHECK(event_config_set_flag(NULL, 0) == -1));
	REPORTED(CHECK(event_config_avoid_method((struct event_config *)&junk, "poll") == -1));

	/* A freed base: its pointer and its events are refused, not used. */
	struct event_base *b = event_base_new();
	struct event ev;
	CHECK(evtimer_assign(&ev, b, cb, NULL) == 0);
	struct timeval tv = {10, 0};
	CHECK(evtimer_add(&ev, &tv) == 0);
	event_base_free(b);
	REPORTED(CHECK(event_base_dispatch(b) == -1));
	CHECK(strstr(last_log, "freed"));
	REPORTED(CHECK(event_add(&ev, &tv) == -1));
	REPORTED(CHECK(event_base_loopexit(b, NULL) == -1));
	CHECK(event_pending(&ev, EV_TIMEOUT, NULL) == 0);
	REPORTED(event_base_free(b)); /* double free: reported */

	/* A base freed from one of its callbacks: the loop stops, then the base is gone. */
	fb = event_base_new();
	struct event *x = event_new(fb, -1, 0, free_base_cb, NULL);
	event_active(x, 0, 0);
	CHECK(event_base_dispatch(fb) == 0);
	REPORTED(CHECK(event_base_dispatch(fb) == -1));
	REPORTED(CHECK(event_add(x, NULL) == -1));
	event_free(x); /* its memory is still the program's to free */

	/* Signals with I/O are refused at assign time. */
	REPORTED(CHECK(event_assign(&ev, NULL, SIGINT, EV_SIGNAL | EV_WRITE, cb, NULL) == -1));
	/* Out-of-range fds. */
	struct event_base *c = event_base_new();
	struct event *neg = event_new(c, -5, EV_READ, cb, NULL);
	CHECK(neg);
	REPORTED(CHECK(event_add(neg, NULL) == -1));
	event_free(neg);
	/* Priority beyond the base's number. */
	struct event p;
	CHECK(event_assign(&p, c, -1, 0, cb, NULL) == 0);
	p.ev_evcallback.evcb_pri = 9;
	REPORTED(CHECK(event_add(&p, &tv) == -1));
	/* Debug mode is accepted. */
	event_enable_debug_mode();
	event_enable_debug_logging(EVENT_DBG_ALL);
	event_enable_debug_logging(EVENT_DBG_NONE);
	event_base_free(c);
	event_set_log_callback(NULL);
	printf("ok\n");
	return 0;
}
