/*
 * moat ledger: inspect and verify the access ledger.
 *
 *   moat ledger key                          verifier key (origin+keyid+base64)
 *   moat ledger checkpoint                   latest signed checkpoint
 *   moat ledger show INDEX                   one entry
 *   moat ledger proof inclusion INDEX [--size N]
 *   moat ledger proof consistency OLD NEW
 *   moat ledger verify [--vkey KEY]          recompute everything from the bundles
 *   moat ledger verify-proof --vkey KEY --checkpoint FILE [--old-checkpoint FILE]
 *                            [--entry FILE] PROOF_FILE      (offline)
 *
 * The ledger is opened read-only, so these work while `moat serve` appends.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "moat/json.h"
#include "moat/ledger.h"

static const char usage_text[] =
    "usage: moat ledger SUBCOMMAND [OPTIONS]\n"
    "\n"
    "Inspect and verify the append-only access ledger (<data>/ledger).\n"
    "\n"
    "subcommands:\n"
    "  key                              print the verifier key (name+keyid+base64)\n"
    "  checkpoint                       print the latest signed checkpoint\n"
    "  show INDEX                       print entry INDEX\n"
    "  proof inclusion INDEX [--size N] inclusion proof of INDEX in the tree of N\n"
    "                                   entries (default: the latest checkpoint)\n"
    "  proof consistency OLD NEW        consistency proof between two tree sizes\n"
    "  verify [--vkey KEY]              recompute the tree from the entry bundles, check\n"
    "                                   every tile and the checkpoint signature; names\n"
    "                                   the first bad index and exits 1 on any mismatch\n"
    "  verify-proof --vkey KEY|--vkey-file FILE --checkpoint FILE\n"
    "               [--old-checkpoint FILE] [--entry FILE] PROOF_FILE\n"
    "                                   check a proof offline against signed\n"
    "                                   checkpoint(s) with only the verifier key\n"
    "\n"
    "options:\n"
    "  --data DIR      data directory (default ./moat-data or $MOAT_DATA)\n"
    "  --json          print records as JSON\n"
    "  -h, --help      show this help\n"
    "\n"
    "Proof files are the output of `moat ledger proof` (text or --json).\n";

enum { OPT_SIZE = 2000, OPT_VKEY, OPT_VKEY_FILE, OPT_CHECKPOINT, OPT_OLD_CHECKPOINT, OPT_ENTRY };

typedef struct opts {
	cli_common_t c;
	const char *size;
	const char *vkey, *vkey_file, *checkpoint, *old_checkpoint, *entry;
} opts_t;

static int fail_msg(const char *msg)
{
	fprintf(stderr, "moat ledger: error: %s\n", msg);
	return CLI_FAIL;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	if (!s || !*s || strlen(s) > 19)
		return false;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	if (s[0] == '0' && s[1])
		return false;
	*out = strtoull(s, NULL, 10);
	return true;
}

static moat_err_t open_ledger(const opts_t *o, moat_ledger_t **l, moat_error_t *err)
{
	char dir[4096];
	if (moat_path_join(dir, sizeof dir, o->c.data_dir, "ledger") != MOAT_OK)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "data directory path too long");
	moat_ledger_opts_t lo = {.readonly = true};
	return moat_ledger_open(dir, &lo, l, err);
}

static void b64(const uint8_t *h, char out[48])
{
	moat_b64_encode(h, MOAT_HASH_LEN, out);
}

static int do_key(const opts_t *o, moat_ledger_t *l)
{
	if (o->c.json) {
		moat_buf_t b;
		moat_buf_init(&b, 4096);
		bool ok = moat_buf_puts(&b, "{\"origin\":") == MOAT_OK &&
			  moat_buf_json_str(&b, moat_ledger_origin(l)) == MOAT_OK &&
			  moat_buf_puts(&b, ",\"vkey\":") == MOAT_OK &&
			  moat_buf_json_str(&b, moat_ledger_verifier_key(l)) == MOAT_OK &&
			  moat_buf_puts(&b, "}") == MOAT_OK;
		if (ok)
			printf("%s\n", b.data);
		moat_buf_free(&b);
		return ok ? CLI_OK : CLI_FAIL;
	}
	printf("%s\n", moat_ledger_verifier_key(l));
	return CLI_OK;
}

static int do_checkpoint(const opts_t *o, moat_ledger_t *l)
{
	moat_buf_t b;
	moat_error_t err = {0};
	moat_buf_init(&b, MOAT_LEDGER_NOTE_MAX);
	if (moat_ledger_checkpoint(l, &b, &err) != MOAT_OK) {
		moat_buf_free(&b);
		return cli_fail("ledger", &err);
	}
	if (!o->c.json) {
		fwrite(b.data, 1, b.len, stdout);
		moat_buf_free(&b);
		return CLI_OK;
	}
	moat_checkpoint_t cp;
	if (moat_ledger_checkpoint_verify(b.data, b.len, moat_ledger_verifier_key(l), &cp, &err) !=
	    MOAT_OK) {
		moat_buf_free(&b);
		return cli_fail("ledger", &err);
	}
	char root[48];
	b64(cp.root, root);
	moat_buf_t j;
	moat_buf_init(&j, 2 * MOAT_LEDGER_NOTE_MAX);
	bool ok = moat_buf_puts(&j, "{\"origin\":") == MOAT_OK &&
		  moat_buf_json_str(&j, cp.origin) == MOAT_OK &&
		  moat_buf_printf(&j, ",\"size\":%" PRIu64 ",\"root\":\"%s\",\"note\":", cp.size,
				  root) == MOAT_OK &&
		  moat_buf_json_str(&j, b.data) == MOAT_OK && moat_buf_puts(&j, "}") == MOAT_OK;
	if (ok)
		printf("%s\n", j.data);
	moat_buf_free(&j);
	moat_buf_free(&b);
	return ok ? CLI_OK : CLI_FAIL;
}

static int do_show(const opts_t *o, moat_ledger_t *l, const char *arg)
{
	uint64_t index;
	if (!parse_u64(arg, &index))
		return cli_usage("ledger", "INDEX must be a non-negative integer, not \"%s\"", arg);
	moat_buf_t b, j;
	moat_error_t err = {0};
	moat_buf_init(&b, MOAT_ENTRY_MAX);
	moat_buf_init(&j, 1 << 20);
	int rc = CLI_OK;
	char *scratch = NULL;
	if (moat_ledger_read(l, index, &b, &err) != MOAT_OK) {
		rc = cli_fail("ledger", &err);
		goto out;
	}
	moat_entry_t e;
	scratch = malloc(MOAT_ENTRY_MAX + 64);
	if (!scratch || moat_entry_decode((const uint8_t *)b.data, b.len, &e, scratch,
					  MOAT_ENTRY_MAX + 64, &err) != MOAT_OK) {
		rc = cli_fail("ledger", &err);
		goto out;
	}
	uint8_t leaf[MOAT_HASH_LEN];
	char lb[48];
	moat_ledger_leaf_hash(b.data, b.len, leaf);
	b64(leaf, lb);
	bool ok =
	    moat_buf_printf(&j, "{\"index\":%" PRIu64 ",\"leaf_hash\":\"%s\",\"entry\":", index,
			    lb) == MOAT_OK &&
	    moat_entry_to_json(&e, &j) == MOAT_OK && moat_buf_puts(&j, "}") == MOAT_OK;
	if (!ok) {
		rc = fail_msg("entry does not fit the output buffer");
		goto out;
	}
	if (o->c.json) {
		printf("%s\n", j.data);
	} else {
		/* Human form: index and leaf hash, then the entry. */
		moat_buf_reset(&j);
		if (moat_entry_to_json(&e, &j) != MOAT_OK) {
			rc = fail_msg("entry does not fit the output buffer");
			goto out;
		}
		printf("index %" PRIu64 "\nleaf-hash %s\n%s\n", index, lb, j.data);
	}
out:
	free(scratch);
	moat_buf_free(&b);
	moat_buf_free(&j);
	return rc;
}

static void print_hashes(bool json, const uint8_t (*p)[MOAT_HASH_LEN], size_t n)
{
	char h[48];
	if (json) {
		printf(",\"proof\":[");
		for (size_t i = 0; i < n; i++) {
			b64(p[i], h);
			printf("%s\"%s\"", i ? "," : "", h);
		}
		printf("]}\n");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		b64(p[i], h);
		printf("hash %s\n", h);
	}
}

static int do_proof(const opts_t *o, moat_ledger_t *l, int argc, char **argv)
{
	uint8_t proof[MOAT_LEDGER_PROOF_MAX][MOAT_HASH_LEN];
	size_t n = 0;
	moat_error_t err = {0};
	if (argc < 1)
		return cli_usage("ledger",
				 "proof needs \"inclusion INDEX\" or \"consistency OLD NEW\"");
	if (strcmp(argv[0], "inclusion") == 0) {
		uint64_t index, size = moat_ledger_checkpoint_size(l);
		if (argc != 2 || !parse_u64(argv[1], &index))
			return cli_usage("ledger", "usage: proof inclusion INDEX [--size N]");
		if (o->size && !parse_u64(o->size, &size))
			return cli_usage("ledger", "--size must be a non-negative integer");
		uint8_t leaf[MOAT_HASH_LEN];
		if (moat_ledger_prove_inclusion(l, index, size, leaf, proof, &n, &err) != MOAT_OK)
			return cli_fail("ledger", &err);
		char lb[48];
		b64(leaf, lb);
		if (o->c.json)
			printf("{\"type\":\"inclusion\",\"index\":%" PRIu64 ",\"size\":%" PRIu64
			       ",\"leaf_hash\":\"%s\"",
			       index, size, lb);
		else
			printf("inclusion-proof\nindex %" PRIu64 "\nsize %" PRIu64
			       "\nleaf-hash %s\n",
			       index, size, lb);
		print_hashes(o->c.json, (const uint8_t(*)[MOAT_HASH_LEN])proof, n);
		return CLI_OK;
	}
	if (strcmp(argv[0], "consistency") == 0) {
		uint64_t a, b;
		if (argc != 3 || !parse_u64(argv[1], &a) || !parse_u64(argv[2], &b))
			return cli_usage("ledger", "usage: proof consistency OLD NEW");
		if (moat_ledger_prove_consistency(l, a, b, proof, &n, &err) != MOAT_OK)
			return cli_fail("ledger", &err);
		if (o->c.json)
			printf("{\"type\":\"consistency\",\"old_size\":%" PRIu64
			       ",\"new_size\":%" PRIu64,
			       a, b);
		else
			printf("consistency-proof\nold-size %" PRIu64 "\nnew-size %" PRIu64 "\n", a,
			       b);
		print_hashes(o->c.json, (const uint8_t(*)[MOAT_HASH_LEN])proof, n);
		return CLI_OK;
	}
	return cli_usage("ledger", "unknown proof type \"%s\" (inclusion or consistency)", argv[0]);
}

static int do_verify(const opts_t *o, moat_ledger_t *l)
{
	uint64_t bad;
	moat_error_t err = {0};
	moat_err_t rc = moat_ledger_verify(l, o->vkey, &bad, &err);
	if (rc != MOAT_OK) {
		if (o->c.json) {
			moat_buf_t b;
			moat_buf_init(&b, 4096);
			if (moat_buf_puts(&b, "{\"ok\":false,\"error\":") == MOAT_OK &&
			    moat_buf_json_str(&b, err.msg) == MOAT_OK &&
			    (bad == UINT64_MAX ? moat_buf_puts(&b, "}")
					       : moat_buf_printf(&b, ",\"bad_index\":%" PRIu64 "}",
								 bad)) == MOAT_OK)
				printf("%s\n", b.data);
			moat_buf_free(&b);
		}
		return cli_fail("ledger", &err);
	}
	uint64_t size = moat_ledger_checkpoint_size(l);
	uint8_t root[MOAT_HASH_LEN];
	char rb[48] = "";
	if (moat_ledger_root(l, size, root, &err) == MOAT_OK)
		b64(root, rb);
	if (o->c.json)
		printf("{\"ok\":true,\"size\":%" PRIu64 ",\"root\":\"%s\"}\n", size, rb);
	else
		printf("ok: %" PRIu64 " entries, every tile matches, checkpoint signature valid\n"
		       "root %s\n",
		       size, rb);
	return CLI_OK;
}

/* ---- verify-proof ------------------------------------------------------------------ */

typedef struct proof {
	bool inclusion;
	uint64_t index, size, old_size, new_size;
	uint8_t leaf[MOAT_HASH_LEN];
	bool has_leaf;
	uint8_t h[MOAT_LEDGER_PROOF_MAX][MOAT_HASH_LEN];
	size_t n;
} proof_t;

static bool dec_hash(const char *s, size_t n, uint8_t out[MOAT_HASH_LEN])
{
	size_t got = 0;
	return moat_b64_decode(s, n, out, &got, MOAT_HASH_LEN) && got == MOAT_HASH_LEN;
}

static bool parse_proof_json(const char *text, size_t len, proof_t *p, moat_error_t *err)
{
	json_t *j = NULL;
	if (moat_json_parse(text, len, 4, &j, err) != MOAT_OK)
		return false;
	const char *type = NULL, *leaf = NULL;
	int64_t a = 0, b = 0;
	json_t *arr = NULL;
	bool ok = moat_json_get_str(j, "type", "type", true, 16, &type, err) == MOAT_OK;
	if (ok && strcmp(type, "inclusion") == 0) {
		p->inclusion = true;
		ok =
		    moat_json_get_int(j, "index", "index", true, 0, INT64_MAX, &a, err) ==
			MOAT_OK &&
		    moat_json_get_int(j, "size", "size", true, 1, INT64_MAX, &b, err) == MOAT_OK &&
		    moat_json_get_str(j, "leaf_hash", "leaf_hash", true, 64, &leaf, err) == MOAT_OK;
		p->index = (uint64_t)a;
		p->size = (uint64_t)b;
		if (ok && !(ok = dec_hash(leaf, strlen(leaf), p->leaf)))
			moat_error_set(err, MOAT_EINVAL, "leaf_hash",
				       "not base64 of a 32-byte hash");
		p->has_leaf = ok;
	} else if (ok && strcmp(type, "consistency") == 0) {
		ok = moat_json_get_int(j, "old_size", "old_size", true, 0, INT64_MAX, &a, err) ==
			 MOAT_OK &&
		     moat_json_get_int(j, "new_size", "new_size", true, 0, INT64_MAX, &b, err) ==
			 MOAT_OK;
		p->old_size = (uint64_t)a;
		p->new_size = (uint64_t)b;
	} else if (ok) {
		ok = false;
		moat_error_set(err, MOAT_EINVAL, "type", "type must be inclusion or consistency");
	}
	if (ok)
		ok = moat_json_get_arr(j, "proof", "proof", true, MOAT_LEDGER_PROOF_MAX, &arr,
				       err) == MOAT_OK;
	size_t i;
	json_t *v;
	if (ok)
		json_array_foreach(arr, i, v)
		{
			const char *s = json_string_value(v);
			if (!s || !dec_hash(s, strlen(s), p->h[p->n])) {
				ok = false;
				moat_error_set(err, MOAT_EINVAL, "proof",
					       "proof hash %zu is not base64 of 32 bytes", i);
				break;
			}
			p->n++;
		}
	json_decref(j);
	return ok;
}

static bool parse_proof_text(char *text, proof_t *p, moat_error_t *err)
{
	char *save = NULL;
	char *line = strtok_r(text, "\n", &save);
	if (!line ||
	    (strcmp(line, "inclusion-proof") != 0 && strcmp(line, "consistency-proof") != 0)) {
		moat_error_set(err, MOAT_EINVAL, NULL,
			       "proof file must start with inclusion-proof or consistency-proof");
		return false;
	}
	p->inclusion = strcmp(line, "inclusion-proof") == 0;
	bool have[4] = {false, false, false, false};
	long lineno = 1;
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		lineno++;
		char *sp = strchr(line, ' ');
		if (!sp) {
			moat_error_set(err, MOAT_EINVAL, NULL, "line %ld: expected \"key value\"",
				       lineno);
			return false;
		}
		*sp = '\0';
		const char *k = line, *val = sp + 1;
		bool ok = true;
		if (p->inclusion && strcmp(k, "index") == 0)
			ok = parse_u64(val, &p->index) && (have[0] = true);
		else if (p->inclusion && strcmp(k, "size") == 0)
			ok = parse_u64(val, &p->size) && (have[1] = true);
		else if (p->inclusion && strcmp(k, "leaf-hash") == 0)
			ok = dec_hash(val, strlen(val), p->leaf) && (have[2] = p->has_leaf = true);
		else if (!p->inclusion && strcmp(k, "old-size") == 0)
			ok = parse_u64(val, &p->old_size) && (have[0] = true);
		else if (!p->inclusion && strcmp(k, "new-size") == 0)
			ok = parse_u64(val, &p->new_size) && (have[1] = true);
		else if (strcmp(k, "hash") == 0)
			ok = p->n < MOAT_LEDGER_PROOF_MAX &&
			     dec_hash(val, strlen(val), p->h[p->n++]);
		else
			ok = false;
		if (!ok) {
			moat_error_set(err, MOAT_EINVAL, k, "line %ld: bad or unknown \"%s\"",
				       lineno, k);
			return false;
		}
	}
	if (!have[0] || !have[1] || (p->inclusion && !have[2])) {
		moat_error_set(err, MOAT_EINVAL, NULL, "proof file lacks sizes or leaf hash");
		return false;
	}
	return true;
}

static int read_checkpoint_file(const char *path, const char *vkey, moat_checkpoint_t *cp)
{
	char *text;
	size_t len;
	moat_error_t err = {0};
	if (moat_file_read(path, MOAT_LEDGER_NOTE_MAX, &text, &len, &err) != MOAT_OK)
		return cli_fail("ledger", &err);
	moat_err_t rc = moat_ledger_checkpoint_verify(text, len, vkey, cp, &err);
	free(text);
	if (rc != MOAT_OK) {
		fprintf(stderr, "moat ledger: error: %s: %s\n", path, err.msg);
		return CLI_FAIL;
	}
	return CLI_OK;
}

static int do_verify_proof(const opts_t *o, int argc, char **argv)
{
	if (argc != 1)
		return cli_usage("ledger", "verify-proof needs exactly one PROOF_FILE");
	if (!o->checkpoint)
		return cli_usage("ledger", "verify-proof needs --checkpoint FILE");
	if (!o->vkey == !o->vkey_file)
		return cli_usage("ledger",
				 "verify-proof needs one of --vkey KEY or --vkey-file FILE");
	moat_error_t err = {0};
	char *vkeybuf = NULL, *text = NULL;
	size_t len;
	const char *vkey = o->vkey;
	int rc = CLI_FAIL;
	if (o->vkey_file) {
		if (moat_file_read(o->vkey_file, 4096, &vkeybuf, &len, &err) != MOAT_OK)
			return cli_fail("ledger", &err);
		vkeybuf[strcspn(vkeybuf, "\r\n")] = '\0';
		vkey = vkeybuf;
	}
	proof_t *p = calloc(1, sizeof *p);
	if (!p)
		goto out;
	if (moat_file_read(argv[0], 1 << 20, &text, &len, &err) != MOAT_OK) {
		rc = cli_fail("ledger", &err);
		goto out;
	}
	size_t s = strspn(text, " \t\r\n");
	bool parsed =
	    text[s] == '{' ? parse_proof_json(text, len, p, &err) : parse_proof_text(text, p, &err);
	if (!parsed) {
		rc = cli_fail("ledger", &err);
		goto out;
	}
	moat_checkpoint_t cp, old;
	if ((rc = read_checkpoint_file(o->checkpoint, vkey, &cp)) != CLI_OK)
		goto out;
	rc = CLI_FAIL;
	if (p->inclusion) {
		if (cp.size != p->size) {
			fprintf(stderr,
				"moat ledger: error: the proof is for tree size %" PRIu64
				" but the checkpoint has size %" PRIu64 "\n",
				p->size, cp.size);
			goto out;
		}
		if (o->entry) {
			char *ent;
			size_t el;
			if (moat_file_read(o->entry, MOAT_ENTRY_MAX, &ent, &el, &err) != MOAT_OK) {
				rc = cli_fail("ledger", &err);
				goto out;
			}
			uint8_t lh[MOAT_HASH_LEN];
			moat_ledger_leaf_hash(ent, el, lh);
			free(ent);
			if (memcmp(lh, p->leaf, MOAT_HASH_LEN) != 0) {
				fprintf(stderr,
					"moat ledger: error: the entry file's leaf hash is not the "
					"proof's leaf hash\n");
				goto out;
			}
		}
		if (!moat_ledger_verify_inclusion(p->leaf, MOAT_HASH_LEN, p->index, p->size,
						  (const uint8_t *)p->h, p->n * MOAT_HASH_LEN,
						  cp.root, MOAT_HASH_LEN)) {
			fprintf(stderr,
				"moat ledger: error: inclusion proof of entry %" PRIu64
				" does NOT verify against the checkpoint\n",
				p->index);
			goto out;
		}
		printf("ok: entry %" PRIu64 " is included in %s at tree size %" PRIu64 "\n",
		       p->index, cp.origin, cp.size);
		rc = CLI_OK;
		goto out;
	}
	if (!o->old_checkpoint) {
		rc = cli_usage("ledger", "a consistency proof needs --old-checkpoint FILE as well");
		goto out;
	}
	if ((rc = read_checkpoint_file(o->old_checkpoint, vkey, &old)) != CLI_OK)
		goto out;
	rc = CLI_FAIL;
	if (old.size != p->old_size || cp.size != p->new_size) {
		fprintf(stderr,
			"moat ledger: error: the proof is for sizes %" PRIu64 " → %" PRIu64
			" but the checkpoints have %" PRIu64 " → %" PRIu64 "\n",
			p->old_size, p->new_size, old.size, cp.size);
		goto out;
	}
	if (!moat_ledger_verify_consistency(old.size, cp.size, old.root, MOAT_HASH_LEN, cp.root,
					    MOAT_HASH_LEN, (const uint8_t *)p->h,
					    p->n * MOAT_HASH_LEN)) {
		fprintf(stderr,
			"moat ledger: error: consistency proof does NOT verify: the log at "
			"size %" PRIu64 " is not an extension of size %" PRIu64 "\n",
			cp.size, old.size);
		goto out;
	}
	printf("ok: tree size %" PRIu64 " extends tree size %" PRIu64 " of %s\n", cp.size, old.size,
	       cp.origin);
	rc = CLI_OK;
out:
	free(text);
	free(vkeybuf);
	free(p);
	return rc;
}

int cmd_ledger(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"size", required_argument, NULL, OPT_SIZE},
	    {"vkey", required_argument, NULL, OPT_VKEY},
	    {"vkey-file", required_argument, NULL, OPT_VKEY_FILE},
	    {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
	    {"old-checkpoint", required_argument, NULL, OPT_OLD_CHECKPOINT},
	    {"entry", required_argument, NULL, OPT_ENTRY},
	    CLI_COMMON_LONGOPTS,
	    {NULL, 0, NULL, 0}};
	opts_t o = {0};
	cli_common_init(&o.c);
	int opt;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (cli_common_opt(&o.c, opt, optarg))
			continue;
		switch (opt) {
		case 'h':
			fputs(usage_text, stdout);
			return CLI_OK;
		case OPT_SIZE:
			o.size = optarg;
			break;
		case OPT_VKEY:
			o.vkey = optarg;
			break;
		case OPT_VKEY_FILE:
			o.vkey_file = optarg;
			break;
		case OPT_CHECKPOINT:
			o.checkpoint = optarg;
			break;
		case OPT_OLD_CHECKPOINT:
			o.old_checkpoint = optarg;
			break;
		case OPT_ENTRY:
			o.entry = optarg;
			break;
		default:
			return cli_bad_option("ledger");
		}
	}
	int nargs = argc - optind;
	char **args = argv + optind;
	if (nargs < 1)
		return cli_usage("ledger",
				 "missing subcommand (key, checkpoint, show, proof, verify, "
				 "verify-proof)");
	const char *sub = args[0];
	if (strcmp(sub, "verify-proof") == 0)
		return do_verify_proof(&o, nargs - 1, args + 1);
	static const char *const known[] = {"key", "checkpoint", "show", "proof", "verify"};
	bool ok = false;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(known); i++)
		ok = ok || strcmp(sub, known[i]) == 0;
	if (!ok)
		return cli_usage("ledger", "unknown subcommand \"%s\"", sub);
	if ((strcmp(sub, "key") == 0 || strcmp(sub, "checkpoint") == 0 ||
	     strcmp(sub, "verify") == 0) &&
	    nargs != 1)
		return cli_usage("ledger", "%s takes no arguments", sub);
	if (strcmp(sub, "show") == 0 && nargs != 2)
		return cli_usage("ledger", "usage: show INDEX");
	if (o.size && strcmp(sub, "proof") != 0)
		return cli_usage("ledger", "--size applies to proof inclusion only");
	moat_ledger_t *l = NULL;
	moat_error_t err = {0};
	if (open_ledger(&o, &l, &err) != MOAT_OK)
		return cli_fail("ledger", &err);
	int rc;
	if (strcmp(sub, "key") == 0)
		rc = do_key(&o, l);
	else if (strcmp(sub, "checkpoint") == 0)
		rc = do_checkpoint(&o, l);
	else if (strcmp(sub, "show") == 0)
		rc = do_show(&o, l, args[1]);
	else if (strcmp(sub, "proof") == 0)
		rc = do_proof(&o, l, nargs - 1, args + 1);
	else
		rc = do_verify(&o, l);
	moat_ledger_close(l);
	return rc;
}
