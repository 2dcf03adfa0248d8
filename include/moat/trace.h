/*
 * moat trace: from buyers' scam reports to the leaker.
 *
 * Three layers, usable separately:
 *  1. statistics (moat_stats_*): the hypergeometric upper tail in log space and
 *     multiple-testing corrections, pure functions;
 *  2. the exposure index (moat_exposure_*): for each principal, each order and
 *     each field, when the principal first received that field in plaintext. It
 *     is fed ledger entries in ledger order (moat_exposure_add), persisted under
 *     <data>/trace/, and rebuilt from the ledger by `moat trace reindex`;
 *  3. scoring (moat_exposure_score): for a set of victims (order, first contact,
 *     quoted fields) it ranks candidate principals and parties by an exact test,
 *     Holm-corrected across every candidate of both levels, and explains away
 *     the victims of each confirmed leaker before looking for the next one.
 *
 * "Plaintext" means the FULL view. A phone seen only as a virtual number does not
 * expose the real phone: it is kept apart (MOAT_EXPOSURE_VIRTUAL_PHONE) for the
 * virtual-number path and never counts for statistics.
 */
#ifndef MOAT_TRACE_H
#define MOAT_TRACE_H

#include "moat/base.h"
#include "moat/entry.h"
#include "moat/json.h"
#include "moat/model.h"
#include "moat/store.h"

/* ---- statistics --------------------------------------------------------------------- */

/* ln P(X = k) for X ~ Hypergeometric(N population, K successes, n draws);
 * -INFINITY where the probability is 0. */
double moat_stats_log_hypergeom_pmf(uint64_t N, uint64_t K, uint64_t n, uint64_t k);
/* ln P(X >= k), summed exactly over the tail in log space: no underflow however
 * small (values far below ln(1e-300) = -690.8 are returned as such). 0 when
 * k is at most the smallest possible X, -INFINITY when k exceeds the largest,
 * NAN when K > N or n > N. */
double moat_stats_log_hypergeom_tail(uint64_t N, uint64_t K, uint64_t n, uint64_t k);
/* Bonferroni on log p-values: log_adj[i] = min(0, log_p[i] + ln m), where m >= n is
 * the number of hypotheses tested (the others had p = 1). */
void moat_stats_bonferroni(const double *log_p, size_t n, size_t m, double *log_adj);
/* Holm's step-down correction on log p-values (same m convention). log_adj may
 * not alias log_p. MOAT_ENOMEM leaves log_adj unspecified. */
moat_err_t moat_stats_holm(const double *log_p, size_t n, size_t m,
			   double *log_adj) MOAT_MUST_CHECK;
/* Weighted Holm (Holm 1979; Genovese, Roeder & Wasserman 2006) on log p-values:
 * hypothesis i has weight w_i = exp(log_w[i]) > 0 and the weights of every
 * hypothesis tested, given or not, sum to total_w (with total_w = m, equal
 * weights are plain Holm). Rejecting where log_adj < ln alpha controls the
 * family-wise error at alpha for any weights fixed without looking at the p
 * values. dup (NULL = none) marks a hypothesis given twice (the same p and
 * weight as another one given): its weight counts once. log_adj may not alias
 * log_p. */
moat_err_t moat_stats_holm_weighted(const double *log_p, const double *log_w, const uint8_t *dup,
				    size_t n, double total_w, double *log_adj) MOAT_MUST_CHECK;
/* lift = (k/n) / (K/N) (0 if any denominator is 0); coverage = k/n. */
double moat_stats_lift(uint64_t k, uint64_t n, uint64_t K, uint64_t N);
double moat_stats_coverage(uint64_t k, uint64_t n);

/* ---- exposure index ------------------------------------------------------------------ */

/* Field bits: (1u << moat_field_t) for a field received in FULL, plus this bit
 * for a phone received as a virtual number. */
#define MOAT_EXPOSURE_VIRTUAL_PHONE (1u << 7)
#define MOAT_EXPOSURE_FIELDS_ALL ((1u << MOAT_FIELD_COUNT) - 1u)
/* Principals the index can hold (numbers are 24-bit); orders (numbers are
 * 32-bit; records of all orders together must also stay below 2^32). Past
 * either limit moat_exposure_add refuses the entry with MOAT_ELIMIT. */
#define MOAT_EXPOSURE_MAX_PRINCIPALS (1u << 24)
#define MOAT_EXPOSURE_MAX_ORDERS UINT32_MAX

typedef struct moat_exposure moat_exposure_t;

/* An empty index (cursor 0). NULL on out of memory. Free with moat_exposure_free. */
moat_exposure_t *moat_exposure_new(void);
void moat_exposure_free(moat_exposure_t *x);

/* Feeds one ledger entry. Entries must come in ledger order: ledger_index must be
 * >= the cursor (an older index is skipped as already applied, so a restart can
 * replay safely). ACCESS and EXPORT entries with an order add what they revealed;
 * DENY and other kinds only advance the cursor. Times are kept as whole minutes
 * after the order's first sighting, rounded up (an exposure is placed at most
 * 59.999 s after it happened, never before; one older than the first sighting is
 * placed at it), and to the second, rounded up, beyond 65,534 minutes. Order ids
 * are 1..255 bytes (MOAT_ELIMIT otherwise). */
moat_err_t moat_exposure_add(moat_exposure_t *x, uint64_t ledger_index, const moat_entry_t *e,
			     moat_error_t *err) MOAT_MUST_CHECK;
/* The next ledger index the index expects (one past the last applied). */
uint64_t moat_exposure_cursor(const moat_exposure_t *x);

/* Sets the party of a principal (the index learns principals from entries, their
 * parties from the store). Unknown principals are created. */
moat_err_t moat_exposure_set_party(moat_exposure_t *x, const char *principal, const char *party,
				   moat_error_t *err) MOAT_MUST_CHECK;
/* Marks an order as a honey order: it is left out of the reference population and
 * any report on it is direct evidence against whoever received it. */
moat_err_t moat_exposure_set_honey(moat_exposure_t *x, const char *order_id,
				   moat_error_t *err) MOAT_MUST_CHECK;
bool moat_exposure_is_honey(const moat_exposure_t *x, const char *order_id);

/* Folds entries added since the last query into the compact rows now (queries
 * and save do it on demand). */
moat_err_t moat_exposure_compact(moat_exposure_t *x, moat_error_t *err) MOAT_MUST_CHECK;

/* Query functions first fold pending entries into the compact form, which may
 * allocate (MOAT_ENOMEM). */
/* *fields = bits principal had received for order by time `at` (ms, inclusive);
 * 0 if none or unknown. */
moat_err_t moat_exposure_received(moat_exposure_t *x, const char *principal, const char *order_id,
				  moat_time_t at, unsigned *fields,
				  moat_error_t *err) MOAT_MUST_CHECK;
/* Calls fn for every principal that received anything of order_id by `at`, with the
 * field bits. fn returning non-zero stops. */
moat_err_t moat_exposure_recipients(moat_exposure_t *x, const char *order_id, moat_time_t at,
				    int (*fn)(void *ctx, const char *principal, const char *party,
					      unsigned fields),
				    void *ctx, moat_error_t *err) MOAT_MUST_CHECK;
/* Calls fn for every order of which `who` (a principal, or with is_party every
 * principal of that party) received in plaintext at least one of `fields` by
 * `at`, in index order. This is the notification list of a confirmed leaker. */
moat_err_t moat_exposure_orders_of(moat_exposure_t *x, const char *who, bool is_party,
				   unsigned fields, moat_time_t at,
				   int (*fn)(void *ctx, const char *order_id), void *ctx,
				   moat_error_t *err) MOAT_MUST_CHECK;

typedef struct moat_exposure_stats {
	uint64_t entries;   /* ledger entries fed */
	uint64_t exposures; /* entries that revealed at least one field */
	uint64_t records;   /* (principal, order, new fields, time) records kept */
	uint64_t orders, principals, parties;
	size_t bytes_records;	 /* memory of the records and per-order offsets */
	size_t bytes_dictionary; /* memory of the id dictionaries */
} moat_exposure_stats_t;
void moat_exposure_stats(const moat_exposure_t *x, moat_exposure_stats_t *out);

/* Saves to path atomically (binary, checksummed) / loads a saved index.
 * load: MOAT_ENOTFOUND if absent, MOAT_ECORRUPT if damaged. */
moat_err_t moat_exposure_save(moat_exposure_t *x, const char *path,
			      moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_exposure_load(const char *path, moat_exposure_t **out,
			      moat_error_t *err) MOAT_MUST_CHECK;

/* ---- scoring ------------------------------------------------------------------------- */

/* One victim: the order the scammer quoted, the first contact, the field bits
 * quoted (name, phone, address, items …; at least one), and the scammer's
 * contact as reported (NULL or "" if unknown). Victims whose reports share a
 * normalised contact were worked by one scam crew (see moat_exposure_score).
 * Strings borrowed. */
typedef struct moat_victim {
	const char *order_id;
	moat_time_t contact;
	unsigned quoted;
	const char *scammer_contact;
} moat_victim_t;

typedef struct moat_score_params {
	double alpha;	     /* significance after correction; default 0.01 */
	uint64_t population; /* N; 0 = orders the index knows from before the last contact */
	size_t max_rounds;   /* explain-away rounds; default 5 */
	size_t max_suspects; /* rows returned; default 20 */
	size_t min_victims;  /* below this many victims nothing is significant; default 3 */
	/* Detector alerts as priors: the principals named here (ids; unknown ones are
	 * ignored) share prior_share of alpha among them in a weighted Bonferroni /
	 * Holm correction, every other hypothesis the rest (a principal's party
	 * shares its weight when the principal is the party's only member). The
	 * weights are fixed before the victims are looked at, so the error stays at
	 * most alpha whoever is named. n_prior 0 or prior_share 0 = equal weights. */
	const char *const *prior;
	size_t n_prior;
	double prior_share; /* in [0, 1); default 0.5 */
} moat_score_params_t;
void moat_score_params_default(moat_score_params_t *p);

typedef struct moat_suspect {
	char principal[MOAT_ID_MAX + 1]; /* "" for a party-level suspect */
	char party[MOAT_ID_MAX + 1];	 /* the principal's party, or the party suspected */
	bool is_party;
	unsigned fields;     /* field bits of the hypothesis (see moat_exposure_score) */
	uint64_t N, K, n, k; /* the test: population, exposure, victims, covered */
	unsigned groups;     /* scam-contact groups (>= 2 reports) it covers entirely */
	unsigned n_groups;   /* scam-contact groups in the test */
	double log_p;	     /* ln of the uncorrected tail */
	double log_p_adj;    /* ln of the Holm-corrected p */
	bool significant;    /* p_adj < alpha, confirmed in an explain-away round */
	bool prior;	     /* weighted up by a detector alert (moat_score_params_t.prior) */
	int round;	     /* 1-based explain-away round that confirmed it; 0 = not */
	double lift, coverage;
	size_t n_covered; /* victims (indexes into the input) it explains */
	size_t *covered;  /* malloc'd */
} moat_suspect_t;

typedef struct moat_score_result {
	uint64_t N, n;
	unsigned quoted; /* fields quoted by any report (one hypothesis family each) */
	size_t tested;	 /* hypotheses in the correction */
	size_t prior_tested; /* of them, weighted up by a prior (0 = equal weights) */
	double prior_share;  /* the share of alpha they got */
	size_t n_suspects;
	moat_suspect_t *suspects; /* confirmed first (by round), then by corrected p */
} moat_score_result_t;
void moat_score_result_clear(moat_score_result_t *r);

/* Scores the victims against the index (the method is in src/trace/score.c).
 * One hypothesis per principal and per party c: victim v is covered when c had
 * received every field its report quotes before its contact; under the null
 * (c is not the source) v is covered with probability at most K_c(Q_v)/N, where
 * K_c(Q) counts the population orders for which c had every field of Q before
 * the last contact. Victims whose reports share a normalised scammer contact
 * form a group (one scam crew, one source) that counts only if c covers all of
 * it. p = P(X >= x) for the victims so covered, Holm/Bonferroni-corrected over
 * every candidate that ever received a quoted field. Each explain-away round
 * confirms the significant candidates a mixture (EM over the groups) gives at
 * least min_victims victims, then conditions the case on them (their orders
 * leave the population, the victims on them leave the draw) and tests again, up
 * to max_rounds times. Suspect rows carry the test that confirmed them, else
 * round one's. */
moat_err_t moat_exposure_score(moat_exposure_t *x, const moat_victim_t *victims, size_t n_victims,
			       const moat_score_params_t *params, moat_score_result_t *out,
			       moat_error_t *err) MOAT_MUST_CHECK;

/* ---- reports (DESIGN.md "Interchange formats") ------------------------------------- */

typedef struct moat_report {
	const char *report_id;
	const char *order_id;
	moat_time_t contact_time;
	const char *channel;	     /* call | sms | chat */
	unsigned quoted;	     /* field bits, at least one */
	const char *scammer_contact; /* as given; kept in the store, never on the ledger */
	int64_t loss_cents;
} moat_report_t;

/* Parses and validates one report object (unknown keys are an error; errors name
 * the field). Strings borrow from obj. */
moat_err_t moat_report_from_json(json_t *obj, moat_report_t *out,
				 moat_error_t *err) MOAT_MUST_CHECK;

/* A contact reduced to digits for matching ("+86 170 0000 0000" -> "17000000000");
 * anything that is not a phone number is copied as is, or, when it does not fit
 * in cap bytes, replaced by "sha256:" and the hex SHA-256 of the whole text, so
 * two contacts match only if they are the same number or the same text (never
 * two long links that merely begin alike). Idempotent. cap >=
 * MOAT_CONTACT_NORM_MAX. */
#define MOAT_CONTACT_NORM_MAX 130
void moat_trace_contact_normalise(const char *in, char *out, size_t cap);

/* ---- trace tables in the store (src/store/sqlite_trace.c, migration 4) ------------- */

typedef struct moat_report_row {
	char report_id[MOAT_ID_MAX + 1];
	char order_id[MOAT_ID_MAX + 1];
	moat_time_t contact_time;
	char channel[8];
	unsigned quoted;
	char scammer_contact[4 * MOAT_TEXT_MAX + 1];
	int64_t loss_cents;
	uint64_t ledger_index;
	moat_time_t created_at;
} moat_report_row_t;

/* Inserts a report; MOAT_EEXIST naming "report_id" if that id exists. */
moat_err_t moat_store_trace_report_put(moat_store_t *s, const moat_report_row_t *r,
				       moat_error_t *err) MOAT_MUST_CHECK;
/* Reports with from <= contact_time <= until (MOAT_TIME_NONE = open end), by time. */
moat_err_t moat_store_trace_report_list(moat_store_t *s, moat_time_t from, moat_time_t until,
					int (*fn)(void *ctx, const moat_report_row_t *r), void *ctx,
					moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_trace_report_get(moat_store_t *s, const char *id, moat_report_row_t *out,
				       moat_error_t *err) MOAT_MUST_CHECK;

typedef struct moat_case_row {
	char case_id[MOAT_ID_MAX + 1];
	char title[4 * MOAT_TEXT_MAX + 1];
	moat_time_t from, until; /* window on contact time; NONE = open */
	bool explicit_members;	 /* true: exactly the reports added to it */
	moat_time_t created_at;
} moat_case_row_t;

moat_err_t moat_store_trace_case_put(moat_store_t *s, const moat_case_row_t *c,
				     moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_trace_case_get(moat_store_t *s, const char *id, moat_case_row_t *out,
				     moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_trace_case_list(moat_store_t *s,
				      int (*fn)(void *ctx, const moat_case_row_t *c), void *ctx,
				      moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_trace_case_add(moat_store_t *s, const char *case_id, const char *report_id,
				     moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_trace_case_remove(moat_store_t *s, const char *case_id, const char *report_id,
					moat_error_t *err) MOAT_MUST_CHECK;
/* Reports explicitly in a case, by contact time. */
moat_err_t moat_store_trace_case_reports(moat_store_t *s, const char *case_id,
					 int (*fn)(void *ctx, const moat_report_row_t *r),
					 void *ctx, moat_error_t *err) MOAT_MUST_CHECK;

/* CALL entries of the ledger that reached a known binding or honey number. */
typedef struct moat_call_row {
	uint64_t ledger_index;
	moat_time_t time;
	char principal[MOAT_ID_MAX + 1]; /* binding recipient; "" if none */
	char order_id[MOAT_ID_MAX + 1];
	char number[32]; /* the number called */
	char caller[32]; /* the caller's number, digits */
} moat_call_row_t;
moat_err_t moat_store_trace_call_put(moat_store_t *s, const moat_call_row_t *c,
				     moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_trace_call_list(moat_store_t *s,
				      int (*fn)(void *ctx, const moat_call_row_t *c), void *ctx,
				      moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_trace_calls_clear(moat_store_t *s, moat_error_t *err) MOAT_MUST_CHECK;

/* Honey orders: planted for exactly one recipient; the order row gets honey = 1. */
typedef struct moat_honey_row {
	char order_id[MOAT_ID_MAX + 1];
	char principal[MOAT_ID_MAX + 1];
	char phone[16];
	moat_time_t created_at;
} moat_honey_row_t;
moat_err_t moat_store_trace_honey_put(moat_store_t *s, const moat_honey_row_t *h,
				      moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_trace_honey_list(moat_store_t *s,
				       int (*fn)(void *ctx, const moat_honey_row_t *h), void *ctx,
				       moat_error_t *err) MOAT_MUST_CHECK;

/* ---- tracing inside a data directory (src/trace/case.c) ----------------------------- */

typedef struct moat_app moat_app_t;

/* The id of the platform-wide default case: every report whose contact lies within
 * [trace] case_window_days before the latest report's contact. */
#define MOAT_CASE_DEFAULT "default"

/* Opens the exposure index of a data directory: loads <data>/trace/exposure.idx
 * (or starts empty), learns parties and honey orders from the store, then catches
 * up with the ledger from the index's cursor (recording calls that reached a
 * binding or a honey number) and saves it if it moved. Needs the ledger
 * (a->ledger). Caller frees *out. */
moat_err_t moat_trace_index_open(moat_app_t *a, moat_exposure_t **out,
				 moat_error_t *err) MOAT_MUST_CHECK;
/* Rebuilds the index and the call table from ledger index 0. *entries = entries read. */
moat_err_t moat_trace_reindex(moat_app_t *a, uint64_t *entries, moat_error_t *err) MOAT_MUST_CHECK;

/* Imports a JSON Lines file of reports ("-" = stdin) all-or-nothing: every line is
 * validated first (the order must exist, report ids must be new; errors name the
 * line and field), then each report becomes one REPORT ledger entry (ids, time,
 * channel and quoted fields; never the scammer's contact), then the store rows,
 * in one transaction; a report on a honey order opens a case naming its
 * recipient. The exposure index is brought up to date before it returns. */
moat_err_t moat_trace_import_reports(moat_app_t *a, const char *path, size_t *count,
				     moat_error_t *err) MOAT_MUST_CHECK;
/* One report, same rules as moat_trace_reports_add; *ledger_index is the REPORT
 * entry's index. */
moat_err_t moat_trace_report_add(moat_app_t *a, json_t *obj, uint64_t *ledger_index,
				 moat_error_t *err) MOAT_MUST_CHECK;
/* A batch of parsed report objects (borrowed) from the HTTP API (POST
 * /v1/reports), all-or-nothing like moat_trace_import_reports: every report is
 * validated first (an error names the field, err->line the 1-based position in
 * the batch), then the REPORT ledger entries and store rows are written and the
 * exposure index is brought up to date. *count = reports added, *first_index =
 * the first REPORT entry's index. a->store must be used by this thread only. */
moat_err_t moat_trace_reports_add(moat_app_t *a, json_t *const *objs, size_t n, size_t *count,
				  uint64_t *first_index, moat_error_t *err) MOAT_MUST_CHECK;

typedef struct moat_calls_stats {
	size_t calls;	      /* CALL ledger entries appended */
	size_t bindings;      /* to a virtual number moat issued (valid or expired) */
	size_t honey;	      /* to a honey order's monitored number */
	size_t unknown;	      /* to any other number: logged, not an error */
	uint64_t first_index; /* of the first CALL entry */
} moat_calls_stats_t;

/* Imports a JSON Lines file of calls ("-" = stdin; DESIGN.md "calls": time,
 * from, to, extension) all-or-nothing: every line is validated first (errors
 * name the line and field), then each call becomes one CALL ledger entry marked
 * imported, as POST /v1/calls records it: a call to a virtual number moat issued
 * names the binding's principal and order, a call to a honey number or to a
 * number moat never issued is recorded as such. The exposure index and its call
 * table are brought up to date, so a call through a binding or to a honey
 * number is direct evidence in moat_trace_case_run. */
moat_err_t moat_trace_import_calls(moat_app_t *a, const char *path, moat_calls_stats_t *st,
				   moat_error_t *err) MOAT_MUST_CHECK;

/* Creates an explicit case: the given reports, or (n_reports = 0) every report
 * whose contact lies in [from, until]. *out_id receives "C<n>". */
moat_err_t moat_trace_case_create(moat_app_t *a, const char *title, moat_time_t from,
				  moat_time_t until, const char *const *report_ids,
				  size_t n_reports, char out_id[MOAT_ID_MAX + 1],
				  moat_error_t *err) MOAT_MUST_CHECK;
/* Calls fn for each report of a case (the default case included). */
moat_err_t moat_trace_case_reports(moat_app_t *a, const char *case_id,
				   int (*fn)(void *ctx, const moat_report_row_t *r), void *ctx,
				   moat_error_t *err) MOAT_MUST_CHECK;
/* Appends the case list (JSON array of {case, title, reports, from, until}). */
moat_err_t moat_trace_case_list_json(moat_app_t *a, moat_buf_t *out,
				     moat_error_t *err) MOAT_MUST_CHECK;

typedef struct moat_trace_opts {
	const char *out_dir; /* write the bundle here (created); NULL = none */
	double alpha;	     /* 0 = 0.01 */
	size_t max_evidence; /* ledger entries with proofs per suspect; 0 = 50 */
	/* Detector alerts as priors (moat_score_params_t.prior): every principal
	 * with an alert, unless resolved with a reason that says "false positive".
	 * no_priors turns them off; prior_share 0 = 0.5. */
	bool no_priors;
	double prior_share;
} moat_trace_opts_t;

/* Traces a case and appends its result as one JSON object to out:
 *   {"case", "reports", "population", "suspects":[{"principal","party","p_value",
 *    "p_value_raw","significant","lift","coverage","k","n","K","N","how",
 *    "reports":[…]}…], "evidence":{…}, "notification":{…}, "regulator_report":{…}}
 * Suspects named by direct evidence (a call through a virtual number bound to
 * them, a contact to a honey order planted for them) come first, then the
 * statistical ranking. With out_dir, writes there: evidence/ (each entry's bytes
 * and its inclusion proof against checkpoint), checkpoint, vkey, VERIFY (the
 * `moat ledger verify-proof` commands), notification.csv (0600: order id,
 * merchant, buyer name and phone of every order a confirmed leaker received in
 * plaintext, decrypted through moat_app_order_pii), regulator_report.json. */
moat_err_t moat_trace_case_run(moat_app_t *a, const char *case_id, const moat_trace_opts_t *opts,
			       moat_buf_t *out, moat_error_t *err) MOAT_MUST_CHECK;

/* Plants count honey orders visible to exactly principal: synthetic buyer and a
 * monitored phone number unique to the order, an assign relation for principal
 * (the normal read path), honey = 1. Appends the order ids (JSON array) to out. */
moat_err_t moat_trace_honey_plant(moat_app_t *a, const char *principal, size_t count,
				  moat_buf_t *out, moat_error_t *err) MOAT_MUST_CHECK;

#endif
