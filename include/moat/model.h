/*
 * moat data model: parties, principals, relations, orders, and the vocabulary of
 * roles, purposes, fields and views shared by policy, gateway, ledger, detector
 * and tracer. Parsing from the interchange JSON (DESIGN.md, "Interchange formats")
 * validates everything and names the offending field.
 */
#ifndef MOAT_MODEL_H
#define MOAT_MODEL_H

#include "moat/base.h"
#include "moat/json.h"

/* Caps on identifiers and text, in Unicode code points. */
#define MOAT_ID_MAX 64
#define MOAT_NAME_MAX 128
#define MOAT_TEXT_MAX 256
#define MOAT_ITEMS_MAX 100

typedef enum moat_party_kind {
	MOAT_PARTY_MERCHANT = 0,
	MOAT_PARTY_PLATFORM,
	MOAT_PARTY_LOGISTICS,
	MOAT_PARTY_ISV,
	MOAT_PARTY_KIND_COUNT
} moat_party_kind_t;

typedef enum moat_role {
	MOAT_ROLE_PLATFORM_SERVICE = 0,
	MOAT_ROLE_PLATFORM_OPS,
	MOAT_ROLE_MERCHANT_ADMIN,
	MOAT_ROLE_CS_AGENT,
	MOAT_ROLE_WAREHOUSE,
	MOAT_ROLE_COURIER,
	MOAT_ROLE_ISV_APP,
	MOAT_ROLE_AUDITOR,
	MOAT_ROLE_COUNT
} moat_role_t;

typedef enum moat_purpose {
	MOAT_PURPOSE_SHIP = 0,
	MOAT_PURPOSE_DELIVER,
	MOAT_PURPOSE_AFTER_SALES,
	MOAT_PURPOSE_CUSTOMER_CARE,
	MOAT_PURPOSE_ADDRESS_CHANGE,
	MOAT_PURPOSE_REFUND,
	MOAT_PURPOSE_ANALYTICS,
	MOAT_PURPOSE_AUDIT,
	MOAT_PURPOSE_COUNT
} moat_purpose_t;

typedef enum moat_order_status {
	MOAT_STATUS_PAID = 0,
	MOAT_STATUS_SHIPPED,
	MOAT_STATUS_DELIVERED,
	MOAT_STATUS_CLOSED,
	MOAT_STATUS_REFUNDED,
	MOAT_STATUS_COUNT
} moat_order_status_t;

/* Order fields that policy decides on, one view each. */
typedef enum moat_field {
	MOAT_FIELD_NAME = 0,
	MOAT_FIELD_PHONE,
	MOAT_FIELD_ADDRESS,
	MOAT_FIELD_ID_NUMBER,
	MOAT_FIELD_ITEMS,
	MOAT_FIELD_AMOUNTS,
	MOAT_FIELD_WAYBILL,
	MOAT_FIELD_COUNT
} moat_field_t;

/* How a field is shown. Order matters: higher reveals more (FULL is plaintext,
 * VIRTUAL reveals a working contact but not the number). NONE means "not part of
 * this response" (e.g. a denial). */
typedef enum moat_view {
	MOAT_VIEW_NONE = 0,
	MOAT_VIEW_HIDDEN,
	MOAT_VIEW_MASK,
	MOAT_VIEW_COARSE,
	MOAT_VIEW_CATEGORY,
	MOAT_VIEW_VIRTUAL,
	MOAT_VIEW_FULL,
	MOAT_VIEW_COUNT
} moat_view_t;

typedef enum moat_relation_kind {
	MOAT_REL_ASSIGN = 0,
	MOAT_REL_TICKET,
	MOAT_REL_AUTHORIZE,
	MOAT_REL_KIND_COUNT
} moat_relation_kind_t;

typedef enum moat_principal_status {
	MOAT_PRINCIPAL_ACTIVE = 0,
	MOAT_PRINCIPAL_SUSPENDED,
} moat_principal_status_t;

/* Stable lower-case names ("cs_agent", "customer_care", "mask", …) and their
 * inverse; the *_parse functions return -1 for an unknown name. */
const char *moat_party_kind_name(moat_party_kind_t k);
const char *moat_role_name(moat_role_t r);
const char *moat_purpose_name(moat_purpose_t p);
const char *moat_status_name(moat_order_status_t s);
const char *moat_field_name(moat_field_t f);
const char *moat_view_name(moat_view_t v);
const char *moat_relation_kind_name(moat_relation_kind_t k);
int moat_party_kind_parse(const char *s);
int moat_role_parse(const char *s);
int moat_purpose_parse(const char *s);
int moat_status_parse(const char *s);
int moat_field_parse(const char *s);
int moat_view_parse(const char *s);
int moat_relation_kind_parse(const char *s);
/* NULL-terminated name lists, for error messages and JSON enum checks. */
extern const char *const moat_party_kind_names[];
extern const char *const moat_role_names[];
extern const char *const moat_purpose_names[];
extern const char *const moat_status_names[];
extern const char *const moat_field_names[];
extern const char *const moat_view_names[];
extern const char *const moat_relation_kind_names[];

/* ---- records. Strings are borrowed from whatever the record was parsed from (a
 * json_t or an arena) and live as long as that. ---------------------------------- */

typedef struct moat_party {
	const char *party;
	moat_party_kind_t kind;
	const char *name;
} moat_party_t;

typedef struct moat_principal {
	const char *principal;
	const char *party;
	moat_role_t role;
	const char *name;  /* display name of a staff account; not buyer PII */
	const char *shift; /* "HH:MM-HH:MM" local time, or NULL */
	moat_principal_status_t status;
} moat_principal_t;

typedef struct moat_relation {
	moat_relation_kind_t kind;
	const char *order_id;  /* assign, ticket */
	const char *merchant;  /* authorize */
	const char *principal;
	const char *ticket;    /* ticket */
	moat_time_t from;      /* assign/authorize "from", ticket "opened"; NONE = open */
	moat_time_t until;     /* assign/authorize "until", ticket "closed"; NONE = open */
} moat_relation_t;

typedef struct moat_item {
	const char *sku;
	const char *title;
	int64_t qty;
	int64_t price_cents;
} moat_item_t;

typedef struct moat_address {
	const char *province;
	const char *city;
	const char *district;
	const char *detail; /* PII: encrypted at rest */
} moat_address_t;

typedef struct moat_order {
	const char *order_id;
	const char *merchant;
	moat_time_t placed_at;
	moat_order_status_t status;
	/* buyer: name, phone, address.detail and id_number are PII */
	const char *buyer_name;
	const char *buyer_phone;     /* 11-digit mainland mobile, digits only */
	const char *buyer_id_number; /* 18-char resident id, or NULL */
	moat_address_t address;
	size_t n_items;
	moat_item_t *items;
	/* shipping (all optional) */
	const char *carrier;
	const char *waybill;
	moat_time_t shipped_at;
	moat_time_t delivered_at;
	/* Synthetic order planted to catch a leaker (see the tracer); never real. */
	bool honey;
} moat_order_t;

/* Parse one interchange object. Strings point into obj (keep obj alive); items
 * are allocated from arena. Errors name the field ("buyer.phone"). */
moat_err_t moat_party_from_json(json_t *obj, moat_party_t *out, moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_principal_from_json(json_t *obj, moat_principal_t *out,
				    moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_relation_from_json(json_t *obj, moat_relation_t *out,
				   moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_order_from_json(json_t *obj, moat_arena_t *arena, moat_order_t *out,
				moat_error_t *err) MOAT_MUST_CHECK;
/* Appends the items of o as stored: a compact JSON array of objects with sorted
 * keys, byte for byte what jansson's json_dumps(items, JSON_COMPACT |
 * JSON_SORT_KEYS) writes for the parsed items (only the four item keys exist,
 * and validation has already refused control characters). */
moat_err_t moat_order_items_json(const moat_order_t *o, moat_buf_t *b) MOAT_MUST_CHECK;

/* Validators. */
bool moat_id_valid(const char *s); /* 1..64 of [A-Za-z0-9._:-] */
bool moat_phone_valid(const char *s); /* mainland mobile: 1[3-9]XXXXXXXXX */
bool moat_id_number_valid(const char *s); /* GB 11643 18-char id with check digit */
bool moat_shift_valid(const char *s);

#endif
