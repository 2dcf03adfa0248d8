/*
 * moat detect: the streaming detector. It reads ledger entries in ledger order,
 * keeps features per principal, per peer group (same role and party) and per
 * source (ip, device) over sliding windows of *event* time, evaluates declarative
 * rules (docs/rules.md) and raises alerts that may carry an action (throttle,
 * force masking, suspend) for the gateway to apply.
 *
 * Layers, each usable alone:
 *  - rules:    moat_detect_rules_parse / _check / _default_text — the rule file.
 *  - engine:   moat_detect_new / _feed / _free — pure in-memory, no I/O; entries
 *              may come from the ledger, a test or a benchmark. Deterministic:
 *              the same rules and entries give the same alerts, which is what
 *              makes restarts exactly-once (see moat_detect_catch_up).
 *  - store:    moat_store_alert_* / moat_store_action_* — alerts and actions
 *              tables (src/store/sqlite_detect.c).
 *  - app:      moat_detect_catch_up — runs the engine over a data directory's
 *              ledger from the persisted cursor, stores alerts and actions and
 *              appends ALERT / ACTION ledger entries.
 *
 * Threads: an engine or rule set is used by one thread at a time.
 */
#ifndef MOAT_DETECT_H
#define MOAT_DETECT_H

#include "moat/base.h"
#include "moat/entry.h"
#include "moat/model.h"
#include "moat/store.h"

/* Caps on the rule file. */
#define MOAT_DETECT_RULES_MAX 128
#define MOAT_DETECT_RULE_NAME_MAX 48
#define MOAT_DETECT_RULES_FILE_MAX (256u * 1024u)
/* Evidence kept per alert: the ledger indexes of the most recent contributing
 * entries (the alert's `count` says how many contributed in all). */
#define MOAT_DETECT_EVIDENCE_MAX 16

typedef enum moat_detect_severity {
	MOAT_SEVERITY_INFO = 0,
	MOAT_SEVERITY_LOW,
	MOAT_SEVERITY_MEDIUM,
	MOAT_SEVERITY_HIGH,
	MOAT_SEVERITY_CRITICAL,
	MOAT_SEVERITY_COUNT
} moat_detect_severity_t;

/* Ordered by strength: a stronger active action wins over a weaker one. */
typedef enum moat_detect_action {
	MOAT_ACTION_NONE = 0,
	MOAT_ACTION_THROTTLE,   /* gateway: slow this principal down (1 read/s) */
	MOAT_ACTION_FORCE_MASK, /* gateway: no FULL/VIRTUAL view for this principal */
	MOAT_ACTION_SUSPEND,    /* gateway: refuse every request of this principal */
	MOAT_ACTION_COUNT
} moat_detect_action_t;

const char *moat_detect_severity_name(moat_detect_severity_t s);
const char *moat_detect_action_name(moat_detect_action_t a);
int moat_detect_severity_parse(const char *s); /* -1 if unknown */
int moat_detect_action_parse(const char *s);   /* -1 if unknown */

/* ---- rules ------------------------------------------------------------------------ */

typedef struct moat_detect_rules moat_detect_rules_t;

/* Parses rule-file text (len bytes, at most MOAT_DETECT_RULES_FILE_MAX). Errors
 * name the line and the key ("line 12, field condition: …"). *out is owned by
 * the caller (moat_detect_rules_free). */
moat_err_t moat_detect_rules_parse(const char *text, size_t len, moat_detect_rules_t **out,
				   moat_error_t *err) MOAT_MUST_CHECK;
/* Reads and parses a file. */
moat_err_t moat_detect_rules_load(const char *path, moat_detect_rules_t **out,
				  moat_error_t *err) MOAT_MUST_CHECK;
void moat_detect_rules_free(moat_detect_rules_t *r);
size_t moat_detect_rules_count(const moat_detect_rules_t *r);
/* Name, type ("event_count", …), severity and action of rule i (< count). */
const char *moat_detect_rules_name(const moat_detect_rules_t *r, size_t i);
const char *moat_detect_rules_type(const moat_detect_rules_t *r, size_t i);
moat_detect_severity_t moat_detect_rules_severity(const moat_detect_rules_t *r, size_t i);
moat_detect_action_t moat_detect_rules_action(const moat_detect_rules_t *r, size_t i);

/* The default rule set shipped with moat (static text; `moat init` writes it to
 * <data>/rules.conf). */
const char *moat_detect_rules_default_text(void);

/* ---- engine ----------------------------------------------------------------------- */

/* What the detector knows about a principal (from the store, or a test table). */
typedef struct moat_detect_principal {
	moat_role_t role;
	char party[MOAT_ID_MAX + 1];
	/* Shift in minutes of the local day (moat_detect_set_local_offset; +08:00
	 * unless the policy says otherwise), or -1/-1 for no shift. The
	 * shift may wrap midnight (start > end). */
	int shift_start, shift_end;
} moat_detect_principal_t;

/* Looks up principal `id`: returns 1 and fills *out if known, 0 if unknown (the
 * detector then treats it as a principal without role, party or shift), -1 on an
 * error (the feed fails with MOAT_EUNAVAIL). Called once per new principal. */
typedef int (*moat_detect_lookup_fn)(void *ctx, const char *id, moat_detect_principal_t *out);

/* The daily plaintext quota of policy rule `rule` as the gateway charges it
 * (moat_policy_decision_t.quota): a read decided by that rule with a FULL or
 * VIRTUAL view of a personal field or the items takes one from the principal's
 * quota of the day. Returns the quota, or a value <= 0 if the rule has none (is
 * unlimited, denies, or is unknown): its reads are not charged. */
typedef int64_t (*moat_detect_quota_fn)(void *ctx, const char *rule);

/* Parses "HH:MM-HH:MM" into minutes; false if malformed. */
bool moat_detect_shift_parse(const char *s, int *start, int *end);

/* One alert as the engine raises it. Strings are borrowed until the callback
 * returns. The alert id is deterministic: "<rule>@<trigger index>". */
typedef struct moat_detect_alert {
	char id[MOAT_DETECT_RULE_NAME_MAX + 24];
	const char *rule;
	const char *title;
	moat_detect_severity_t severity;
	moat_detect_action_t action;
	const char *principal; /* the principal acted on (the trigger's actor); may be NULL */
	const char *group_by;  /* "principal", "ip", "device", "peer" … */
	const char *key;       /* value of the group-by field */
	moat_time_t time;      /* event time of the trigger */
	uint64_t trigger;      /* ledger index of the trigger */
	double value;          /* the measured value (count, ratio, z, p) */
	double threshold;      /* what it was compared against */
	uint64_t count;        /* contributing entries in the window */
	size_t n_evidence;
	uint64_t evidence[MOAT_DETECT_EVIDENCE_MAX]; /* ascending ledger indexes */
	bool replay;           /* raised while replaying below the quiet mark */
} moat_detect_alert_t;

/* Alert sink: return 0 to continue, non-zero to fail the feed with MOAT_EUNAVAIL. */
typedef int (*moat_detect_alert_fn)(void *ctx, const moat_detect_alert_t *a);

typedef struct moat_detect moat_detect_t;

/* Creates an engine over rules (borrowed; must outlive the engine). lookup may be
 * NULL (every principal unknown). on_alert receives every alert. */
moat_err_t moat_detect_new(const moat_detect_rules_t *rules, moat_detect_lookup_fn lookup,
			   void *lookup_ctx, moat_detect_alert_fn on_alert, void *alert_ctx,
			   moat_detect_t **out, moat_error_t *err) MOAT_MUST_CHECK;
void moat_detect_free(moat_detect_t *d);

/* Local time for shifts and the quota day, as minutes east of UTC (the policy's
 * `timezone`, moat_policy_tz_minutes; default +08:00 = 480; values beyond a day
 * are ignored). Call before the first feed. */
void moat_detect_set_local_offset(moat_detect_t *d, int minutes);

/* Tells the engine the policy's quotas (fn may be NULL: then every plaintext
 * read counts as charged and quota shares are unknown, 0). Call before the first
 * feed; ctx is borrowed for the engine's life. */
void moat_detect_set_quota(moat_detect_t *d, moat_detect_quota_fn fn, void *ctx);

/* Entries with index < quiet update state but their alerts are passed with
 * replay = true (the caller already stored them before a restart). */
void moat_detect_set_quiet(moat_detect_t *d, uint64_t quiet);

/* Feeds entry e at ledger index `index` (indexes must increase). ALERT, ACTION,
 * POLICY, PRINCIPAL, REPORT and CALL entries are skipped. Event time may go
 * backwards a little (imported logs); windows then use the latest time seen.
 * Fails with MOAT_EUNAVAIL if the lookup or the alert sink failed, MOAT_ENOMEM. */
moat_err_t moat_detect_feed(moat_detect_t *d, uint64_t index, const moat_entry_t *e,
			    moat_error_t *err) MOAT_MUST_CHECK;

/* Feeds n entries, es[i] at ledger index index[i], with the same effect as
 * moat_detect_feed on each in turn. It looks up the principals of several
 * entries before judging them so that their cache misses overlap: a caller
 * holding entries decoded ahead (each with its own strings) should prefer it.
 * On failure, the entries before the one that failed were fed and the engine is
 * as moat_detect_feed leaves it after a failure. */
moat_err_t moat_detect_feed_batch(moat_detect_t *d, const uint64_t *index, const moat_entry_t *es,
				  size_t n, moat_error_t *err) MOAT_MUST_CHECK;

/* Per-principal features over the last 24 hours of event time before `at`
 * (hourly buckets: the window is 23 to 24 hours long). */
typedef struct moat_detect_features {
	uint64_t reads;            /* ACCESS entries */
	uint64_t distinct_orders;  /* distinct order ids read (24-bit hashes: see docs/rules.md) */
	uint64_t plaintext;        /* reads with a FULL or VIRTUAL personal field */
	uint64_t no_relation;      /* reads with relations == 0 */
	uint64_t off_shift;        /* reads outside the principal's shift */
	uint64_t new_ip;           /* entries from an ip this principal never used before */
	uint64_t new_device;       /* same for devices */
	uint64_t denials;          /* DENY entries */
	uint64_t export_rows;      /* rows exported */
	uint64_t login_failures;   /* failed logins as this username */
	/* Quota use. quota_used: plaintext reads charged to the daily quota on the
	 * local day (moat_detect_set_local_offset) of `at` — reads decided by a rule with a quota that
	 * showed a personal field or the items FULL or VIRTUAL (every such read
	 * when the engine has no quota function). quota_share: quota_used over the
	 * quota of the rule that charged the last of them, 0 if unknown. */
	uint64_t quota_used;
	uint64_t quota_refusals;   /* reads refused for a spent quota (429), last 24 h */
	double quota_share;
	double no_relation_share;  /* no_relation / reads (0 if no reads) */
	double off_shift_share;    /* off_shift / reads */
} moat_detect_features_t;

/* MOAT_ENOTFOUND if the engine never saw the principal. */
moat_err_t moat_detect_features(moat_detect_t *d, const char *principal, moat_time_t at,
				moat_detect_features_t *out) MOAT_MUST_CHECK;

/* Principals tracked and bytes of engine state (for the benchmark). */
size_t moat_detect_principals(const moat_detect_t *d);
size_t moat_detect_memory(const moat_detect_t *d);

/* ---- statistics (exposed for tests) ---------------------------------------------- */

/* Median and MAD (median absolute deviation, unscaled) of n values; the array is
 * reordered. n == 0 gives 0/0. */
void moat_detect_median_mad(double *v, size_t n, double *median, double *mad);
/* P(X >= k) for X ~ Poisson(lambda), computed in log space. */
double moat_detect_poisson_tail(uint64_t k, double lambda);

/* ---- stored alerts and actions (src/store/sqlite_detect.c) ----------------------- */

typedef enum moat_alert_status { MOAT_ALERT_OPEN = 0, MOAT_ALERT_RESOLVED } moat_alert_status_t;

typedef struct moat_alert_row {
	char id[MOAT_DETECT_RULE_NAME_MAX + 24];
	char rule[MOAT_DETECT_RULE_NAME_MAX + 1];
	moat_detect_severity_t severity;
	moat_detect_action_t action;
	char principal[MOAT_ID_MAX + 1]; /* "" if none */
	char group_by[16];
	char key[MOAT_TEXT_MAX + 1];
	moat_time_t time;
	uint64_t trigger;
	double value, threshold;
	uint64_t count;
	size_t n_evidence;
	uint64_t evidence[MOAT_DETECT_EVIDENCE_MAX];
	int64_t ledger_index; /* index of the ALERT entry, -1 if not on a ledger */
	moat_alert_status_t status;
	moat_time_t resolved_at;
	char resolution[MOAT_TEXT_MAX + 1];
	char title[MOAT_TEXT_MAX + 1];
} moat_alert_row_t;

/* Inserts the alert; an alert with the same id already stored is left as is and
 * *inserted (may be NULL) is false. */
moat_err_t moat_store_alert_put(moat_store_t *s, const moat_detect_alert_t *a, int64_t ledger_index,
				bool *inserted, moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_alert_get(moat_store_t *s, const char *id, moat_alert_row_t *out,
				moat_error_t *err) MOAT_MUST_CHECK;
/* Alerts newest first; status -1 = any; limit 0 = no limit. fn non-zero stops. */
moat_err_t moat_store_alert_list(moat_store_t *s, int status, size_t limit,
				 int (*fn)(void *ctx, const moat_alert_row_t *row), void *ctx,
				 moat_error_t *err) MOAT_MUST_CHECK;
/* Alerts whose ALERT ledger entry lies after index `after`, in ledger order (the
 * order they were raised); limit 0 = no limit. fn non-zero stops. */
moat_err_t moat_store_alert_after(moat_store_t *s, int64_t after, size_t limit,
				  int (*fn)(void *ctx, const moat_alert_row_t *row), void *ctx,
				  moat_error_t *err) MOAT_MUST_CHECK;
/* Marks an open alert resolved with a reason (1..MOAT_TEXT_MAX chars).
 * MOAT_ENOTFOUND, or MOAT_ECONFLICT if already resolved. */
moat_err_t moat_store_alert_resolve(moat_store_t *s, const char *id, const char *reason,
				    moat_time_t at, moat_error_t *err) MOAT_MUST_CHECK;

typedef struct moat_action_row {
	int64_t id;
	char principal[MOAT_ID_MAX + 1];
	moat_detect_action_t action;
	char alert_id[MOAT_DETECT_RULE_NAME_MAX + 24]; /* "" if set by hand */
	moat_time_t applied_at;  /* wall-clock time it was applied */
	moat_time_t lifted_at;   /* MOAT_TIME_NONE while active */
	char lift_reason[MOAT_TEXT_MAX + 1];
	int64_t ledger_index;    /* index of the ACTION entry that applied it, -1 if none */
} moat_action_row_t;

/* Records an active action; *id receives its id. */
moat_err_t moat_store_action_put(moat_store_t *s, const char *principal, moat_detect_action_t action,
				 const char *alert_id, moat_time_t applied_at, int64_t ledger_index,
				 int64_t *id, moat_error_t *err) MOAT_MUST_CHECK;
/* Lifts action id. MOAT_ENOTFOUND, or MOAT_ECONFLICT if already lifted. */
moat_err_t moat_store_action_lift(moat_store_t *s, int64_t id, const char *reason, moat_time_t at,
				  moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_action_get(moat_store_t *s, int64_t id, moat_action_row_t *out,
				 moat_error_t *err) MOAT_MUST_CHECK;
/* Active actions (active_only) or all, newest first. */
moat_err_t moat_store_action_list(moat_store_t *s, bool active_only,
				  int (*fn)(void *ctx, const moat_action_row_t *row), void *ctx,
				  moat_error_t *err) MOAT_MUST_CHECK;
/* The strongest active action on principal (MOAT_ACTION_NONE if none): what the
 * gateway consults before every request. */
moat_err_t moat_store_action_for(moat_store_t *s, const char *principal, moat_detect_action_t *out,
				 moat_error_t *err) MOAT_MUST_CHECK;
/* moat_store_principal_by_key and moat_store_action_for of that principal in one
 * look-up: what the gateway runs before every request made with an API key. */
moat_err_t moat_store_principal_auth(moat_store_t *s, const uint8_t hash[32],
				     moat_principal_row_t *out, moat_detect_action_t *action,
				     moat_error_t *err) MOAT_MUST_CHECK;

/* ---- running over a log, exactly once (src/detect/run.c) ------------------------- */

/* Where entries come from and where ALERT / ACTION entries go: the ledger in
 * production (moat_detect_catch_up), an in-memory array in tests. */
typedef struct moat_detect_log {
	/* Positions the reader at index `start`. */
	moat_err_t (*seek)(void *ctx, uint64_t start, moat_error_t *err);
	/* Next entry: MOAT_OK with *index and *e set (strings borrowed until the next
	 * call), MOAT_ENOTFOUND at the end. */
	moat_err_t (*next)(void *ctx, uint64_t *index, moat_entry_t *e, moat_error_t *err);
	/* Appends n entries durably as consecutive indexes; *first receives the first.
	 * NULL: alerts are stored with ledger_index -1 and nothing is appended. */
	moat_err_t (*append)(void *ctx, const moat_entry_t *es, size_t n, uint64_t *first,
			     moat_error_t *err);
	void *ctx;
	/* Called at the start of every runner step (may be NULL): make entries
	 * appended since the last step readable (the ledger integrates them). */
	moat_err_t (*refresh)(void *ctx, moat_error_t *err);
} moat_detect_log_t;

/* What one run did. */
typedef struct moat_detect_stats {
	uint64_t entries;   /* entries read (replayed and new) */
	uint64_t processed; /* new entries judged (index >= the cursor it started from) */
	uint64_t alerts;    /* new alerts stored */
	uint64_t actions;   /* new actions applied */
	uint64_t cursor;    /* cursor after the run */
	uint64_t judged;    /* every entry below this index is judged (>= cursor: the
			     * cursor is persisted less often, see cursor_interval) */
	uint64_t replay_left; /* entries an earlier run judged that the engine must
			       * still replay before it judges new ones */
	bool more;	      /* the step stopped at its budget: step again */
} moat_detect_stats_t;

/* The meta key holding the cursor: every entry below it has been judged and its
 * alerts stored. */
#define MOAT_DETECT_CURSOR_KEY "detect.cursor"

/*
 * Judges every entry of the log from the persisted cursor to its end, exactly
 * once: the engine replays the log from index 0 to rebuild its windows (alerts
 * below the cursor are replays and are dropped), new alerts are appended as ALERT
 * entries (with an ACTION entry for each alert that acts on a principal), then
 * stored with the actions and the new cursor in one store transaction, every
 * `batch` entries (0 = 4096) and at the end. A crash between the ledger append
 * and the store commit is repaired on the next run: ALERT entries already on the
 * log past the cursor are recognised by their alert id and not appended again.
 * rules and lookup are as for moat_detect_new.
 */
moat_err_t moat_detect_run(moat_store_t *s, const moat_detect_rules_t *rules,
			   moat_detect_lookup_fn lookup, void *lookup_ctx, const moat_detect_log_t *log,
			   size_t batch, moat_detect_stats_t *stats, moat_error_t *err) MOAT_MUST_CHECK;

/*
 * A resident runner: the same exactly-once processing as moat_detect_run, but the
 * engine stays in memory between steps, so each step reads only what the log
 * gained (moat_detect_run replays the whole log every time). The first step, and
 * the step after a failed one, rebuild the engine from the stored cursor. For
 * `moat serve`, which judges new entries about once a second.
 */
typedef struct moat_detect_runner moat_detect_runner_t;
/* Borrows s, rules, lookup_ctx and log->ctx until moat_detect_runner_free. */
moat_err_t moat_detect_runner_new(moat_store_t *s, const moat_detect_rules_t *rules,
				  moat_detect_lookup_fn lookup, void *lookup_ctx,
				  const moat_detect_log_t *log, size_t batch,
				  moat_detect_runner_t **out, moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_detect_runner_step(moat_detect_runner_t *x, moat_detect_stats_t *stats,
				   moat_error_t *err) MOAT_MUST_CHECK;
void moat_detect_runner_free(moat_detect_runner_t *x);
/* With ms > 0, a step that raised no alert commits the advanced cursor only if
 * the last commit is at least ms old (default 0: every step). Each such commit
 * is a store write, and every write makes the gateway's read connections drop
 * their page caches; entries judged but not yet under the stored cursor are
 * judged again after a crash, as after a crash between two steps, which raise
 * nothing twice (none of them raised an alert). */
void moat_detect_runner_cursor_interval(moat_detect_runner_t *x, unsigned ms);
/* With entries > 0, a step reads at most about that many entries (the batch
 * read ahead past it is still fed) and returns with stats->more set if the log
 * holds more, so that a caller serving signals between steps is never held up
 * for long by a replay of the whole log. Default 0: a step reads to the end.
 * Steps with a budget raise and store exactly what one unbounded step would. */
void moat_detect_runner_budget(moat_detect_runner_t *x, size_t entries);
/* Commits the cursor of everything judged so far, if it is past the stored one
 * (at shutdown). */
moat_err_t moat_detect_runner_sync(moat_detect_runner_t *x, moat_error_t *err) MOAT_MUST_CHECK;

/* Principal look-up backed by the store (ctx = moat_store_t *). */
int moat_detect_store_lookup(void *ctx, const char *id, moat_detect_principal_t *out);

/* Builds the ALERT ledger entry of an alert (detail: severity, action, value and
 * evidence indexes). detail must hold MOAT_TEXT_MAX + 1 bytes; strings borrowed. */
void moat_detect_alert_entry(const moat_detect_alert_t *a, moat_time_t now, char *detail,
			     moat_entry_t *out);

/* ---- over a data directory (src/detect/catchup.c) ------------------------------- */

struct moat_app;

/* Judges everything the data directory's ledger holds past the detector's cursor
 * with <data>/rules.conf (the default rules if that file is absent) and principals
 * from the store: moat_detect_run over the ledger (synced first, so entries just
 * appended are seen). Needs the app opened with its ledger (MOAT_EUNAVAIL
 * otherwise). `moat import events` calls it when no server runs; stats may be
 * NULL. */
moat_err_t moat_detect_catch_up(struct moat_app *a, moat_detect_stats_t *stats,
				moat_error_t *err) MOAT_MUST_CHECK;

/* A resident runner over the data directory (rules.conf, ledger, store), for
 * `moat serve`: open once, moat_detect_runner_step about once a second, free
 * before moat_app_close. The app is borrowed. */
moat_err_t moat_detect_runner_open(struct moat_app *a, moat_detect_runner_t **out,
				   moat_error_t *err) MOAT_MUST_CHECK;

/* Whether two runners opened by moat_detect_runner_open judge alike: the same
 * rules (rules.conf's text, or the default set when there is none) and the same
 * policy inputs (each policy rule's daily quota and the time zone; none when
 * policy.conf is absent or invalid). `moat serve` keeps its running engine and
 * its windows across a SIGHUP that changed neither, instead of replaying the
 * whole ledger into a fresh one. False for runners not opened that way. */
bool moat_detect_runner_same_inputs(const moat_detect_runner_t *a, const moat_detect_runner_t *b);

/* Lifts action id with a reason: appends an ACTION entry ("lift") to the ledger
 * (when the app has one), then marks it lifted in the store. */
moat_err_t moat_detect_lift(struct moat_app *a, int64_t id, const char *reason,
			    moat_error_t *err) MOAT_MUST_CHECK;

/* Renders stored alerts (status -1 = any, newest first, at most limit; 0 = no
 * limit) as {"alerts":[{…},…]} into out — the body of GET /v1/alerts and of
 * `moat alerts --json`. */
moat_err_t moat_detect_alerts_json(moat_store_t *s, int status, size_t limit, moat_buf_t *out,
				   moat_error_t *err) MOAT_MUST_CHECK;
/* One alert row as a JSON object. */
moat_err_t moat_detect_alert_row_json(const moat_alert_row_t *r, moat_buf_t *out) MOAT_MUST_CHECK;

/* ---- alert webhook (src/detect/webhook.c) ---------------------------------------- */

/* Delivers every alert raised after it first starts to an HTTP(S) endpoint, in
 * the order raised, at least once: POST of the alert's JSON (ids, rule, action,
 * evidence ledger indexes; never buyer PII) with
 *   Moat-Signature: sha256=<hex HMAC-SHA-256 of the body under <data>/keys/webhook.key>
 *   Moat-Alert-Id: <id>
 * A 2xx answer advances a cursor kept in the store ("detect.webhook_cursor"), so
 * a restart resumes where delivery stopped; anything else is retried with
 * backoff (1 s doubling to 60 s). Runs on its own thread with its own store
 * connection; stop waits at most one request timeout (5 s). */
typedef struct moat_webhook moat_webhook_t;
/* Validates a webhook URL: http:// or https://, at most 512 characters, no
 * spaces or control characters. */
bool moat_webhook_url_valid(const char *url);
moat_err_t moat_webhook_start(const char *data_dir, const char *url, moat_webhook_t **out,
			      moat_error_t *err) MOAT_MUST_CHECK;
/* Asks for delivery now (after a detector step raised alerts). */
void moat_webhook_poke(moat_webhook_t *w);
void moat_webhook_stop(moat_webhook_t *w);

#endif
