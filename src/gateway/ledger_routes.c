/*
 * The ledger over HTTP: GET /v1/ledger/checkpoint (public), the C2SP tiles under
 * /v1/ledger/tile/… (authenticated; entry bundles for auditors and the platform
 * only, since they hold every party's events), inclusion proofs (for the
 * principal an entry concerns, or an auditor) and consistency proofs. Also the
 * adapter that makes the ledger the gateway's event sink.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway_internal.h"
#include "moat/ledger.h"

/* ---- sink ------------------------------------------------------------------------ */

static moat_err_t ledger_append(void *ctx, const moat_entry_t *e, size_t n, uint64_t *first,
				moat_error_t *err)
{
	return moat_ledger_append(ctx, e, n, first, err);
}

static moat_err_t ledger_append_async(void *ctx, const moat_entry_t *e, size_t n,
				      moat_ledger_done_fn done, void *done_ctx, moat_error_t *err)
{
	return moat_ledger_append_async(ctx, e, n, done, done_ctx, err);
}

static moat_err_t ledger_append_deferred(void *ctx, const moat_entry_t *e, size_t n,
					 moat_ledger_done_fn done, void *done_ctx,
					 moat_error_t *err)
{
	return moat_ledger_append_deferred(ctx, e, n, done, done_ctx, err);
}

static bool ledger_flush(void *ctx)
{
	return moat_ledger_flush_try(ctx);
}

static uint64_t ledger_size(void *ctx)
{
	return moat_ledger_size(ctx);
}

static void ledger_fail(void *ctx, bool on)
{
	moat_ledger_fail_writes(ctx, on);
}

void moat_gateway_ledger_sink(moat_ledger_t *l, moat_gateway_sink_t *out)
{
	out->ctx = l;
	out->append = ledger_append;
	out->append_async = ledger_append_async;
	out->append_deferred = ledger_append_deferred;
	out->flush = ledger_flush;
	out->size = ledger_size;
	out->fail_writes = ledger_fail;
}

/* ---- routes ---------------------------------------------------------------------- */

static bool parse_u64(const char *s, uint64_t *out)
{
	if (!s || !*s || strlen(s) > 19)
		return false;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	*out = strtoull(s, NULL, 10);
	return true;
}

static bool privileged(const gw_auth_t *a)
{
	return a->p.role == MOAT_ROLE_AUDITOR || a->p.role == MOAT_ROLE_PLATFORM_OPS ||
	       a->p.role == MOAT_ROLE_PLATFORM_SERVICE;
}

/* "tile/<L>/<N>[.p/<W>]" or "tile/entries/<N>[.p/<W>]" with N in x-prefixed
 * 3-digit groups: only digits, 'x', '/', ".p/" — never "..". */
static bool tile_path_ok(const char *p, bool *entries)
{
	if (strncmp(p, "tile/", 5) != 0 || strstr(p, "..") || strstr(p, "//") || strlen(p) > 120)
		return false;
	const char *rest = p + 5;
	*entries = strncmp(rest, "entries/", 8) == 0;
	if (*entries)
		rest += 8;
	for (const char *q = rest; *q; q++)
		if (!((*q >= '0' && *q <= '9') || *q == 'x' || *q == '/' || *q == '.' || *q == 'p'))
			return false;
	const char *dot = strchr(rest, '.');
	return rest[0] && (!dot || strncmp(dot, ".p/", 3) == 0);
}

static moat_err_t put_hashes(moat_buf_t *b, uint8_t (*h)[MOAT_HASH_LEN], size_t n)
{
	moat_err_t rc = moat_buf_putc(b, '[');
	for (size_t i = 0; i < n && rc == MOAT_OK; i++) {
		char s[48];
		moat_b64_encode(h[i], MOAT_HASH_LEN, s);
		rc = moat_buf_printf(b, "%s\"%s\"", i ? "," : "", s);
	}
	return rc == MOAT_OK ? moat_buf_putc(b, ']') : rc;
}

void gw_ledger_checkpoint(moat_gateway_t *g, gw_resp_t *r)
{
	moat_error_t e = {0};
	moat_buf_reset(&r->body);
	if (!g->ledger) {
		gw_error(r, 404, "not_found", NULL, "this data directory has no ledger");
		return;
	}
	if (moat_ledger_checkpoint(g->ledger, &r->body, &e) != MOAT_OK) {
		gw_error_from(r, &e);
		return;
	}
	r->status = 200;
	r->content_type = "text/plain; charset=utf-8";
}

void gw_ledger(moat_gateway_t *g, struct MHD_Connection *c, const gw_auth_t *a, const char *rest,
	       gw_resp_t *r)
{
	moat_error_t e = {0};
	if (!g->ledger) {
		gw_error(r, 404, "not_found", NULL, "this data directory has no ledger");
		return;
	}
	if (strncmp(rest, "tile/", 5) == 0) {
		bool entries;
		if (!gw_query_only(c, NULL, r))
			return;
		if (!tile_path_ok(rest, &entries)) {
			gw_error(r, 404, "not_found", NULL,
				 "not a tile path (tile/<L>/<N>[.p/<W>])");
			return;
		}
		if (entries && !privileged(a)) {
			gw_error(r, 403, "forbidden", NULL,
				 "entry bundles hold every party's events: auditors and the "
				 "platform only");
			return;
		}
		char path[1400];
		snprintf(path, sizeof path, "%s/ledger/%s", g->app->data_dir, rest);
		char *data = NULL;
		size_t len = 0;
		if (moat_file_read(path, 32u << 20, &data, &len, &e) != MOAT_OK) {
			gw_error(r, 404, "not_found", NULL, "no such tile");
			return;
		}
		moat_buf_reset(&r->body);
		moat_err_t rc = moat_buf_append(&r->body, data, len);
		free(data);
		if (rc != MOAT_OK) {
			gw_error(r, 500, "internal", NULL, "tile too large");
			return;
		}
		r->status = 200;
		r->content_type = "application/octet-stream";
		return;
	}
	bool incl = strcmp(rest, "proof/inclusion") == 0;
	bool cons = strcmp(rest, "proof/consistency") == 0;
	if (!incl && !cons) {
		gw_error(r, 404, "not_found", NULL, "no such ledger endpoint");
		return;
	}
	static const char *const incl_keys[] = {"index", "size", NULL};
	static const char *const cons_keys[] = {"old", "new", NULL};
	if (!gw_query_only(c, incl ? incl_keys : cons_keys, r))
		return;
	/* Proofs are against a signed checkpoint: make sure recent entries are in one. */
	if (moat_ledger_checkpoint_size(g->ledger) < moat_ledger_size(g->ledger) &&
	    moat_ledger_sync(g->ledger, &e) != MOAT_OK) {
		gw_error_from(r, &e);
		return;
	}
	uint64_t cp = moat_ledger_checkpoint_size(g->ledger);
	uint8_t proof[MOAT_LEDGER_PROOF_MAX][MOAT_HASH_LEN];
	size_t n = 0;
	moat_buf_t *b = &r->body;
	moat_buf_reset(b);
	moat_err_t rc;
	if (incl) {
		uint64_t index, size = cp;
		const char *is = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "index");
		const char *ss = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "size");
		if (!parse_u64(is, &index) || index >= cp) {
			gw_error(r, 422, "invalid", "index",
				 "index must be below the checkpoint size %llu",
				 (unsigned long long)cp);
			return;
		}
		if (ss && (!parse_u64(ss, &size) || size <= index || size > cp)) {
			gw_error(r, 422, "invalid", "size", "size must be in index+1..%llu",
				 (unsigned long long)cp);
			return;
		}
		/* Only the principal an entry concerns, or an auditor, may prove it. */
		if (!privileged(a)) {
			moat_buf_t raw;
			moat_buf_init(&raw, MOAT_ENTRY_MAX + 16);
			char *scratch = malloc(MOAT_ENTRY_MAX + 128);
			moat_entry_t ent;
			bool mine =
			    scratch && moat_ledger_read(g->ledger, index, &raw, &e) == MOAT_OK &&
			    moat_entry_decode((const uint8_t *)raw.data, raw.len, &ent, scratch,
					      MOAT_ENTRY_MAX + 128, &e) == MOAT_OK &&
			    ent.principal && strcmp(ent.principal, a->p.principal) == 0;
			free(scratch);
			moat_buf_free(&raw);
			if (!mine) {
				gw_error(r, 403, "forbidden", "index",
					 "entry %llu does not concern %s",
					 (unsigned long long)index, a->p.principal);
				return;
			}
		}
		uint8_t leaf[MOAT_HASH_LEN];
		if (moat_ledger_prove_inclusion(g->ledger, index, size, leaf, proof, &n, &e) !=
		    MOAT_OK) {
			gw_error_from(r, &e);
			return;
		}
		char lh[48];
		moat_b64_encode(leaf, MOAT_HASH_LEN, lh);
		rc = moat_buf_printf(
		    b, "{\"index\":%llu,\"size\":%llu,\"leaf_hash\":\"%s\",\"proof\":",
		    (unsigned long long)index, (unsigned long long)size, lh);
	} else {
		uint64_t old, nw;
		const char *os = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "old");
		const char *ns = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "new");
		if (!parse_u64(os, &old) || old < 1) {
			gw_error(r, 422, "invalid", "old", "old must be a tree size >= 1");
			return;
		}
		if (!ns)
			nw = cp;
		else if (!parse_u64(ns, &nw) || nw < old || nw > cp) {
			gw_error(r, 422, "invalid", "new", "new must be in old..%llu",
				 (unsigned long long)cp);
			return;
		}
		if (old > nw) {
			gw_error(r, 422, "invalid", "old",
				 "old is larger than the checkpoint size");
			return;
		}
		if (moat_ledger_prove_consistency(g->ledger, old, nw, proof, &n, &e) != MOAT_OK) {
			gw_error_from(r, &e);
			return;
		}
		rc = moat_buf_printf(b, "{\"old\":%llu,\"new\":%llu,\"proof\":",
				     (unsigned long long)old, (unsigned long long)nw);
	}
	if (rc == MOAT_OK)
		rc = put_hashes(b, proof, n);
	if (rc == MOAT_OK)
		rc = moat_buf_puts(b, ",\"checkpoint\":");
	moat_buf_t note;
	moat_buf_init(&note, MOAT_LEDGER_NOTE_MAX + 16);
	if (rc == MOAT_OK && moat_ledger_checkpoint(g->ledger, &note, &e) == MOAT_OK)
		rc = moat_buf_json_str(b, note.data);
	moat_buf_free(&note);
	if (rc == MOAT_OK)
		rc = moat_buf_putc(b, '}');
	r->status = rc == MOAT_OK ? 200 : gw_error(r, 500, "internal", NULL, "cannot render proof");
}
