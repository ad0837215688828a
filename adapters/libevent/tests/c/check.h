/* Shared by the C tests: CHECK aborts the test with its location; every test is bounded by
 * an alarm. Compiled against the system's libevent headers, linked to rouse-libevent. */
#ifndef ROUSE_CHECK_H
#define ROUSE_CHECK_H
#define _GNU_SOURCE
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/event_compat.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

const char *rouse_libevent_version(void);
const size_t *rouse_libevent_layout(size_t *n);

#define CHECK(c)                                                                          \
	do {                                                                              \
		if (!(c)) {                                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
			exit(1);                                                          \
		}                                                                         \
	} while (0)

/* Log messages are kept so tests can assert that misuse was reported. */
static char last_log[512];
static int n_logs;
static void keep_log(int severity, const char *msg)
{
	(void)severity;
	snprintf(last_log, sizeof last_log, "%s", msg);
	n_logs++;
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char m[] = "test timed out\n";
	if (write(2, m, sizeof m - 1) < 0) {
	}
	_exit(3);
}

/* Call first: bounds the test, checks it runs on rouse, keeps log messages. */
static void test_start(unsigned seconds)
{
	signal(SIGALRM, on_alarm);
	const char *scale = getenv("ROUSE_TEST_TIMEOUT_SCALE"); /* valgrind runs slower */
	alarm(seconds * (scale ? (unsigned)atoi(scale) : 1));
	CHECK(strncmp(rouse_libevent_version(), "rouse-libevent ", 15) == 0);
	event_set_log_callback(keep_log);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void pair(int fds[2])
{
	CHECK(evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
	CHECK(evutil_make_socket_nonblocking(fds[0]) == 0);
	CHECK(evutil_make_socket_nonblocking(fds[1]) == 0);
}
#endif
