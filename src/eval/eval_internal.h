/* moat eval: the ground truth as eval reads it (src/eval/truth.c). */
#ifndef MOAT_EVAL_INTERNAL_H
#define MOAT_EVAL_INTERNAL_H

#include <jansson.h>

#include "moat/base.h"

/* One attack of truth.json. Strings are borrowed from the truth's JSON root. */
typedef struct eval_attack {
	const char *id, *kind, *principal, *party;
	bool abnormal;		  /* abnormal_activity: false = nothing for the detector */
	moat_time_t from, until;  /* window */
	moat_time_t first;	  /* first_event_time; MOAT_TIME_NONE if null */
	int64_t attempted_orders; /* as truth counts them */
	size_t n_events;
	uint64_t *events; /* event_indexes: 0-based lines of events.jsonl, ascending (malloc'd) */
	size_t n_ips;
	const char **ips; /* attacker.ips (credential stuffing), malloc'd array */
} eval_attack_t;

/* One labelled report. */
typedef struct eval_report {
	const char *report_id;
	const char *label;  /* genuine | false | unrelated */
	const char *attack; /* NULL unless genuine */
	const char *leaker; /* NULL unless genuine */
} eval_report_t;

typedef struct eval_truth {
	json_t *root; /* owned */
	int64_t seed;
	const char *scale;
	json_t *scenarios;	/* borrowed array of strings */
	int64_t principal_days; /* stats.principal_days; 0 if absent */
	size_t n_attacks;
	eval_attack_t *attacks;
	size_t n_reports;
	eval_report_t *reports; /* sorted by report_id */
} eval_truth_t;

/* Loads and validates path (a truth.json). Errors: MOAT_ENOTFOUND if absent;
 * MOAT_EINVAL naming the line (malformed JSON) or the field ("attacks[1].window");
 * messages start with the path. On failure *t is cleared. */
moat_err_t eval_truth_load(const char *path, eval_truth_t *t, moat_error_t *err) MOAT_MUST_CHECK;
void eval_truth_clear(eval_truth_t *t);
/* The labelled report with this id, or NULL. */
const eval_report_t *eval_truth_report(const eval_truth_t *t, const char *report_id);
/* The attack with this id, or NULL. */
const eval_attack_t *eval_truth_attack(const eval_truth_t *t, const char *attack_id);

#endif
