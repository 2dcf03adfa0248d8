/* moat simulate: write a labelled synthetic world (see include/moat/sim.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "moat/sim.h"

static void help(void)
{
	printf("usage: moat simulate --scenario NAME[,NAME…] --seed S --scale small|medium|large "
	       "--out DIR\n"
	       "       moat simulate --list\n\n"
	       "Writes a synthetic, labelled e-commerce world as the interchange files moat\n"
	       "imports (parties, principals, relations, orders, events, reports, calls .jsonl)\n"
	       "plus truth.json, the ground truth that `moat eval` scores against. The same\n"
	       "seed always gives byte-identical files.\n\n"
	       "options:\n"
	       "  --scenario LIST  comma-separated threat scenarios (default clean); see --list\n"
	       "  --seed S         unsigned 64-bit seed (default 1)\n"
	       "  --scale SCALE    small (~2,000 orders, 30 days), medium (~1M orders, ~10M\n"
	       "                   access events, 90 days) or large (~10M orders, 365 days)\n"
	       "  --out DIR        output directory (created if missing; files are replaced)\n"
	       "  --orders N       override the scale's number of orders\n"
	       "  --days N         override the scale's period (14..730 days)\n"
	       "  --quiet          print nothing on success\n"
	       "  --list           list the scenarios and exit\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

int cmd_simulate(int argc, char **argv)
{
	enum {
		OPT_SCENARIO = 2000,
		OPT_SEED,
		OPT_SCALE,
		OPT_OUT,
		OPT_ORDERS,
		OPT_DAYS,
		OPT_LIST,
		OPT_QUIET
	};
	static const struct option opts[] = {
	    {"scenario", required_argument, NULL, OPT_SCENARIO},
	    {"seed", required_argument, NULL, OPT_SEED},
	    {"scale", required_argument, NULL, OPT_SCALE},
	    {"out", required_argument, NULL, OPT_OUT},
	    {"orders", required_argument, NULL, OPT_ORDERS},
	    {"days", required_argument, NULL, OPT_DAYS},
	    {"list", no_argument, NULL, OPT_LIST},
	    {"quiet", no_argument, NULL, OPT_QUIET},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	cli_common_t common;
	cli_common_init(&common);
	moat_sim_config_t cfg = {.seed = 1, .scale = MOAT_SIM_SMALL};
	const char *scenarios = "clean";
	bool list = false, quiet = false;
	uint64_t v;
	moat_error_t err = {0};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_SCENARIO:
			scenarios = optarg;
			break;
		case OPT_SEED:
			if (!parse_u64(optarg, &cfg.seed))
				return cli_usage("simulate",
						 "--seed wants an unsigned integer, not \"%s\"",
						 optarg);
			break;
		case OPT_SCALE:
			if (!moat_sim_scale_parse(optarg, &cfg.scale))
				return cli_usage(
				    "simulate",
				    "--scale must be small, medium or large, not \"%s\"", optarg);
			break;
		case OPT_OUT:
			cfg.out_dir = optarg;
			break;
		case OPT_ORDERS:
			if (!parse_u64(optarg, &v) || v == 0 || v > 100000000)
				return cli_usage("simulate",
						 "--orders wants 1..100000000, not \"%s\"", optarg);
			cfg.orders = v;
			break;
		case OPT_DAYS:
			if (!parse_u64(optarg, &v) || v < 14 || v > 730)
				return cli_usage("simulate", "--days wants 14..730, not \"%s\"",
						 optarg);
			cfg.days = (int)v;
			break;
		case OPT_LIST:
			list = true;
			break;
		case OPT_QUIET:
			quiet = true;
			break;
		case 'h':
			help();
			return CLI_OK;
		default:
			return cli_bad_option("simulate");
		}
	}
	if (optind < argc)
		return cli_usage("simulate", "unexpected argument \"%s\"", argv[optind]);
	if (list) {
		for (int i = 0; i < MOAT_SIM_SCENARIO_COUNT; i++)
			printf("%-20s %s\n", moat_sim_scenario_name(i),
			       moat_sim_scenario_summary(i));
		return CLI_OK;
	}
	if (moat_sim_scenarios_parse(scenarios, &cfg.scenarios, &err) != MOAT_OK)
		return cli_usage("simulate", "%s", err.msg);
	if (!cfg.out_dir)
		return cli_usage("simulate", "--out DIR is required");
	moat_sim_stats_t st;
	uint64_t t0 = moat_mono_ns();
	if (moat_sim_run(&cfg, &st, &err) != MOAT_OK)
		return cli_fail("simulate", &err);
	double secs = (double)(moat_mono_ns() - t0) / 1e9;
	if (!quiet)
		printf("wrote %s: %" PRIu64 " parties, %" PRIu64 " principals, %" PRIu64
		       " orders, %" PRIu64 " relations, %" PRIu64 " access + %" PRIu64
		       " login + %" PRIu64 " export events, %" PRIu64 " reports, %" PRIu64
		       " calls (%.1f MB in %.2f s)\n",
		       cfg.out_dir, st.parties, st.principals, st.orders, st.relations,
		       st.access_events, st.login_events, st.export_events, st.reports, st.calls,
		       (double)st.bytes / 1e6, secs);
	return CLI_OK;
}
