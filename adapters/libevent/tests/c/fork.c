/* fork + event_reinit: the child's events work on a new poller; a thread the child starts
 * can wake its loop; event_reinit without a fork succeeds and changes nothing. */
#include "check.h"
#include <pthread.h>
#include <sys/wait.h>

static int n_read;
static struct event_base *b;
static struct event *u;
static void on_read(evutil_socket_t fd, short res, void *arg)
{
	(void)res;
	(void)arg;
	char c;
	if (read(fd, &c, 1) == 1)
		n_read++;
}
static int n_user;
static void on_user(evutil_socket_t fd, short res, void *arg)
{
	(void)fd;
	(void)res;
	(void)arg;
	if (++n_user >= 2)
		event_base_loopbreak(b);
}
static void *wake(void *arg)
{
	(void)arg;
	usleep(20 * 1000);
	event_active(u, 0, 0);
	return NULL;
}

int main(void)
{
	test_start(20);
	evthread_use_pthreads();
	b = event_base_new();
	int fds[2];
	pair(fds);
	struct event *r = event_new(b, fds[0], EV_READ | EV_PERSIST, on_read, NULL);
	u = event_new(b, -1, EV_PERSIST, on_user, NULL);
	CHECK(event_add(r, NULL) == 0);
	CHECK(write(fds[1], "a", 1) == 1);
	CHECK(event_base_loop(b, EVLOOP_ONCE) == 0);
	CHECK(n_read == 1);
	/* Without a fork there is nothing to re-initialize: libevent returns 0 too. */
	CHECK(event_reinit(b) == 0);
	/* A wake request in flight when forking (the libevent pending-flag hang). */
	event_active(u, 0, 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		alarm(10);
		if (event_reinit(b) != 0)
			_exit(10);
		if (write(fds[1], "b", 1) != 1)
			_exit(11);
		event_base_loop(b, EVLOOP_NONBLOCK); /* runs the inherited activation and the read */
		if (n_read != 2)
			_exit(12);
		pthread_t t;
		pthread_create(&t, NULL, wake, NULL);
		if (event_base_loop(b, EVLOOP_NO_EXIT_ON_EMPTY) != 0)
			_exit(13);
		pthread_join(t, NULL);
		if (n_user < 2)
			_exit(14);
		_exit(0);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* The parent is unaffected. */
	CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	CHECK(n_user == 1);
	event_free(r);
	event_free(u);
	event_base_free(b);
	printf("ok\n");
	return 0;
}
