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
 * MOAT_TRACE_EVAL_VERBOSE=1 prints every miss. MOAT_TRACE_EVAL_SCENARIOS=a,b
 * runs only those scenarios; MOAT_TRACE_EVAL_NO_CONTACTS=1 drops the scammer
 * contacts from the victims (the test without scam-contact groups). The mixed
 * scenario (four leakers) reports how many of the four each seed confirms and
 * checks that at least three are found in 80% of seeds; every scenario reports
 * the seeds in which an innocent principal (or a party with no leaker) was
 * accused. Seeds with fewer than 5 reports are left out of the targets.
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
					    json_string_value(json_object_get(o, "party")),
					    &err) != MOAT_OK) {
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
			e.kind =
			    dec && strcmp(dec, "deny") == 0 ? MOAT_ENTRY_DENY : MOAT_ENTRY_ACCESS;
			e.order_id = json_string_value(json_object_get(o, "order_id"));
			if (moat_exposure_add(x, index++, &e, &err) != MOAT_OK)
				rc = -1;
		} else if (strcmp(kind, "export") == 0) {
			e.kind = MOAT_ENTRY_EXPORT;
			size_t i;
			json_t *id;
			json_t *ids = json_object_get(o, "order_ids");
			if (!json_array_size(ids) &&
			    moat_exposure_add(x, index++, &e, &err) != MOAT_OK)
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
		if (!moat_time_parse(json_string_value(json_object_get(o, "contact_time")),
				     &v->contact))
			continue;
		v->quoted = field_bits(json_object_get(o, "quoted_fields"));
		if (!getenv("MOAT_TRACE_EVAL_NO_CONTACTS"))
			v->scammer_contact =
			    json_string_value(json_object_get(o, "scammer_contact"));
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
	int runs;
	int first_sig;	   /* seeds whose first suspect is a leaker and significant */
	int all_found;	   /* seeds where every leaker was confirmed */
	int any_sig;	   /* seeds with any significant accusation */
	int false_sig;	   /* seeds with a significant accusation of an innocent */
	int few_reports;   /* seeds with fewer than 5 reports (the targets exclude them) */
	int found_hist[9]; /* seeds by number of leakers confirmed */
} outcome_t;

/* Is a significant suspect an innocent? A party is innocent unless a leaker
 * belongs to it. */
static bool innocent(const moat_suspect_t *s, json_t *attacks)
{
	size_t i;
	json_t *a;
	json_array_foreach(attacks, i, a)
	{
		const char *p = json_string_value(json_object_get(a, "principal"));
		const char *q = json_string_value(json_object_get(a, "party"));
		if (!s->is_party && p && strcmp(s->principal, p) == 0)
			return false;
		if (s->is_party && q && strcmp(s->party, q) == 0)
			return false;
	}
	return true;
}

/* Runs one seed and adds its outcome to o. */
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
	size_t na = json_array_size(attacks), found = 0;

	moat_score_params_t prm;
	moat_score_params_default(&prm);
	moat_score_result_t r = {0};
	if (w.nv < 5 && na) {
		o->few_reports++;
		goto done;
	}
	o->runs++;
	if (w.nv == 0)
		goto done;
	if (moat_exposure_score(w.x, w.v, w.nv, &prm, &r, &err) != MOAT_OK) {
		CHECK_MSG(0, "score: %s", err.msg);
		goto done;
	}
	bool any = false, wrong = false;
	for (size_t i = 0; i < r.n_suspects; i++)
		if (r.suspects[i].significant) {
			any = true;
			wrong |= innocent(&r.suspects[i], attacks);
		}
	o->any_sig += any;
	o->false_sig += wrong;
	bool first = false;
	for (size_t a = 0; a < na; a++) {
		const char *p =
		    json_string_value(json_object_get(json_array_get(attacks, a), "principal"));
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
	o->found_hist[found < 8 ? found : 8]++;
	if (verbose && ((na && (!first || found < na)) || wrong || (!na && any))) {
		fprintf(stderr,
			"  %s seed %llu: %zu reports; truth:", moat_sim_scenario_name(scenario),
			(unsigned long long)seed, w.nv);
		for (size_t a = 0; a < na; a++)
			fprintf(stderr, " %s",
				json_string_value(
				    json_object_get(json_array_get(attacks, a), "principal")));
		fprintf(stderr, "\n");
		for (size_t i = 0; i < r.n_suspects && i < 8; i++)
			fprintf(stderr,
				"    %zu. %s/%s k=%llu/%llu K=%llu/%llu groups=%u/%u ln p=%.1f ln "
				"padj=%.1f "
				"%s\n",
				i + 1, r.suspects[i].principal, r.suspects[i].party,
				(unsigned long long)r.suspects[i].k,
				(unsigned long long)r.suspects[i].n,
				(unsigned long long)r.suspects[i].K,
				(unsigned long long)r.suspects[i].N, r.suspects[i].groups,
				r.suspects[i].n_groups, r.suspects[i].log_p,
				r.suspects[i].log_p_adj, r.suspects[i].significant ? "SIG" : "");
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

static bool wanted(const char *list, int scenario)
{
	if (!list)
		return true;
	uint32_t mask;
	moat_error_t err;
	return moat_sim_scenarios_parse(list, &mask, &err) == MOAT_OK &&
	       (mask & (1u << scenario)) != 0;
}

int main(void)
{
	const char *s = getenv("MOAT_TRACE_EVAL_SEEDS");
	int seeds = s ? atoi(s) : 20;
	const char *b = getenv("MOAT_TRACE_EVAL_BASE");
	uint64_t base = b ? strtoull(b, NULL, 10) : 1;
	const char *only = getenv("MOAT_TRACE_EVAL_SCENARIOS");
	verbose = getenv("MOAT_TRACE_EVAL_VERBOSE") != NULL;
	const int single[] = {MOAT_SIM_CS_INSIDER, MOAT_SIM_ISV_OVERPULL, MOAT_SIM_COURIER_LEAK,
			      MOAT_SIM_PLATFORM_INSIDER};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(single); i++) {
		if (!wanted(only, single[i]))
			continue;
		outcome_t o = {0};
		for (int k = 0; k < seeds; k++)
			run_seed(single[i], base + (uint64_t)k, &o);
		printf("%-18s seeds %3d (+%d with < 5 reports): leaker first and significant %3d "
		       "(%.0f%%); innocent accused in %d\n",
		       moat_sim_scenario_name(single[i]), o.runs, o.few_reports, o.first_sig,
		       100.0 * o.first_sig / (o.runs ? o.runs : 1), o.false_sig);
		CHECK_MSG(o.first_sig * 100 >= 95 * o.runs, "%s below 95%%",
			  moat_sim_scenario_name(single[i]));
	}
	if (wanted(only, MOAT_SIM_TWO_LEAKERS)) {
		outcome_t o = {0};
		for (int k = 0; k < seeds; k++)
			run_seed(MOAT_SIM_TWO_LEAKERS, base + (uint64_t)k, &o);
		printf(
		    "%-18s seeds %3d (+%d with < 5 reports): both leakers found %3d (%.0f%%), one "
		    "%d; innocent accused in %d\n",
		    "two_leakers", o.runs, o.few_reports, o.all_found,
		    100.0 * o.all_found / (o.runs ? o.runs : 1), o.found_hist[1], o.false_sig);
		CHECK_MSG(o.all_found * 100 >= 80 * o.runs, "two_leakers below 80%%");
	}
	if (wanted(only, MOAT_SIM_MIXED)) {
		/* Four leakers at once (CS insider, ISV app, courier, stuffed merchant admin):
		 * no target in the issue; the distribution is reported and a floor checked. */
		outcome_t o = {0};
		for (int k = 0; k < seeds; k++)
			run_seed(MOAT_SIM_MIXED, base + (uint64_t)k, &o);
		printf(
		    "%-18s seeds %3d: leakers found 0:%d 1:%d 2:%d 3:%d 4:%d; innocent accused in "
		    "%d\n",
		    "mixed", o.runs, o.found_hist[0], o.found_hist[1], o.found_hist[2],
		    o.found_hist[3], o.found_hist[4], o.false_sig);
		CHECK_MSG((o.found_hist[3] + o.found_hist[4]) * 100 >= 80 * o.runs,
			  "mixed: three or four of the four leakers found in under 80%% of seeds");
	}
	if (wanted(only, MOAT_SIM_CLEAN)) {
		outcome_t o = {0};
		int n = s ? seeds : 100;
		for (int k = 0; k < n; k++)
			run_seed(MOAT_SIM_CLEAN, base + (uint64_t)k, &o);
		printf("%-18s seeds %3d: any significant accusation %d\n", "clean", o.runs,
		       o.any_sig);
		CHECK_MSG(o.any_sig == 0, "clean scenario accused someone");
	}
	return check_done();
}
