/* moat eval DIR [--case ID] [--alpha A] [--no-priors] [--prior-share S] [--json] [--data D] */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "moat/app.h"
#include "moat/eval.h"

static void help(void)
{
	printf("usage: moat eval DIR [--case ID] [--alpha A] [--no-priors] [--prior-share S]\n"
	       "                 [--json] [--data D]\n\n"
	       "Scores moat against the ground truth of a simulated world: DIR is what\n"
	       "`moat simulate --out DIR` wrote (truth.json, events.jsonl), and the data\n"
	       "directory must hold that world imported (parties, principals, relations,\n"
	       "orders, events, reports). This is the one moat command that reads truth.\n\n"
	       "detector  per attack: detected (an alert on its principal, or for credential\n"
	       "          stuffing on the account or an attacking source, within its window),\n"
	       "          time to detect from its first event, share of the orders it pulled\n"
	       "          that were served before the first action (throttle, force_mask,\n"
	       "          suspend); overall recall, precision (alerts on attacks / all alerts)\n"
	       "          and false alerts per 1,000 principal-days.\n"
	       "tracer    per case (the default case and every stored one), traced in-process\n"
	       "          as `moat trace` does: each true leaker with genuine reports in the\n"
	       "          case, its rank among suspects, corrected p-value and significance;\n"
	       "          every significant suspect that is not a leaker (false accusation).\n\n"
	       "  --case ID   score only this case\n"
	       "  --alpha A   the tracer's significance level (default 0.01)\n"
	       "  --no-priors, --prior-share S   as for `moat trace`\n"
	       "  --json      print the scores as JSON (keys in docs/simulator.md)\n\n"
	       "Exit status: 0 when it scored (whatever the scores), 1 on a runtime error\n"
	       "(no truth.json, not a moat data directory), 2 on a usage error.\n");
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "-";
}

static long long num(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

/* A duration in seconds as a person reads it. */
static void fmt_dur(json_t *v, char *out, size_t cap)
{
	if (!json_is_number(v)) {
		snprintf(out, cap, "-");
		return;
	}
	double s = json_number_value(v);
	if (s < 120)
		snprintf(out, cap, "%.0f s", s);
	else if (s < 7200)
		snprintf(out, cap, "%.1f min", s / 60);
	else
		snprintf(out, cap, "%.1f h", s / 3600);
}

/* A number with `digits` decimals (digits < 0: 3 significant digits), or n/a. */
static void fmt_num(json_t *v, int digits, char *out, size_t cap)
{
	if (json_is_number(v) && digits >= 0)
		snprintf(out, cap, "%.*f", digits, json_number_value(v));
	else if (json_is_number(v))
		snprintf(out, cap, "%.3g", json_number_value(v));
	else
		snprintf(out, cap, "n/a");
}

static void print_detector(json_t *d)
{
	char prec[32], fp[32];
	fmt_num(json_object_get(d, "precision"), 3, prec, sizeof prec);
	fmt_num(json_object_get(d, "false_per_1k_principal_days"), 2, fp, sizeof fp);
	printf("DETECTOR  recall %lld of %lld detectable attacks; %lld alerts, %lld on attacks "
	       "(precision %s), %lld false (%s per 1,000 principal-days)\n\n",
	       num(d, "detected"), num(d, "detectable"), num(d, "alerts"), num(d, "true_alerts"),
	       prec, num(d, "false_alerts"), fp);
	json_t *attacks = json_object_get(d, "attacks");
	if (!json_array_size(attacks))
		printf("no attacks in this world: every alert is a false alert\n");
	else
		printf("%-6s %-20s %-18s %-8s %-9s %-24s %-20s %s\n", "ATTACK", "KIND", "PRINCIPAL",
		       "DETECTED", "TO DETECT", "FIRST ACTION", "SERVED BEFORE IT", "ALERTS");
	size_t i;
	json_t *a;
	json_array_foreach(attacks, i, a)
	{
		printf("%-6s %-20s %-18s ", str(a, "attack"), str(a, "kind"), str(a, "principal"));
		if (!json_is_true(json_object_get(a, "detectable"))) {
			printf("%-62s %lld\n", "n/a: no abnormal activity (the tracer's job)",
			       num(a, "alerts"));
			continue;
		}
		char tta[32], act[64], tact[32], srv[48];
		fmt_dur(json_object_get(a, "time_to_detect_s"), tta, sizeof tta);
		json_t *fa = json_object_get(a, "first_action");
		fmt_dur(json_object_get(a, "time_to_action_s"), tact, sizeof tact);
		if (json_is_object(fa))
			snprintf(act, sizeof act, "%s after %s", str(fa, "action"), tact);
		else if (num(a, "refused_by_policy") > 0)
			snprintf(act, sizeof act, "policy refused %lld", num(a, "refused_by_policy"));
		else
			snprintf(act, sizeof act, "none");
		snprintf(srv, sizeof srv, "%.1f%% (%lld of %lld)",
			 100.0 * json_number_value(json_object_get(a, "served_share")),
			 num(a, "served_before_action"), num(a, "attempted_orders"));
		printf("%-8s %-9s %-24s %-20s %lld\n",
		       json_is_true(json_object_get(a, "detected")) ? "yes" : "NO", tta, act, srv,
		       num(a, "alerts"));
	}
	json_t *fr = json_object_get(d, "false_alert_rules");
	if (json_object_size(fr)) {
		printf("false alerts by rule:");
		const char *k;
		json_t *v;
		json_object_foreach(fr, k, v)
		    printf(" %s %lld", k, (long long)json_integer_value(v));
		printf("\n");
	}
}

static void print_case(json_t *c)
{
	char alpha[32];
	fmt_num(json_object_get(c, "alpha"), -1, alpha, sizeof alpha);
	printf("\ncase %s: %lld reports (%lld genuine, %lld false, %lld unrelated", str(c, "case"),
	       num(c, "reports"), num(c, "genuine"), num(c, "false"), num(c, "unrelated"));
	if (num(c, "unlabelled"))
		printf(", %lld not in truth", num(c, "unlabelled"));
	printf("), %lld suspects, alpha %s\n", num(c, "suspects"), alpha);
	json_t *ls = json_object_get(c, "leakers");
	if (!json_array_size(ls)) {
		printf("  no true leaker has a genuine report in this case\n");
	} else {
		printf("%-18s %-12s %-6s %-20s %-7s %-5s %-10s %-13s %s\n", "LEAKER", "PARTY",
		       "ATTACK", "KIND", "REPORTS", "RANK", "PARTY RANK", "P (CORRECTED)",
		       "SIGNIFICANT");
		size_t i;
		json_t *l;
		json_array_foreach(ls, i, l)
		{
			char rank[16], prank[16], p[32];
			json_t *r = json_object_get(l, "rank"),
			       *pr = json_object_get(l, "party_rank");
			if (json_is_integer(r))
				snprintf(rank, sizeof rank, "%lld",
					 (long long)json_integer_value(r));
			else
				snprintf(rank, sizeof rank, "-");
			if (json_is_integer(pr))
				snprintf(prank, sizeof prank, "%lld",
					 (long long)json_integer_value(pr));
			else
				snprintf(prank, sizeof prank, "-");
			fmt_num(json_object_get(l, "p_value"), -1, p, sizeof p);
			if (!json_is_number(json_object_get(l, "p_value")))
				snprintf(p, sizeof p, "-");
			printf("%-18s %-12s %-6s %-20s %-7lld %-5s %-10s %-13s %s%s\n",
			       str(l, "principal"), str(l, "party"), str(l, "attack"),
			       str(l, "kind"), num(l, "reports"), rank, prank, p,
			       json_is_true(json_object_get(l, "significant")) ? "yes" : "no",
			       json_is_true(json_object_get(l, "direct")) ? " (direct evidence)"
									  : "");
		}
	}
	json_t *fa = json_object_get(c, "false_accusations");
	if (!json_array_size(fa)) {
		printf("false accusations: none\n");
		return;
	}
	printf("FALSE ACCUSATIONS (significant suspects that leaked nothing):\n");
	size_t i;
	json_t *f;
	json_array_foreach(fa, i, f)
	{
		char p[32];
		fmt_num(json_object_get(f, "p_value"), -1, p, sizeof p);
		printf("  %-9s %-18s %-12s rank %lld, p=%s: %s\n", str(f, "level"),
		       str(f, "principal"), str(f, "party"), num(f, "rank"), p, str(f, "how"));
	}
}

static void print_text(json_t *r)
{
	json_t *w = json_object_get(r, "world"), *sc = json_object_get(w, "scenarios");
	printf("moat eval: world %s (", str(w, "dir"));
	size_t i;
	json_t *s;
	json_array_foreach(sc, i, s) printf("%s%s", i ? "," : "", json_string_value(s));
	printf(", seed %lld, scale %s): %lld attacks, %lld reports, %lld principal-days\n\n",
	       num(w, "seed"), str(w, "scale"), num(w, "attacks"), num(w, "reports"),
	       num(w, "principal_days"));
	print_detector(json_object_get(r, "detector"));
	json_t *t = json_object_get(r, "tracer");
	json_t *cases = json_object_get(t, "cases");
	printf("\nTRACER    %zu case%s: %lld of %lld (leaker, case) pairs significant, %lld ranked "
	       "first; %lld false accusations\n",
	       json_array_size(cases), json_array_size(cases) == 1 ? "" : "s",
	       num(t, "leakers_found"), num(t, "leakers"), num(t, "leakers_rank1"),
	       num(t, "false_accusations"));
	json_array_foreach(cases, i, s) print_case(s);
	json_t *ws = json_object_get(r, "warnings");
	if (json_array_size(ws)) {
		printf("\nwarnings:\n");
		json_array_foreach(ws, i, s) printf("  %s\n", json_string_value(s));
	}
}

enum { OPT_CASE = 2000, OPT_ALPHA, OPT_NO_PRIORS, OPT_PRIOR_SHARE };

int cmd_eval(int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_LONGOPTS,
					     {"case", required_argument, NULL, OPT_CASE},
					     {"alpha", required_argument, NULL, OPT_ALPHA},
					     {"no-priors", no_argument, NULL, OPT_NO_PRIORS},
					     {"prior-share", required_argument, NULL, OPT_PRIOR_SHARE},
					     {0, 0, 0, 0}};
	cli_common_t c;
	cli_common_init(&c);
	moat_eval_opts_t eo = {0};
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			help();
			return CLI_OK;
		}
		if (opt == OPT_CASE) {
			if (!*optarg)
				return cli_usage("eval",
						 "--case needs a case id (see `moat case list`)");
			eo.case_id = optarg;
			continue;
		}
		if (opt == OPT_ALPHA || opt == OPT_PRIOR_SHARE) {
			bool a = opt == OPT_ALPHA;
			int r = cli_fraction("eval", a ? "alpha" : "prior-share", optarg,
					     a ? &eo.alpha : &eo.prior_share);
			if (r != CLI_OK)
				return r;
			continue;
		}
		if (opt == OPT_NO_PRIORS) {
			eo.no_priors = true;
			continue;
		}
		if (!cli_common_opt(&c, opt, optarg))
			return cli_bad_option("eval");
	}
	if (argc - optind != 1)
		return cli_usage("eval",
				 "expected one DIR: a world written by `moat simulate --out DIR`");
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_open(c.data_dir, 0, &a, &e) != MOAT_OK)
		return cli_fail("eval", &e);
	json_t *r = NULL;
	int ret = CLI_OK;
	if (moat_eval_run(a, argv[optind], &eo, &r, &e) != MOAT_OK) {
		ret = cli_fail("eval", &e);
	} else if (c.json) {
		char *s = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(6));
		if (s)
			printf("%s\n", s);
		else
			ret = CLI_FAIL;
		free(s);
	} else {
		print_text(r);
	}
	json_decref(r);
	moat_app_close(a);
	return ret;
}
