/*
 * The baseline for bench/gateway.sh: a hello-world libmicrohttpd server with the
 * same daemon flags as the gateway (epoll, internal thread pool, keep-alive).
 * usage: bench_hello PORT THREADS   (runs until killed)
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char body[] = "{\"hello\":\"world\"}";

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	(void)cls, (void)url, (void)method, (void)version, (void)upload, (void)upload_size;
	if (!*con_cls) {
		*con_cls = (void *)1;
		return MHD_YES;
	}
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: bench_hello PORT THREADS\n");
		return 2;
	}
	unsigned port = (unsigned)atoi(argv[1]), threads = (unsigned)atoi(argv[2]);
	struct MHD_Daemon *d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_TURBO,
	    (uint16_t)port, NULL, NULL, on_request, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads,
	    MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)(16 * 1024), MHD_OPTION_END); /* the gateway's, src/gateway/server.c */
	if (!d) {
		fprintf(stderr, "bench_hello: cannot listen on %u\n", port);
		return 1;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sig;
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	return 0;
}
