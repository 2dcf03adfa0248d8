/* Internals shared by the files of src/gateway/. Not a public header. */
#ifndef MOAT_GATEWAY_INTERNAL_H
#define MOAT_GATEWAY_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "moat/crypto.h"
#include "moat/entry.h"
#include "moat/gateway.h"

#define GW_MAX_URL 1024 /* path + query bytes */
#define GW_MAX_QUERY_VALUE 256
#define GW_MAX_BATCH 1000 /* records per ingest request */
#define GW_LIST_MAX 100	  /* orders per page */
#define GW_SESSION_TTL_MS (15 * 60 * 1000)

/* Routes, for metrics. */
typedef enum gw_route {
	R_NOT_FOUND = 0,
	R_HEALTHZ,
	R_METRICS,
	R_OPENAPI,
	R_SESSIONS,
	R_INGEST,
	R_ORDER_GET,
	R_ORDER_LIST,
	R_CALLS,
	R_LEDGER,
	R_REPORTS,
	R_CASES,
	R_COUNT
} gw_route_t;

#define GW_LAT_BUCKETS 12
#define GW_STATUS_SLOTS 16 /* 200 201 400 401 403 404 405 409 413 414 415 422 429 500 503 other */

typedef struct gw_metrics {
	atomic_ullong requests[R_COUNT][GW_STATUS_SLOTS];
	atomic_ullong lat_bucket[GW_LAT_BUCKETS + 1]; /* last = +Inf */
	atomic_ullong lat_sum_us;
	atomic_ullong lat_count;
	atomic_ullong views[MOAT_FIELD_COUNT][MOAT_VIEW_COUNT];
	atomic_ullong decisions_allow, decisions_deny;
	atomic_ullong quota_refusals;
	atomic_ullong ledger_failures;
	atomic_ullong logins_ok, logins_failed;
	atomic_ullong replayed; /* requests judged on a Moat-Replay-Time clock */
	/* moat_gateway_detect_progress */
	atomic_bool detect_on;
	atomic_ullong detect_judged, detect_replay, detect_alerts, detect_actions, detect_failures;
} gw_metrics_t;

/* A pool of store handles: SQLite handles are single-threaded, so each request
 * borrows one for its duration. */
typedef struct gw_store_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	moat_store_t **free;
	size_t n_free, n;
	moat_store_t **all;
} gw_store_pool_t;

/* One event loop: a libmicrohttpd daemon driven from its own thread (external
 * epoll), all of them accepting on one listening socket. A pass runs every
 * ready connection; the order reads in it queue their ledger entries deferred
 * and wait without a response, and the pass ends with one flush for all of
 * them: written on this thread when no other is writing a group, else handed
 * to the ledger's committer, whose completions wake the loop. */
typedef struct gw_loop {
	struct moat_gateway *g;
	struct MHD_Daemon *d;
	pthread_t th;
	bool started;
	int ep;		 /* epoll over the daemon's epoll fd, wake_fd and the stop fd */
	int wake_fd;	 /* eventfd: a connection of this loop was resumed elsewhere */
	moat_opener_t *opener; /* decrypts this loop's reads */
	/* This loop's own store handle (gw_store_acquire on the loop's thread).
	 * Order reads handled in one libmicrohttpd pass share one read snapshot,
	 * ended when the pass is over (or by the first write). */
	struct moat_store *store;
	bool need_flush; /* a deferred entry was queued in this pass */
	/* Reads of this loop whose deferred entries are not answered yet; when a
	 * flush was handed off, another thread answers them and wakes the loop,
	 * once until it runs again (wake_armed). */
	atomic_int handed_off;
	atomic_bool wake_armed;
	bool resumed;	 /* a connection of this loop was resumed on its own thread */
} gw_loop_t;

/* The loop running on this thread (NULL outside the gateway's loops). */
gw_loop_t *gw_loop_current(void);
/* Resumes connection c of loop w from any thread. A daemon driven from outside
 * has no channel of its own to learn of a resume (libmicrohttpd drops it in
 * that mode), so the loop is woken here: by its eventfd from another thread,
 * by a flag that makes its pass run the daemon again from its own. */
void gw_loop_resume(gw_loop_t *w, struct MHD_Connection *c);
/* Wakes loop w from another thread (once until it runs again). */
void gw_loop_wake(gw_loop_t *w);

struct moat_gateway {
	moat_app_t *app;
	gw_loop_t *loops;
	size_t n_loops;
	int listen_fd;
	int stop_fd; /* eventfd: readable once stopping */
	atomic_bool stopping;
	int port;
	moat_gateway_sink_t sink;
	moat_ledger_t *ledger; /* borrowed; NULL: no ledger endpoints */
	const char *fail_flag_path;
	pthread_rwlock_t policy_lock;
	moat_policy_t *policy; /* guarded by policy_lock */
	gw_store_pool_t pool;
	uint8_t session_key[32];
	uint64_t pool_lo, pool_hi; /* virtual-number pool */
	int grace_days;
	size_t max_body;
	/* `moat serve --replay-clock`: honour Moat-Replay-Time (and
	 * Moat-Replay-Client-IP) as the request's clock and source. Off in normal
	 * operation: a client's clock is never trusted otherwise. */
	bool replay_clock;
	gw_metrics_t m;
	/* Order reads waiting for their ledger entry (suspended or not), counted
	 * until freed; the loops leave only once this is back to zero. */
	atomic_int suspended;
	/* Serialises the gateway's own SQLite writes (quota counts, virtual-number
	 * bindings): writers queue here instead of in SQLite's busy handler, which
	 * sleeps in whole milliseconds. */
	pthread_mutex_t write_mu;
	/* Serialises the tracer (its exposure index file is brought up to date and
	 * saved by every call). */
	pthread_mutex_t trace_mu;
	/* Last read time per throttled principal (small open-addressed table). */
	pthread_mutex_t throttle_mu;
	struct {
		char principal[MOAT_ID_MAX + 1];
		moat_time_t last;
	} throttle[256];
};

/* Per-request state: the upload body, an arena, and the request's clock. */
typedef struct gw_req {
	moat_buf_t body;
	bool too_big;
	moat_arena_t *arena;
	uint64_t start_ns;
	/* "Now" for this request: the server's clock, or under --replay-clock the
	 * time named by Moat-Replay-Time (then replayed is true and every ledger
	 * entry the request makes carries the replayed flag). */
	moat_time_t now;
	bool replayed;
	char replay_ip[64]; /* Moat-Replay-Client-IP under --replay-clock, else "" */
	/* An order read waiting for its ledger entry (connection suspended); owned
	 * by the request, finished by gw_order_finish once the connection resumes. */
	struct gw_pending *pending;
} gw_req_t;

/* What a handler produces. */
typedef struct gw_resp {
	unsigned status;
	moat_buf_t body;
	const char *content_type;
	char ledger_index[32]; /* Moat-Ledger-Index header if set */
	const char *allow;     /* Allow header for 405 */
	bool www_auth;
} gw_resp_t;

/* The authenticated caller. */
typedef struct gw_auth {
	moat_principal_row_t p;
	char ip[64];
	const char *device; /* Moat-Device header or NULL */
	int action;	    /* strongest active detector action (moat_detect_action_t) */
	moat_time_t now;    /* the request's clock (gw_req_t.now) */
	bool replayed;	    /* gw_req_t.replayed */
} gw_auth_t;

/* Sets an error response {"error":{"code","message","field"}}. Returns status. */
unsigned gw_error(gw_resp_t *r, unsigned status, const char *code, const char *field,
		  const char *fmt, ...) MOAT_PRINTF(5, 6);
/* Maps a moat error to a status and error response. */
unsigned gw_error_from(gw_resp_t *r, const moat_error_t *e);

/* Appends events through the sink, honouring the test fail flag. */
moat_err_t gw_append(moat_gateway_t *g, const moat_entry_t *e, size_t n, uint64_t *first,
		     moat_error_t *err) MOAT_MUST_CHECK;
/* The same without waiting: sink.append_async (which must be set), or with
 * deferred sink.append_deferred, whose caller flushes later (the loop does, at
 * the end of its pass). The contract of moat_ledger_append_async. */
moat_err_t gw_append_async(moat_gateway_t *g, const moat_entry_t *e, size_t n, bool deferred,
			   void (*done)(void *ctx, moat_err_t status, uint64_t first), void *ctx,
			   moat_error_t *err) MOAT_MUST_CHECK;

moat_store_t *gw_store_acquire(moat_gateway_t *g);
void gw_store_release(moat_gateway_t *g, moat_store_t *s);

/* The policy, read-locked until gw_policy_put. */
const moat_policy_t *gw_policy_get(moat_gateway_t *g);
void gw_policy_put(moat_gateway_t *g);

/* Handlers. */
/* GET /v1/orders/{id}. With a deferring or asynchronous sink an allowed or
 * refused read does not wait for its ledger entry: it sets q->pending and leaves
 * r unset (suspending the connection for an asynchronous sink); once the entry's
 * completion has come (gw_pending_ready) gw_order_finish fills r. */
void gw_order_get(moat_gateway_t *g, struct MHD_Connection *c, moat_store_t *s, const gw_auth_t *a,
		  const char *order_id, gw_req_t *q, gw_resp_t *r);
/* Fills r for the read q->pending (resumed: its entry is durable or failed;
 * nothing of the order is rendered unless it is durable) and frees it. */
void gw_order_finish(moat_gateway_t *g, gw_req_t *q, gw_resp_t *r);
/* A pending read whose request ended before it was answered: freed now if its
 * completion has come, else by the completion. NULL is a no-op. */
void gw_pending_abandon(struct gw_pending *p);
/* Whether the read's completion has come (gw_order_finish may run). */
bool gw_pending_ready(const struct gw_pending *p);
void gw_order_list(moat_gateway_t *g, struct MHD_Connection *c, moat_store_t *s, const gw_auth_t *a,
		   gw_resp_t *r);
/* The records of a batch body: NDJSON (Content-Type application/x-ndjson, one
 * object a line, blank lines skipped), one JSON object or an array. A new array
 * of at least one and at most GW_MAX_BATCH records (not checked to be objects),
 * or NULL with the error response set (noun names them: "records"). */
json_t *gw_parse_batch(struct MHD_Connection *c, const gw_req_t *q, const char *noun, gw_resp_t *r);
void gw_ingest(moat_gateway_t *g, struct MHD_Connection *c, moat_store_t *s, const gw_auth_t *a,
	       moat_import_kind_t kind, gw_req_t *q, gw_resp_t *r);
void gw_calls(moat_gateway_t *g, moat_store_t *s, const gw_auth_t *a, gw_req_t *q, gw_resp_t *r);
/* POST /v1/reports; GET /v1/cases (case_id NULL) and /v1/cases/{case_id}. */
void gw_reports(moat_gateway_t *g, struct MHD_Connection *c, moat_store_t *s, const gw_auth_t *a,
		gw_req_t *q, gw_resp_t *r);
void gw_cases(moat_gateway_t *g, struct MHD_Connection *c, moat_store_t *s, const gw_auth_t *a,
	      const char *case_id, gw_resp_t *r);
void gw_sessions(moat_gateway_t *g, struct MHD_Connection *c, moat_store_t *s, gw_req_t *q,
		 gw_resp_t *r);
void gw_alerts(struct MHD_Connection *c, moat_store_t *s, const gw_auth_t *a, gw_resp_t *r);
/* THROTTLE: true if principal read within the last second (then refuse). */
bool gw_throttled(moat_gateway_t *g, const char *principal, moat_time_t now);
void gw_ledger_checkpoint(moat_gateway_t *g, gw_resp_t *r);
/* rest: the path after "/v1/ledger/". */
void gw_ledger(moat_gateway_t *g, struct MHD_Connection *c, const gw_auth_t *a, const char *rest,
	       gw_resp_t *r);
/* Checks a session token against the request's clock now; on success fills
 * principal id. */
bool gw_session_check(moat_gateway_t *g, const char *token, moat_time_t now,
		      char principal[MOAT_ID_MAX + 1]);
/* The source address of the request: Moat-Replay-Client-IP under the replay
 * clock, else the socket's peer (IPv4 or IPv6); "" if unknown. */
void gw_client_ip(struct MHD_Connection *c, const gw_req_t *q, char out[64]);

/* Query helpers: fails (422) on unknown keys. allowed is NULL-terminated. */
bool gw_query_only(struct MHD_Connection *c, const char *const *allowed, gw_resp_t *r);

/* The OpenAPI description as JSON (static storage), built in at compile time. */
extern const char moat_openapi_json[];
extern const size_t moat_openapi_json_len;

#endif
