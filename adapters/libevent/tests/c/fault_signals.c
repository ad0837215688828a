/* Fault signals as events, nsd's way: its xfrd process watches SIGILL (event_set with
 * EV_SIGNAL | EV_PERSIST, event_base_set, event_add) and other processes send it. A sent
 * fault signal runs its event; one the CPU raises still ends the process (no endless fault). */
#include "check.h"
#include <sys/wait.h>

static int seen[NSIG];
static void on_sig(evutil_socket_t fd, short res, void *arg)
{
	CHECK(res == EV_SIGNAL);
	CHECK((void *)(long)fd == arg);
	seen[fd]++;
}

int main(void)
{
	test_start(10);
	struct event_base *b = event_base_new();
	CHECK(b);
	static const int sigs[] = {SIGILL, SIGFPE, SIGTRAP, SIGBUS, SIGSEGV};
	struct event ev[5];
	for (int i = 0; i < 5; i++) {
		event_set(&ev[i], sigs[i], EV_SIGNAL | EV_PERSIST, on_sig, (void *)(long)sigs[i]);
		CHECK(event_base_set(b, &ev[i]) == 0);
		CHECK(event_add(&ev[i], NULL) == 0);
	}
	for (int i = 0; i < 5; i++) {
		CHECK(kill(getpid(), sigs[i]) == 0); /* sent by a process: an event */
		CHECK(event_base_loop(b, EVLOOP_ONCE | EVLOOP_NONBLOCK) == 0);
		CHECK(seen[sigs[i]] == 1);
	}
	raise(SIGILL);
	CHECK(event_base_loop(b, EVLOOP_ONCE | EVLOOP_NONBLOCK) == 0);
	CHECK(seen[SIGILL] == 2);

	/* A child with the same events executes a trapping instruction: the fault is not an
	 * event, the default action ends the child (SIGILL on x86, SIGTRAP or SIGILL on arm). */
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		__builtin_trap();
		_exit(7);
	}
	int status = 0;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFSIGNALED(status));
	CHECK(WTERMSIG(status) == SIGILL || WTERMSIG(status) == SIGTRAP);
	CHECK(event_base_loop(b, EVLOOP_NONBLOCK) == 0);
	CHECK(seen[SIGILL] == 2 && seen[SIGTRAP] == 1);

	for (int i = 0; i < 5; i++)
		CHECK(event_del(&ev[i]) == 0);
	event_base_free(b);
	/* The last delete put the default dispositions back. */
	for (int i = 0; i < 3; i++) {
		struct sigaction sa;
		CHECK(sigaction(sigs[i], NULL, &sa) == 0);
		CHECK(sa.sa_handler == SIG_DFL);
	}
	puts("ok");
	return 0;
}
