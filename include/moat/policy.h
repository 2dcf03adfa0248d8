/*
 * moat policy: which view of each order field a principal gets for a read.
 *
 * A policy is a text file (docs/policy.md) of rules tried in order; a rule
 * matches on the principal's role, the declared purpose, the relations that hold
 * between principal and order, a window over the order's state and a time window
 * (on / off the principal's shift), and grants a view per field plus a daily quota
 * of plaintext reads — or denies. The first matching rule wins; no match denies.
 *
 * A parsed policy is immutable: any number of threads may call
 * moat_policy_decide on it at once. Reloading builds a new policy and swaps the
 * pointer (the gateway keeps the old one until its readers are done).
 */
#ifndef MOAT_POLICY_H
#define MOAT_POLICY_H

#include "moat/base.h"
#include "moat/model.h"

/* Caps on policy text. */
#define MOAT_POLICY_MAX_BYTES (1u << 20)
#define MOAT_POLICY_MAX_RULES 1024
#define MOAT_POLICY_MAX_LINE 1024

/* Quota value meaning "no limit". */
#define MOAT_QUOTA_UNLIMITED (-1)

typedef struct moat_policy moat_policy_t;

/* Everything decide looks at. Filled by the caller from the principal, the order
 * and the relation store; plain values so that decide is pure. */
typedef struct moat_policy_request {
	moat_role_t role;
	moat_purpose_t purpose;
	unsigned relations; /* bits (1u << moat_relation_kind_t) that hold now */
	bool own_merchant;  /* the principal's party is the order's merchant */
	moat_order_status_t status;
	moat_time_t placed_at, shipped_at, delivered_at; /* MOAT_TIME_NONE if unknown */
	moat_time_t now;
	const char *shift; /* principal's "HH:MM-HH:MM" in policy local time, NULL/"" = none */
} moat_policy_request_t;

typedef struct moat_policy_decision {
	bool allow;
	int rule_index;			 /* index of the deciding rule, -1 when nothing matched */
	const char *rule;		 /* its id (borrowed from the policy), "no-match" if none */
	uint8_t views[MOAT_FIELD_COUNT]; /* moat_view_t; all HIDDEN on deny */
	int64_t quota; /* plaintext reads per principal per day, or MOAT_QUOTA_UNLIMITED */
} moat_policy_decision_t;

/* Parses policy text. On error returns MOAT_EINVAL (or MOAT_ELIMIT for a cap) with
 * err->line set to the offending line and a message that says what to write
 * instead. *out is owned by the caller (moat_policy_free). */
moat_err_t moat_policy_parse(const char *text, size_t len, moat_policy_t **out,
			     moat_error_t *err) MOAT_MUST_CHECK;
/* Reads and parses a policy file. */
moat_err_t moat_policy_load(const char *path, moat_policy_t **out,
			    moat_error_t *err) MOAT_MUST_CHECK;
void moat_policy_free(moat_policy_t *p);

/* The default policy (DESIGN.md, "Policy") as text; `moat init` installs it as
 * <data>/policy.conf. Static storage. */
const char *moat_policy_default_text(void);

/* Lint warnings that do not make the policy invalid (a rule no request can reach
 * because an earlier rule matches everything it would, a grant of plaintext with
 * no relation required, …), one per line "line N: rule ID: …" appended to out.
 * Returns the number of warnings. */
size_t moat_policy_lint(const moat_policy_t *p, moat_buf_t *out);

/* Decides a read. Pure: no I/O, no allocation, no locks. */
void moat_policy_decide(const moat_policy_t *p, const moat_policy_request_t *req,
			moat_policy_decision_t *out);

/* Human-readable account of the decision: every rule tried up to the one that
 * matched and the first condition that failed for each. */
moat_err_t moat_policy_explain(const moat_policy_t *p, const moat_policy_request_t *req,
			       moat_buf_t *out) MOAT_MUST_CHECK;

/* SHA-256 of the policy text as 64 hex chars (for POLICY ledger entries). */
const char *moat_policy_hash(const moat_policy_t *p);
size_t moat_policy_rule_count(const moat_policy_t *p);
const char *moat_policy_rule_id(const moat_policy_t *p, size_t i);
/* The daily plaintext quota rule i grants, as moat_policy_decide reports it
 * (MOAT_QUOTA_UNLIMITED, 0 for a deny rule or an index out of range). */
int64_t moat_policy_rule_quota(const moat_policy_t *p, size_t i);
/* Offset of the policy's local time from UTC in minutes (`timezone`, default +08:00). */
int moat_policy_tz_minutes(const moat_policy_t *p);
/* Day number (days since 1970-01-01 in policy local time) of t, for daily quotas. */
int64_t moat_policy_day(const moat_policy_t *p, moat_time_t t);

/* True if a view grants plaintext for quota purposes: FULL or VIRTUAL on a
 * personal field (name, phone, address, id_number, items). */
bool moat_policy_is_plaintext(const uint8_t views[MOAT_FIELD_COUNT]);
/* True if any field is shown in a view other than NONE/HIDDEN for a personal
 * field: the response carries something derived from buyer PII. */
bool moat_policy_reveals_pii(const uint8_t views[MOAT_FIELD_COUNT]);

/* Whether a field may be shown in a view at all (DESIGN.md field table). */
bool moat_policy_view_allowed(moat_field_t f, moat_view_t v);

#endif
