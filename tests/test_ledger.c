/*
 * Ledger tests: every vector in ../shared/vectors, the entry encoding, a real
 * ledger's proofs against a reference tree, reopen/recovery, read-only handles,
 * write failures, and tampering caught by verify.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"
#include "ledger/ledger_int.h"
#include "ledger/tiles.h"
#include "ledger_util.h"
#include "moat/json.h"

/* Parses a vector file. jansson has no 64-bit unsigned integers, so bare numbers
 * of 16+ digits (e.g. 2^64-1 leaf indexes) are turned into strings first; u64()
 * reads either form. */
static json_t *parse_vectors(const char *path)
{
	char *text;
	size_t len;
	moat_error_t err;
	if (moat_file_read(path, 64u << 20, &text, &len, &err) != MOAT_OK)
		return NULL;
	moat_buf_t b;
	moat_buf_init(&b, 128u << 20);
	bool ok = true;
	for (size_t i = 0; i < len && ok;) {
		size_t j = i;
		while (j < len && text[j] >= '0' && text[j] <= '9')
			j++;
		if (j - i >= 16 && i >= 2 && text[i - 1] == ' ' && text[i - 2] == ':') {
			ok = moat_buf_putc(&b, '"') == MOAT_OK &&
			     moat_buf_append(&b, text + i, j - i) == MOAT_OK &&
			     moat_buf_putc(&b, '"') == MOAT_OK;
			i = j;
		} else if (j > i) {
			ok = moat_buf_append(&b, text + i, j - i) == MOAT_OK;
			i = j;
		} else {
			ok = moat_buf_putc(&b, text[i]) == MOAT_OK;
			i++;
		}
	}
	free(text);
	json_error_t je;
	json_t *j = ok ? json_loadb(b.data, b.len, 0, &je) : NULL;
	if (!j)
		fprintf(stderr, "cannot parse %s: %s\n", path, ok ? je.text : "too big");
	moat_buf_free(&b);
	return j;
}

static json_t *load_vectors(const char *name)
{
	char path[2048];
	const char *shared = getenv("MOAT_SHARED");
	const char *src = getenv("MOAT_SRC");
	if (shared && *shared) {
		snprintf(path, sizeof path, "%s/vectors/%s", shared, name);
		json_t *j = parse_vectors(path);
		if (j)
			return j;
	}
	snprintf(path, sizeof path, "%s/../shared/vectors/%s", src && *src ? src : ".", name);
	return parse_vectors(path);
}

static uint64_t u64(json_t *v)
{
	if (json_is_string(v))
		return strtoull(json_string_value(v), NULL, 10);
	return (uint64_t)json_integer_value(v);
}

/* Hex into a fresh buffer of any length (vectors carry non-32-byte junk). */
static size_t hexbuf(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	if (!moat_hex_decode(hex, strlen(hex), out, &n, cap))
		return SIZE_MAX;
	return n;
}

static size_t proofbuf(json_t *arr, uint8_t *out, size_t cap, bool *all32)
{
	size_t pos = 0, i;
	json_t *v;
	*all32 = true;
	json_array_foreach(arr, i, v)
	{
		size_t n = hexbuf(json_string_value(v), out + pos, cap - pos);
		if (n == SIZE_MAX)
			return SIZE_MAX;
		if (n != 32)
			*all32 = false;
		pos += n;
	}
	return pos;
}

static void test_inclusion_vectors(void)
{
	json_t *j = load_vectors("inclusion_proofs.json");
	CHECK(j != NULL);
	if (!j)
		return;
	size_t i, count = 0;
	json_t *v;
	json_array_foreach(json_object_get(j, "vectors"), i, v)
	{
		uint8_t leaf[256], root[256], proof[8192];
		size_t ll =
		    hexbuf(json_string_value(json_object_get(v, "leaf_hash_hex")), leaf, 256);
		size_t rl = hexbuf(json_string_value(json_object_get(v, "root_hex")), root, 256);
		bool all32;
		size_t pl = proofbuf(json_object_get(v, "proof_hex"), proof, sizeof proof, &all32);
		bool expect = json_is_true(json_object_get(v, "expect_valid"));
		/* A proof with a non-32-byte element can never be valid; passing the
		 * concatenation must be rejected too. */
		bool got = ll != SIZE_MAX && rl != SIZE_MAX && pl != SIZE_MAX && all32 &&
			   moat_ledger_verify_inclusion(
			       leaf, ll, u64(json_object_get(v, "leaf_index")),
			       (uint64_t)json_integer_value(json_object_get(v, "tree_size")), proof,
			       pl, root, rl);
		if (pl != SIZE_MAX && !all32)
			(void)moat_ledger_verify_inclusion(
			    leaf, ll, u64(json_object_get(v, "leaf_index")),
			    (uint64_t)json_integer_value(json_object_get(v, "tree_size")), proof,
			    pl, root, rl);
		CHECK_MSG(got == expect, "%s", json_string_value(json_object_get(v, "file")));
		count++;
	}
	CHECK_INT(count, 98);
	json_decref(j);
}

static void test_consistency_vectors(void)
{
	json_t *j = load_vectors("consistency_proofs.json");
	CHECK(j != NULL);
	if (!j)
		return;
	size_t i, count = 0;
	json_t *v;
	json_array_foreach(json_object_get(j, "vectors"), i, v)
	{
		uint8_t r1[256], r2[256], proof[8192];
		size_t l1 = hexbuf(json_string_value(json_object_get(v, "root1_hex")), r1, 256);
		size_t l2 = hexbuf(json_string_value(json_object_get(v, "root2_hex")), r2, 256);
		bool all32;
		size_t pl = proofbuf(json_object_get(v, "proof_hex"), proof, sizeof proof, &all32);
		bool expect = json_is_true(json_object_get(v, "expect_valid"));
		bool got = l1 != SIZE_MAX && l2 != SIZE_MAX && pl != SIZE_MAX && all32 &&
			   moat_ledger_verify_consistency(
			       (uint64_t)json_integer_value(json_object_get(v, "size1")),
			       (uint64_t)json_integer_value(json_object_get(v, "size2")), r1, l1,
			       r2, l2, proof, pl);
		CHECK_MSG(got == expect, "%s", json_string_value(json_object_get(v, "file")));
		count++;
	}
	CHECK_INT(count, 98);
	json_decref(j);
}

/* Builds a ledger directory holding the 8-leaf RFC 6962 tree (tiles for every
 * size 1..8 and a checkpoint), so proof generation can be compared with the
 * published proofs byte for byte. */
static void test_tree_and_generated(void)
{
	json_t *t = load_vectors("rfc6962_tree_8leaf.json");
	json_t *g = load_vectors("generated_all_proofs_8leaf.json");
	CHECK(t && g);
	if (!t || !g)
		goto out;
	uint8_t leaves[8][32], data[64];
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(t, "leaves_hex"), i, v)
	{
		size_t n = hexbuf(json_string_value(v), data, sizeof data);
		moat_ledger_leaf_hash(data, n, leaves[i]);
		uint8_t want[32];
		hexbuf(json_string_value(json_array_get(json_object_get(t, "leaf_hashes_hex"), i)),
		       want, 32);
		CHECK(memcmp(want, leaves[i], 32) == 0);
	}
	json_array_foreach(json_object_get(t, "roots_by_size_hex"), i, v)
	{
		uint8_t want[32], got[32];
		hexbuf(json_string_value(v), want, 32);
		if (i == 0)
			continue; /* SHA-256("") is checked through the ledger below */
		ref_mth(leaves, i, got);
		CHECK_MSG(memcmp(want, got, 32) == 0, "root of size %zu", i);
	}
	size_t lvl;
	json_t *levels;
	json_array_foreach(json_object_get(t, "node_hashes_hex"), lvl, levels)
	{
		json_array_foreach(levels, i, v)
		{
			uint8_t want[32], got[32];
			hexbuf(json_string_value(v), want, 32);
			ref_mth(leaves + (i << lvl), (uint64_t)1 << lvl, got);
			CHECK_MSG(memcmp(want, got, 32) == 0, "node %zu at level %zu", i, lvl);
		}
	}
	json_t *extra = json_object_get(t, "extra_self_computed");
	(void)extra;

	char *dir = tmpdir_new("vec");
	char ldir[1024], path[1200];
	snprintf(ldir, sizeof ldir, "%s/ledger", dir);
	moat_error_t err;
	CHECK_INT(moat_ledger_create(ldir, "vectors.test/ledger", &err), MOAT_OK);
	/* An empty ledger's checkpoint names SHA-256(""). */
	moat_ledger_t *ro = NULL;
	moat_ledger_opts_t roopts = {.readonly = true};
	CHECK_INT(moat_ledger_open(ldir, &roopts, &ro, &err), MOAT_OK);
	if (ro) {
		uint8_t r0[32], want0[32];
		CHECK_INT(moat_ledger_root(ro, 0, r0, &err), MOAT_OK);
		hexbuf(
		    json_string_value(json_array_get(json_object_get(t, "roots_by_size_hex"), 0)),
		    want0, 32);
		CHECK(memcmp(r0, want0, 32) == 0);
		moat_ledger_close(ro);
		ro = NULL;
	}
	/* Hand-made tiles for sizes 1..8 and a checkpoint of size 8. */
	snprintf(path, sizeof path, "%s/tile/0/000.p", ldir);
	CHECK_INT(moat_mkdirs(path, 0755, &err), MOAT_OK);
	for (unsigned w = 1; w <= 8; w++) {
		snprintf(path, sizeof path, "%s/tile/0/000.p/%u", ldir, w);
		CHECK_INT(moat_file_write_atomic(path, leaves, 32 * w, 0644, &err), MOAT_OK);
	}
	char *keytext;
	size_t keylen;
	snprintf(path, sizeof path, "%s/key", ldir);
	CHECK_INT(moat_file_read(path, 4096, &keytext, &keylen, &err), MOAT_OK);
	lkey_t k;
	CHECK_INT(lkey_parse_private(keytext, keylen, &k, &err), MOAT_OK);
	free(keytext);
	uint8_t root8[32];
	ref_mth(leaves, 8, root8);
	moat_buf_t note;
	moat_buf_init(&note, 4096);
	CHECK_INT(lkey_sign_checkpoint(&k, 8, root8, &note, &err), MOAT_OK);
	snprintf(path, sizeof path, "%s/checkpoint", ldir);
	CHECK_INT(moat_file_write_atomic(path, note.data, note.len, 0644, &err), MOAT_OK);
	moat_buf_free(&note);
	lkey_free(&k);
	CHECK_INT(moat_ledger_open(ldir, &roopts, &ro, &err), MOAT_OK);
	CHECK_INT(moat_ledger_checkpoint_size(ro), 8);
	size_t n_incl = 0, n_cons = 0;
	json_array_foreach(json_object_get(g, "inclusion"), i, v)
	{
		uint64_t m = u64(json_object_get(v, "leaf_index"));
		uint64_t n = (uint64_t)json_integer_value(json_object_get(v, "tree_size"));
		uint8_t proof[MOAT_LEDGER_PROOF_MAX][32], want[4096], leaf[32], root[32],
		    wantroot[32];
		size_t np = 0;
		bool all32;
		size_t wl = proofbuf(json_object_get(v, "proof_hex"), want, sizeof want, &all32);
		CHECK_INT(moat_ledger_prove_inclusion(ro, m, n, leaf, proof, &np, &err), MOAT_OK);
		CHECK_MSG(np * 32 == wl && memcmp(proof, want, wl) == 0, "inclusion %llu in %llu",
			  (unsigned long long)m, (unsigned long long)n);
		CHECK_INT(moat_ledger_root(ro, n, root, &err), MOAT_OK);
		hexbuf(json_string_value(json_object_get(v, "root_hex")), wantroot, 32);
		CHECK(memcmp(root, wantroot, 32) == 0);
		CHECK(moat_ledger_verify_inclusion(leaf, 32, m, n, (uint8_t *)proof, np * 32, root,
						   32));
		n_incl++;
	}
	json_array_foreach(json_object_get(g, "consistency"), i, v)
	{
		uint64_t m = (uint64_t)json_integer_value(json_object_get(v, "size1"));
		uint64_t n = (uint64_t)json_integer_value(json_object_get(v, "size2"));
		uint8_t proof[MOAT_LEDGER_PROOF_MAX][32], want[4096], r1[32], r2[32];
		size_t np = 0;
		bool all32;
		size_t wl = proofbuf(json_object_get(v, "proof_hex"), want, sizeof want, &all32);
		CHECK_INT(moat_ledger_prove_consistency(ro, m, n, proof, &np, &err), MOAT_OK);
		CHECK_MSG(np * 32 == wl && memcmp(proof, want, wl) == 0, "consistency %llu→%llu",
			  (unsigned long long)m, (unsigned long long)n);
		hexbuf(json_string_value(json_object_get(v, "root1_hex")), r1, 32);
		hexbuf(json_string_value(json_object_get(v, "root2_hex")), r2, 32);
		CHECK(moat_ledger_verify_consistency(m, n, r1, 32, r2, 32, (uint8_t *)proof,
						     np * 32));
		n_cons++;
	}
	CHECK_INT(n_incl, 36);
	CHECK_INT(n_cons, 36);
	moat_ledger_close(ro);
	rm_rf(dir);
	free(dir);
out:
	json_decref(t);
	json_decref(g);
}

static void test_signed_notes(void)
{
	json_t *j = load_vectors("signed_notes.json");
	CHECK(j != NULL);
	if (!j)
		return;
	size_t i, ki;
	json_t *v, *key;
	moat_error_t err;
	json_array_foreach(json_object_get(j, "notes"), i, v)
	{
		const char *text = json_string_value(json_object_get(v, "note_text_utf8"));
		bool expect = json_is_true(json_object_get(v, "expect_valid"));
		uint8_t msg[4096];
		size_t ml = hexbuf(json_string_value(json_object_get(v, "signed_message_hex")), msg,
				   sizeof msg);
		json_array_foreach(json_object_get(v, "verifier_keys"), ki, key)
		{
			size_t tl = 0;
			moat_err_t rc = moat_ledger_note_verify(text, strlen(text),
								json_string_value(key), &tl, &err);
			CHECK_MSG((rc == MOAT_OK) == expect, "%s with %s: %s",
				  json_string_value(json_object_get(v, "desc")),
				  json_string_value(key), err.msg);
			if (rc == MOAT_OK)
				CHECK(tl == ml && memcmp(text, msg, ml) == 0);
		}
		/* A checkpoint-shaped note also parses as a checkpoint. */
		if (expect && strncmp(text, "go.sum database tree\n", 21) == 0) {
			moat_checkpoint_t cp;
			/* its origin differs from the key name, which moat requires */
			CHECK(moat_ledger_checkpoint_verify(
				  text, strlen(text),
				  json_string_value(
				      json_array_get(json_object_get(v, "verifier_keys"), 0)),
				  &cp, &err) == MOAT_EDENIED);
		}
	}
	json_array_foreach(json_object_get(j, "ed25519_key_ids"), i, v)
	{
		uint8_t pub[32], id[4], want[4];
		hexbuf(json_string_value(json_object_get(v, "public_key_hex")), pub, 32);
		hexbuf(json_string_value(json_object_get(v, "key_id_hex")), want, 4);
		moat_ledger_key_id(json_string_value(json_object_get(v, "name")), pub, id);
		CHECK_MSG(memcmp(id, want, 4) == 0, "key id of %s",
			  json_string_value(json_object_get(v, "name")));
		lkey_t k;
		CHECK_INT(lkey_parse_vkey(json_string_value(json_object_get(v, "vkey")), &k, &err),
			  MOAT_OK);
		CHECK_STR(k.vkey, json_string_value(json_object_get(v, "vkey")));
	}
	CHECK_INT(json_array_size(json_object_get(j, "ed25519_key_ids")), 6);
	json_array_foreach(json_object_get(j, "unverifiable_examples"), i, v)
	{
		const char *text = json_string_value(json_object_get(v, "note_text_utf8"));
		moat_checkpoint_t cp;
		/* No public key exists: any key must fail, without crashing. */
		CHECK(moat_ledger_checkpoint_verify(
			  text, strlen(text),
			  "example.com/"
			  "behind-the-sofa+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
			  &cp, &err) != MOAT_OK);
	}
	/* Malformed notes and keys. */
	const char *good = json_string_value(
	    json_object_get(json_array_get(json_object_get(j, "notes"), 0), "note_text_utf8"));
	const char *gkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
	CHECK(moat_ledger_note_verify(good, strlen(good) - 1, gkey, NULL, &err) != MOAT_OK);
	CHECK(moat_ledger_note_verify("", 0, gkey, NULL, &err) != MOAT_OK);
	CHECK(moat_ledger_note_verify("a\n\n", 3, gkey, NULL, &err) != MOAT_OK);
	CHECK(moat_ledger_note_verify(
		  good, strlen(good),
		  "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", NULL,
		  &err) != MOAT_OK);
	CHECK(moat_ledger_note_verify(good, strlen(good), "garbage", NULL, &err) != MOAT_OK);
	json_decref(j);
}

static void test_tile_paths(void)
{
	json_t *j = load_vectors("tile_paths.json");
	CHECK(j != NULL);
	if (!j)
		return;
	size_t i;
	json_t *v;
	char p[128], want[160];
	json_array_foreach(json_object_get(j, "index_encoding"), i, v)
	{
		moat_ledger_tile_path(0, (uint64_t)json_integer_value(json_object_get(v, "n")), 0,
				      p, sizeof p);
		snprintf(want, sizeof want, "tile/0/%s",
			 json_string_value(json_object_get(v, "path_component")));
		CHECK_STR(p, want);
	}
	const char *key;
	json_t *tiles;
	json_object_foreach(json_object_get(j, "tiles_for_tree_size"), key, tiles)
	{
		uint64_t size = strtoull(key, NULL, 10);
		json_array_foreach(tiles, i, v)
		{
			int level = (int)json_integer_value(json_object_get(v, "level"));
			uint64_t full =
			    (uint64_t)json_integer_value(json_object_get(v, "full_tiles"));
			unsigned pw =
			    (unsigned)json_integer_value(json_object_get(v, "partial_width"));
			for (uint64_t t = 0; t < full; t++)
				CHECK(tile_width_at(level, t, size) == TILE_W);
			CHECK_INT(tile_width_at(level, full, size), pw);
			const char *pp = json_string_value(json_object_get(v, "partial_path"));
			if (pp) {
				moat_ledger_tile_path(level, full, pw, p, sizeof p);
				CHECK_STR(p, pp);
			}
		}
		/* no level above the listed ones */
		CHECK_INT(tile_width_at((int)json_array_size(tiles), 0, size), 0);
	}
	moat_ledger_tile_path(0, 1234067, 0, p, sizeof p);
	CHECK_STR(p, "tile/0/x001/x234/067");
	moat_ledger_tile_path(0, 1234067, 5, p, sizeof p);
	CHECK_STR(p, "tile/0/x001/x234/067.p/5");
	moat_ledger_tile_path(-1, 1234067, 0, p, sizeof p);
	CHECK_STR(p, "tile/entries/x001/x234/067");
	json_decref(j);
}

static void test_entry_codec(void)
{
	char buf[64];
	moat_entry_t e = sample_entry(3, buf);
	e.detail = "退款 refund";
	e.ref = "alert-1";
	e.result = MOAT_RESULT_SUCCESS;
	moat_buf_t b, b2;
	moat_buf_init(&b, MOAT_ENTRY_MAX);
	moat_buf_init(&b2, MOAT_ENTRY_MAX);
	moat_error_t err;
	CHECK_INT(moat_entry_encode(&e, &b, &err), MOAT_OK);
	CHECK_INT((uint8_t)b.data[0], MOAT_ENTRY_VERSION);
	char scratch[MOAT_ENTRY_MAX + 64];
	moat_entry_t d;
	CHECK_INT(moat_entry_decode((uint8_t *)b.data, b.len, &d, scratch, sizeof scratch, &err),
		  MOAT_OK);
	CHECK_INT(moat_entry_encode(&d, &b2, &err), MOAT_OK);
	CHECK(b.len == b2.len && memcmp(b.data, b2.data, b.len) == 0);
	CHECK_STR(d.detail, "退款 refund");
	CHECK(d.device == NULL);
	CHECK_INT(d.time, e.time);
	moat_buf_t js;
	moat_buf_init(&js, 65536);
	CHECK_INT(moat_entry_to_json(&d, &js), MOAT_OK);
	json_t *parsed = NULL;
	CHECK_INT(moat_json_parse(js.data, js.len, 8, &parsed, &err), MOAT_OK);
	CHECK_STR(json_string_value(json_object_get(parsed, "kind")), "export");
	CHECK_STR(json_string_value(json_object_get(json_object_get(parsed, "views"), "phone")),
		  "mask");
	json_decref(parsed);
	moat_buf_free(&js);
	/* Every single-byte change and every truncation is either rejected or decodes
	 * to an entry that re-encodes to exactly those bytes (canonical). */
	int accepted_changes = 0;
	for (size_t i = 0; i < b.len; i++)
		for (int bit = 0; bit < 8; bit++) {
			uint8_t m[512];
			memcpy(m, b.data, b.len);
			m[i] ^= (uint8_t)(1u << bit);
			if (moat_entry_decode(m, b.len, &d, scratch, sizeof scratch, &err) ==
			    MOAT_OK) {
				moat_buf_reset(&b2);
				CHECK(moat_entry_encode(&d, &b2, &err) == MOAT_OK &&
				      b2.len == b.len && memcmp(b2.data, m, b.len) == 0);
				accepted_changes++;
			}
		}
	CHECK(accepted_changes > 0);
	for (size_t n = 0; n < b.len; n++)
		CHECK(moat_entry_decode((uint8_t *)b.data, n, &d, scratch, sizeof scratch, &err) !=
		      MOAT_OK);
	uint8_t longer[600];
	memcpy(longer, b.data, b.len);
	longer[b.len] = 0;
	CHECK(moat_entry_decode(longer, b.len + 1, &d, scratch, sizeof scratch, &err) != MOAT_OK);
	/* Invalid input to encode. */
	e.detail = "bad\x01";
	moat_buf_reset(&b2);
	CHECK_INT(moat_entry_encode(&e, &b2, &err), MOAT_EINVAL);
	CHECK_STR(err.field, "detail");
	e.detail = "\xc3\x28";
	CHECK_INT(moat_entry_encode(&e, &b2, &err), MOAT_EINVAL);
	char big[400];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	e.detail = big;
	CHECK_INT(moat_entry_encode(&e, &b2, &err), MOAT_ELIMIT);
	e.detail = NULL;
	e.kind = 0;
	CHECK_INT(moat_entry_encode(&e, &b2, &err), MOAT_EINVAL);
	/* The replayed flag (bit 2) round-trips and shows in JSON only when set;
	 * bits 3..7 stay invalid. */
	e.kind = MOAT_ENTRY_ACCESS;
	e.replayed = true;
	moat_buf_reset(&b2);
	CHECK_INT(moat_entry_encode(&e, &b2, &err), MOAT_OK);
	CHECK_INT((uint8_t)b2.data[2] & 4, 4);
	CHECK_INT(moat_entry_decode((uint8_t *)b2.data, b2.len, &d, scratch, sizeof scratch, &err),
		  MOAT_OK);
	CHECK(d.replayed && !d.imported);
	moat_buf_init(&js, 65536);
	CHECK_INT(moat_entry_to_json(&d, &js), MOAT_OK);
	CHECK(strstr(js.data, "\"replayed\":true") != NULL);
	moat_buf_free(&js);
	b2.data[2] = (char)((uint8_t)b2.data[2] | 8);
	CHECK_INT(moat_entry_decode((uint8_t *)b2.data, b2.len, &d, scratch, sizeof scratch, &err),
		  MOAT_ECORRUPT);
	e.replayed = false;
	moat_buf_reset(&b2);
	CHECK_INT(moat_entry_encode(&e, &b2, &err), MOAT_OK);
	CHECK_INT(moat_entry_decode((uint8_t *)b2.data, b2.len, &d, scratch, sizeof scratch, &err),
		  MOAT_OK);
	moat_buf_init(&js, 65536);
	CHECK_INT(moat_entry_to_json(&d, &js), MOAT_OK);
	CHECK(strstr(js.data, "replayed") == NULL);
	moat_buf_free(&js);
	CHECK_STR(moat_entry_kind_name(MOAT_ENTRY_CALL), "call");
	CHECK_INT(moat_entry_kind_parse("deny"), MOAT_ENTRY_DENY);
	CHECK_INT(moat_entry_kind_parse("nope"), -1);
	moat_buf_free(&b);
	moat_buf_free(&b2);
}

typedef struct appender {
	moat_ledger_t *l;
	int id, rounds, batch;
	uint64_t *firsts;
	int failures;
} appender_t;

static void *append_thread(void *arg)
{
	appender_t *a = arg;
	char bufs[64][64];
	moat_entry_t es[64];
	for (int r = 0; r < a->rounds; r++) {
		for (int k = 0; k < a->batch; k++)
			es[k] = sample_entry((uint64_t)(a->id * 100000 + r * 64 + k), bufs[k]);
		moat_error_t err;
		if (moat_ledger_append(a->l, es, (size_t)a->batch, &a->firsts[r], &err) != MOAT_OK)
			a->failures++;
	}
	return NULL;
}

static uint64_t count_entries(moat_ledger_t *l, uint64_t start)
{
	moat_ledger_iter_t *it;
	moat_error_t err;
	if (moat_ledger_iter_new(l, start, &it, &err) != MOAT_OK)
		return 0;
	uint64_t n = 0, idx;
	const uint8_t *d;
	size_t len;
	while (moat_ledger_iter_next(it, &idx, &d, &len, &err) == MOAT_OK) {
		if (idx != start + n)
			break;
		n++;
	}
	moat_ledger_iter_free(it);
	return n;
}

static void test_ledger_roundtrip(void)
{
	char *dir = tmpdir_new("ledger");
	char ldir[1024], path[1400];
	snprintf(ldir, sizeof ldir, "%s/ledger", dir);
	moat_error_t err;
	CHECK_INT(moat_ledger_create(ldir, "moat.test/abc", &err), MOAT_OK);
	CHECK_INT(moat_ledger_create(ldir, "moat.test/abc", &err), MOAT_EEXIST);
	CHECK_INT(moat_ledger_create("/tmp/x", "bad origin", &err), MOAT_EINVAL);
	struct stat st;
	snprintf(path, sizeof path, "%s/key", ldir);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(stat(ldir, &st) == 0 && (st.st_mode & 0777) == 0700);

	moat_ledger_t *l = NULL;
	moat_ledger_opts_t opts = {.checkpoint_interval_ms = 50};
	CHECK_INT(moat_ledger_open(ldir, &opts, &l, &err), MOAT_OK);
	if (!l)
		return;
	moat_ledger_t *l2 = NULL;
	CHECK_INT(moat_ledger_open(ldir, NULL, &l2, &err), MOAT_ECONFLICT);
	CHECK(strncmp(moat_ledger_verifier_key(l), "moat.test/abc+", 14) == 0);

	/* Many threads, enough entries for level-1 tiles and partial tiles. */
	enum { THREADS = 8, ROUNDS = 40, BATCH = 50 };
	pthread_t th[THREADS];
	appender_t ap[THREADS];
	for (int t = 0; t < THREADS; t++) {
		ap[t] = (appender_t){.l = l,
				     .id = t,
				     .rounds = ROUNDS,
				     .batch = BATCH,
				     .firsts = calloc(ROUNDS, sizeof(uint64_t))};
		pthread_create(&th[t], NULL, append_thread, &ap[t]);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	uint64_t total = THREADS * ROUNDS * BATCH;
	CHECK_INT(moat_ledger_size(l), total);
	/* Indexes handed out are disjoint and cover [0, total). */
	uint8_t *seen = calloc(total, 1);
	for (int t = 0; t < THREADS; t++) {
		CHECK_INT(ap[t].failures, 0);
		for (int r = 0; r < ROUNDS; r++)
			for (int k = 0; k < BATCH; k++) {
				uint64_t ix = ap[t].firsts[r] + (uint64_t)k;
				CHECK(ix < total && !seen[ix]);
				if (ix < total)
					seen[ix] = 1;
			}
		free(ap[t].firsts);
	}
	free(seen);
	moat_buf_t eb;
	moat_buf_init(&eb, MOAT_ENTRY_MAX);
	CHECK_INT(moat_ledger_read(l, total - 1, &eb, &err), MOAT_OK); /* integrates on demand */
	CHECK(eb.len > 29);
	moat_buf_reset(&eb);
	CHECK_INT(moat_ledger_read(l, total, &eb, &err), MOAT_ENOTFOUND);
	CHECK_INT(moat_ledger_checkpoint_size(l), total);
	CHECK_INT(count_entries(l, 0), total);
	CHECK_INT(count_entries(l, 300), total - 300);

	/* Reference tree from the entry bytes. */
	uint8_t(*leaves)[32] = malloc(total * 32);
	moat_ledger_iter_t *it;
	CHECK_INT(moat_ledger_iter_new(l, 0, &it, &err), MOAT_OK);
	uint64_t idx;
	const uint8_t *d;
	size_t len;
	while (moat_ledger_iter_next(it, &idx, &d, &len, &err) == MOAT_OK)
		moat_ledger_leaf_hash(d, len, leaves[idx]);
	moat_ledger_iter_free(it);
	uint64_t sizes[] = {1, 2, 3, 255, 256, 257, 511, 512, 4095, 4096, 7777, total};
	for (size_t a = 0; a < MOAT_ARRAY_LEN(sizes); a++) {
		uint8_t want[32], got[32];
		ref_mth(leaves, sizes[a], want);
		CHECK_INT(moat_ledger_root(l, sizes[a], got, &err), MOAT_OK);
		CHECK_MSG(memcmp(want, got, 32) == 0, "root at %llu", (unsigned long long)sizes[a]);
		for (size_t bb = a; bb < MOAT_ARRAY_LEN(sizes); bb++) {
			uint8_t r2[32], proof[MOAT_LEDGER_PROOF_MAX][32], leaf[32];
			size_t np;
			ref_mth(leaves, sizes[bb], r2);
			CHECK_INT(
			    moat_ledger_prove_consistency(l, sizes[a], sizes[bb], proof, &np, &err),
			    MOAT_OK);
			CHECK(moat_ledger_verify_consistency(sizes[a], sizes[bb], want, 32, r2, 32,
							     (uint8_t *)proof, np * 32));
			uint64_t m = (sizes[a] * 7919) % sizes[bb];
			CHECK_INT(
			    moat_ledger_prove_inclusion(l, m, sizes[bb], leaf, proof, &np, &err),
			    MOAT_OK);
			CHECK(memcmp(leaf, leaves[m], 32) == 0);
			CHECK(moat_ledger_verify_inclusion(leaf, 32, m, sizes[bb], (uint8_t *)proof,
							   np * 32, r2, 32));
			CHECK(!moat_ledger_verify_inclusion(leaf, 32, m ^ 1, sizes[bb],
							    (uint8_t *)proof, np * 32, r2, 32) ||
			      sizes[bb] == 1);
		}
	}
	uint8_t proof[MOAT_LEDGER_PROOF_MAX][32];
	size_t np;
	CHECK_INT(moat_ledger_prove_inclusion(l, 5, total + 1, NULL, proof, &np, &err),
		  MOAT_ENOTFOUND);
	CHECK_INT(moat_ledger_prove_consistency(l, 0, 5, proof, &np, &err), MOAT_EINVAL);

	/* Checkpoint note verifies with the verifier key. */
	moat_buf_t cpb;
	moat_buf_init(&cpb, MOAT_LEDGER_NOTE_MAX);
	CHECK_INT(moat_ledger_checkpoint(l, &cpb, &err), MOAT_OK);
	moat_checkpoint_t cp;
	CHECK_INT(moat_ledger_checkpoint_verify(cpb.data, cpb.len, moat_ledger_verifier_key(l), &cp,
						&err),
		  MOAT_OK);
	CHECK_INT(cp.size, total);
	uint8_t croot[32];
	ref_mth(leaves, total, croot);
	CHECK(memcmp(cp.root, croot, 32) == 0);
	moat_buf_free(&cpb);

	/* Write failures: MOAT_EUNAVAIL, nothing appended, then recovery. */
	char b0[64];
	moat_entry_t e = sample_entry(1, b0);
	uint64_t first;
	moat_ledger_fail_writes(l, true);
	CHECK_INT(moat_ledger_append(l, &e, 1, &first, &err), MOAT_EUNAVAIL);
	CHECK_INT(moat_ledger_size(l), total);
	moat_ledger_fail_writes(l, false);
	CHECK_INT(moat_ledger_append(l, &e, 1, &first, &err), MOAT_OK);
	CHECK_INT(first, total);
	total++;
	uint64_t bad;
	CHECK_INT(moat_ledger_verify(l, NULL, &bad, &err), MOAT_OK);
	moat_ledger_close(l);

	/* Reopen: state survives; read-only handle alongside. */
	CHECK_INT(moat_ledger_open(ldir, &opts, &l, &err), MOAT_OK);
	CHECK_INT(moat_ledger_size(l), total);
	moat_ledger_t *ro = NULL;
	moat_ledger_opts_t roopts = {.readonly = true};
	CHECK_INT(moat_ledger_open(ldir, &roopts, &ro, &err), MOAT_OK);
	CHECK_INT(moat_ledger_checkpoint_size(ro), total);
	CHECK_INT(moat_ledger_append(l, &e, 1, &first, &err), MOAT_OK);
	CHECK_INT(moat_ledger_sync(l, &err), MOAT_OK);
	CHECK_INT(moat_ledger_checkpoint_size(ro), total + 1);
	CHECK_INT(count_entries(ro, total - 3), 4);
	CHECK_INT(moat_ledger_verify(ro, NULL, &bad, &err), MOAT_OK);
	total++;
	moat_ledger_close(ro);
	moat_ledger_close(l);

	/* Tampering: each one is caught and named; restore after each. */
	CHECK_INT(moat_ledger_open(ldir, &roopts, &ro, &err), MOAT_OK);
	struct {
		const char *rel;
		long off;
		uint64_t want_bad;
	} cases[] = {
	    {"tile/entries/001", 2 + 10, 256},	    /* entry 256's kind byte */
	    {"tile/entries/x0" /* unused */, 0, 0}, /* placeholder replaced below */
	    {"tile/0/002", 32 * 5 + 3, 512 + 5},
	    {"tile/1/000.p/62", 32 * 3, 3 * 256},
	};
	char partial_bundle[64];
	snprintf(partial_bundle, sizeof partial_bundle, "tile/entries/%03llu.p/%llu",
		 (unsigned long long)(total / 256), (unsigned long long)(total % 256));
	cases[1].rel = partial_bundle;
	cases[1].off = -1; /* last byte of the last entry */
	cases[1].want_bad = total - 1;
	for (size_t c = 0; c < MOAT_ARRAY_LEN(cases); c++) {
		snprintf(path, sizeof path, "%s/%s", ldir, cases[c].rel);
		CHECK_MSG(flip_byte(path, cases[c].off) == 0, "flip %s", path);
		moat_err_t rc = moat_ledger_verify(ro, NULL, &bad, &err);
		CHECK_MSG(rc == MOAT_ECORRUPT && bad == cases[c].want_bad, "%s: bad %llu: %s",
			  cases[c].rel, (unsigned long long)bad, err.msg);
		CHECK(flip_byte(path, cases[c].off) == 0);
		CHECK_INT(moat_ledger_verify(ro, NULL, &bad, &err), MOAT_OK);
	}
	snprintf(path, sizeof path, "%s/checkpoint", ldir);
	for (long off = 0; off < 120; off += 7) {
		CHECK(flip_byte(path, off) == 0);
		CHECK_MSG(moat_ledger_verify(ro, NULL, &bad, &err) == MOAT_ECORRUPT &&
			      strstr(err.msg, "checkpoint"),
			  "checkpoint byte %ld: %s", off, err.msg);
		CHECK(flip_byte(path, off) == 0);
	}
	CHECK_INT(moat_ledger_verify(ro, NULL, &bad, &err), MOAT_OK);
	moat_ledger_close(ro);
	free(leaves);
	moat_buf_free(&eb);
	rm_rf(dir);
	free(dir);
}

typedef struct churn {
	moat_ledger_t *l;
	int id;
	volatile bool *stop;
	uint64_t ok_entries, failed, wrong_code;
	uint64_t firsts[4096];
	size_t nfirst;
	size_t sizes[4096];
} churn_t;

static void *churn_thread(void *arg)
{
	churn_t *c = arg;
	char bufs[8][64];
	moat_entry_t es[8];
	unsigned seed = (unsigned)c->id * 7919u;
	while (!*c->stop && c->nfirst < 4096) {
		size_t n = 1 + (size_t)(rand_r(&seed) % 8);
		for (size_t k = 0; k < n; k++)
			es[k] = sample_entry(c->ok_entries + k, bufs[k]);
		uint64_t first;
		moat_error_t err;
		moat_err_t rc = moat_ledger_append(c->l, es, n, &first, &err);
		if (rc == MOAT_OK) {
			c->firsts[c->nfirst] = first;
			c->sizes[c->nfirst++] = n;
			c->ok_entries += n;
		} else {
			/* no CHECK here: the harness counters are not thread-safe */
			c->failed++;
			c->wrong_code += rc != MOAT_EUNAVAIL;
		}
	}
	return NULL;
}

/* Appenders, an in-order reader and a flapping disk-failure hook all at once:
 * every acknowledged index is unique, the reader sees every entry exactly once in
 * order while appends continue, failed appends leave no trace. */
static void test_concurrent_readers_and_failures(void)
{
	char *dir = tmpdir_new("conc");
	char ldir[1024];
	snprintf(ldir, sizeof ldir, "%s/ledger", dir);
	moat_error_t err;
	CHECK_INT(moat_ledger_create(ldir, "moat.test/conc", &err), MOAT_OK);
	moat_ledger_t *l = NULL;
	moat_ledger_opts_t opts = {.checkpoint_interval_ms = 5};
	CHECK_INT(moat_ledger_open(ldir, &opts, &l, &err), MOAT_OK);
	if (!l)
		return;
	enum { N = 4 };
	volatile bool stop = false;
	churn_t *c = calloc(N, sizeof *c);
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		c[i].l = l;
		c[i].id = i + 1;
		c[i].stop = &stop;
		pthread_create(&th[i], NULL, churn_thread, &c[i]);
	}
	moat_ledger_iter_t *it;
	CHECK_INT(moat_ledger_iter_new(l, 0, &it, &err), MOAT_OK);
	uint64_t next = 0;
	char scratch[MOAT_ENTRY_MAX + 64];
	uint64_t t0 = moat_mono_ns();
	bool order_ok = true, decode_ok = true;
	int flips = 0;
	while (moat_mono_ns() - t0 < 1500000000ull) {
		uint64_t idx;
		const uint8_t *d;
		size_t len;
		moat_err_t rc = moat_ledger_iter_next(it, &idx, &d, &len, &err);
		if (rc == MOAT_OK) {
			moat_entry_t e;
			order_ok = order_ok && idx == next;
			decode_ok = decode_ok && moat_entry_decode(d, len, &e, scratch,
								   sizeof scratch, &err) == MOAT_OK;
			next++;
		} else {
			CHECK_INT(rc, MOAT_ENOTFOUND);
			moat_ledger_fail_writes(l, (++flips % 3) == 0);
			struct timespec ts = {0, 2000000};
			nanosleep(&ts, NULL);
		}
	}
	moat_ledger_fail_writes(l, false);
	stop = true;
	uint64_t acked = 0, failed = 0;
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		acked += c[i].ok_entries;
		failed += c[i].failed;
		CHECK_INT(c[i].wrong_code, 0);
	}
	CHECK(order_ok);
	CHECK(decode_ok);
	CHECK_INT(moat_ledger_size(l), acked);
	CHECK(failed > 0);
	uint8_t *seen = calloc(acked ? acked : 1, 1);
	bool unique = true;
	for (int i = 0; i < N; i++)
		for (size_t k = 0; k < c[i].nfirst; k++)
			for (size_t j = 0; j < c[i].sizes[k]; j++) {
				uint64_t ix = c[i].firsts[k] + j;
				if (ix >= acked || seen[ix])
					unique = false;
				else
					seen[ix] = 1;
			}
	CHECK(unique);
	CHECK_INT(moat_ledger_sync(l, &err), MOAT_OK);
	while (moat_ledger_iter_next(it, &(uint64_t){0}, &(const uint8_t *){NULL}, &(size_t){0},
				     &err) == MOAT_OK)
		next++;
	CHECK_INT(next, acked);
	uint64_t bad;
	CHECK_INT(moat_ledger_verify(l, NULL, &bad, &err), MOAT_OK);
	printf("concurrent: %llu entries appended, %llu appends refused while the disk "
	       "\"failed\", all read back in order\n",
	       (unsigned long long)acked, (unsigned long long)failed);
	moat_ledger_iter_free(it);
	moat_ledger_close(l);
	free(seen);
	free(c);
	rm_rf(dir);
	free(dir);
}

/* ---- asynchronous appends and group commit ---------------------------------------- */

enum { ASYNC_THREADS = 6, ASYNC_PER_THREAD = 300, SYNC_THREADS = 2, SYNC_PER_THREAD = 50 };

typedef struct async_slot {
	atomic_int calls; /* completions seen (must end at exactly 1) */
	moat_err_t status;
	uint64_t index;
	uint64_t key; /* the i given to sample_entry */
} async_slot_t;

typedef struct async_run {
	moat_ledger_t *l;
	async_slot_t *slots;
	atomic_int answered, refused;
	int base, count;
	uint64_t *sync_first; /* sync threads: one index per append */
} async_run_t;

typedef struct async_arg {
	async_run_t *run;
	int thread;
} async_arg_t;

static void async_done(void *ctx, moat_err_t status, uint64_t first)
{
	async_slot_t *s = ctx;
	s->status = status;
	s->index = first;
	atomic_fetch_add(&s->calls, 1);
}

/* async_done after a pause: a group's completions take a while, so a flush
 * that returned before another thread's group was answered would be seen. */
static void slow_done(void *ctx, moat_err_t status, uint64_t first)
{
	struct timespec pause = {0, 200000};
	nanosleep(&pause, NULL);
	async_done(ctx, status, first);
}

static void *async_thread(void *arg)
{
	async_arg_t *a = arg;
	async_run_t *r = a->run;
	char buf[64];
	for (int k = 0; k < ASYNC_PER_THREAD; k++) {
		async_slot_t *s = &r->slots[a->thread * ASYNC_PER_THREAD + k];
		s->key = (uint64_t)(a->thread * ASYNC_PER_THREAD + k);
		moat_entry_t e = sample_entry(s->key, buf);
		moat_error_t err;
		if (moat_ledger_append_async(r->l, &e, 1, async_done, s, &err) != MOAT_OK)
			atomic_fetch_add(&r->refused, 1);
	}
	return NULL;
}

static void *sync_thread(void *arg)
{
	async_arg_t *a = arg;
	char buf[64];
	for (int k = 0; k < SYNC_PER_THREAD; k++) {
		moat_entry_t e =
		    sample_entry(1000000u + (uint64_t)(a->thread * SYNC_PER_THREAD + k), buf);
		moat_error_t err;
		uint64_t *first = &a->run->sync_first[a->thread * SYNC_PER_THREAD + k];
		if (moat_ledger_append(a->run->l, &e, 1, first, &err) != MOAT_OK)
			*first = UINT64_MAX;
	}
	return NULL;
}

/* Waits until n slots have been answered (5 s at most). */
static int await_answers(async_slot_t *slots, int n)
{
	int done = 0;
	for (int spin = 0; spin < 5000; spin++) {
		done = 0;
		for (int i = 0; i < n; i++)
			done += atomic_load(&slots[i].calls) > 0;
		if (done == n)
			break;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return done;
}

/* Asynchronous appends from several threads mixed with synchronous ones: every
 * append is answered exactly once with a distinct index, the entry at that index
 * is the one given, groups are shared (fewer fsyncs than entries), nothing is
 * synced while idle, a failing disk answers EUNAVAIL and appends nothing, and
 * close answers every append still queued. */
static void test_async_group_commit(void)
{
	char *dir = tmpdir_new("async");
	char ldir[1024];
	snprintf(ldir, sizeof ldir, "%s/ledger", dir);
	moat_error_t err;
	CHECK_INT(moat_ledger_create(ldir, "moat.test/async", &err), MOAT_OK);
	moat_ledger_t *l = NULL;
	CHECK_INT(moat_ledger_open(ldir, NULL, &l, &err), MOAT_OK);
	if (!l)
		return;
	enum { NA = ASYNC_THREADS * ASYNC_PER_THREAD, NS = SYNC_THREADS * SYNC_PER_THREAD };
	async_run_t run = {.l = l};
	run.slots = calloc(NA, sizeof *run.slots);
	run.sync_first = calloc(NS, sizeof *run.sync_first);
	pthread_t th[ASYNC_THREADS + SYNC_THREADS];
	async_arg_t args[ASYNC_THREADS + SYNC_THREADS];
	for (int i = 0; i < ASYNC_THREADS + SYNC_THREADS; i++) {
		args[i].run = &run;
		args[i].thread = i < ASYNC_THREADS ? i : i - ASYNC_THREADS;
		pthread_create(&th[i], NULL, i < ASYNC_THREADS ? async_thread : sync_thread,
			       &args[i]);
	}
	for (int i = 0; i < ASYNC_THREADS + SYNC_THREADS; i++)
		pthread_join(th[i], NULL);
	CHECK_INT(atomic_load(&run.refused), 0);
	CHECK_INT(await_answers(run.slots, NA), NA);
	uint8_t *seen = calloc(NA + NS, 1);
	bool once = true, ok = true, unique = true, same = true;
	char buf[64];
	moat_buf_t got, want;
	moat_buf_init(&got, 1 << 20);
	moat_buf_init(&want, 1 << 20);
	for (int i = 0; i < NA; i++) {
		async_slot_t *s = &run.slots[i];
		once = once && atomic_load(&s->calls) == 1;
		ok = ok && s->status == MOAT_OK;
		if (s->index >= NA + NS || seen[s->index])
			unique = false;
		else
			seen[s->index] = 1;
		if (i % 97 == 0) {
			moat_entry_t e = sample_entry(s->key, buf);
			moat_buf_reset(&got);
			moat_buf_reset(&want);
			same = same && moat_ledger_read(l, s->index, &got, &err) == MOAT_OK &&
			       moat_entry_encode(&e, &want, &err) == MOAT_OK &&
			       got.len == want.len && memcmp(got.data, want.data, got.len) == 0;
		}
	}
	for (int i = 0; i < NS; i++) {
		uint64_t ix = run.sync_first[i];
		if (ix >= NA + NS || seen[ix])
			unique = false;
		else
			seen[ix] = 1;
	}
	CHECK(once);
	CHECK(ok);
	CHECK(unique);
	CHECK(same);
	CHECK_INT(moat_ledger_size(l), NA + NS);
	uint64_t groups, grouped;
	moat_ledger_commit_stats(l, &groups, &grouped);
	CHECK_INT(grouped, NA + NS);
	CHECK_MSG(groups >= 1 && groups < (NA + NS) / 4,
		  "%llu groups for %d entries: appends are not sharing fsyncs",
		  (unsigned long long)groups, NA + NS);
	printf("async: %d async + %d sync appends in %llu group commits (%.1f entries each)\n", NA,
	       NS, (unsigned long long)groups, (double)grouped / (double)(groups ? groups : 1));

	/* Idle: no group is synced while nothing is pending. */
	struct timespec idle = {0, 100000000};
	nanosleep(&idle, NULL);
	uint64_t g2, e2;
	moat_ledger_commit_stats(l, &g2, &e2);
	CHECK_INT(g2, groups);

	/* A failing disk: the completion says EUNAVAIL and nothing is appended. */
	moat_ledger_fail_writes(l, true);
	async_slot_t fail = {0};
	moat_entry_t e = sample_entry(7, buf);
	CHECK_INT(moat_ledger_append_async(l, &e, 1, async_done, &fail, &err), MOAT_OK);
	CHECK_INT(await_answers(&fail, 1), 1);
	CHECK_INT(fail.status, MOAT_EUNAVAIL);
	CHECK_INT(moat_ledger_size(l), NA + NS);
	moat_ledger_fail_writes(l, false);
	async_slot_t again = {0};
	CHECK_INT(moat_ledger_append_async(l, &e, 1, async_done, &again, &err), MOAT_OK);
	CHECK_INT(await_answers(&again, 1), 1);
	CHECK_INT(again.status, MOAT_OK);
	CHECK_INT(again.index, NA + NS);

	/* An invalid entry is refused at once; no completion follows. */
	async_slot_t bad = {0};
	moat_entry_t inv = e;
	inv.kind = (moat_entry_kind_t)200;
	CHECK(moat_ledger_append_async(l, &inv, 1, async_done, &bad, &err) != MOAT_OK);

	/* Close answers what is still queued. */
	async_slot_t tail[50];
	memset(tail, 0, sizeof tail);
	for (int i = 0; i < 50; i++) {
		e = sample_entry(5000u + (uint64_t)i, buf);
		CHECK_INT(moat_ledger_append_async(l, &e, 1, async_done, &tail[i], &err), MOAT_OK);
	}
	moat_ledger_close(l);
	int answered = 0;
	for (int i = 0; i < 50; i++)
		answered += atomic_load(&tail[i].calls) == 1 && tail[i].status == MOAT_OK;
	CHECK_INT(answered, 50);
	CHECK_INT(atomic_load(&bad.calls), 0);
	l = NULL;
	CHECK_INT(moat_ledger_open(ldir, NULL, &l, &err), MOAT_OK);
	if (l)
		CHECK_INT(moat_ledger_size(l), NA + NS + 1 + 50);
	moat_ledger_close(l);
	moat_buf_free(&got);
	moat_buf_free(&want);
	free(seen);
	free(run.slots);
	free(run.sync_first);
	rm_rf(dir);
	free(dir);
}

/* Deferred appends from several threads: nothing is written until a flush; a
 * thread's flush returns only after its own entries are answered (their
 * completions have returned; they are slow here), on whichever thread led the
 * group, even while another group is written and answered meanwhile; every entry is
 * answered once with a distinct index; a failing disk answers EUNAVAIL through
 * the flush; close writes what nobody flushed. */
enum { DEF_THREADS = 4, DEF_ROUNDS = 60, DEF_PER_ROUND = 5 };

typedef struct def_arg {
	moat_ledger_t *l;
	async_slot_t *slots; /* DEF_ROUNDS * DEF_PER_ROUND of this thread's */
	int thread;
	atomic_int *unanswered_after_flush;
} def_arg_t;

static void *deferred_thread(void *arg)
{
	def_arg_t *a = arg;
	char buf[64];
	for (int r = 0; r < DEF_ROUNDS; r++) {
		for (int k = 0; k < DEF_PER_ROUND; k++) {
			async_slot_t *s = &a->slots[r * DEF_PER_ROUND + k];
			s->key = (uint64_t)(a->thread * 100000 + r * DEF_PER_ROUND + k);
			moat_entry_t e = sample_entry(s->key, buf);
			moat_error_t err;
			if (moat_ledger_append_deferred(a->l, &e, 1, slow_done, s, &err) != MOAT_OK)
				atomic_fetch_add(a->unanswered_after_flush, 1000);
		}
		moat_ledger_flush(a->l);
		for (int k = 0; k < DEF_PER_ROUND; k++)
			if (atomic_load(&a->slots[r * DEF_PER_ROUND + k].calls) != 1)
				atomic_fetch_add(a->unanswered_after_flush, 1);
	}
	return NULL;
}

static void test_deferred_flush(void)
{
	char *dir = tmpdir_new("deferred");
	char ldir[1024], buf[64];
	snprintf(ldir, sizeof ldir, "%s/ledger", dir);
	moat_error_t err;
	CHECK_INT(moat_ledger_create(ldir, "moat.test/deferred", &err), MOAT_OK);
	moat_ledger_t *l = NULL;
	CHECK_INT(moat_ledger_open(ldir, NULL, &l, &err), MOAT_OK);
	if (!l)
		return;
	/* Queued and not flushed: not written, not answered, even after a while. */
	async_slot_t first = {0};
	moat_entry_t e = sample_entry(1, buf);
	CHECK_INT(moat_ledger_append_deferred(l, &e, 1, async_done, &first, &err), MOAT_OK);
	struct timespec pause = {0, 50000000};
	nanosleep(&pause, NULL);
	CHECK_INT(atomic_load(&first.calls), 0);
	CHECK_INT(moat_ledger_size(l), 0);
	moat_ledger_flush(l);
	CHECK_INT(atomic_load(&first.calls), 1);
	CHECK_INT(first.status, MOAT_OK);
	CHECK_INT(first.index, 0);
	CHECK_INT(moat_ledger_size(l), 1);
	moat_ledger_flush(l); /* nothing queued: returns at once */

	enum { N = DEF_THREADS * DEF_ROUNDS * DEF_PER_ROUND };
	async_slot_t *slots = calloc(N, sizeof *slots);
	atomic_int unanswered = 0;
	pthread_t th[DEF_THREADS];
	def_arg_t args[DEF_THREADS];
	for (int i = 0; i < DEF_THREADS; i++) {
		args[i] = (def_arg_t){l, slots + i * DEF_ROUNDS * DEF_PER_ROUND, i, &unanswered};
		pthread_create(&th[i], NULL, deferred_thread, &args[i]);
	}
	for (int i = 0; i < DEF_THREADS; i++)
		pthread_join(th[i], NULL);
	CHECK_INT(atomic_load(&unanswered), 0);
	uint8_t *seen = calloc(N + 1, 1);
	bool once = true, unique = true, same = true;
	moat_buf_t got, want;
	moat_buf_init(&got, 1 << 20);
	moat_buf_init(&want, 1 << 20);
	for (int i = 0; i < N; i++) {
		async_slot_t *s = &slots[i];
		once = once && atomic_load(&s->calls) == 1 && s->status == MOAT_OK;
		if (s->index < 1 || s->index > N || seen[s->index])
			unique = false;
		else
			seen[s->index] = 1;
		if (i % 53 == 0) {
			moat_entry_t w = sample_entry(s->key, buf);
			moat_buf_reset(&got);
			moat_buf_reset(&want);
			same = same && moat_ledger_read(l, s->index, &got, &err) == MOAT_OK &&
			       moat_entry_encode(&w, &want, &err) == MOAT_OK &&
			       got.len == want.len && memcmp(got.data, want.data, got.len) == 0;
		}
	}
	CHECK(once);
	CHECK(unique);
	CHECK(same);
	CHECK_INT(moat_ledger_size(l), N + 1);

	/* A failing disk: the flush answers EUNAVAIL and nothing is appended. */
	moat_ledger_fail_writes(l, true);
	async_slot_t fail = {0};
	CHECK_INT(moat_ledger_append_deferred(l, &e, 1, async_done, &fail, &err), MOAT_OK);
	moat_ledger_flush(l);
	CHECK_INT(atomic_load(&fail.calls), 1);
	CHECK_INT(fail.status, MOAT_EUNAVAIL);
	CHECK_INT(moat_ledger_size(l), N + 1);
	moat_ledger_fail_writes(l, false);

	/* Close writes what was queued and never flushed. */
	async_slot_t tail[20];
	memset(tail, 0, sizeof tail);
	for (int i = 0; i < 20; i++) {
		e = sample_entry(900000u + (uint64_t)i, buf);
		CHECK_INT(moat_ledger_append_deferred(l, &e, 1, async_done, &tail[i], &err),
			  MOAT_OK);
	}
	moat_ledger_close(l);
	int answered = 0;
	for (int i = 0; i < 20; i++)
		answered += atomic_load(&tail[i].calls) == 1 && tail[i].status == MOAT_OK;
	CHECK_INT(answered, 20);
	l = NULL;
	CHECK_INT(moat_ledger_open(ldir, NULL, &l, &err), MOAT_OK);
	if (l)
		CHECK_INT(moat_ledger_size(l), N + 1 + 20);
	moat_ledger_close(l);
	moat_buf_free(&got);
	moat_buf_free(&want);
	free(seen);
	free(slots);
	rm_rf(dir);
	free(dir);
}

/* Finds the newest write-ahead file under ldir/wal; false if none. */
static bool newest_wal(const char *ldir, char *path, size_t cap)
{
	char wdir[1200], newest[256] = "";
	snprintf(wdir, sizeof wdir, "%s/wal", ldir);
	DIR *d = opendir(wdir);
	if (!d)
		return false;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && strcmp(de->d_name, newest) > 0)
			snprintf(newest, sizeof newest, "%s", de->d_name);
	closedir(d);
	snprintf(path, cap, "%s/%s", wdir, newest);
	return newest[0] != '\0';
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* The write-ahead file is extended with zeros ahead of its records; close cuts
 * the zeros, and a zero tail left by a crash reads as the file's end. */
static void test_wal_prealloc(void)
{
	char *dir = tmpdir_new("prealloc");
	char ldir[1024], wal[1600];
	snprintf(ldir, sizeof ldir, "%s/ledger", dir);
	moat_error_t err;
	CHECK_INT(moat_ledger_create(ldir, "moat.test/prealloc", &err), MOAT_OK);
	moat_ledger_opts_t opts = {.checkpoint_interval_ms = 600000};
	moat_ledger_t *l = NULL;
	CHECK_INT(moat_ledger_open(ldir, &opts, &l, &err), MOAT_OK);
	if (!l)
		return;
	char buf[64];
	for (int i = 0; i < 20; i++) {
		moat_entry_t e = sample_entry(9000u + (uint64_t)i, buf);
		uint64_t first;
		CHECK_INT(moat_ledger_append(l, &e, 1, &first, &err), MOAT_OK);
	}
	CHECK(newest_wal(ldir, wal, sizeof wal));
	off_t open_size = file_size(wal);
	CHECK_MSG(open_size >= (off_t)1 << 19 && open_size % ((off_t)1 << 19) == 0,
		  "write-ahead file is %lld bytes while open: not preallocated",
		  (long long)open_size);
	moat_ledger_close(l);
	off_t closed_size = file_size(wal);
	CHECK_MSG(closed_size > 0 && closed_size < open_size,
		  "write-ahead file is %lld bytes after close: zero tail not cut",
		  (long long)closed_size);

	/* A crash's leftover: zeros past the last record. */
	FILE *f = fopen(wal, "ab");
	CHECK(f != NULL);
	if (f) {
		static const char zeros[70000];
		CHECK_INT(fwrite(zeros, 1, sizeof zeros, f), sizeof zeros);
		fclose(f);
	}
	l = NULL;
	CHECK_INT(moat_ledger_open(ldir, &opts, &l, &err), MOAT_OK);
	if (l) {
		CHECK_INT(moat_ledger_size(l), 20);
		moat_entry_t e = sample_entry(9100, buf);
		uint64_t first = 0;
		CHECK_INT(moat_ledger_append(l, &e, 1, &first, &err), MOAT_OK);
		CHECK_INT(first, 20);
		moat_buf_t got, want;
		moat_buf_init(&got, 1 << 20);
		moat_buf_init(&want, 1 << 20);
		CHECK_INT(moat_ledger_read(l, 20, &got, &err), MOAT_OK);
		CHECK_INT(moat_entry_encode(&e, &want, &err), MOAT_OK);
		CHECK(got.len == want.len && memcmp(got.data, want.data, got.len) == 0);
		moat_buf_free(&got);
		moat_buf_free(&want);
		moat_ledger_close(l);
	}
	l = NULL;
	CHECK_INT(moat_ledger_open(ldir, &opts, &l, &err), MOAT_OK);
	if (l)
		CHECK_INT(moat_ledger_size(l), 21);
	moat_ledger_close(l);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	test_inclusion_vectors();
	test_consistency_vectors();
	test_tree_and_generated();
	test_signed_notes();
	test_tile_paths();
	test_entry_codec();
	test_ledger_roundtrip();
	test_concurrent_readers_and_failures();
	test_async_group_commit();
	test_deferred_flush();
	test_wal_prealloc();
	return check_done();
}
