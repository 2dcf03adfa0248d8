/* Internals of src/detect shared between its files. Not a public header. */
#ifndef MOAT_DETECT_INTERNAL_H
#define MOAT_DETECT_INTERNAL_H

#include "moat/detect.h"

typedef enum rule_type {
	RULE_MATCH = 0,   /* every entry that passes the filter */
	RULE_EVENT_COUNT, /* entries (or rows) per group in a window */
	RULE_VALUE_COUNT, /* distinct values of a field per group in a window */
	RULE_RATIO,       /* numerator entries / filter entries per group in a window */
	RULE_PEER,        /* robust z of a principal's count vs its peer group, this period */
	RULE_SELF,        /* robust z or Poisson tail of a principal's count vs its own history */
	RULE_TEMPORAL,    /* earlier rules signalling in order for the same group value */
	RULE_TYPE_COUNT
} rule_type_t;

/* Entry fields rules group by or count distinct values of. */
typedef enum rule_field {
	FIELD_PRINCIPAL = 0,
	FIELD_IP,
	FIELD_DEVICE,
	FIELD_ORDER,
	FIELD_PEER, /* role + party of the principal */
	FIELD_REF,  /* export id */
	FIELD_COUNT
} rule_field_t;

extern const char *const rule_type_names[];
extern const char *const rule_field_names[];

enum { TRI_ANY = -1, TRI_NO = 0, TRI_YES = 1 };
enum { NEW_IP = 1, NEW_DEVICE = 2 };
/* Why a DENY entry was refused: bits of rule_filter_t.refusals. */
enum { REFUSAL_QUOTA = 1, REFUSAL_POLICY = 2 };
/* Relation filter bits: bit k = relation kind k, REL_NONE = "no relation". */
#define REL_NONE (1u << 7)

/* A conjunction of per-member tests; a member left at its default accepts all. */
typedef struct rule_filter {
	uint32_t kinds;    /* bit per moat_entry_kind_t */
	uint32_t roles;    /* bit per moat_role_t; bit MOAT_ROLE_COUNT = unknown principal */
	uint32_t purposes; /* bit per moat_purpose_t (entries without a purpose pass) */
	uint32_t relations; /* bits: relation kinds held (any of) | REL_NONE; 0 = any */
	int result;        /* TRI_ANY, else moat_entry_result_t */
	int plaintext;     /* TRI_*: a personal field shown FULL or VIRTUAL */
	int full;          /* TRI_*: a personal field shown FULL */
	int off_shift;     /* TRI_*: outside the principal's shift */
	int imported;      /* TRI_* */
	unsigned new_mask; /* NEW_IP | NEW_DEVICE: entry uses a new ip/device (any of) */
	unsigned refusals; /* REFUSAL_*: a DENY refused for that reason (any of); 0 = any */
	double quota_share; /* > 0: the principal's quota use today, this entry counted,
			     * is at least this share of its daily plaintext quota */
} rule_filter_t;

typedef enum cond_op { COND_GTE = 0, COND_GT, COND_LTE, COND_LT } cond_op_t;

#define TEMPORAL_STEPS_MAX 4

typedef struct rule {
	char name[MOAT_DETECT_RULE_NAME_MAX + 1];
	char *title;
	rule_type_t type;
	rule_filter_t filter;
	rule_filter_t numerator; /* ratio */
	rule_field_t group_by;
	rule_field_t field;      /* value_count */
	bool sum_rows;           /* event_count: add export rows instead of 1 */
	moat_time_t timespan;    /* window (ms) */
	moat_time_t period;      /* peer/self (ms) */
	moat_time_t suppress;    /* no second alert for the same group within this */
	cond_op_t op;
	double threshold;
	double min;              /* ratio: min base count; peer/self: min count */
	int min_peers;           /* peer */
	int history;             /* self: periods kept */
	int min_history;         /* self: periods needed before scoring */
	bool poisson;            /* self: score is P(X >= x), not z */
	int n_steps;             /* temporal */
	int steps[TEMPORAL_STEPS_MAX];
	moat_detect_severity_t severity;
	moat_detect_action_t action;
	bool alert;              /* false: only a building block for temporal rules */
	int line;
} rule_t;

struct moat_detect_rules {
	size_t n;
	rule_t rules[MOAT_DETECT_RULES_MAX];
};

#endif
