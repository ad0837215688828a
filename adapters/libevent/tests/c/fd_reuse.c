/* A struct event kept across a close of its fd: the program deletes it, closes the fd, opens
 * a new socket (which gets the same number) and adds the same event again, all in one
 * callback, before the loop applies any change. libevent applies the delete and the add at
 * once, so the new socket is watched; unbound does exactly this with its upstream UDP
 * sockets. The kernel dropped the old socket's epoll registration at the close: coalescing
 * the delete+add into "no change" would leave the new socket unwatched, its reply unseen. */
#include "check.h"

static int fds[2];
static struct event ev, kick;
static int reads, reopened;

static void on_read(evutil_socket_t fd, short res, void *arg)
{
	(void)res;
	(void)arg;
	char c;
	CHECK(read(fd, &c, 1) == 1);
	reads++;
	CHECK(reads == reopened);
	if (reads == 3) {
		event_base_loopbreak(ev.ev_base);
		return;
	}
	struct timeval t = {0, 1000};
	CHECK(event_add(&kick, &t) == 0);
}

static void reopen(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	int old = fds[0];
	/* Delete, close, reopen (the lowest free number: the same), re-add the same event. */
	CHECK(event_del(&ev) == 0);
	CHECK(close(fds[0]) == 0);
	CHECK(close(fds[1]) == 0);
	int pair_fds[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair_fds) == 0);
	CHECK(pair_fds[0] == old); /* what makes the case: the number is reused */
	fds[0] = pair_fds[0];
	fds[1] = pair_fds[1];
	CHECK(evutil_make_socket_nonblocking(fds[0]) == 0);
	/* With and without re-assigning (unbound uses event_set; a program may just re-add). */
	if (reopened % 2 == 0)
		CHECK(event_assign(&ev, ev.ev_base, fds[0], EV_READ | EV_PERSIST, on_read, NULL) ==
		      0);
	CHECK(event_add(&ev, NULL) == 0);
	CHECK(write(fds[1], "x", 1) == 1);
	reopened++;
}

int main(void)
{
	test_start(20);
	for (int locked = 0; locked < 2; locked++) {
		if (locked)
			CHECK(evthread_use_pthreads() == 0);
		struct event_base *b = event_base_new();
		CHECK(b != NULL);
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
		CHECK(evutil_make_socket_nonblocking(fds[0]) == 0);
		CHECK(event_assign(&ev, b, fds[0], EV_READ | EV_PERSIST, on_read, NULL) == 0);
		CHECK(event_add(&ev, NULL) == 0);
		reads = 0;
		reopened = 0;
		/* Three rounds: a timer's callback reopens the socket and writes to the new one;
		 * the read callback must see each byte and starts the next round (a lost
		 * registration leaves the loop waiting for nothing, until the alarm). */
		struct timeval t = {0, 1000};
		CHECK(event_assign(&kick, b, -1, 0, reopen, NULL) == 0);
		CHECK(event_add(&kick, &t) == 0);
		CHECK(event_base_dispatch(b) == 0);
		CHECK(reads == 3);
		CHECK(reopened == 3);
		CHECK(event_del(&kick) == 0);
		CHECK(event_del(&ev) == 0);
		close(fds[0]);
		close(fds[1]);
		event_base_free(b);
	}
	printf("ok\n");
	return 0;
}
