/* A server's idle timeouts, written as a libevent program would: every connection has a read
 * event and an idle timer, and each message pushes the timer back (event_del + event_add in
 * the read callback; rouse-libevent parks the delete and re-arms). The client writes to every
 * connection every 5 ms for a while, then goes quiet: no connection may time out while its
 * messages flow, and each must time out once, about the idle time after its last message. */
#include "check.h"

#define CONNS 8
/* The idle time: 60 ms natively; times ROUSE_TEST_TIMEOUT_SCALE under valgrind, where a stall
 * of the whole process on a loaded host can outlast 60 ms between two messages (a timeout
 * then fires as it would on libevent, and the last ping is never read). */
static int idle_ms = 60;
#define EARLY 8 /* the coarse clock's lag and 1 ms of slack (see parked.c) */

struct conn {
	int fds[2]; /* server end, client end */
	struct event *rd, *idle;
	double last_msg, closed_at;
	int bytes, timeouts;
};
static struct conn conns[CONNS];
static struct event_base *base;
static struct event *ticker;
static int ticks, open_conns;
static double t0;

static void on_idle(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	CHECK(res == EV_TIMEOUT);
	struct conn *c = arg;
	c->timeouts++;
	c->closed_at = now_ms() - t0;
	event_del(c->rd);
	close(c->fds[0]);
	if (--open_conns == 0)
		event_del(ticker);
}

static void on_read(evutil_socket_t fd, short res, void *arg)
{
	(void)res;
	struct conn *c = arg;
	char buf[64];
	ssize_t n = read(fd, buf, sizeof buf);
	CHECK(n > 0);
	CHECK(write(fd, buf, (size_t)n) == n); /* echo */
	c->bytes += (int)n;
	c->last_msg = now_ms() - t0;
	struct timeval idle = {idle_ms / 1000, idle_ms % 1000 * 1000};
	CHECK(event_del(c->idle) == 0);
	CHECK(event_add(c->idle, &idle) == 0);
}

/* The client: a message on every connection per tick, for 30 ticks of 5 ms. */
static void on_tick(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	if (++ticks > 30)
		return;
	for (int i = 0; i < CONNS; i++) {
		char echo[64];
		while (read(conns[i].fds[1], echo, sizeof echo) > 0) {
		}
		CHECK(conns[i].timeouts == 0); /* its messages still flow */
		CHECK(write(conns[i].fds[1], "ping", 4) == 4);
	}
}

int main(void)
{
	test_start(20);
	const char *scale = getenv("ROUSE_TEST_TIMEOUT_SCALE");
	if (scale)
		idle_ms *= atoi(scale);
	base = event_base_new();
	struct timeval idle = {idle_ms / 1000, idle_ms % 1000 * 1000}, tick = {0, 5000};
	t0 = now_ms();
	for (int i = 0; i < CONNS; i++) {
		struct conn *c = &conns[i];
		pair(c->fds);
		c->rd = event_new(base, c->fds[0], EV_READ | EV_PERSIST, on_read, c);
		c->idle = evtimer_new(base, on_idle, c);
		CHECK(event_add(c->rd, NULL) == 0);
		CHECK(evtimer_add(c->idle, &idle) == 0);
	}
	open_conns = CONNS;
	ticker = event_new(base, -1, EV_PERSIST, on_tick, NULL);
	CHECK(event_add(ticker, &tick) == 0);
	/* Ends when nothing is pending: every connection timed out, the ticker deleted. */
	CHECK(event_base_dispatch(base) == 1);
	for (int i = 0; i < CONNS; i++) {
		struct conn *c = &conns[i];
		CHECK(c->bytes == 30 * 4);
		CHECK(c->timeouts == 1);
		CHECK(c->closed_at >= c->last_msg + idle_ms - EARLY);
		event_free(c->rd);
		event_free(c->idle);
		close(c->fds[1]);
	}
	event_free(ticker);
	event_base_free(base);
	puts("ok");
	return 0;
}
