/* event2/util.h helpers. */
#include "check.h"
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>

static int vfmt(char *buf, size_t n, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	int r = evutil_vsnprintf(buf, n, f, ap);
	va_end(ap);
	return r;
}

int main(void)
{
	test_start(10);
	int sv[2];
	CHECK(evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(evutil_make_socket_nonblocking(sv[0]) == 0);
	CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	CHECK(evutil_make_socket_closeonexec(sv[0]) == 0);
	CHECK(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
	CHECK(evutil_closesocket(sv[0]) == 0);
	CHECK(evutil_closesocket(sv[1]) == 0);
	CHECK(evutil_make_socket_nonblocking(-1) == -1);

	int l = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(evutil_make_listen_socket_reuseable(l) == 0);
	CHECK(evutil_make_listen_socket_reuseable_port(l) == 0);
	CHECK(evutil_make_tcp_listen_socket_deferred(l) == 0);
	int v = 0;
	socklen_t vl = sizeof v;
	CHECK(getsockopt(l, SOL_SOCKET, SO_REUSEADDR, &v, &vl) == 0 && v);
	close(l);
	int l6 = socket(AF_INET6, SOCK_STREAM, 0);
	if (l6 >= 0) {
		CHECK(evutil_make_listen_socket_ipv6only(l6) == 0);
		close(l6);
	}

	char buf[64];
	CHECK(evutil_snprintf(buf, sizeof buf, "%d-%s-%.2f-%ld-%d-%d-%d-%d", 7, "x", 2.5, 9L, 1, 2, 3, 4) == 18);
	CHECK(strcmp(buf, "7-x-2.50-9-1-2-3-4") == 0);
	CHECK(evutil_snprintf(buf, 4, "%s", "abcdef") == 6 && strcmp(buf, "abc") == 0);
	CHECK(vfmt(buf, sizeof buf, "%u/%c/%g", 5u, 'z', 0.25) == 8 && strcmp(buf, "5/z/0.25") == 0);
	CHECK(evutil_strtoll("-1234x", NULL, 10) == -1234);
	CHECK(evutil_ascii_strcasecmp("HeLLo", "hello") == 0);
	CHECK(evutil_ascii_strcasecmp("a", "b") < 0);
	CHECK(evutil_ascii_strncasecmp("abcX", "ABCy", 3) == 0);

	struct sockaddr_storage ss;
	int len = sizeof ss;
	CHECK(evutil_parse_sockaddr_port("127.0.0.1:8080", (struct sockaddr *)&ss, &len) == 0);
	CHECK(len == sizeof(struct sockaddr_in));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	CHECK(sin->sin_family == AF_INET && ntohs(sin->sin_port) == 8080 && ntohl(sin->sin_addr.s_addr) == 0x7f000001);
	struct sockaddr_storage s6;
	len = sizeof s6;
	CHECK(evutil_parse_sockaddr_port("[::1]:53", (struct sockaddr *)&s6, &len) == 0);
	CHECK(((struct sockaddr_in6 *)&s6)->sin6_family == AF_INET6 && ntohs(((struct sockaddr_in6 *)&s6)->sin6_port) == 53);
	len = sizeof s6;
	CHECK(evutil_parse_sockaddr_port("not an address", (struct sockaddr *)&s6, &len) == -1);
	struct sockaddr_storage s2;
	len = sizeof s2;
	CHECK(evutil_parse_sockaddr_port("127.0.0.1:9090", (struct sockaddr *)&s2, &len) == 0);
	CHECK(evutil_sockaddr_cmp((struct sockaddr *)&ss, (struct sockaddr *)&s2, 0) == 0);
	CHECK(evutil_sockaddr_cmp((struct sockaddr *)&ss, (struct sockaddr *)&s2, 1) < 0);

	struct in_addr ia;
	CHECK(evutil_inet_pton(AF_INET, "10.1.2.3", &ia) == 1);
	CHECK(strcmp(evutil_inet_ntop(AF_INET, &ia, buf, sizeof buf), "10.1.2.3") == 0);
	struct in6_addr i6;
	unsigned scope = 99;
	CHECK(evutil_inet_pton_scope(AF_INET6, "fe80::1%1", &i6, &scope) == 1 && scope == 1);

	struct evutil_addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_INET;
	hints.ai_flags = EVUTIL_AI_NUMERICHOST;
	CHECK(evutil_getaddrinfo("127.0.0.1", "80", &hints, &res) == 0 && res);
	evutil_freeaddrinfo(res);
	CHECK(evutil_gai_strerror(EAI_NONAME) != NULL);

	unsigned char rnd[32] = {0}, zero[32] = {0};
	CHECK(evutil_secure_rng_init() == 0);
	evutil_secure_rng_add_bytes("seed", 4);
	evutil_secure_rng_get_bytes(rnd, sizeof rnd);
	CHECK(memcmp(rnd, zero, sizeof rnd) != 0);

	struct tm tm;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = 94; tm.tm_mon = 10; tm.tm_mday = 6; tm.tm_hour = 8; tm.tm_min = 49; tm.tm_sec = 37; tm.tm_wday = 0;
	char date[64];
	CHECK(evutil_date_rfc1123(date, sizeof date, &tm) == 29);
	CHECK(strcmp(date, "Sun, 06 Nov 1994 08:49:37 GMT") == 0);

	struct evutil_monotonic_timer *mt = evutil_monotonic_timer_new();
	CHECK(mt);
	CHECK(evutil_configure_monotonic_time(mt, 0) == 0);
	struct timeval a, z;
	CHECK(evutil_gettime_monotonic(mt, &a) == 0);
	usleep(2000);
	CHECK(evutil_gettime_monotonic(mt, &z) == 0);
	CHECK(z.tv_sec * 1000000 + z.tv_usec > a.tv_sec * 1000000 + a.tv_usec);
	evutil_monotonic_timer_free(mt);
	printf("ok\n");
	return 0;
}
