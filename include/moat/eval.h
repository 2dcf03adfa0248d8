/*
 * moat eval: scores moat's detector and tracer on a simulated world against the
 * world's ground truth (<world>/truth.json, written by `moat simulate`).
 *
 * This is the one module of moat that reads truth.json. Detection and tracing
 * never do; eval only reads what they produced (stored alerts, the trace of a
 * case, run in-process through moat_trace_case_run) and compares it with the
 * truth. Definitions (docs/simulator.md, "Evaluating moat"):
 *
 *  - an alert is *on* an attack when it names one of the attack's keys (its
 *    principal; for credential stuffing also the attacking source addresses) as
 *    principal or group-by key, and its time lies in the attack's window
 *    (1 s of slack either side); every other alert is a false alert;
 *  - an attack is detected when at least one alert is on it; time to detect is
 *    the first such alert's time minus the attack's first event time;
 *  - served share: distinct orders the attack's events (truth event_indexes, the
 *    lines of <world>/events.jsonl) pulled up to the first alert on it that acts
 *    on its principal (throttle, force_mask or suspend), over the distinct orders
 *    they pulled in all (1 when nothing acted);
 *  - precision: alerts on attacks / all alerts; false alerts per 1,000
 *    principal-days use truth's stats.principal_days;
 *  - per true leaker with a genuine report in a case: its rank among the case's
 *    principal-level suspects, its party's rank among party-level suspects, the
 *    corrected p-value and whether it is significant; a significant suspect that
 *    is neither an attack's principal nor (party level) an attack's party is a
 *    false accusation.
 */
#ifndef MOAT_EVAL_H
#define MOAT_EVAL_H

#include <jansson.h>

#include "moat/app.h"
#include "moat/base.h"

/* truth.json larger than this is refused (MOAT_ELIMIT). */
#define MOAT_EVAL_TRUTH_MAX ((size_t)1 << 30)

typedef struct moat_eval_opts {
	const char *case_id; /* score only this case; NULL = "default" and every stored case */
	double alpha;	     /* tracer significance level; 0 = the tracer's default */
	bool no_priors;	     /* trace without detector alerts as priors */
	double prior_share;  /* the priors' share of alpha; 0 = the tracer's default */
} moat_eval_opts_t;

/*
 * Scores the data directory opened as `a` (with its ledger: the tracer needs it)
 * against the world in world_dir (truth.json and events.jsonl). On success *out is
 * a new JSON object (caller json_decref's it) with the stable keys documented in
 * docs/simulator.md:
 *   {"world":{…}, "detector":{…, "attacks":[…]}, "tracer":{"cases":[…]}, "warnings":[…]}
 * Errors: MOAT_ENOTFOUND when truth.json or events.jsonl is missing, MOAT_EINVAL
 * naming the field when truth.json is malformed (field "attacks[2].window.from"),
 * MOAT_ENOTFOUND for an unknown case, MOAT_EUNAVAIL without a ledger, and whatever
 * the store, the ledger or the tracer report. Nothing is written to the data
 * directory except what the tracer itself keeps (its exposure index cache).
 */
moat_err_t moat_eval_run(moat_app_t *a, const char *world_dir, const moat_eval_opts_t *opts,
			 json_t **out, moat_error_t *err) MOAT_MUST_CHECK;

#endif
