/*
 * moat trace CASE [--json] [--out DIR] [--alpha A] [--no-priors] [--prior-share S]
 * moat trace reindex                                 rebuild the exposure index
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "moat/app.h"
#include "moat/trace.h"

static void help(void)
{
	printf("usage: moat trace CASE [--out DIR] [--alpha A] [--no-priors] [--prior-share S]\n"
	       "                  [--json] [--data DIR]\n"
	       "       moat trace reindex [--data DIR]\n\n"
	       "Ranks who leaked the data quoted in a case's scam reports (`moat case list`;\n"
	       "CASE \"default\" is every report of the configured window): suspects named by\n"
	       "direct evidence (virtual numbers, honey orders) first, then by an exact test on\n"
	       "who received the victims' quoted fields in plaintext before the contact,\n"
	       "Holm-corrected over every candidate principal and party.\n\n"
	       "Detector alerts are priors: principals with an alert (`moat alerts`; not one\n"
	       "resolved as \"false positive\") share half of alpha in a weighted Holm\n"
	       "correction, every other candidate the other half. The weights never look at\n"
	       "the reports, so the chance of any false accusation stays at most alpha.\n\n"
	       "  --out DIR   write the evidence bundle (ledger entries with inclusion proofs\n"
	       "              against a signed checkpoint; VERIFY lists the `moat ledger\n"
	       "              verify-proof` commands), notification.csv (buyers to notify,\n"
	       "              decrypted; mode 0600) and regulator_report.json (PIPL Art. 57)\n"
	       "  --alpha A   significance level after correction (default 0.01)\n"
	       "  --no-priors        equal weights for every candidate\n"
	       "  --prior-share S    the share of alpha the alerted principals get (0 < S < 1,\n"
	       "                     default 0.5)\n"
	       "  --json      print the whole result as JSON\n\n"
	       "reindex rebuilds <data>/trace/exposure.idx from the ledger.\n");
}

enum { OPT_OUT = 2000, OPT_ALPHA, OPT_NO_PRIORS, OPT_PRIOR_SHARE };

static int print_text(const char *json)
{
	json_t *r = json_loads(json, 0, NULL);
	if (!r)
		return CLI_FAIL;
	printf("case %s: %lld reports, population %lld orders, %lld hypotheses tested",
	       json_string_value(json_object_get(r, "case")),
	       (long long)json_integer_value(json_object_get(r, "reports")),
	       (long long)json_integer_value(json_object_get(r, "population")),
	       (long long)json_integer_value(json_object_get(r, "hypotheses")));
	json_t *pri = json_object_get(r, "priors");
	long long np = (long long)json_integer_value(json_object_get(pri, "tested"));
	if (np)
		printf(" (%lld alerted by the detector, sharing %g of alpha)", np,
		       json_number_value(json_object_get(pri, "share")));
	printf("\n");
	json_t *sus = json_object_get(r, "suspects");
	size_t i;
	json_t *s;
	printf("\nsuspects (most likely first):\n");
	json_array_foreach(sus, i, s)
	{
		if (i >= 10)
			break;
		const char *p = json_string_value(json_object_get(s, "principal"));
		bool sig = json_is_true(json_object_get(s, "significant"));
		bool alerted = json_is_true(json_object_get(s, "prior"));
		printf("%2zu. %-20s %-14s p=%-10.3g lift=%-7.3g coverage=%-5.2f %s%s%s\n", i + 1,
		       p ? p : "(party)", json_string_value(json_object_get(s, "party")),
		       json_number_value(json_object_get(s, "p_value")),
		       json_number_value(json_object_get(s, "lift")),
		       json_number_value(json_object_get(s, "coverage")), sig ? "SIGNIFICANT" : "",
		       sig && alerted ? " " : "", alerted ? "alerted" : "");
		printf("    %s\n", json_string_value(json_object_get(s, "how")));
	}
	if (!json_array_size(sus))
		printf("    (none: no principal received the victims' quoted fields)\n");
	json_t *ev = json_object_get(r, "evidence");
	printf("\nevidence: %zu ledger entries with inclusion proofs against checkpoint size %lld\n",
	       json_array_size(json_object_get(ev, "entries")),
	       (long long)json_integer_value(json_object_get(ev, "checkpoint_size")));
	json_t *nt = json_object_get(r, "notification");
	const char *file = json_string_value(json_object_get(nt, "file"));
	printf("notification list: %lld buyers%s%s\n",
	       (long long)json_integer_value(json_object_get(nt, "buyers")), file ? " -> " : "",
	       file ? file : " (use --out DIR to write it)");
	json_decref(r);
	return CLI_OK;
}

int cmd_trace(int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_LONGOPTS,
					     {"out", required_argument, NULL, OPT_OUT},
					     {"alpha", required_argument, NULL, OPT_ALPHA},
					     {"no-priors", no_argument, NULL, OPT_NO_PRIORS},
					     {"prior-share", required_argument, NULL, OPT_PRIOR_SHARE},
					     {0, 0, 0, 0}};
	cli_common_t c;
	cli_common_init(&c);
	moat_trace_opts_t to = {0};
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			help();
			return CLI_OK;
		}
		if (opt == OPT_OUT) {
			to.out_dir = optarg;
			continue;
		}
		if (opt == OPT_ALPHA || opt == OPT_PRIOR_SHARE) {
			bool a = opt == OPT_ALPHA;
			int r = cli_fraction("trace", a ? "alpha" : "prior-share", optarg,
					     a ? &to.alpha : &to.prior_share);
			if (r != CLI_OK)
				return r;
			continue;
		}
		if (opt == OPT_NO_PRIORS) {
			to.no_priors = true;
			continue;
		}
		if (!cli_common_opt(&c, opt, optarg))
			return cli_bad_option("trace");
	}
	if (argc - optind != 1)
		return cli_usage("trace", "expected CASE or reindex");
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_open(c.data_dir, 0, &a, &e) != MOAT_OK)
		return cli_fail("trace", &e);
	int ret = CLI_OK;
	if (strcmp(argv[optind], "reindex") == 0) {
		uint64_t n = 0;
		if (moat_trace_reindex(a, &n, &e) != MOAT_OK)
			ret = cli_fail("trace", &e);
		else if (c.json)
			printf("{\"reindexed\":%llu}\n", (unsigned long long)n);
		else
			printf("rebuilt the exposure index from %llu ledger entries\n", (unsigned long long)n);
		moat_app_close(a);
		return ret;
	}
	if (to.out_dir && moat_mkdirs(to.out_dir, 0700, &e) != MOAT_OK) {
		moat_app_close(a);
		return cli_fail("trace", &e);
	}
	moat_buf_t out;
	moat_buf_init(&out, (size_t)1 << 30);
	if (moat_trace_case_run(a, argv[optind], &to, &out, &e) != MOAT_OK)
		ret = cli_fail("trace", &e);
	else if (c.json)
		printf("%s\n", out.data);
	else
		ret = print_text(out.data);
	moat_buf_free(&out);
	moat_app_close(a);
	return ret;
}
