/* Configuration: defaults < moat.conf (INI via libinih) < MOAT_* environment < flags. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "moat/app.h"
#include "moat/detect.h"

void moat_config_defaults(moat_config_t *c)
{
	memset(c, 0, sizeof *c);
	snprintf(c->listen, sizeof c->listen, "127.0.0.1:8080");
	/* One event loop per thread. Reads wait for their group's fsync without
	 * holding their loop, so a few loops per CPU serve them best (32 loops on 2
	 * CPUs read 8-13k orders/s where 4 read 12-15k, bench/gateway.sh's load);
	 * a slow request (a trace, a big ingest) holds its loop's other
	 * connections meanwhile, which more loops spread thinner. */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	c->threads = cpus < 1 ? 4 : cpus > 8 ? 32 : 4 * (int)cpus;
	c->max_body = 8u << 20;
	c->request_timeout_s = 10;
	c->log_level = MOAT_LOG_INFO;
	c->checkpoint_interval_ms = 1000;
	snprintf(c->virtual_pool, sizeof c->virtual_pool, "17100000000-17199999999");
	c->virtual_grace_days = 3;
	c->case_window_days = 30;
}

typedef struct ini_ctx {
	moat_config_t *c;
	moat_error_t *err;
	moat_err_t rc;
} ini_ctx_t;

static bool parse_long(const char *v, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < min || x > max)
		return false;
	*out = x;
	return true;
}

/* Applies one setting; returns false with err set if the value is bad. */
static bool apply(moat_config_t *c, const char *section, const char *key, const char *v,
		  moat_error_t *err, bool *known)
{
	long x;
	char field[96];
	snprintf(field, sizeof field, "%s.%s", section, key);
	*known = true;
#define STR(sec, k, dst)                                                                       \
	if (strcmp(section, sec) == 0 && strcmp(key, k) == 0) {                                \
		if (strlen(v) >= sizeof(dst)) {                                                \
			moat_error_set(err, MOAT_EINVAL, field, "value is too long");          \
			return false;                                                          \
		}                                                                              \
		snprintf(dst, sizeof(dst), "%s", v);                                           \
		return true;                                                                   \
	}
#define NUM(sec, k, dst, lo, hi)                                                               \
	if (strcmp(section, sec) == 0 && strcmp(key, k) == 0) {                                \
		if (!parse_long(v, lo, hi, &x)) {                                              \
			moat_error_set(err, MOAT_EINVAL, field, "must be an integer in %ld..%ld", \
				       (long)(lo), (long)(hi));                                \
			return false;                                                          \
		}                                                                              \
		dst = x;                                                                       \
		return true;                                                                   \
	}
	STR("server", "listen", c->listen)
	NUM("server", "threads", c->threads, 1, 256)
	NUM("server", "max_body", c->max_body, 1024, 1L << 30)
	NUM("server", "timeout", c->request_timeout_s, 1, 3600)
	STR("ledger", "origin", c->ledger_origin)
	NUM("ledger", "checkpoint_ms", c->checkpoint_interval_ms, 10, 3600000)
	STR("virtual", "pool", c->virtual_pool)
	NUM("virtual", "grace_days", c->virtual_grace_days, 0, 365)
	NUM("trace", "case_window_days", c->case_window_days, 1, 3650)
	if (strcmp(section, "detect") == 0 && strcmp(key, "webhook") == 0) {
		if (*v && !moat_webhook_url_valid(v)) {
			moat_error_set(err, MOAT_EINVAL, field,
				       "must be an http:// or https:// URL of at most 512 characters without "
				       "spaces, or empty");
			return false;
		}
		snprintf(c->webhook, sizeof c->webhook, "%s", v);
		return true;
	}
	if (strcmp(section, "log") == 0 && strcmp(key, "level") == 0) {
		if (!moat_log_parse_level(v, &c->log_level)) {
			moat_error_set(err, MOAT_EINVAL, field, "must be debug, info, warn, error or off");
			return false;
		}
		return true;
	}
#undef STR
#undef NUM
	*known = false;
	return false;
}

static int on_ini(void *user, const char *section, const char *key, const char *value)
{
	ini_ctx_t *x = user;
	bool known;
	if (x->rc != MOAT_OK)
		return 0;
	if (apply(x->c, section, key, value, x->err, &known))
		return 1;
	if (!known) {
		char field[96];
		snprintf(field, sizeof field, "%s.%s", section, key);
		moat_error_set(x->err, MOAT_EINVAL, field, "unknown setting");
	}
	x->rc = MOAT_EINVAL;
	return 0;
}

moat_err_t moat_config_load(moat_config_t *c, const char *path, moat_error_t *err)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? MOAT_ENOTFOUND
				       : moat_error_set(err, MOAT_EIO, NULL, "cannot read %s: %s", path,
							strerror(errno));
	moat_config_t tmp = *c;
	ini_ctx_t x = {&tmp, err, MOAT_OK};
	int line = ini_parse_file(f, on_ini, &x);
	fclose(f);
	if (line != 0) {
		if (x.rc == MOAT_OK)
			moat_error_set(err, MOAT_EINVAL, NULL, "%s: syntax error", path);
		if (err)
			err->line = line;
		return MOAT_EINVAL;
	}
	*c = tmp;
	return MOAT_OK;
}

moat_err_t moat_config_env(moat_config_t *c, moat_error_t *err)
{
	static const struct {
		const char *env, *section, *key;
	} map[] = {
	    {"MOAT_LISTEN", "server", "listen"},   {"MOAT_THREADS", "server", "threads"},
	    {"MOAT_MAX_BODY", "server", "max_body"}, {"MOAT_LOG_LEVEL", "log", "level"},
	    {"MOAT_CHECKPOINT_MS", "ledger", "checkpoint_ms"}, {"MOAT_WEBHOOK", "detect", "webhook"},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(map); i++) {
		const char *v = getenv(map[i].env);
		bool known;
		if (v && *v && !apply(c, map[i].section, map[i].key, v, err, &known)) {
			if (err)
				snprintf(err->field, sizeof err->field, "%s", map[i].env);
			return MOAT_EINVAL;
		}
	}
	return MOAT_OK;
}
