/*
 * Tracer quality on the simulator's scenarios.
 *
 * For each scenario and seed, the simulator writes a world; this test feeds its
 * events to an exposure index (interchange JSON -> moat_entry_t, as the ledger
 * would hold them), turns its reports into victims, scores them and compares the
 * ranking with truth.json (which only this test reads). Checks, per issue 6:
 *  - single leaker: the leaker ranked first and significant in >= 95% of seeds;
 *  - two leakers: both confirmed in >= 80% of seeds;
 *  - clean: no significant accusation in any seed.
 * Seeds: MOAT_TRACE_EVAL_SEEDS (default 20; 100 for the clean scenario) starting
 * at MOAT_TRACE_EVAL_BASE (default 1: the development seeds). The held-out
 * evaluation reported in the issue note runs MOAT_TRACE_EVAL_BASE=1000
 * MOAT_TRACE_EVAL_SEEDS=100, seeds never looked at while developing.
 * MOAT_TRACE_EVAL_VERBOSE=1 prints every miss.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "moat/sim.h"
#include "moat/trace.h"

static bool verbose;

typedef struct world {
	moat_exposure_t *x;
	moat_victim_t *v;
	size_t nv;
	json_t *reports; /* keeps the victims' strings alive */
} world_t;

static unsigned field_bits(json_t *arr)
{
	unsigned m = 0;
	size_t i;
	json_t *f;
	json_array_foreach(arr, i, f)
	{
		int k = moat_field_parse(json_string_value(f));
		if (k >= 0)
			m |= 1u << k;
	}
	return m;
}

static int load_principals(const char *dir, moat_exposure_t *x)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/principals.jsonl", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char line[8192];
	moat_error_t err;
	while (fgets(line, sizeof line, f)) {
		json_t *o = json_loads(line, 0, NULL);
		if (!o)
			continue;
		if (moat_exposure_set_party(x, json_string_value(json_object_get(o, "principal")),
					    json_string_value(json_object_get(o, "party")), &err) != MOAT_OK) {
			json_decref(o);
			fclose(f);
			return -1;
		}
		json_decref(o);
	}
	fclose(f);
	return 0;
}

static int load_events(const char *dir, moat_exposure_t *x)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/events.jsonl", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t cap = 1 << 20;
	char *line = malloc(cap);
	uint64_t index = 0;
	moat_error_t err;
	int rc = 0;
	while (fgets(line, (int)cap, f)) {
		json_t *o = json_loads(line, 0, NULL);
		if (!o)
			continue;
		const char *kind = json_string_value(json_object_get(o, "kind"));
		moat_entry_t e = {0};
		e.imported = true;
		moat_time_parse(json_string_value(json_object_get(o, "time")), &e.time);
		e.principal = json_string_value(json_object_get(o, "principal"));
		json_t *fields = json_object_get(o, "fields");
		const char *k;
		json_t *v;
		json_object_foreach(fields, k, v)
		{
			int fi = moat_field_parse(k), vi = moat_view_parse(json_string_value(v));
			if (fi >= 0 && vi >= 0)
				e.views[fi] = (uint8_t)vi;
		}
		if (strcmp(kind, "access") == 0) {
			const char *dec = json_string_value(json_object_get(o, "decision"));
			e.kind = dec && strcmp(dec, "deny") == 0 ? MOAT_ENTRY_DENY : MOAT_ENTRY_ACCESS;
			e.order_id = json_string_value(json_object_get(o, "order_id"));
			if (moat_exposure_add(x, index++, &e, &err) != MOAT_OK)
				rc = -1;
		} else if (strcmp(kind, "export") == 0) {
			e.kind = MOAT_ENTRY_EXPORT;
			size_t i;
			json_t *id;
			json_t *ids = json_object_get(o, "order_ids");
			if (!json_array_size(ids) && moat_exposure_add(x, index++, &e, &err) != MOAT_OK)
				rc = -1;
			json_array_foreach(ids, i, id)
			{
				e.order_id = json_string_value(id);
				if (moat_exposure_add(x, index++, &e, &err) != MOAT_OK)
					rc = -1;
			}
		} else {
			e.kind = MOAT_ENTRY_LOGIN;
			if (moat_exposure_add(x, index++, &e, &err) != MOAT_OK)
				rc = -1;
		}
		json_decref(o);
	}
	free(line);
	fclose(f);
	return rc;
}

static int load_world(const char *dir, world_t *w)
{
	memset(w, 0, sizeof *w);
	w->x = moat_exposure_new();
	if (!w->x || load_principals(dir, w->x) || load_events(dir, w->x))
		return -1;
	char path[1024];
	snprintf(path, sizeof path, "%s/reports.jsonl", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	w->reports = json_array();
	char line[8192];
	while (fgets(line, sizeof line, f)) {
		json_t *o = json_loads(line, 0, NULL);
		if (o)
			json_array_append_new(w->reports, o);
	}
	fclose(f);
	w->v = calloc(json_array_size(w->reports) + 1, sizeof *w->v);
	size_t i;
	json_t *o;
	json_array_foreach(w->reports, i, o)
	{
		moat_victim_t *v = &w->v[w->nv];
		v->order_id = json_string_value(json_object_get(o, "order_id"));
		if (!moat_time_parse(json_string_value(json_object_get(o, "contact_time")), &v->contact))
			continue;
		v->quoted = field_bits(json_object_get(o, "quoted_fields"));
		if (v->order_id && v->quoted)
			w->nv++;
	}
	return 0;
}

static void free_world(world_t *w)
{
	moat_exposure_free(w->x);
	free(w->v);
	json_decref(w->reports);
}

typedef struct outcome {
	int runs, first_sig, all_found, any_sig, few_reports;
} outcome_t;

/* Runs one seed; returns the leakers found etc. into o. */
static void run_seed(int scenario, uint64_t seed, outcome_t *o)
{
	char dir[256];
	snprintf(dir, sizeof dir, "/tmp/moat-trace-eval-%d-%d-%llu", (int)getpid(), scenario,
		 (unsigned long long)seed);
	moat_sim_config_t cfg = {0};
	cfg.seed = seed;
	cfg.scale = MOAT_SIM_SMALL;
	cfg.scenarios = 1u << scenario;
	cfg.out_dir = dir;
	moat_error_t err;
	if (moat_sim_run(&cfg, NULL, &err) != MOAT_OK) {
		CHECK_MSG(0, "simulate: %s", err.msg);
		return;
	}
	world_t w;
	CHECK(load_world(dir, &w) == 0);
	char tpath[300];
	snprintf(tpath, sizeof tpath, "%s/truth.json", dir);
	json_t *truth = json_load_file(tpath, 0, NULL);
	CHECK(truth != NULL);
	json_t *attacks = json_object_get(truth, "attacks");

	moat_score_params_t prm;
	moat_score_params_default(&prm);
	moat_score_result_t r = {0};
	o->runs++;
	if (w.nv == 0 || moat_exposure_score(w.x, w.v, w.nv, &prm, &r, &err) != MOAT_OK) {
		if (w.nv)
			CHECK_MSG(0, "score: %s", err.msg);
		if (json_array_size(attacks))
			o->few_reports++;
		goto done;
	}
	for (size_t i = 0; i < r.n_suspects; i++)
		if (r.suspects[i].significant) {
			o->any_sig++;
			break;
		}
	size_t na = json_array_size(attacks), found = 0;
	bool first = false;
	for (size_t a = 0; a < na; a++) {
		const char *p = json_string_value(json_object_get(json_array_get(attacks, a), "principal"));
		for (size_t i = 0; p && i < r.n_suspects; i++) {
			if (!r.suspects[i].is_party && strcmp(r.suspects[i].principal, p) == 0 &&
			    r.suspects[i].significant) {
				found++;
				if (i == 0)
					first = true;
				break;
			}
		}
	}
	if (na && first)
		o->first_sig++;
	if (na && found == na)
		o->all_found++;
	if (verbose && ((na && (!first || found < na)) || (!na && o->any_sig))) {
		fprintf(stderr, "  %s seed %llu: %zu reports; truth:", moat_sim_scenario_name(scenario),
			(unsigned long long)seed, w.nv);
		for (size_t a = 0; a < na; a++)
			fprintf(stderr, " %s", json_string_value(json_object_get(json_array_get(attacks, a), "principal")));
		fprintf(stderr, "\n");
		for (size_t i = 0; i < r.n_suspects && i < 5; i++)
			fprintf(stderr, "    %zu. %s/%s k=%llu/%llu K=%llu/%llu ln p=%.1f ln padj=%.1f %s\n", i + 1,
				r.suspects[i].principal, r.suspects[i].party,
				(unsigned long long)r.suspects[i].k, (unsigned long long)r.suspects[i].n,
				(unsigned long long)r.suspects[i].K, (unsigned long long)r.suspects[i].N,
				r.suspects[i].log_p, r.suspects[i].log_p_adj,
				r.suspects[i].significant ? "SIG" : "");
	}
done:
	moat_score_result_clear(&r);
	json_decref(truth);
	free_world(&w);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
	const char *s = getenv("MOAT_TRACE_EVAL_SEEDS");
	int seeds = s ? atoi(s) : 20;
	s = getenv("MOAT_TRACE_EVAL_BASE");
	uint64_t base = s ? strtoull(s, NULL, 10) : 1;
	verbose = getenv("MOAT_TRACE_EVAL_VERBOSE") != NULL;
	const int single[] = {MOAT_SIM_CS_INSIDER, MOAT_SIM_ISV_OVERPULL, MOAT_SIM_COURIER_LEAK,
			      MOAT_SIM_PLATFORM_INSIDER};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(single); i++) {
		outcome_t o = {0};
		for (int k = 0; k < seeds; k++)
			run_seed(single[i], base + (uint64_t)k, &o);
		printf("%-18s seeds %3d: leaker first and significant %3d (%.0f%%)\n",
		       moat_sim_scenario_name(single[i]), o.runs, o.first_sig,
		       100.0 * o.first_sig / (o.runs ? o.runs : 1));
		CHECK_MSG(o.first_sig * 100 >= 95 * o.runs, "%s below 95%%",
			  moat_sim_scenario_name(single[i]));
	}
	{
		outcome_t o = {0};
		for (int k = 0; k < seeds; k++)
			run_seed(MOAT_SIM_TWO_LEAKERS, base + (uint64_t)k, &o);
		printf("%-18s seeds %3d: both leakers found %3d (%.0f%%)\n", "two_leakers", o.runs,
		       o.all_found, 100.0 * o.all_found / (o.runs ? o.runs : 1));
		CHECK_MSG(o.all_found * 100 >= 80 * o.runs, "two_leakers below 80%%");
	}
	{
		outcome_t o = {0};
		int n = seeds < 100 ? (s ? seeds : 100) : seeds;
		for (int k = 0; k < n; k++)
			run_seed(MOAT_SIM_CLEAN, base + (uint64_t)k, &o);
		printf("%-18s seeds %3d: any significant accusation %d\n", "clean", o.runs, o.any_sig);
		CHECK_MSG(o.any_sig == 0, "clean scenario accused someone");
	}
	return check_done();
}
