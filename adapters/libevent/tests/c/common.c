/* Common timeouts: many timers of one duration, a copied timeval still names it. */
#include "check.h"

static int n, last;
static int order_ok = 1;
static void on(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	CHECK(res == EV_TIMEOUT);
	int i = (int)(long)arg;
	if (i < last)
		order_ok = 0;
	last = i;
	n++;
}

int main(void)
{
	test_start(10);
	struct event_base *b = event_base_new();
	struct timeval d = {0, 20000};
	const struct timeval *ct = event_base_init_common_timeout(b, &d);
	CHECK(ct);
	CHECK(event_base_init_common_timeout(b, &d) == ct); /* same duration, same handle */
	struct timeval copy = *ct;
	struct event ev[100];
	double t0 = now_ms();
	for (int i = 0; i < 100; i++) {
		CHECK(evtimer_assign(&ev[i], b, on, (void *)(long)i) == 0);
		CHECK(evtimer_add(&ev[i], i % 2 ? ct : &copy) == 0);
	}
	struct timeval exp;
	CHECK(evtimer_pending(&ev[0], &exp) == EV_TIMEOUT);
	CHECK(event_base_dispatch(b) == 1);
	CHECK(n == 100 && order_ok);
	CHECK(now_ms() - t0 >= 19.0);

	/* Another duration gets another handle. */
	struct timeval d2 = {0, 5000};
	const struct timeval *ct2 = event_base_init_common_timeout(b, &d2);
	CHECK(ct2 && ct2 != ct);
	event_base_free(b);
	printf("ok\n");
	return 0;
}
