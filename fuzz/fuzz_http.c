/* The gateway over real HTTP (src/gateway/): a server started once on a small
 * data directory (in /dev/shm when it exists), then one request per input,
 * built from it so that it is always well-formed HTTP and reaches moat's own
 * code: a method, a caller (an API key of each role, none, a malformed one, or
 * text from the input), a route with a path segment and a query from the input
 * (percent-encoded), a content type and a body. Invariants on every answer:
 * - the server answers, with a status the API documents (never 500);
 * - an error (>= 400) carries {"error":{"code":…,"message":…}};
 * - a JSON success body is JSON;
 * - the buyer's full resident id, which the policy grants only to
 *   platform_service and platform_ops, is never sent to anyone else;
 * - and the server still answers /healthz afterwards. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "fuzz.h"
#include "moat/app.h"
#include "moat/crypto.h"
#include "moat/gateway.h"
#include "moat/json.h"
#include "moat/ledger.h"
#include "moat/store.h"
#include "world.h"

static moat_app_t *app;
static moat_gateway_t *gw;
static int port;
static char keys[MOAT_ROLE_COUNT][72];

static void stop(void)
{
	moat_gateway_stop(gw);
	moat_app_close(app);
	fuzz_world_remove();
}

static void start(void)
{
	app = fuzz_world_open("http", keys);
	app->config.max_body = 64 * 1024;
	app->config.request_timeout_s = 2;
	moat_error_t e = {0};
	moat_gateway_opts_t go = {0};
	go.listen = "127.0.0.1:0";
	go.threads = 2;
	moat_gateway_ledger_sink(app->ledger, &go.sink);
	go.ledger = app->ledger;
	FUZZ_CHECK(moat_gateway_start(app, &go, &gw, &e) == MOAT_OK);
	port = moat_gateway_port(gw);
	atexit(stop);
}

typedef struct {
	const uint8_t *p;
	size_t n;
} input_t;

static unsigned byte(input_t *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* A string of up to `max` bytes from the input (its length first),
 * percent-encoded except for the characters in `keep`. */
static void text(input_t *in, size_t max, const char *keep, char *out, size_t cap)
{
	size_t n = byte(in) % (max + 1), k = 0;
	for (size_t i = 0; i < n && in->n && k + 4 < cap; i++) {
		unsigned c = byte(in);
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    (c && strchr(keep, (int)c)))
			out[k++] = (char)c;
		else
			k += (size_t)snprintf(out + k, cap - k, "%%%02X", c);
	}
	out[k] = '\0';
}

/* Sends the request and reads the whole answer (the request says Connection:
 * close). Returns the status, or -1 if the server did not answer. */
static int exchange(const char *req, size_t len, moat_buf_t *resp)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(fd >= 0);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	FUZZ_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	size_t off = 0;
	while (off < len) {
		ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* the server may answer (413) and close before the body is sent */
		off += (size_t)w;
	}
	char buf[16384];
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		FUZZ_CHECK(moat_buf_append(resp, buf, (size_t)r) == MOAT_OK);
	}
	close(fd);
	int status = -1;
	if (resp->len >= 12 && memcmp(resp->data, "HTTP/1.", 7) == 0)
		status = atoi(resp->data + 9);
	return status;
}

static const char *body_of(const moat_buf_t *resp, size_t *len)
{
	const char *h = memmem(resp->data, resp->len, "\r\n\r\n", 4);
	if (!h) {
		*len = 0;
		return NULL;
	}
	*len = resp->len - (size_t)(h + 4 - resp->data);
	return h + 4;
}

static bool header_has(const moat_buf_t *resp, const char *needle)
{
	const char *h = memmem(resp->data, resp->len, "\r\n\r\n", 4);
	return h && memmem(resp->data, (size_t)(h - resp->data), needle, strlen(needle));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!gw)
		start();
	input_t in = {data, size};
	static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"};
	const char *method = methods[byte(&in) % 6];
	unsigned who = byte(&in) % (MOAT_ROLE_COUNT + 3);
	char auth[700] = "";
	if (who < MOAT_ROLE_COUNT) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", keys[who]);
	} else if (who == MOAT_ROLE_COUNT + 1) {
		char t[300];
		text(&in, 120, "._-~+/=", t, sizeof t);
		snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", t);
	} else if (who == MOAT_ROLE_COUNT + 2) {
		snprintf(auth, sizeof auth, "Authorization: Basic cDox\r\n");
	}
	/* Routes; a trailing '*' takes the path segment from the input. */
	static const char *const routes[] = {"/v1/orders/*",
					     "/v1/orders",
					     "/v1/orders/O*",
					     "/v1/ledger/proof/inclusion",
					     "/v1/ledger/proof/consistency",
					     "/v1/ledger/tile/*",
					     "/v1/ledger/checkpoint",
					     "/v1/cases/*",
					     "/v1/cases",
					     "/v1/alerts",
					     "/v1/calls",
					     "/v1/reports",
					     "/v1/parties",
					     "/v1/principals",
					     "/v1/relations",
					     "/v1/sessions",
					     "/healthz",
					     "/metrics",
					     "/*",
					     "/v1/*"};
	const char *route = routes[byte(&in) % (sizeof routes / sizeof *routes)];
	char seg[600], query[1200], path[2000];
	text(&in, 160, "._-~/", seg, sizeof seg);
	text(&in, 250, "._-~=&:+", query, sizeof query);
	size_t rl = strlen(route);
	bool with_seg = route[rl - 1] == '*';
	int k =
	    snprintf(path, sizeof path, "%.*s%s", (int)(rl - with_seg), route, with_seg ? seg : "");
	if (query[0] && k > 0 && (size_t)k < sizeof path)
		snprintf(path + k, sizeof path - (size_t)k, "?%s", query);
	static const char *const types[] = {"", "Content-Type: application/json\r\n",
					    "Content-Type: application/x-ndjson\r\n",
					    "Content-Type: text/plain\r\n"};
	const char *type = types[byte(&in) % 4];
	size_t body_len = in.n;
	moat_buf_t req, resp;
	moat_buf_init(&req, 1u << 20);
	moat_buf_init(&resp, 4u << 20);
	FUZZ_CHECK(moat_buf_printf(&req,
				   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s"
				   "Content-Length: %zu\r\n\r\n",
				   method, path, auth, type, body_len) == MOAT_OK);
	FUZZ_CHECK(moat_buf_append(&req, in.p, body_len) == MOAT_OK);
	int status = exchange(req.data, req.len, &resp);
	if (getenv("FUZZ_HTTP_DEBUG"))
		fprintf(stderr, "%d %s %s (caller %u)\n", status, method, path, who);
	/* The statuses the API documents (docs/openapi.yaml); 500 would be a bug. */
	static const int documented[] = {200, 201, 400, 401, 403, 404, 405,
					 409, 413, 414, 415, 422, 429, 503};
	bool known = false;
	for (size_t i = 0; i < sizeof documented / sizeof *documented; i++)
		known |= status == documented[i];
	FUZZ_CHECK(known);
	size_t blen;
	const char *body = body_of(&resp, &blen);
	if (strcmp(method, "HEAD") != 0 && body && blen && header_has(&resp, "application/json")) {
		json_error_t je;
		json_t *j = json_loadb(body, blen, JSON_DECODE_ANY, &je);
		FUZZ_CHECK(j != NULL);
		if (status >= 400) {
			json_t *err = json_object_get(j, "error");
			FUZZ_CHECK(json_is_string(json_object_get(err, "code")) &&
				   json_is_string(json_object_get(err, "message")));
		}
		json_decref(j);
	}
	if (status >= 400 && strcmp(method, "HEAD") != 0 && status != 405)
		FUZZ_CHECK(header_has(&resp, "application/json"));
	/* (unless the request itself carried it: errors may quote the request) */
	if (who != MOAT_ROLE_PLATFORM_SERVICE && who != MOAT_ROLE_PLATFORM_OPS &&
	    !memmem(req.data, req.len, FUZZ_ID_NUMBER, strlen(FUZZ_ID_NUMBER)))
		FUZZ_CHECK(!memmem(resp.data, resp.len, FUZZ_ID_NUMBER, strlen(FUZZ_ID_NUMBER)));
	moat_buf_reset(&resp);
	static const char health[] =
	    "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	FUZZ_CHECK(exchange(health, sizeof health - 1, &resp) == 200);
	moat_buf_free(&req);
	moat_buf_free(&resp);
	return 0;
}
