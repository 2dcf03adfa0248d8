/*
 * The detector over a data directory: its ledger as the log, its store for
 * principals, alerts, actions and the cursor, <data>/rules.conf for the rules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/app.h"
#include "moat/crypto.h"
#include "moat/detect.h"
#include "moat/ledger.h"
#include "moat/policy.h"
#include "detect/runner.h"

typedef struct ledger_log {
	moat_ledger_t *l;
	moat_ledger_iter_t *it;
	char *scratch; /* decode buffer: entries borrow their strings from it */
	size_t scratch_len;
} ledger_log_t;

static moat_err_t l_seek(void *ctx, uint64_t start, moat_error_t *err)
{
	ledger_log_t *x = ctx;
	moat_ledger_iter_free(x->it);
	x->it = NULL;
	return moat_ledger_iter_new(x->l, start, &x->it, err);
}

static moat_err_t l_next(void *ctx, uint64_t *index, moat_entry_t *e, moat_error_t *err)
{
	ledger_log_t *x = ctx;
	const uint8_t *data;
	size_t len;
	moat_err_t rc = moat_ledger_iter_next(x->it, index, &data, &len, err);
	if (rc != MOAT_OK)
		return rc;
	return moat_entry_decode(data, len, e, x->scratch, x->scratch_len, err);
}

static moat_err_t l_append(void *ctx, const moat_entry_t *es, size_t n, uint64_t *first,
			   moat_error_t *err)
{
	ledger_log_t *x = ctx;
	moat_err_t rc = moat_ledger_append(x->l, es, n, first, err);
	if (rc != MOAT_OK)
		return rc;
	/* The reader only sees checkpointed entries; integrate ours now so a run
	 * that continues past them (or the next run) finds them. */
	return moat_ledger_sync(x->l, err);
}

/* The rules of <data>/rules.conf, or the default set without one; *text gets
 * the text they were parsed from (the caller frees it). */
static moat_err_t load_rules(moat_app_t *a, moat_detect_rules_t **out, char **text, size_t *len,
			     moat_error_t *err)
{
	*out = NULL;
	*text = NULL;
	*len = 0;
	char path[1200];
	if (moat_path_join(path, sizeof path, a->data_dir, "rules.conf") != MOAT_OK)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "data directory path is too long");
	moat_err_t rc = moat_file_read(path, MOAT_DETECT_RULES_FILE_MAX, text, len, err);
	if (rc == MOAT_ENOTFOUND) {
		moat_log(MOAT_LOG_WARN, "detect.rules",
			 "no rules.conf in the data directory; using the default rules");
		moat_error_clear(err);
		const char *def = moat_detect_rules_default_text();
		if (!(*text = strdup(def)))
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		*len = strlen(def);
	} else if (rc != MOAT_OK) {
		return rc;
	}
	rc = moat_detect_rules_parse(*text, *len, out, err);
	if (rc != MOAT_OK && err && err->line > 0) {
		/* Say which file the line is in. */
		char msg[sizeof err->msg];
		snprintf(msg, sizeof msg, "rules.conf: %.300s", err->msg);
		snprintf(err->msg, sizeof err->msg, "%s", msg);
	}
	if (rc != MOAT_OK) {
		free(*text);
		*text = NULL;
	}
	return rc;
}

/* The quotas of <data>/policy.conf, read when the runner opens (at start and
 * at each SIGHUP); NULL if the file is absent or invalid: then every plaintext
 * read counts as charged and shares are unknown. */
static moat_policy_t *load_policy(moat_app_t *a)
{
	char path[1200];
	if (moat_path_join(path, sizeof path, a->data_dir, "policy.conf") != MOAT_OK)
		return NULL;
	moat_policy_t *p = NULL;
	moat_error_t err = {0};
	moat_err_t rc = moat_policy_load(path, &p, &err);
	if (rc == MOAT_OK)
		return p;
	if (rc != MOAT_ENOTFOUND)
		moat_log(MOAT_LOG_WARN, "detect.policy",
			 "policy.conf not read (%s); quota shares are unknown", err.msg);
	return NULL;
}

static int64_t policy_quota(void *ctx, const char *rule)
{
	const moat_policy_t *p = ctx;
	for (size_t i = 0; i < moat_policy_rule_count(p); i++)
		if (strcmp(moat_policy_rule_id(p, i), rule) == 0)
			return moat_policy_rule_quota(p, i);
	return 0;
}

static void policy_free(void *ctx)
{
	moat_policy_free(ctx);
}

/* What an engine's judgement depends on besides the log and the store: the
 * rules' text, and of the policy only each rule's quota and the time zone (an
 * edit of views or conditions changes nothing the detector replays). */
static bool inputs_digest(const char *rules, size_t rules_len, const moat_policy_t *policy,
			  uint8_t out[32])
{
	moat_buf_t b;
	moat_buf_init(&b, (size_t)MOAT_DETECT_RULES_FILE_MAX + (1u << 20));
	bool ok = moat_buf_printf(&b, "moat detect inputs 1\nrules %zu\n", rules_len) == MOAT_OK &&
		  moat_buf_append(&b, rules, rules_len) == MOAT_OK;
	if (ok && policy) {
		ok = moat_buf_printf(&b, "\npolicy tz %d rules %zu\n",
				     moat_policy_tz_minutes(policy),
				     moat_policy_rule_count(policy)) == MOAT_OK;
		for (size_t i = 0; ok && i < moat_policy_rule_count(policy); i++)
			ok = moat_buf_printf(&b, "%s %lld\n", moat_policy_rule_id(policy, i),
					     (long long)moat_policy_rule_quota(policy, i)) ==
			     MOAT_OK;
	} else if (ok) {
		ok = moat_buf_puts(&b, "\nno policy\n") == MOAT_OK;
	}
	if (ok)
		moat_sha256(b.data, b.len, out);
	moat_buf_free(&b);
	return ok;
}

static moat_err_t l_refresh(void *ctx, moat_error_t *err)
{
	ledger_log_t *x = ctx;
	return moat_ledger_sync(x->l, err);
}

static void l_free(void *ctx)
{
	ledger_log_t *x = ctx;
	if (!x)
		return;
	moat_ledger_iter_free(x->it);
	free(x->scratch);
	free(x);
}

moat_err_t moat_detect_runner_open(moat_app_t *a, moat_detect_runner_t **out, moat_error_t *err)
{
	*out = NULL;
	if (!a->ledger)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL,
				      "the detector needs the ledger (data directory opened without it)");
	moat_detect_rules_t *rules = NULL;
	char *rules_text = NULL;
	size_t rules_len = 0;
	moat_err_t rc = load_rules(a, &rules, &rules_text, &rules_len, err);
	if (rc != MOAT_OK)
		return rc;
	ledger_log_t *x = calloc(1, sizeof *x);
	if (x) {
		x->l = a->ledger;
		x->scratch_len = MOAT_ENTRY_MAX + 64;
		x->scratch = malloc(x->scratch_len);
	}
	if (!x || !x->scratch) {
		l_free(x);
		moat_detect_rules_free(rules);
		free(rules_text);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	moat_detect_log_t log = {l_seek, l_next, l_append, x, l_refresh};
	rc = moat_detect_runner_new(a->store, rules, moat_detect_store_lookup, a->store, &log, 0, out,
				    err);
	if (rc != MOAT_OK) {
		l_free(x);
		moat_detect_rules_free(rules);
		free(rules_text);
		return rc;
	}
	moat_detect_runner_own(*out, rules, l_free);
	moat_policy_t *policy = load_policy(a);
	uint8_t digest[32];
	if (inputs_digest(rules_text, rules_len, policy, digest)) /* else never "the same" */
		moat_detect_runner_inputs(*out, digest);
	free(rules_text);
	if (policy) {
		/* shifts and the quota day in the policy's local time, as the gateway */
		moat_detect_runner_local_offset(*out, moat_policy_tz_minutes(policy));
		moat_detect_runner_quota(*out, policy_quota, policy, policy_free);
	}
	return MOAT_OK;
}

moat_err_t moat_detect_catch_up(moat_app_t *a, moat_detect_stats_t *stats, moat_error_t *err)
{
	if (stats)
		memset(stats, 0, sizeof *stats);
	moat_detect_runner_t *x = NULL;
	moat_err_t rc = moat_detect_runner_open(a, &x, err);
	if (rc == MOAT_OK)
		rc = moat_detect_runner_step(x, stats, err);
	moat_detect_runner_free(x);
	return rc;
}

moat_err_t moat_detect_lift(moat_app_t *a, int64_t id, const char *reason, moat_error_t *err)
{
	moat_action_row_t row;
	moat_err_t rc = moat_store_action_get(a->store, id, &row, err);
	if (rc != MOAT_OK)
		return rc;
	if (row.lifted_at != MOAT_TIME_NONE)
		return moat_error_set(err, MOAT_ECONFLICT, "id", "action %lld is already lifted",
				      (long long)id);
	if (!reason || !*reason || !moat_utf8_valid(reason, strlen(reason)) ||
	    moat_utf8_len(reason, strlen(reason)) > MOAT_TEXT_MAX)
		return moat_error_set(err, MOAT_EINVAL, "reason", "a reason of 1..%d characters is required",
				      MOAT_TEXT_MAX);
	moat_time_t now = moat_now();
	if (a->ledger) {
		moat_entry_t e = {.kind = MOAT_ENTRY_ACTION,
				  .time = now,
				  .principal = row.principal,
				  .ref = moat_detect_action_name(row.action),
				  .rule = row.alert_id[0] ? row.alert_id : NULL,
				  .detail = "lift"};
		if ((rc = moat_ledger_append(a->ledger, &e, 1, NULL, err)) != MOAT_OK)
			return rc;
	}
	return moat_store_action_lift(a->store, id, reason, now, err);
}
