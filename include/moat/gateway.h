/*
 * moat gateway: the HTTP server every read of order data goes through
 * (docs/openapi.yaml), and the pieces of its read path that other commands reuse.
 *
 * Read path for one order: authenticate → policy request (role, purpose, the
 * relations that hold now, order state, shift) → moat_policy_decide → quota →
 * virtual-number binding → ledger append (durable) → render the views → respond.
 * Nothing derived from buyer PII is sent unless its ACCESS entry is durable; a
 * denial is logged as a DENY entry.
 */
#ifndef MOAT_GATEWAY_H
#define MOAT_GATEWAY_H

#include "moat/app.h"
#include "moat/policy.h"

/* Fills *out for principal p reading order o for purpose at time now, asking the
 * store which relations hold (and, with assign not NULL, the window of p's latest
 * assign relation on o, from the same look-up). Strings in *out are borrowed
 * from p. */
moat_err_t moat_gateway_policy_request(moat_store_t *s, const moat_principal_row_t *p,
				       const moat_order_row_t *o, moat_purpose_t purpose,
				       moat_time_t now, moat_policy_request_t *out,
				       moat_assign_window_t *assign,
				       moat_error_t *err) MOAT_MUST_CHECK;

typedef struct moat_gateway moat_gateway_t;
struct moat_entry;

/* Where the gateway's events go: the ledger (moat_gateway_ledger_sink) or, until a
 * data directory has one, the journal below. append must be thread-safe and
 * durable on return; MOAT_EUNAVAIL when the write fails (nothing appended).
 * append_async (may be NULL) queues the entries (borrowed for the call only) and
 * returns at once; MOAT_OK means done(done_ctx, status, first_index) is called
 * exactly once, from another thread and possibly before append_async returns,
 * when the entries are durable (MOAT_OK) or failed (MOAT_EUNAVAIL, nothing
 * appended); any other return means nothing was queued and done is never called
 * (moat_ledger_append_async). */
typedef struct moat_gateway_sink {
	void *ctx;
	moat_err_t (*append)(void *ctx, const struct moat_entry *e, size_t n, uint64_t *first_index,
			     moat_error_t *err);
	moat_err_t (*append_async)(void *ctx, const struct moat_entry *e, size_t n,
				   void (*done)(void *done_ctx, moat_err_t status,
						uint64_t first_index),
				   void *done_ctx, moat_error_t *err);
	/* Optional pair (both or neither): append_deferred is append_async whose
	 * entries wait for the next flush instead of waking a sink thread; flush
	 * makes everything queued so far durable (or failed) on the calling thread
	 * and returns true, or, while another thread writes a group, hands it to a
	 * sink thread and returns false at once (moat_ledger_append_deferred,
	 * moat_ledger_flush_try). The gateway's event loops queue one pass's reads
	 * this way and flush once per pass. */
	moat_err_t (*append_deferred)(void *ctx, const struct moat_entry *e, size_t n,
				      void (*done)(void *done_ctx, moat_err_t status,
						   uint64_t first_index),
				      void *done_ctx, moat_error_t *err);
	bool (*flush)(void *ctx);
	uint64_t (*size)(void *ctx);
	void (*fail_writes)(void *ctx, bool on); /* test hook; may be NULL */
} moat_gateway_sink_t;

/* A minimal durable event journal: one JSON line per entry in path, appended
 * and fdatasync'd under a lock, with group commit. For data directories that have
 * no ledger yet. */
typedef struct moat_journal moat_journal_t;
/* The ledger as a sink (borrowed l must outlive the gateway). */
void moat_gateway_ledger_sink(moat_ledger_t *l, moat_gateway_sink_t *out);
moat_err_t moat_journal_open(const char *path, moat_journal_t **out,
			     moat_error_t *err) MOAT_MUST_CHECK;
void moat_journal_close(moat_journal_t *j);
void moat_journal_sink(moat_journal_t *j, moat_gateway_sink_t *out);

typedef struct moat_gateway_opts {
	const char *listen;	  /* "HOST:PORT"; NULL = app config */
	int threads;		  /* 0 = app config */
	moat_gateway_sink_t sink; /* required */
	moat_ledger_t *ledger;	  /* serves /v1/ledger/… when set (borrowed) */
	/* Test hook: while a file exists at this path, event writes fail as if the
	 * disk were full. NULL = off. */
	const char *fail_flag_path;
	/* Replay clock (`moat serve --replay-clock`): a request's Moat-Replay-Time
	 * header (RFC 3339) is its "now" for policy, relation windows, quotas,
	 * virtual-number validity, sessions and ledger entry time, and
	 * Moat-Replay-Client-IP its source address; entries it makes are flagged
	 * replayed. For replaying simulated worlds only; false = headers ignored. */
	bool replay_clock;
} moat_gateway_opts_t;

/* Starts serving app (borrowed; must outlive the gateway) on its own threads.
 * Loads <data>/policy.conf (a changed policy is logged as a POLICY entry).
 * Caller stops it with moat_gateway_stop. */
moat_err_t moat_gateway_start(moat_app_t *app, const moat_gateway_opts_t *opts,
			      moat_gateway_t **out, moat_error_t *err) MOAT_MUST_CHECK;
/* Port actually bound (useful with port 0). */
int moat_gateway_port(const moat_gateway_t *g);
/* Re-reads policy.conf and moat.conf's reloadable settings; on any error keeps
 * the running policy and returns the error. */
moat_err_t moat_gateway_reload(moat_gateway_t *g, moat_error_t *err) MOAT_MUST_CHECK;
/* What the detector running beside the gateway reports after each step, for
 * /metrics (moat_detect_*): every ledger entry below `judged` is judged;
 * `replay_left` entries judged before a restart are still to be replayed before
 * it judges new ones; alerts and actions are the step's new ones; ok false
 * counts a failed step (judged and replay_left are then ignored). Until the
 * first call /metrics shows no detector figures. */
void moat_gateway_detect_progress(moat_gateway_t *g, uint64_t judged, uint64_t replay_left,
				  uint64_t alerts, uint64_t actions, bool ok);
/* Stops accepting, lets in-flight requests finish, frees g. NULL is a no-op. */
void moat_gateway_stop(moat_gateway_t *g);

#endif
