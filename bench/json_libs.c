/*
 * One candidate JSON library (chosen at compile time: LIB_JANSSON, LIB_JSONC,
 * LIB_CJSON, LIB_YAJL) or moat's own parse (LIB_MOAT: yajl's lexer building the
 * jansson tree, jansson deciding whatever yajl is not sure of): parse throughput
 * on a realistic order line, and the strictness probes moat needs.
 * bench/json_libs.sh runs them side by side.
 *
 * usage: bench_json_<lib> [N_LINES]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(LIB_JANSSON)
#include <jansson.h>
#define LIB_NAME "jansson"
static int parse(const char *s, size_t n)
{
	json_error_t e;
	json_t *v = json_loadb(s, n, JSON_REJECT_DUPLICATES, &e);
	json_decref(v);
	return v != NULL;
}
#elif defined(LIB_JSONC)
#include <json-c/json.h>
#define LIB_NAME "json-c"
static int parse(const char *s, size_t n)
{
	struct json_tokener *t = json_tokener_new_ex(16);
	json_tokener_set_flags(t, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *o = json_tokener_parse_ex(t, s, (int)n);
	int ok = o != NULL && json_tokener_get_error(t) == json_tokener_success;
	json_object_put(o);
	json_tokener_free(t);
	return ok;
}
#elif defined(LIB_CJSON)
#include <cjson/cJSON.h>
#define LIB_NAME "cJSON"
static int parse(const char *s, size_t n)
{
	const char *end = NULL;
	(void)n; /* inputs here are NUL-terminated */
	cJSON *o = cJSON_ParseWithOpts(s, &end, 1);
	cJSON_Delete(o);
	return o != NULL;
}
#elif defined(LIB_YAJL)
#include <yajl/yajl_parse.h>
#define LIB_NAME "yajl(events only)"
/* yajl's events with no tree built: its lexer's speed and its own strictness */
static int ev(void *c) { return c != NULL; }
static int ev_bool(void *c, int b)
{
	(void)b;
	return c != NULL;
}
static int ev_int(void *c, long long v)
{
	(void)v;
	return c != NULL;
}
static int ev_real(void *c, double v)
{
	(void)v;
	return c != NULL;
}
static int ev_str(void *c, const unsigned char *s, size_t n)
{
	(void)s, (void)n;
	return c != NULL;
}
static const yajl_callbacks cbs = {ev, ev_bool, ev_int, ev_real, NULL, ev_str, ev, ev_str, ev, ev, ev};
static int parse(const char *s, size_t n)
{
	static int ctx;
	yajl_handle h = yajl_alloc(&cbs, NULL, &ctx);
	yajl_status st = yajl_parse(h, (const unsigned char *)s, n);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	yajl_free(h);
	return st == yajl_status_ok;
}
#elif defined(LIB_MOAT)
#include "moat/json.h"
#define LIB_NAME "moat_json_parse"
static int parse(const char *s, size_t n)
{
	json_t *v = NULL;
	moat_error_t e = {0};
	int ok = moat_json_parse(s, n, 16, &v, &e) == MOAT_OK;
	json_decref(v);
	return ok;
}
#else
#error "define LIB_JANSSON, LIB_JSONC, LIB_CJSON, LIB_YAJL or LIB_MOAT"
#endif

static const char line[] =
    "{\"order_id\":\"O123456\",\"merchant\":\"m-zara\",\"placed_at\":\"2026-03-01T10:00:00+08:00\","
    "\"status\":\"paid\",\"buyer\":{\"name\":\"刘丽\",\"phone\":\"13812345678\",\"address\":{\"province\":"
    "\"广东省\",\"city\":\"广州市\",\"district\":\"天河区\",\"detail\":\"天河路1号1栋301室\"}},\"items\":[{"
    "\"sku\":\"S1\",\"title\":\"羊毛衫\",\"qty\":1,\"price_cents\":29900}],\"shipping\":{\"carrier\":"
    "\"l-sf\",\"waybill\":\"SF1234567890\"}}";

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 200000;
	size_t len = strlen(line);
	double r[5];
	for (int k = 0; k < 5; k++) {
		double t0 = now();
		long ok = 0;
		for (long i = 0; i < n; i++)
			ok += parse(line, len);
		r[k] = (double)n / (now() - t0);
		if (ok != n)
			return 1;
	}
	qsort(r, 5, sizeof r[0], cmpd);
	char deep[256] = "";
	for (int i = 0; i < 20; i++)
		strcat(deep, "{\"a\":");
	strcat(deep, "1");
	for (int i = 0; i < 20; i++)
		strcat(deep, "}");
	const char *probes[][2] = {
	    {"invalid_utf8", "{\"a\":\"\xff\"}"},       {"overlong_utf8", "{\"a\":\"\xc0\xaf\"}"},
	    {"surrogate_utf8", "{\"a\":\"\xed\xa0\x80\"}"}, {"duplicate_key", "{\"a\":1,\"a\":2}"},
	    {"escaped_nul", "{\"a\":\"x\\u0000y\"}"},   {"trailing_garbage", "{\"a\":1} x"},
	    {"depth_20", deep},
	};
	printf("%s lines_per_s=%.0f", LIB_NAME, r[2]);
	for (size_t p = 0; p < sizeof probes / sizeof probes[0]; p++)
		printf(" %s=%s", probes[p][0], parse(probes[p][1], strlen(probes[p][1])) ? "accepts" : "rejects");
	printf("\n");
	return 0;
}
