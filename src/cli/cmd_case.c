/*
 * moat case list [--json]
 * moat case show CASE [--json]
 * moat case create [--title T] [--from TIME] [--until TIME] [--report ID]...
 * moat case remove CASE REPORT_ID
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
	printf("usage: moat case list [--json]\n"
	       "       moat case show CASE [--json]\n"
	       "       moat case create [--title T] [--from TIME] [--until TIME] [--report ID]...\n"
	       "       moat case remove CASE REPORT_ID\n\n"
	       "Cases group buyers' scam reports for `moat trace`. The case \"default\" is every\n"
	       "report whose contact lies within [trace] case_window_days of the latest one:\n"
	       "one leaker's victims span many merchants, so it is platform-wide. create makes\n"
	       "an explicit case of the given reports, or of every report in [--from, --until]\n"
	       "(RFC 3339 times); remove narrows an explicit case.\n");
}

enum { OPT_TITLE = 2000, OPT_FROM, OPT_UNTIL, OPT_REPORT };

typedef struct show_ctx {
	bool json;
	size_t n;
} show_ctx_t;

static int show_report(void *ctx, const moat_report_row_t *r)
{
	show_ctx_t *s = ctx;
	char t[32], q[96] = "";
	size_t n = 0;
	moat_time_format(r->contact_time, t);
	for (int f = 0; f < MOAT_FIELD_COUNT; f++)
		if (r->quoted & (1u << f))
			n += (size_t)snprintf(q + n, sizeof q - n, "%s%s", n ? "," : "",
					      moat_field_name((moat_field_t)f));
	if (s->json) {
		printf("%s{\"report_id\":\"%s\",\"order_id\":\"%s\",\"contact_time\":\"%s\","
		       "\"channel\":\"%s\",\"quoted_fields\":\"%s\",\"loss_cents\":%lld,"
		       "\"ledger_index\":%llu}",
		       s->n ? "," : "", r->report_id, r->order_id, t, r->channel, q,
		       (long long)r->loss_cents, (unsigned long long)r->ledger_index);
	} else {
		printf("  %-12s order %-16s %s %-4s quoted %-28s loss %lld.%02lld  ledger #%llu\n",
		       r->report_id, r->order_id, t, r->channel, q, (long long)(r->loss_cents / 100),
		       (long long)(r->loss_cents % 100), (unsigned long long)r->ledger_index);
	}
	s->n++;
	return 0;
}

int cmd_case(int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_LONGOPTS,
					     {"title", required_argument, NULL, OPT_TITLE},
					     {"from", required_argument, NULL, OPT_FROM},
					     {"until", required_argument, NULL, OPT_UNTIL},
					     {"report", required_argument, NULL, OPT_REPORT},
					     {0, 0, 0, 0}};
	cli_common_t c;
	cli_common_init(&c);
	const char *title = NULL;
	moat_time_t from = MOAT_TIME_NONE, until = MOAT_TIME_NONE;
	const char *reports[256];
	size_t nr = 0;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			help();
			return CLI_OK;
		case OPT_TITLE:
			title = optarg;
			break;
		case OPT_FROM:
			if (!moat_time_parse(optarg, &from))
				return cli_usage("case", "--from must be an RFC 3339 time with offset");
			break;
		case OPT_UNTIL:
			if (!moat_time_parse(optarg, &until))
				return cli_usage("case", "--until must be an RFC 3339 time with offset");
			break;
		case OPT_REPORT:
			if (nr == MOAT_ARRAY_LEN(reports))
				return cli_usage("case", "at most %zu --report options",
						 MOAT_ARRAY_LEN(reports));
			reports[nr++] = optarg;
			break;
		default:
			if (!cli_common_opt(&c, opt, optarg))
				return cli_bad_option("case");
		}
	}
	if (argc - optind < 1)
		return cli_usage("case", "expected list, show, create or remove");
	const char *sub = argv[optind];
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_open(c.data_dir, MOAT_APP_NO_LEDGER, &a, &e) != MOAT_OK)
		return cli_fail("case", &e);
	int ret = CLI_OK;
	if (strcmp(sub, "list") == 0 && argc - optind == 1) {
		moat_buf_t b;
		moat_buf_init(&b, 1 << 24);
		if (moat_trace_case_list_json(a, &b, &e) != MOAT_OK) {
			ret = cli_fail("case", &e);
		} else if (c.json) {
			printf("%s\n", b.data);
		} else {
			json_t *arr = json_loads(b.data, 0, NULL);
			size_t i;
			json_t *o;
			json_array_foreach(arr, i, o)
			{
				const char *f = json_string_value(json_object_get(o, "from"));
				const char *u = json_string_value(json_object_get(o, "until"));
				printf("%-16s %5lld reports  %s .. %s  %s\n",
				       json_string_value(json_object_get(o, "case")),
				       (long long)json_integer_value(json_object_get(o, "reports")),
				       f ? f : "-", u ? u : "-",
				       json_string_value(json_object_get(o, "title")));
			}
			json_decref(arr);
		}
		moat_buf_free(&b);
	} else if (strcmp(sub, "show") == 0 && argc - optind == 2) {
		show_ctx_t s = {c.json, 0};
		if (c.json)
			printf("{\"case\":\"%s\",\"reports\":[", argv[optind + 1]);
		else
			printf("case %s:\n", argv[optind + 1]);
		if (moat_trace_case_reports(a, argv[optind + 1], show_report, &s, &e) != MOAT_OK) {
			if (c.json)
				printf("]}\n");
			ret = cli_fail("case", &e);
		} else if (c.json) {
			printf("]}\n");
		} else {
			printf("%zu reports; `moat trace %s` ranks the suspects\n", s.n, argv[optind + 1]);
		}
	} else if (strcmp(sub, "create") == 0 && argc - optind == 1) {
		char id[MOAT_ID_MAX + 1];
		if (moat_trace_case_create(a, title, from, until, reports, nr, id, &e) != MOAT_OK)
			ret = cli_fail("case", &e);
		else if (c.json)
			printf("{\"case\":\"%s\"}\n", id);
		else
			printf("created case %s\n", id);
	} else if (strcmp(sub, "remove") == 0 && argc - optind == 3) {
		if (moat_store_trace_case_remove(a->store, argv[optind + 1], argv[optind + 2], &e) !=
		    MOAT_OK)
			ret = cli_fail("case", &e);
		else
			printf("removed %s from case %s\n", argv[optind + 2], argv[optind + 1]);
	} else {
		ret = cli_usage("case", "expected list, show CASE, create or remove CASE REPORT_ID");
	}
	moat_app_close(a);
	return ret;
}
