/*
 * Ledger entries: the one record type that enters moat's append-only log.
 *
 * Every access, denial, login, export, policy change, principal change, alert,
 * action, report and call becomes one entry. Entries hold ids and decisions, never
 * raw buyer PII (no names, real phone numbers, addresses or id numbers).
 *
 * The byte encoding (moat_entry_encode) is versioned and deterministic: the same
 * entry always encodes to the same bytes; it is documented in docs/ledger.md and
 * at most MOAT_ENTRY_MAX bytes. The ledger hashes those bytes as RFC 6962 leaves.
 */
#ifndef MOAT_ENTRY_H
#define MOAT_ENTRY_H

#include "moat/base.h"
#include "moat/model.h"

#define MOAT_ENTRY_MAX 65535
#define MOAT_ENTRY_VERSION 1

typedef enum moat_entry_kind {
	MOAT_ENTRY_ACCESS = 1, /* a read that was (at least partly) allowed */
	MOAT_ENTRY_DENY,       /* a read that was refused */
	MOAT_ENTRY_LOGIN,      /* a login attempt (success or failure) */
	MOAT_ENTRY_EXPORT,     /* a bulk export */
	MOAT_ENTRY_POLICY,     /* the policy changed (ref = policy hash) */
	MOAT_ENTRY_PRINCIPAL,  /* a principal was added/suspended/resumed/re-keyed */
	MOAT_ENTRY_ALERT,      /* the detector raised an alert */
	MOAT_ENTRY_ACTION,     /* an action was applied or lifted */
	MOAT_ENTRY_REPORT,     /* a buyer's scam report was filed */
	MOAT_ENTRY_CALL,       /* a call to a virtual number or honey contact */
	MOAT_ENTRY_KIND_MAX = MOAT_ENTRY_CALL
} moat_entry_kind_t;

typedef enum moat_entry_result {
	MOAT_RESULT_NONE = 0,
	MOAT_RESULT_SUCCESS, /* login success, call relayed */
	MOAT_RESULT_FAILURE, /* login failure, call rejected */
} moat_entry_result_t;

/*
 * An export of many orders is written as one EXPORT entry per exported order
 * (order_id set), all sharing ref = the export's id and rows = its total rows;
 * an export with no order list is one EXPORT entry without order_id.
 *
 * One entry. String members are borrowed (NULL = absent) and must be valid UTF-8
 * without control characters, each at most MOAT_TEXT_MAX bytes.
 */
typedef struct moat_entry {
	moat_entry_kind_t kind;
	bool imported;		/* true: from `moat import events`; false: first-hand */
	bool replayed;		/* true: made by a gateway under `moat serve --replay-clock`
				   from a request that set Moat-Replay-Time, so `time` is the
				   replayed world's clock, not the server's */
	moat_time_t time;	/* event time (ms since epoch) */
	const char *principal;	/* actor (login: the username tried) */
	const char *order_id;	/* access/deny/report/call: the order concerned */
	moat_purpose_t purpose; /* access/deny/export; ignored for others */
	bool has_purpose;
	uint8_t views[MOAT_FIELD_COUNT]; /* moat_view_t per field (access/export) */
	uint8_t relations;		 /* access/deny/export: bits (1u << moat_relation_kind_t) of
					    the relations that held between principal and order at
					    that time; 0 = the read had no workflow reason */
	const char *rule;		 /* policy rule id that decided (access/deny), alert rule */
	const char *ip;			 /* source address */
	const char *device;		 /* device id */
	moat_entry_result_t result;
	uint64_t rows;	    /* export: rows exported; alert: evidence count */
	const char *ref;    /* kind-specific id: alert id, report id, policy hash,
			       virtual-number binding id, action name … */
	const char *detail; /* short kind-specific text without PII */
} moat_entry_t;

const char *moat_entry_kind_name(moat_entry_kind_t k);
int moat_entry_kind_parse(const char *s);

/* Encodes e into b (appending). Fails with MOAT_EINVAL naming the member if a
 * string is invalid, MOAT_ELIMIT if the result would exceed MOAT_ENTRY_MAX. */
moat_err_t moat_entry_encode(const moat_entry_t *e, moat_buf_t *b,
			     moat_error_t *err) MOAT_MUST_CHECK;

/* Decodes bytes produced by moat_entry_encode. String members of *out point into
 * `scratch` (at least len+64 bytes, caller-owned) and live as long as it.
 * Rejects anything that is not a canonical encoding (MOAT_ECORRUPT). */
moat_err_t moat_entry_decode(const uint8_t *data, size_t len, moat_entry_t *out, char *scratch,
			     size_t scratch_len, moat_error_t *err) MOAT_MUST_CHECK;

/* Writes the entry as a JSON object (for `moat ledger show` and the API). */
moat_err_t moat_entry_to_json(const moat_entry_t *e, moat_buf_t *b) MOAT_MUST_CHECK;

#endif
