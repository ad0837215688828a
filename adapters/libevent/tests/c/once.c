/* event_base_once (timers, I/O, NULL timeout) and signals. */
#include "check.h"

static int hits[4];
static void hit(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	long i = (long)arg;
	hits[i]++;
	if (i == 2)
		CHECK(res == EV_READ);
	if (i == 1)
		CHECK(res == EV_TIMEOUT);
}

static int n_sig, sig_res;
static void on_sig(evutil_socket_t fd, short res, void *arg)
{
	(void)arg;
	CHECK(fd == SIGUSR1);
	sig_res = res;
	n_sig++;
}

int main(void)
{
	test_start(10);
	struct event_base *b = event_base_new();
	struct timeval tv = {0, 10000};
	CHECK(event_base_once(b, -1, EV_TIMEOUT, hit, (void *)1, &tv) == 0);
	CHECK(event_base_once(b, -1, EV_TIMEOUT, hit, (void *)0, NULL) == 0); /* at once */
	int fds[2];
	pair(fds);
	CHECK(event_base_once(b, fds[0], EV_READ, hit, (void *)2, NULL) == 0);
	CHECK(event_base_once(b, -1, EV_SIGNAL, hit, (void *)3, NULL) == -1);
	CHECK(event_base_once(b, -1, EV_PERSIST, hit, (void *)3, NULL) == -1);
	CHECK(write(fds[1], "x", 1) == 1);
	CHECK(event_base_dispatch(b) == 1); /* all three ran once and freed themselves */
	CHECK(hits[0] == 1 && hits[1] == 1 && hits[2] == 1 && hits[3] == 0);

	/* A persistent signal event. */
	struct event *s = evsignal_new(b, SIGUSR1, on_sig, NULL);
	CHECK(s);
	CHECK(evsignal_add(s, NULL) == 0);
	CHECK(evsignal_pending(s, NULL) == EV_SIGNAL);
	raise(SIGUSR1);
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
	CHECK(n_sig == 1 && sig_res == EV_SIGNAL);
	raise(SIGUSR1);
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
	CHECK(n_sig == 2);
	evsignal_del(s);
	event_free(s);

	/* A one-shot signal event: not pending after it fired. */
	struct event one;
	CHECK(event_assign(&one, b, SIGUSR1, EV_SIGNAL, on_sig, NULL) == 0);
	CHECK(event_add(&one, NULL) == 0);
	raise(SIGUSR1);
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
	CHECK(n_sig == 3);
	CHECK(event_pending(&one, EV_SIGNAL, NULL) == 0);
	CHECK(event_base_dispatch(b) == 1);

	/* EV_SIGNAL with EV_READ is refused. */
	CHECK(event_new(b, SIGUSR1, EV_SIGNAL | EV_READ, on_sig, NULL) == NULL);
	event_base_free(b);
	printf("ok\n");
	return 0;
}
