/*
 * moat simulator: a deterministic, labelled e-commerce world.
 *
 * moat_sim_run() writes, under an output directory, the interchange files of
 * DESIGN.md ("Interchange formats") — parties.jsonl, principals.jsonl,
 * relations.jsonl, orders.jsonl, events.jsonl, reports.jsonl, calls.jsonl — and a
 * separate truth.json with the ground truth (leakers, leaked and victim orders,
 * genuine vs false reports, attack windows, malicious principals). moat's detector
 * and tracer never read truth.json; `moat eval` scores them against it.
 *
 * The same configuration always produces byte-identical files: all randomness
 * comes from the seed (xoshiro256** streams derived with splitmix64), never from
 * the clock or rand(). Events are generated one day at a time and written out, so
 * memory stays bounded at any scale.
 */
#ifndef MOAT_SIM_H
#define MOAT_SIM_H

#include "moat/base.h"

typedef enum moat_sim_scale {
	MOAT_SIM_SMALL = 0, /* ~2,000 orders over 30 days: the demo */
	MOAT_SIM_MEDIUM,    /* ~1M orders, ~10M access events over 90 days */
	MOAT_SIM_LARGE,	    /* ~10M orders over 365 days, streamed */
	MOAT_SIM_SCALE_COUNT
} moat_sim_scale_t;

/* Threat scenarios; combinable as a bit set (1u << id). */
typedef enum moat_sim_scenario {
	MOAT_SIM_CS_INSIDER = 0,   /* CS agent bulk-reads without tickets, off shift */
	MOAT_SIM_ISV_OVERPULL,	   /* ISV app reads merchants that never authorised it */
	MOAT_SIM_COURIER_LEAK,	   /* courier leaks exactly what was assigned */
	MOAT_SIM_CRED_STUFFING,	   /* stuffing merchant logins, takeover, bulk export */
	MOAT_SIM_LOW_SLOW,	   /* insider under every threshold */
	MOAT_SIM_PLATFORM_INSIDER, /* platform operator bulk-reads across merchants */
	MOAT_SIM_TWO_LEAKERS,	   /* a CS insider and a courier at once */
	MOAT_SIM_CLEAN,		   /* no leaker: only false or unrelated reports */
	MOAT_SIM_MIXED,		   /* demo blend: CS insider, ISV, courier, stuffing */
	MOAT_SIM_SCENARIO_COUNT
} moat_sim_scenario_t;

/* Stable names ("cs_insider", …) and one-line descriptions; NULL if out of range. */
const char *moat_sim_scenario_name(int id);
const char *moat_sim_scenario_summary(int id);
/* Parses "small|medium|large"; false if unknown. */
bool moat_sim_scale_parse(const char *s, moat_sim_scale_t *out);
const char *moat_sim_scale_name(moat_sim_scale_t s);
/* Parses a comma-separated list of scenario names into a bit set. An empty list,
 * an empty element or an unknown name fails with MOAT_EUSAGE naming it. */
moat_err_t moat_sim_scenarios_parse(const char *list, uint32_t *mask,
				    moat_error_t *err) MOAT_MUST_CHECK;

typedef struct moat_sim_config {
	uint64_t seed;
	moat_sim_scale_t scale;
	uint32_t scenarios;  /* bit set of moat_sim_scenario_t; 0 behaves like clean */
	const char *out_dir; /* created if missing; existing files are replaced */
	uint64_t orders;     /* 0: the scale's default; else this many orders (bench, tests) */
	int days;	     /* 0: the scale's default period; else 14..730 days */
} moat_sim_config_t;

/* What a run produced. */
typedef struct moat_sim_stats {
	uint64_t parties, principals, relations, orders;
	uint64_t access_events, login_events, export_events;
	uint64_t reports, calls;
	uint64_t bytes; /* total bytes written over all files */
} moat_sim_stats_t;

/* Generates the world described by cfg into cfg->out_dir. stats may be NULL.
 * On failure some files may be partly written; the error names the file. */
moat_err_t moat_sim_run(const moat_sim_config_t *cfg, moat_sim_stats_t *stats,
			moat_error_t *err) MOAT_MUST_CHECK;

#endif
