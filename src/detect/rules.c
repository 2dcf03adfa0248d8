/*
 * The rule file: parsing, checking and the default rule set. The format is
 * documented in docs/rules.md; its vocabulary follows Sigma correlation rules
 * (type event_count / value_count / temporal, group-by, timespan, condition) so an
 * analyst who knows Sigma reads it at once, but it is line-based text rather than
 * YAML so that moat needs no YAML parser and every error names its line.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect/detect_internal.h"

const char *const rule_type_names[] = {"match", "event_count", "value_count", "ratio",
				       "peer",  "self",        "temporal",    NULL};
const char *const rule_field_names[] = {"principal", "ip", "device", "order_id", "peer", "ref", NULL};

static const char *const severity_names[] = {"info", "low", "medium", "high", "critical", NULL};
static const char *const action_names[] = {"none", "throttle", "force_mask", "suspend", NULL};

static int name_index(const char *const *names, const char *s)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

const char *moat_detect_severity_name(moat_detect_severity_t s)
{
	return (unsigned)s < MOAT_SEVERITY_COUNT ? severity_names[s] : "?";
}
const char *moat_detect_action_name(moat_detect_action_t a)
{
	return (unsigned)a < MOAT_ACTION_COUNT ? action_names[a] : "?";
}
int moat_detect_severity_parse(const char *s) { return name_index(severity_names, s); }
int moat_detect_action_parse(const char *s) { return name_index(action_names, s); }

bool moat_detect_shift_parse(const char *s, int *start, int *end)
{
	int h1, m1, h2, m2;
	char tail;
	if (!s || strlen(s) != 11 || sscanf(s, "%2d:%2d-%2d:%2d%c", &h1, &m1, &h2, &m2, &tail) != 4)
		return false;
	if (h1 < 0 || h1 > 24 || h2 < 0 || h2 > 24 || m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59 ||
	    (h1 == 24 && m1) || (h2 == 24 && m2))
		return false;
	*start = h1 * 60 + m1;
	*end = h2 * 60 + m2;
	return true;
}

/* ---- small parsers ------------------------------------------------------------------ */

typedef struct parser {
	moat_detect_rules_t *rs;
	rule_t *cur;
	unsigned seen; /* keys set in the current rule (bit per key) */
	int line;
	moat_error_t *err;
} parser_t;

static moat_err_t perr(parser_t *p, const char *field, const char *fmt, ...) MOAT_PRINTF(3, 4);
static moat_err_t perr(parser_t *p, const char *field, const char *fmt, ...)
{
	char msg[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	moat_err_t rc = moat_error_set(p->err, MOAT_EINVAL, field, "%s", msg);
	if (p->err)
		p->err->line = p->line;
	return rc;
}

/* "30s", "10m", "2h", "1d" → ms; false if malformed or not in 1 s .. 400 d. */
static bool parse_duration(const char *s, moat_time_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || v <= 0 || end[0] == 0 || end[1] != 0)
		return false;
	long long unit;
	switch (end[0]) {
	case 's': unit = 1000; break;
	case 'm': unit = 60000; break;
	case 'h': unit = 3600000; break;
	case 'd': unit = 86400000; break;
	default: return false;
	}
	if (v > 400LL * 86400000 / unit)
		return false;
	*out = v * unit;
	return true;
}

static bool parse_number(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v))
		return false;
	*out = v;
	return true;
}

static bool parse_yesno(const char *s, int *out)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "true") == 0)
		*out = TRI_YES;
	else if (strcmp(s, "no") == 0 || strcmp(s, "false") == 0)
		*out = TRI_NO;
	else
		return false;
	return true;
}

/* Parses "a|b|c" against names into a bitmask. */
static bool parse_set(char *v, const char *const *names, uint32_t *mask)
{
	*mask = 0;
	for (char *tok = strtok(v, "|"); tok; tok = strtok(NULL, "|")) {
		int i = name_index(names, tok);
		if (i < 0)
			return false;
		*mask |= 1u << i;
	}
	return *mask != 0;
}

static const char *const kind_names[] = {"", "access", "deny", "login", "export", NULL};
static const char *const relation_names[] = {"assign", "ticket", "authorize", "", "", "",
					     "",       "none",   NULL};

/* Parses a filter: space-separated terms key=value or key!=value, values a|b. */
static moat_err_t parse_filter(parser_t *p, const char *key, const char *text, rule_filter_t *f)
{
	char buf[512];
	if (strlen(text) >= sizeof buf)
		return perr(p, key, "filter is longer than %s bytes", "511");
	strcpy(buf, text);
	char *save = NULL;
	for (char *term = strtok_r(buf, " \t", &save); term; term = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(term, '=');
		if (!eq || eq == term)
			return perr(p, key, "filter term \"%s\" is not key=value or key!=value", term);
		bool neg = eq[-1] == '!', at_least = eq[-1] == '>';
		if (neg || at_least)
			eq[-1] = 0;
		*eq = 0;
		char *name = term, *val = eq + 1;
		uint32_t mask = 0;
		int tri = TRI_ANY;
		bool ok = true;
		if (at_least != (strcmp(name, "quota-share") == 0))
			return perr(p, key, "filter term \"%s\": only quota-share takes >= (and it "
					    "takes only >=)",
				    name);
		if (strcmp(name, "kind") == 0) {
			ok = parse_set(val, kind_names, &mask) && !(mask & 1u);
			f->kinds = neg ? (f->kinds & ~mask) : mask;
		} else if (strcmp(name, "role") == 0) {
			ok = parse_set(val, moat_role_names, &mask);
			f->roles = neg ? (f->roles & ~mask) : mask;
		} else if (strcmp(name, "purpose") == 0) {
			ok = parse_set(val, moat_purpose_names, &mask);
			f->purposes = neg ? (f->purposes & ~mask) : mask;
		} else if (strcmp(name, "relation") == 0 && !neg) {
			if (strcmp(val, "any") == 0) {
				mask = 0x7f;
			} else {
				ok = parse_set(val, relation_names, &mask);
			}
			f->relations = mask;
		} else if (strcmp(name, "result") == 0 && !neg) {
			if (strcmp(val, "success") == 0)
				f->result = MOAT_RESULT_SUCCESS;
			else if (strcmp(val, "failure") == 0)
				f->result = MOAT_RESULT_FAILURE;
			else
				ok = false;
		} else if (strcmp(name, "plaintext") == 0 && !neg) {
			ok = parse_yesno(val, &tri);
			f->plaintext = tri;
		} else if (strcmp(name, "full") == 0 && !neg) {
			ok = parse_yesno(val, &tri);
			f->full = tri;
		} else if (strcmp(name, "imported") == 0 && !neg) {
			ok = parse_yesno(val, &tri);
			f->imported = tri;
		} else if (strcmp(name, "shift") == 0 && !neg) {
			if (strcmp(val, "off") == 0)
				f->off_shift = TRI_YES;
			else if (strcmp(val, "on") == 0)
				f->off_shift = TRI_NO;
			else
				ok = false;
		} else if (strcmp(name, "refusal") == 0 && !neg) {
			static const char *const rn[] = {"quota", "policy", NULL};
			ok = parse_set(val, rn, &mask);
			f->refusals = mask; /* bit 0 = quota, bit 1 = policy, as REFUSAL_* */
		} else if (strcmp(name, "quota-share") == 0) {
			double v = 0;
			ok = parse_number(val, &v) && v > 0 && v <= 100;
			f->quota_share = v;
		} else if (strcmp(name, "new") == 0 && !neg) {
			static const char *const nn[] = {"ip", "device", NULL};
			ok = parse_set(val, nn, &mask);
			f->new_mask = mask; /* bit 0 = ip, bit 1 = device, as NEW_IP/NEW_DEVICE */
		} else {
			return perr(p, key, "unknown filter term \"%s\" (kind, role, purpose, relation, "
					    "result, plaintext, full, shift, new, imported, refusal, "
					    "quota-share; only the first three take !=)",
				    name);
		}
		if (!ok)
			return perr(p, key, "bad value in filter term \"%s\"", name);
	}
	return MOAT_OK;
}

static void filter_default(rule_filter_t *f)
{
	f->kinds = (1u << MOAT_ENTRY_ACCESS) | (1u << MOAT_ENTRY_DENY) | (1u << MOAT_ENTRY_LOGIN) |
		   (1u << MOAT_ENTRY_EXPORT);
	f->roles = (1u << (MOAT_ROLE_COUNT + 1)) - 1;
	f->purposes = (1u << MOAT_PURPOSE_COUNT) - 1;
	f->relations = 0;
	f->result = TRI_ANY;
	f->plaintext = TRI_ANY;
	f->full = TRI_ANY;
	f->off_shift = TRI_ANY;
	f->imported = TRI_ANY;
	f->new_mask = 0;
	f->refusals = 0;
	f->quota_share = 0;
}

/* ---- the rule file ------------------------------------------------------------------ */

enum {
	K_TITLE, K_TYPE, K_FILTER, K_NUMERATOR, K_GROUP_BY, K_FIELD, K_SUM, K_TIMESPAN, K_PERIOD,
	K_SUPPRESS, K_CONDITION, K_MIN, K_MIN_PEERS, K_HISTORY, K_MIN_HISTORY, K_SCORE, K_RULES,
	K_SEVERITY, K_ACTION, K_ALERT, K_COUNT
};
static const char *const key_names[] = {
    "title",    "type",      "filter",    "numerator", "group-by",    "field",
    "sum",      "timespan",  "period",    "suppress",  "condition",   "min",
    "min-peers", "history",  "min-history", "score",   "rules",       "severity",
    "action",   "alert",     NULL};

static moat_err_t set_key(parser_t *p, const char *key, char *val)
{
	rule_t *r = p->cur;
	int k = name_index(key_names, key);
	if (k < 0)
		return perr(p, key, "unknown key \"%s\" (see docs/rules.md)", key);
	if (p->seen & (1u << k))
		return perr(p, key, "key \"%s\" given twice in one rule", key);
	p->seen |= 1u << k;
	int i;
	switch (k) {
	case K_TITLE:
		free(r->title);
		r->title = strdup(val);
		if (!r->title)
			return moat_error_set(p->err, MOAT_ENOMEM, NULL, "out of memory");
		return MOAT_OK;
	case K_TYPE:
		if ((i = name_index(rule_type_names, val)) < 0)
			return perr(p, key, "unknown rule type \"%s\" (match, event_count, value_count, "
					    "ratio, peer, self, temporal)",
				    val);
		r->type = (rule_type_t)i;
		return MOAT_OK;
	case K_FILTER:
		return parse_filter(p, key, val, &r->filter);
	case K_NUMERATOR:
		return parse_filter(p, key, val, &r->numerator);
	case K_GROUP_BY:
	case K_FIELD:
		if ((i = name_index(rule_field_names, val)) < 0)
			return perr(p, key, "unknown field \"%s\" (principal, ip, device, order_id, "
					    "peer, ref)",
				    val);
		if (k == K_GROUP_BY)
			r->group_by = (rule_field_t)i;
		else
			r->field = (rule_field_t)i;
		return MOAT_OK;
	case K_SUM:
		if (strcmp(val, "rows") != 0)
			return perr(p, key, "sum must be \"rows\", not \"%s\"", val);
		r->sum_rows = true;
		return MOAT_OK;
	case K_TIMESPAN:
	case K_PERIOD:
	case K_SUPPRESS: {
		moat_time_t d;
		if (!parse_duration(val, &d))
			return perr(p, key, "bad duration \"%s\" (e.g. 30s, 10m, 1h, 1d)", val);
		*(k == K_TIMESPAN ? &r->timespan : k == K_PERIOD ? &r->period : &r->suppress) = d;
		return MOAT_OK;
	}
	case K_CONDITION: {
		char op[8];
		char num[64];
		int used = 0;
		if (sscanf(val, "%7s %63s%n", op, num, &used) != 2 || val[used] != 0)
			return perr(p, key, "condition \"%s\" is not OP NUMBER (gte 30, lt 0.001)", val);
		static const char *const ops[] = {"gte", "gt", "lte", "lt", NULL};
		if ((i = name_index(ops, op)) < 0)
			return perr(p, key, "unknown comparison \"%s\" (gte, gt, lte, lt)", op);
		r->op = (cond_op_t)i;
		if (!parse_number(num, &r->threshold))
			return perr(p, key, "bad number \"%s\"", num);
		return MOAT_OK;
	}
	case K_MIN:
		if (!parse_number(val, &r->min) || r->min < 0)
			return perr(p, key, "min must be a number >= 0, not \"%s\"", val);
		return MOAT_OK;
	case K_MIN_PEERS:
	case K_HISTORY:
	case K_MIN_HISTORY: {
		double v;
		if (!parse_number(val, &v) || v < 1 || v > 60 || v != floor(v))
			return perr(p, key, "%s must be a whole number 1..60", key);
		*(k == K_MIN_PEERS ? &r->min_peers : k == K_HISTORY ? &r->history : &r->min_history) =
		    (int)v;
		return MOAT_OK;
	}
	case K_SCORE:
		if (strcmp(val, "z") == 0)
			r->poisson = false;
		else if (strcmp(val, "poisson") == 0)
			r->poisson = true;
		else
			return perr(p, key, "score must be z or poisson, not \"%s\"", val);
		return MOAT_OK;
	case K_RULES: {
		char *save = NULL;
		r->n_steps = 0;
		for (char *t = strtok_r(val, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save)) {
			if (r->n_steps == TEMPORAL_STEPS_MAX)
				return perr(p, key, "a temporal rule has at most %s steps", "4");
			int found = -1;
			for (size_t j = 0; j + 1 < p->rs->n; j++)
				if (strcmp(p->rs->rules[j].name, t) == 0)
					found = (int)j;
			if (found < 0)
				return perr(p, key, "rule \"%s\" is not defined above this one", t);
			r->steps[r->n_steps++] = found;
		}
		if (r->n_steps < 2)
			return perr(p, key, "a temporal rule names at least %s rules", "2");
		return MOAT_OK;
	}
	case K_SEVERITY:
		if ((i = moat_detect_severity_parse(val)) < 0)
			return perr(p, key, "unknown severity \"%s\" (info, low, medium, high, critical)", val);
		r->severity = (moat_detect_severity_t)i;
		return MOAT_OK;
	case K_ACTION:
		if ((i = moat_detect_action_parse(val)) < 0)
			return perr(p, key, "unknown action \"%s\" (none, throttle, force_mask, suspend)", val);
		r->action = (moat_detect_action_t)i;
		return MOAT_OK;
	case K_ALERT: {
		int tri;
		if (!parse_yesno(val, &tri))
			return perr(p, key, "alert must be yes or no, not \"%s\"", val);
		r->alert = tri == TRI_YES;
		return MOAT_OK;
	}
	}
	return MOAT_OK;
}

#define SEEN(k) (p->seen & (1u << (k)))

/* Checks a finished rule: required keys per type, keys that do not apply. */
static moat_err_t finish_rule(parser_t *p)
{
	rule_t *r = p->cur;
	if (!r)
		return MOAT_OK;
	p->line = r->line;
	if (!SEEN(K_TYPE))
		return perr(p, "type", "rule \"%s\" has no type", r->name);
	static const struct {
		unsigned need, allow;
	} keys[RULE_TYPE_COUNT] = {
	    [RULE_MATCH] = {1u << K_FILTER, 1u << K_GROUP_BY},
	    [RULE_EVENT_COUNT] = {1u << K_FILTER | 1u << K_TIMESPAN | 1u << K_CONDITION,
				  1u << K_GROUP_BY | 1u << K_SUM},
	    [RULE_VALUE_COUNT] = {1u << K_FILTER | 1u << K_TIMESPAN | 1u << K_CONDITION | 1u << K_FIELD,
				  1u << K_GROUP_BY},
	    [RULE_RATIO] = {1u << K_FILTER | 1u << K_NUMERATOR | 1u << K_TIMESPAN | 1u << K_CONDITION,
			    1u << K_GROUP_BY | 1u << K_MIN},
	    [RULE_PEER] = {1u << K_FILTER | 1u << K_PERIOD | 1u << K_CONDITION,
			   1u << K_MIN | 1u << K_MIN_PEERS},
	    [RULE_SELF] = {1u << K_FILTER | 1u << K_PERIOD | 1u << K_CONDITION,
			   1u << K_MIN | 1u << K_HISTORY | 1u << K_MIN_HISTORY | 1u << K_SCORE},
	    [RULE_TEMPORAL] = {1u << K_RULES | 1u << K_TIMESPAN | 1u << K_GROUP_BY, 0},
	};
	unsigned common = 1u << K_TITLE | 1u << K_TYPE | 1u << K_SEVERITY | 1u << K_ACTION |
			  1u << K_ALERT | 1u << K_SUPPRESS;
	unsigned need = keys[r->type].need, allow = need | keys[r->type].allow | common;
	for (int k = 0; k < K_COUNT; k++) {
		if ((need & (1u << k)) && !SEEN(k))
			return perr(p, key_names[k], "a rule of this type needs \"%s\"", key_names[k]);
		if (SEEN(k) && !(allow & (1u << k)))
			return perr(p, key_names[k], "\"%s\" does not apply to this rule type",
				    key_names[k]);
	}
	if (r->type == RULE_PEER || r->type == RULE_SELF)
		r->group_by = FIELD_PRINCIPAL;
	if (r->type == RULE_SELF && r->min_history > r->history)
		return perr(p, "min-history", "min-history is larger than history%s", "");
	if (r->type == RULE_SELF && r->poisson && r->op != COND_LTE && r->op != COND_LT)
		return perr(p, "condition", "a Poisson score is a probability: use lte or lt%s", "");
	if (r->type == RULE_RATIO && (r->threshold < 0 || r->threshold > 1))
		return perr(p, "condition", "a ratio threshold lies in 0..1%s", "");
	if (r->type == RULE_TEMPORAL && r->group_by == FIELD_PEER)
		return perr(p, "group-by", "a temporal rule cannot group by %s", "peer");
	/* An action falls on the principal of the entry that completed the rule;
	 * grouping by source or device would make that whoever the attacker named
	 * last (a stuffing victim), so actions need a principal grouping. */
	if (r->action != MOAT_ACTION_NONE && r->type != RULE_TEMPORAL &&
	    r->group_by != FIELD_PRINCIPAL)
		return perr(p, "action", "an action needs group-by principal (or a temporal rule)%s",
			    "");
	if (r->action != MOAT_ACTION_NONE && !r->alert)
		return perr(p, "action", "a rule with alert = no cannot act%s", "");
	if (!SEEN(K_SUPPRESS))
		r->suppress = r->timespan ? r->timespan : r->period ? r->period : 600000;
	if (!SEEN(K_MIN_PEERS))
		r->min_peers = 3;
	if (!SEEN(K_HISTORY))
		r->history = 14;
	if (!SEEN(K_MIN_HISTORY))
		r->min_history = r->history < 7 ? r->history : 7;
	return MOAT_OK;
}

static bool valid_rule_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MOAT_DETECT_RULE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = 0;
	return s;
}

moat_err_t moat_detect_rules_parse(const char *text, size_t len, moat_detect_rules_t **out,
				   moat_error_t *err)
{
	*out = NULL;
	if (len > MOAT_DETECT_RULES_FILE_MAX)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "rule file is larger than %u bytes",
				      MOAT_DETECT_RULES_FILE_MAX);
	if (!moat_utf8_valid(text, len) || memchr(text, 0, len))
		return moat_error_set(err, MOAT_EINVAL, NULL, "rule file is not valid UTF-8 text");
	moat_detect_rules_t *rs = calloc(1, sizeof *rs);
	if (!rs)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	parser_t p = {.rs = rs, .err = err};
	moat_err_t rc = MOAT_OK;
	const char *s = text, *end = text + len;
	char line[1024];
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
		p.line++;
		if (n >= sizeof line) {
			rc = perr(&p, NULL, "line is longer than %s bytes", "1023");
			goto fail;
		}
		memcpy(line, s, n);
		line[n] = 0;
		s += n + (nl ? 1 : 0);
		char *l = trim(line);
		/* Comments: a line starting with # or ;, or text after " #". */
		if (*l == '#' || *l == ';' || *l == 0)
			continue;
		char *hash = strstr(l, " #");
		if (hash) {
			*hash = 0;
			l = trim(l);
		}
		if (*l == '[') {
			char name[128];
			int used = 0;
			if (sscanf(l, "[rule %127[^] ]]%n", name, &used) != 1 || l[used] != 0) {
				rc = perr(&p, NULL, "section header \"%s\" is not [rule NAME]", l);
				goto fail;
			}
			int here = p.line;
			if ((rc = finish_rule(&p)) != MOAT_OK)
				goto fail;
			p.line = here;
			if (!valid_rule_name(name)) {
				rc = perr(&p, NULL, "rule name \"%s\" is not 1..48 of [A-Za-z0-9_.-]", name);
				goto fail;
			}
			for (size_t j = 0; j < rs->n; j++)
				if (strcmp(rs->rules[j].name, name) == 0) {
					rc = perr(&p, NULL, "rule \"%s\" is defined twice", name);
					goto fail;
				}
			if (rs->n == MOAT_DETECT_RULES_MAX) {
				rc = perr(&p, NULL, "more than %s rules", "128");
				goto fail;
			}
			rule_t *r = &rs->rules[rs->n++];
			memset(r, 0, sizeof *r);
			strcpy(r->name, name);
			filter_default(&r->filter);
			filter_default(&r->numerator);
			r->severity = MOAT_SEVERITY_MEDIUM;
			r->action = MOAT_ACTION_NONE;
			r->alert = true;
			r->line = p.line;
			p.cur = r;
			p.seen = 0;
			continue;
		}
		char *eq = strchr(l, '=');
		if (!eq) {
			rc = perr(&p, NULL, "line \"%s\" is not key = value", l);
			goto fail;
		}
		if (!p.cur) {
			rc = perr(&p, NULL, "key outside a [rule NAME] section: \"%s\"", l);
			goto fail;
		}
		*eq = 0;
		char *key = trim(l), *val = trim(eq + 1);
		if (!*val) {
			rc = perr(&p, key, "key \"%s\" has no value", key);
			goto fail;
		}
		if ((rc = set_key(&p, key, val)) != MOAT_OK)
			goto fail;
	}
	if ((rc = finish_rule(&p)) != MOAT_OK)
		goto fail;
	*out = rs;
	return MOAT_OK;
fail:
	moat_detect_rules_free(rs);
	return rc;
}

moat_err_t moat_detect_rules_load(const char *path, moat_detect_rules_t **out, moat_error_t *err)
{
	char *text = NULL;
	size_t len = 0;
	*out = NULL;
	moat_err_t rc = moat_file_read(path, MOAT_DETECT_RULES_FILE_MAX, &text, &len, err);
	if (rc != MOAT_OK)
		return rc;
	rc = moat_detect_rules_parse(text, len, out, err);
	free(text);
	return rc;
}

void moat_detect_rules_free(moat_detect_rules_t *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->rules[i].title);
	free(r);
}

size_t moat_detect_rules_count(const moat_detect_rules_t *r) { return r->n; }
const char *moat_detect_rules_name(const moat_detect_rules_t *r, size_t i) { return r->rules[i].name; }
const char *moat_detect_rules_type(const moat_detect_rules_t *r, size_t i)
{
	return rule_type_names[r->rules[i].type];
}
moat_detect_severity_t moat_detect_rules_severity(const moat_detect_rules_t *r, size_t i)
{
	return r->rules[i].severity;
}
moat_detect_action_t moat_detect_rules_action(const moat_detect_rules_t *r, size_t i)
{
	return r->rules[i].action;
}
