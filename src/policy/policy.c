/* The policy language: parsing, linting, deciding and explaining (docs/policy.md). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "moat/policy.h"

/* Relation condition bit for "the principal works for the order's merchant"; it
 * sits above the stored relation kinds. */
#define REL_MERCHANT_BIT (1u << MOAT_REL_KIND_COUNT)

enum { COND_ANY = 0, COND_NONE, COND_SOME };	   /* relation */
enum { STATE_ANY = 0, STATE_LIST, STATE_RANGE };   /* state */
enum { TIME_ANY = 0, TIME_SHIFT, TIME_OFF_SHIFT }; /* time */

typedef struct rule {
	char id[MOAT_ID_MAX + 1];
	int line;
	uint32_t roles;	   /* bit per moat_role_t */
	uint32_t purposes; /* bit per moat_purpose_t */
	int rel_mode;
	unsigned rel_bits;
	int state_mode;
	unsigned state_bits; /* STATE_LIST: bit per status */
	int lo, hi;	     /* STATE_RANGE: lifecycle ranks */
	int hi_status;	     /* status named as the range end (for its timestamp) */
	int64_t grace_ms;    /* STATE_RANGE: -1 = none */
	char state_text[64];
	int time_mode;
	bool deny;
	bool has_view;
	uint8_t views[MOAT_FIELD_COUNT];
	int64_t quota;
	bool has_quota;
	bool seen[8]; /* keywords already given, to refuse repeats */
} rule_t;

struct moat_policy {
	rule_t *rules;
	size_t n;
	int tz_minutes;
	int64_t default_quota;
	char hash[65];
};

#define ALL_ROLES ((1u << MOAT_ROLE_COUNT) - 1)
#define ALL_PURPOSES ((1u << MOAT_PURPOSE_COUNT) - 1)

/* Lifecycle rank of a status: closed and refunded are both terminal. */
static int status_rank(moat_order_status_t s)
{
	switch (s) {
	case MOAT_STATUS_PAID:
		return 0;
	case MOAT_STATUS_SHIPPED:
		return 1;
	case MOAT_STATUS_DELIVERED:
		return 2;
	default:
		return 3;
	}
}

/* ---- default policy ------------------------------------------------------------- */

static const char default_policy[] =
    "# moat default policy (installed by `moat init`; see docs/policy.md).\n"
    "# Rules are tried top to bottom; the first that matches decides; no match denies.\n"
    "version 1\n"
    "timezone +08:00\n"
    "default-quota 500\n"
    "\n"
    "# Couriers see what they need to deliver, from shipping until 3 days after delivery.\n"
    "rule courier-deliver\n"
    "  role courier\n"
    "  purpose deliver\n"
    "  relation assign\n"
    "  state shipped..delivered+3d\n"
    "  view name=mask phone=virtual address=full items=hidden waybill=full\n"
    "  quota 300\n"
    "end\n"
    "\n"
    "# Warehouses pack and label paid orders assigned to them.\n"
    "rule warehouse-ship\n"
    "  role warehouse\n"
    "  purpose ship\n"
    "  relation assign\n"
    "  state paid..shipped\n"
    "  view name=mask phone=mask address=full items=full waybill=full\n"
    "  quota 2000\n"
    "end\n"
    "\n"
    "# Customer service works through tickets.\n"
    "rule cs-ticket\n"
    "  role cs_agent\n"
    "  purpose customer_care after_sales refund\n"
    "  relation ticket\n"
    "  view name=mask phone=virtual address=coarse items=full amounts=full waybill=full\n"
    "  quota 200\n"
    "end\n"
    "\n"
    "rule cs-address-change\n"
    "  role cs_agent\n"
    "  purpose address_change\n"
    "  relation ticket\n"
    "  state paid\n"
    "  view name=mask phone=virtual address=full items=category\n"
    "  quota 100\n"
    "end\n"
    "\n"
    "# An ERP / order-management app the merchant authorised ships its orders.\n"
    "rule isv-ship\n"
    "  role isv_app\n"
    "  purpose ship\n"
    "  relation authorize\n"
    "  state paid..shipped\n"
    "  view name=full phone=virtual address=full items=full amounts=full waybill=full\n"
    "  quota 5000\n"
    "end\n"
    "\n"
    "# The merchant's own staff handle after-sales with masked contact data.\n"
    "rule merchant-after-sales\n"
    "  role merchant_admin\n"
    "  purpose after_sales refund customer_care\n"
    "  relation merchant\n"
    "  view name=mask phone=mask address=coarse items=full amounts=full waybill=full\n"
    "end\n"
    "\n"
    "# Platform services (parcel tracking, refunds) work on the order, not the person.\n"
    "rule platform-service\n"
    "  role platform_service\n"
    "  purpose deliver refund\n"
    "  view name=mask phone=mask address=coarse items=category amounts=full\n"
    "end\n"
    "\n"
    "# Analytics never needs a person.\n"
    "rule analytics\n"
    "  role platform_service platform_ops merchant_admin isv_app\n"
    "  purpose analytics\n"
    "  view address=coarse items=category amounts=full\n"
    "  quota unlimited\n"
    "end\n"
    "\n"
    "# Auditors see that data existed, not what it was.\n"
    "rule audit\n"
    "  role auditor\n"
    "  purpose audit\n"
    "  view name=mask phone=mask address=coarse id_number=mask items=category amounts=full "
    "waybill=full\n"
    "end\n"
    "\n"
    "# Any other read with a workflow reason gets masked data only.\n"
    "rule related-masked\n"
    "  relation assign ticket authorize merchant\n"
    "  view name=mask phone=mask address=coarse items=category\n"
    "end\n"
    "\n"
    "# Everything else: no rule matches, so the read is denied.\n";

const char *moat_policy_default_text(void)
{
	return default_policy;
}

/* ---- field / view table ---------------------------------------------------------- */

bool moat_policy_view_allowed(moat_field_t f, moat_view_t v)
{
	if (v == MOAT_VIEW_HIDDEN)
		return true;
	switch (f) {
	case MOAT_FIELD_NAME:
		return v == MOAT_VIEW_FULL || v == MOAT_VIEW_MASK;
	case MOAT_FIELD_PHONE:
		return v == MOAT_VIEW_FULL || v == MOAT_VIEW_MASK || v == MOAT_VIEW_VIRTUAL;
	case MOAT_FIELD_ADDRESS:
		return v == MOAT_VIEW_FULL || v == MOAT_VIEW_COARSE;
	case MOAT_FIELD_ID_NUMBER:
		return v == MOAT_VIEW_FULL || v == MOAT_VIEW_MASK; /* full: platform roles only */
	case MOAT_FIELD_ITEMS:
		return v == MOAT_VIEW_FULL || v == MOAT_VIEW_CATEGORY;
	case MOAT_FIELD_AMOUNTS:
	case MOAT_FIELD_WAYBILL:
		return v == MOAT_VIEW_FULL;
	default:
		return false;
	}
}

static bool personal_field(int f)
{
	return f == MOAT_FIELD_NAME || f == MOAT_FIELD_PHONE || f == MOAT_FIELD_ADDRESS ||
	       f == MOAT_FIELD_ID_NUMBER || f == MOAT_FIELD_ITEMS;
}

bool moat_policy_is_plaintext(const uint8_t views[MOAT_FIELD_COUNT])
{
	for (int f = 0; f < MOAT_FIELD_COUNT; f++)
		if (personal_field(f) &&
		    (views[f] == MOAT_VIEW_FULL || views[f] == MOAT_VIEW_VIRTUAL))
			return true;
	return false;
}

bool moat_policy_reveals_pii(const uint8_t views[MOAT_FIELD_COUNT])
{
	for (int f = 0; f < MOAT_FIELD_COUNT; f++)
		if (personal_field(f) && views[f] > MOAT_VIEW_HIDDEN)
			return true;
	return false;
}

/* ---- parsing --------------------------------------------------------------------- */

enum { KW_ROLE = 0, KW_PURPOSE, KW_RELATION, KW_STATE, KW_TIME, KW_DENY, KW_QUOTA, KW_VIEW };
static const char *const keywords[] = {"role", "purpose", "relation", "state", "time",
				       "deny", "quota",	  "view",     NULL};

#define MAX_TOKENS 64

/* Splits a line (comment stripped) into whitespace/comma separated tokens in place. */
static int tokenize(char *line, char **tok, int max)
{
	char *hash = strchr(line, '#');
	if (hash)
		*hash = '\0';
	int n = 0;
	char *p = line;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\r')
			p++;
		if (!*p)
			break;
		if (n == max)
			return -1;
		tok[n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != ',' && *p != '\r')
			p++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

static moat_err_t parse_quota(const char *s, int64_t *out, moat_error_t *err, int line)
{
	if (strcmp(s, "unlimited") == 0) {
		*out = MOAT_QUOTA_UNLIMITED;
		return MOAT_OK;
	}
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v > 100000000) {
		moat_error_set(
		    err, MOAT_EINVAL, "quota",
		    "quota must be a number 0..100000000 or \"unlimited\", not \"%.40s\"", s);
		if (err)
			err->line = line;
		return MOAT_EINVAL;
	}
	*out = v;
	return MOAT_OK;
}

/* "shipped..delivered+3d" or "paid..shipped"; grace unit d or h. */
static bool parse_range(const char *s, rule_t *r)
{
	const char *dots = strstr(s, "..");
	if (!dots)
		return false;
	char a[32], b[32];
	size_t la = (size_t)(dots - s);
	if (la == 0 || la >= sizeof a)
		return false;
	memcpy(a, s, la);
	a[la] = '\0';
	const char *rest = dots + 2;
	const char *plus = strchr(rest, '+');
	size_t lb = plus ? (size_t)(plus - rest) : strlen(rest);
	if (lb == 0 || lb >= sizeof b)
		return false;
	memcpy(b, rest, lb);
	b[lb] = '\0';
	int sa = moat_status_parse(a), sb = moat_status_parse(b);
	if (sa < 0 || sb < 0)
		return false;
	r->lo = status_rank((moat_order_status_t)sa);
	r->hi = status_rank((moat_order_status_t)sb);
	r->hi_status = sb;
	if (r->lo > r->hi)
		return false;
	r->grace_ms = -1;
	if (plus) {
		char *end;
		errno = 0;
		long v = strtol(plus + 1, &end, 10);
		if (errno || end == plus + 1 || v < 0 || v > 3650)
			return false;
		if (strcmp(end, "d") == 0)
			r->grace_ms = (int64_t)v * 86400000;
		else if (strcmp(end, "h") == 0)
			r->grace_ms = (int64_t)v * 3600000;
		else
			return false;
		/* Closed and refunded orders carry no timestamp to count from. */
		if (sb != MOAT_STATUS_PAID && sb != MOAT_STATUS_SHIPPED &&
		    sb != MOAT_STATUS_DELIVERED)
			return false;
	}
	return true;
}

static moat_err_t line_error(moat_error_t *err, int line, moat_err_t code, const char *field,
			     const char *msg)
{
	moat_error_set(err, code, field, "%s", msg);
	if (err)
		err->line = line;
	return code;
}

/* One keyword line inside a rule block. */
static moat_err_t parse_rule_line(rule_t *r, char **tok, int n, int line, moat_error_t *err)
{
	char msg[256];
	int kw = -1;
	for (int i = 0; keywords[i]; i++)
		if (strcmp(tok[0], keywords[i]) == 0)
			kw = i;
	if (kw < 0) {
		snprintf(msg, sizeof msg,
			 "unknown keyword \"%.40s\" in rule %s; expected role, purpose, relation, "
			 "state, time, view, quota, deny or end",
			 tok[0], r->id);
		return line_error(err, line, MOAT_EINVAL, tok[0], msg);
	}
	if (kw != KW_VIEW && r->seen[kw]) {
		snprintf(msg, sizeof msg, "\"%s\" given twice in rule %s", keywords[kw], r->id);
		return line_error(err, line, MOAT_EINVAL, keywords[kw], msg);
	}
	r->seen[kw] = true;
	if (kw == KW_DENY) {
		if (n != 1)
			return line_error(err, line, MOAT_EINVAL, "deny",
					  "\"deny\" takes no values");
		r->deny = true;
		return MOAT_OK;
	}
	if (n < 2) {
		snprintf(msg, sizeof msg, "\"%s\" needs at least one value", keywords[kw]);
		return line_error(err, line, MOAT_EINVAL, keywords[kw], msg);
	}
	bool any = n == 2 && strcmp(tok[1], "any") == 0;
	switch (kw) {
	case KW_ROLE:
	case KW_PURPOSE: {
		uint32_t bits = 0;
		if (any) {
			bits = kw == KW_ROLE ? ALL_ROLES : ALL_PURPOSES;
		} else {
			for (int i = 1; i < n; i++) {
				int v = kw == KW_ROLE ? moat_role_parse(tok[i])
						      : moat_purpose_parse(tok[i]);
				if (v < 0) {
					snprintf(msg, sizeof msg, "unknown %s \"%.40s\"",
						 keywords[kw], tok[i]);
					return line_error(err, line, MOAT_EINVAL, keywords[kw],
							  msg);
				}
				bits |= 1u << v;
			}
		}
		if (kw == KW_ROLE)
			r->roles = bits;
		else
			r->purposes = bits;
		return MOAT_OK;
	}
	case KW_RELATION:
		if (any) {
			r->rel_mode = COND_ANY;
			return MOAT_OK;
		}
		if (n == 2 && strcmp(tok[1], "none") == 0) {
			r->rel_mode = COND_NONE;
			return MOAT_OK;
		}
		r->rel_mode = COND_SOME;
		r->rel_bits = 0;
		for (int i = 1; i < n; i++) {
			int k = moat_relation_kind_parse(tok[i]);
			if (k >= 0)
				r->rel_bits |= 1u << k;
			else if (strcmp(tok[i], "merchant") == 0)
				r->rel_bits |= REL_MERCHANT_BIT;
			else {
				snprintf(msg, sizeof msg,
					 "unknown relation \"%.40s\"; expected assign, ticket, "
					 "authorize, "
					 "merchant, none or any",
					 tok[i]);
				return line_error(err, line, MOAT_EINVAL, "relation", msg);
			}
		}
		return MOAT_OK;
	case KW_STATE:
		if (any) {
			r->state_mode = COND_ANY;
			return MOAT_OK;
		}
		if (n == 2 && strstr(tok[1], "..")) {
			if (!parse_range(tok[1], r)) {
				snprintf(
				    msg, sizeof msg,
				    "bad state window \"%.40s\"; write FROM..TO or FROM..TO+Nd "
				    "(TO paid, shipped or delivered when a grace is given)",
				    tok[1]);
				return line_error(err, line, MOAT_EINVAL, "state", msg);
			}
			r->state_mode = STATE_RANGE;
			snprintf(r->state_text, sizeof r->state_text, "%s", tok[1]);
			return MOAT_OK;
		}
		r->state_mode = STATE_LIST;
		r->state_bits = 0;
		for (int i = 1; i < n; i++) {
			int s = moat_status_parse(tok[i]);
			if (s < 0) {
				snprintf(msg, sizeof msg, "unknown order state \"%.40s\"", tok[i]);
				return line_error(err, line, MOAT_EINVAL, "state", msg);
			}
			r->state_bits |= 1u << s;
		}
		return MOAT_OK;
	case KW_TIME:
		if (n != 2)
			return line_error(err, line, MOAT_EINVAL, "time",
					  "\"time\" takes one value: any, shift or off-shift");
		if (strcmp(tok[1], "any") == 0)
			r->time_mode = TIME_ANY;
		else if (strcmp(tok[1], "shift") == 0)
			r->time_mode = TIME_SHIFT;
		else if (strcmp(tok[1], "off-shift") == 0)
			r->time_mode = TIME_OFF_SHIFT;
		else
			return line_error(err, line, MOAT_EINVAL, "time",
					  "\"time\" takes one value: any, shift or off-shift");
		return MOAT_OK;
	case KW_QUOTA:
		if (n != 2)
			return line_error(err, line, MOAT_EINVAL, "quota",
					  "\"quota\" takes one value");
		r->has_quota = true;
		return parse_quota(tok[1], &r->quota, err, line);
	case KW_VIEW:
		r->has_view = true;
		for (int i = 1; i < n; i++) {
			char *eq = strchr(tok[i], '=');
			if (!eq) {
				snprintf(msg, sizeof msg, "expected FIELD=VIEW, not \"%.40s\"",
					 tok[i]);
				return line_error(err, line, MOAT_EINVAL, "view", msg);
			}
			*eq = '\0';
			int f = moat_field_parse(tok[i]);
			int v = moat_view_parse(eq + 1);
			if (f < 0) {
				snprintf(
				    msg, sizeof msg,
				    "unknown field \"%.40s\"; fields are name, phone, address, "
				    "id_number, items, amounts, waybill",
				    tok[i]);
				return line_error(err, line, MOAT_EINVAL, "view", msg);
			}
			if (v <= MOAT_VIEW_NONE ||
			    !moat_policy_view_allowed((moat_field_t)f, (moat_view_t)v)) {
				snprintf(msg, sizeof msg, "field %s has no view \"%.40s\"", tok[i],
					 eq + 1);
				return line_error(err, line, MOAT_EINVAL, "view", msg);
			}
			r->views[f] = (uint8_t)v;
		}
		return MOAT_OK;
	}
	return MOAT_OK;
}

static void rule_init(rule_t *r, const char *id, int line)
{
	memset(r, 0, sizeof *r);
	snprintf(r->id, sizeof r->id, "%s", id);
	r->line = line;
	r->roles = ALL_ROLES;
	r->purposes = ALL_PURPOSES;
	r->grace_ms = -1;
	for (int f = 0; f < MOAT_FIELD_COUNT; f++)
		r->views[f] = MOAT_VIEW_HIDDEN;
}

static moat_err_t rule_finish(moat_policy_t *p, rule_t *r, moat_error_t *err)
{
	char msg[200];
	if (r->deny == r->has_view) {
		snprintf(msg, sizeof msg, "rule %s needs exactly one of \"view …\" or \"deny\"",
			 r->id);
		return line_error(err, r->line, MOAT_EINVAL, "rule", msg);
	}
	if (r->deny && r->has_quota) {
		snprintf(msg, sizeof msg, "rule %s denies, so it cannot have a quota", r->id);
		return line_error(err, r->line, MOAT_EINVAL, "quota", msg);
	}
	const uint32_t platform =
	    (1u << MOAT_ROLE_PLATFORM_SERVICE) | (1u << MOAT_ROLE_PLATFORM_OPS);
	if (r->views[MOAT_FIELD_ID_NUMBER] == MOAT_VIEW_FULL && (r->roles & ~platform)) {
		snprintf(msg, sizeof msg,
			 "rule %s shows id_number in full to a role outside the platform; only "
			 "platform_service and platform_ops may see it (use id_number=mask)",
			 r->id);
		return line_error(err, r->line, MOAT_EINVAL, "view", msg);
	}
	if (!r->has_quota)
		r->quota = p->default_quota;
	return MOAT_OK;
}

static void policy_hash(moat_policy_t *p, const char *text, size_t len)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	if (EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		memset(md, 0, sizeof md);
	moat_hex_encode(md, 32, p->hash);
}

moat_err_t moat_policy_parse(const char *text, size_t len, moat_policy_t **out, moat_error_t *err)
{
	*out = NULL;
	if (len > MOAT_POLICY_MAX_BYTES)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "policy is larger than %u bytes",
				      MOAT_POLICY_MAX_BYTES);
	if (!moat_utf8_valid(text, len))
		return moat_error_set(err, MOAT_EINVAL, NULL, "policy is not valid UTF-8");
	moat_err_t rc = MOAT_OK;
	moat_policy_t *p = calloc(1, sizeof *p);
	if (!p)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	p->tz_minutes = 8 * 60;
	p->default_quota = MOAT_QUOTA_UNLIMITED;
	p->rules = calloc(MOAT_POLICY_MAX_RULES, sizeof *p->rules);
	if (!p->rules) {
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		goto fail;
	}
	rule_t *cur = NULL;
	bool seen_rule = false;
	int line = 0;
	size_t pos = 0;
	char buf[MOAT_POLICY_MAX_LINE + 2];
	char msg[256];
	while (pos < len) {
		line++;
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
		if (ll > MOAT_POLICY_MAX_LINE) {
			rc = line_error(err, line, MOAT_ELIMIT, NULL,
					"line is longer than 1024 bytes");
			goto fail;
		}
		memcpy(buf, text + pos, ll);
		buf[ll] = '\0';
		pos += ll + (nl ? 1 : 0);
		if (memchr(buf, '\0', ll)) {
			rc = line_error(err, line, MOAT_EINVAL, NULL, "NUL byte in policy");
			goto fail;
		}
		char *tok[MAX_TOKENS];
		int n = tokenize(buf, tok, MAX_TOKENS);
		if (n < 0) {
			rc =
			    line_error(err, line, MOAT_ELIMIT, NULL, "too many values on one line");
			goto fail;
		}
		if (n == 0)
			continue;
		if (cur) {
			if (strcmp(tok[0], "end") == 0) {
				if (n != 1) {
					rc = line_error(err, line, MOAT_EINVAL, "end",
							"\"end\" takes no values");
					goto fail;
				}
				if ((rc = rule_finish(p, cur, err)) != MOAT_OK)
					goto fail;
				p->n++;
				cur = NULL;
				continue;
			}
			if (strcmp(tok[0], "rule") == 0) {
				snprintf(msg, sizeof msg,
					 "rule %s (line %d) has no \"end\" before the next rule",
					 cur->id, cur->line);
				rc = line_error(err, line, MOAT_EINVAL, "end", msg);
				goto fail;
			}
			if ((rc = parse_rule_line(cur, tok, n, line, err)) != MOAT_OK)
				goto fail;
			continue;
		}
		if (strcmp(tok[0], "rule") == 0) {
			if (n != 2 || !moat_id_valid(tok[1])) {
				rc = line_error(
				    err, line, MOAT_EINVAL, "rule",
				    "expected \"rule ID\" with an id of 1..64 of [A-Za-z0-9._:-]");
				goto fail;
			}
			for (size_t i = 0; i < p->n; i++)
				if (strcmp(p->rules[i].id, tok[1]) == 0) {
					snprintf(msg, sizeof msg,
						 "rule id %s already used on line %d", tok[1],
						 p->rules[i].line);
					rc = line_error(err, line, MOAT_EINVAL, "rule", msg);
					goto fail;
				}
			if (p->n == MOAT_POLICY_MAX_RULES) {
				rc = line_error(err, line, MOAT_ELIMIT, "rule",
						"more than 1024 rules");
				goto fail;
			}
			cur = &p->rules[p->n];
			rule_init(cur, tok[1], line);
			seen_rule = true;
		} else if (strcmp(tok[0], "version") == 0) {
			if (n != 2 || strcmp(tok[1], "1") != 0) {
				rc = line_error(err, line, MOAT_EINVAL, "version",
						"this moat reads policy version 1 only");
				goto fail;
			}
		} else if (strcmp(tok[0], "timezone") == 0 ||
			   strcmp(tok[0], "default-quota") == 0) {
			if (seen_rule) {
				snprintf(msg, sizeof msg, "\"%s\" must come before the first rule",
					 tok[0]);
				rc = line_error(err, line, MOAT_EINVAL, tok[0], msg);
				goto fail;
			}
			if (n != 2) {
				snprintf(msg, sizeof msg, "\"%s\" takes one value", tok[0]);
				rc = line_error(err, line, MOAT_EINVAL, tok[0], msg);
				goto fail;
			}
			if (tok[0][0] == 't') {
				const char *z = tok[1];
				int hh, mm;
				if (strcmp(z, "Z") == 0 || strcmp(z, "UTC") == 0) {
					p->tz_minutes = 0;
				} else if (strlen(z) == 6 && (z[0] == '+' || z[0] == '-') &&
					   z[3] == ':' && isdigit((unsigned char)z[1]) &&
					   isdigit((unsigned char)z[2]) &&
					   isdigit((unsigned char)z[4]) &&
					   isdigit((unsigned char)z[5]) &&
					   (hh = (z[1] - '0') * 10 + z[2] - '0') <= 14 &&
					   (mm = (z[4] - '0') * 10 + z[5] - '0') < 60) {
					p->tz_minutes = (z[0] == '-' ? -1 : 1) * (hh * 60 + mm);
				} else {
					rc = line_error(
					    err, line, MOAT_EINVAL, "timezone",
					    "timezone must be an offset like +08:00, or Z");
					goto fail;
				}
			} else if ((rc = parse_quota(tok[1], &p->default_quota, err, line)) !=
				   MOAT_OK) {
				goto fail;
			}
		} else {
			snprintf(msg, sizeof msg,
				 "unknown directive \"%.40s\"; expected version, timezone, "
				 "default-quota "
				 "or rule",
				 tok[0]);
			rc = line_error(err, line, MOAT_EINVAL, tok[0], msg);
			goto fail;
		}
	}
	if (cur) {
		snprintf(msg, sizeof msg, "rule %s is not closed with \"end\"", cur->id);
		rc = line_error(err, cur->line, MOAT_EINVAL, "end", msg);
		goto fail;
	}
	policy_hash(p, text, len);
	*out = p;
	return MOAT_OK;
fail:
	moat_policy_free(p);
	return rc;
}

moat_err_t moat_policy_load(const char *path, moat_policy_t **out, moat_error_t *err)
{
	char *text = NULL;
	size_t len = 0;
	*out = NULL;
	moat_err_t rc = moat_file_read(path, MOAT_POLICY_MAX_BYTES, &text, &len, err);
	if (rc != MOAT_OK)
		return rc;
	rc = moat_policy_parse(text, len, out, err);
	free(text);
	return rc;
}

void moat_policy_free(moat_policy_t *p)
{
	if (!p)
		return;
	free(p->rules);
	free(p);
}

/* ---- deciding -------------------------------------------------------------------- */

static moat_time_t status_time(const moat_policy_request_t *q, int status)
{
	switch (status) {
	case MOAT_STATUS_PAID:
		return q->placed_at;
	case MOAT_STATUS_SHIPPED:
		return q->shipped_at;
	case MOAT_STATUS_DELIVERED:
		return q->delivered_at;
	default:
		return MOAT_TIME_NONE;
	}
}

/* Minutes after local midnight, or -1 if s is not HH:MM. */
static int hhmm(const char *s)
{
	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
	    !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
		return -1;
	return ((s[0] - '0') * 10 + s[1] - '0') * 60 + (s[3] - '0') * 10 + s[4] - '0';
}

static bool on_shift(const moat_policy_t *p, const moat_policy_request_t *q)
{
	/* A principal without shift hours is on duty around the clock. */
	if (!q->shift || !q->shift[0] || strlen(q->shift) != 11)
		return true;
	int a = hhmm(q->shift), b = hhmm(q->shift + 6);
	if (a < 0 || b < 0 || a == b)
		return true;
	int64_t local_min = (q->now / 60000) + p->tz_minutes;
	int m = (int)(((local_min % 1440) + 1440) % 1440);
	return a < b ? (m >= a && m < b) : (m >= a || m < b);
}

/* NULL if r matches q, else the reason it does not. */
static const char *rule_mismatch(const moat_policy_t *p, const rule_t *r,
				 const moat_policy_request_t *q)
{
	if (!(r->roles & (1u << q->role)))
		return "role does not match";
	if (!(r->purposes & (1u << q->purpose)))
		return "purpose does not match";
	unsigned rel = q->relations & ((1u << MOAT_REL_KIND_COUNT) - 1);
	if (q->own_merchant)
		rel |= REL_MERCHANT_BIT;
	if (r->rel_mode == COND_NONE && rel != 0)
		return "a relation holds but the rule wants none";
	if (r->rel_mode == COND_SOME && !(rel & r->rel_bits))
		return "none of the required relations holds";
	int rank = status_rank(q->status);
	if (r->state_mode == STATE_LIST && !(r->state_bits & (1u << q->status)))
		return "order state not in the rule's list";
	if (r->state_mode == STATE_RANGE) {
		if (rank < r->lo)
			return "order has not reached the window's first state";
		if (r->grace_ms < 0) {
			if (rank > r->hi)
				return "order is past the window's last state";
		} else if (rank >= r->hi) {
			moat_time_t t = status_time(q, r->hi_status);
			if (t == MOAT_TIME_NONE)
				return "order has no timestamp for the window's last state";
			if (q->now > t + r->grace_ms)
				return "order is past the window's last state and its grace";
		}
	}
	if (r->time_mode != TIME_ANY) {
		bool on = on_shift(p, q);
		if (r->time_mode == TIME_SHIFT && !on)
			return "read is outside the principal's shift";
		if (r->time_mode == TIME_OFF_SHIFT && on)
			return "read is within the principal's shift";
	}
	return NULL;
}

static void decide_fill(const moat_policy_t *p, int idx, moat_policy_decision_t *out)
{
	out->rule_index = idx;
	if (idx < 0) {
		out->allow = false;
		out->rule = "no-match";
		out->quota = 0;
		for (int f = 0; f < MOAT_FIELD_COUNT; f++)
			out->views[f] = MOAT_VIEW_HIDDEN;
		return;
	}
	const rule_t *r = &p->rules[idx];
	out->rule = r->id;
	out->allow = !r->deny;
	out->quota = r->deny ? 0 : r->quota;
	memcpy(out->views, r->views, sizeof out->views);
}

void moat_policy_decide(const moat_policy_t *p, const moat_policy_request_t *req,
			moat_policy_decision_t *out)
{
	for (size_t i = 0; i < p->n; i++)
		if (!rule_mismatch(p, &p->rules[i], req)) {
			decide_fill(p, (int)i, out);
			return;
		}
	decide_fill(p, -1, out);
}

static moat_err_t put_views(moat_buf_t *b, const uint8_t *views)
{
	moat_err_t rc = MOAT_OK;
	for (int f = 0; f < MOAT_FIELD_COUNT && rc == MOAT_OK; f++)
		rc = moat_buf_printf(b, "%s%s=%s", f ? " " : "", moat_field_name((moat_field_t)f),
				     moat_view_name((moat_view_t)views[f]));
	return rc;
}

moat_err_t moat_policy_explain(const moat_policy_t *p, const moat_policy_request_t *req,
			       moat_buf_t *out)
{
	moat_err_t rc = moat_buf_printf(out, "request: role=%s purpose=%s relations=",
					moat_role_name(req->role), moat_purpose_name(req->purpose));
	bool anyrel = false;
	for (int k = 0; k < MOAT_REL_KIND_COUNT && rc == MOAT_OK; k++)
		if (req->relations & (1u << k)) {
			rc = moat_buf_printf(out, "%s%s", anyrel ? "," : "",
					     moat_relation_kind_name((moat_relation_kind_t)k));
			anyrel = true;
		}
	if (rc == MOAT_OK && req->own_merchant) {
		rc = moat_buf_printf(out, "%smerchant", anyrel ? "," : "");
		anyrel = true;
	}
	if (rc == MOAT_OK && !anyrel)
		rc = moat_buf_puts(out, "none");
	if (rc == MOAT_OK)
		rc =
		    moat_buf_printf(out, " state=%s shift=%s (%s)\n", moat_status_name(req->status),
				    req->shift && req->shift[0] ? req->shift : "none",
				    on_shift(p, req) ? "on shift" : "off shift");
	for (size_t i = 0; i < p->n && rc == MOAT_OK; i++) {
		const rule_t *r = &p->rules[i];
		const char *why = rule_mismatch(p, r, req);
		if (why) {
			rc = moat_buf_printf(out, "  rule %s (line %d): skipped: %s\n", r->id,
					     r->line, why);
			continue;
		}
		rc = moat_buf_printf(out, "  rule %s (line %d): matches\n", r->id, r->line);
		if (rc == MOAT_OK && r->deny)
			rc = moat_buf_printf(out, "decision: deny by rule %s\n", r->id);
		else if (rc == MOAT_OK) {
			rc = moat_buf_printf(out, "decision: allow by rule %s: ", r->id);
			if (rc == MOAT_OK)
				rc = put_views(out, r->views);
			if (rc == MOAT_OK && r->quota == MOAT_QUOTA_UNLIMITED)
				rc = moat_buf_puts(out, "; quota unlimited\n");
			else if (rc == MOAT_OK)
				rc = moat_buf_printf(out, "; quota %lld plaintext reads/day\n",
						     (long long)r->quota);
		}
		return rc;
	}
	if (rc == MOAT_OK)
		rc = moat_buf_puts(out, "decision: deny (no rule matched)\n");
	return rc;
}

/* ---- linting --------------------------------------------------------------------- */

/* True if every request rule b matches is also matched by a. */
static bool covers(const rule_t *a, const rule_t *b)
{
	if ((b->roles & ~a->roles) || (b->purposes & ~a->purposes))
		return false;
	if (a->rel_mode == COND_NONE && b->rel_mode != COND_NONE)
		return false;
	if (a->rel_mode == COND_SOME && (b->rel_mode != COND_SOME || (b->rel_bits & ~a->rel_bits)))
		return false;
	if (a->state_mode == STATE_LIST &&
	    (b->state_mode != STATE_LIST || (b->state_bits & ~a->state_bits)))
		return false;
	if (a->state_mode == STATE_RANGE &&
	    (b->state_mode != STATE_RANGE || strcmp(a->state_text, b->state_text) != 0))
		return false;
	if (a->time_mode != TIME_ANY && a->time_mode != b->time_mode)
		return false;
	return true;
}

size_t moat_policy_lint(const moat_policy_t *p, moat_buf_t *out)
{
	size_t n = 0;
	for (size_t j = 0; j < p->n; j++) {
		const rule_t *b = &p->rules[j];
		for (size_t i = 0; i < j; i++)
			if (covers(&p->rules[i], b)) {
				if (moat_buf_printf(
					out,
					"line %d: rule %s: never applies: rule %s (line %d) "
					"matches every request it would\n",
					b->line, b->id, p->rules[i].id,
					p->rules[i].line) != MOAT_OK)
					return n + 1;
				n++;
				break;
			}
		if (!b->deny && b->rel_mode != COND_SOME && moat_policy_is_plaintext(b->views)) {
			if (moat_buf_printf(
				out,
				"line %d: rule %s: grants plaintext without requiring a "
				"relation (add \"relation …\")\n",
				b->line, b->id) != MOAT_OK)
				return n + 1;
			n++;
		}
		if (!b->deny && b->quota == MOAT_QUOTA_UNLIMITED &&
		    moat_policy_is_plaintext(b->views)) {
			if (moat_buf_printf(
				out, "line %d: rule %s: grants plaintext with no daily quota\n",
				b->line, b->id) != MOAT_OK)
				return n + 1;
			n++;
		}
	}
	return n;
}

/* ---- accessors ------------------------------------------------------------------- */

const char *moat_policy_hash(const moat_policy_t *p)
{
	return p->hash;
}

size_t moat_policy_rule_count(const moat_policy_t *p)
{
	return p->n;
}

const char *moat_policy_rule_id(const moat_policy_t *p, size_t i)
{
	return i < p->n ? p->rules[i].id : NULL;
}

int64_t moat_policy_rule_quota(const moat_policy_t *p, size_t i)
{
	if (i >= p->n || p->rules[i].deny)
		return 0;
	return p->rules[i].quota;
}

int moat_policy_tz_minutes(const moat_policy_t *p)
{
	return p->tz_minutes;
}

int64_t moat_policy_day(const moat_policy_t *p, moat_time_t t)
{
	int64_t local = t + (int64_t)p->tz_minutes * 60000;
	int64_t day = local / 86400000;
	if (local % 86400000 < 0)
		day--;
	return day;
}
