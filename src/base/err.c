/* Errors and JSON-lines logging. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

#include "moat/base.h"

const char *moat_err_name(moat_err_t code)
{
	switch (code) {
	case MOAT_OK: return "ok";
	case MOAT_ENOMEM: return "out_of_memory";
	case MOAT_EIO: return "io_error";
	case MOAT_EINVAL: return "invalid";
	case MOAT_ENOTFOUND: return "not_found";
	case MOAT_EEXIST: return "exists";
	case MOAT_ECORRUPT: return "corrupt";
	case MOAT_ECRYPTO: return "crypto_error";
	case MOAT_EDENIED: return "denied";
	case MOAT_ELIMIT: return "limit_exceeded";
	case MOAT_ECONFLICT: return "conflict";
	case MOAT_EUNAVAIL: return "unavailable";
	case MOAT_EDB: return "database_error";
	case MOAT_EUSAGE: return "usage";
	}
	return "unknown";
}

moat_err_t moat_error_set(moat_error_t *e, moat_err_t code, const char *field, const char *fmt, ...)
{
	if (!e)
		return code;
	e->code = code;
	snprintf(e->field, sizeof e->field, "%s", field ? field : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return code;
}

void moat_error_clear(moat_error_t *e)
{
	if (e)
		memset(e, 0, sizeof *e);
}

/* Set once at start-up, read everywhere: an atomic int is enough. */
static volatile int log_level = MOAT_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void moat_log_set_level(moat_log_level_t level) { log_level = (int)level; }
moat_log_level_t moat_log_get_level(void) { return (moat_log_level_t)log_level; }

bool moat_log_parse_level(const char *s, moat_log_level_t *out)
{
	static const char *names[] = {"debug", "info", "warn", "error", "off"};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(names); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (moat_log_level_t)i;
			return true;
		}
	}
	return false;
}

void moat_log(moat_log_level_t level, const char *event, const char *fmt, ...)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	if ((int)level < log_level || level >= MOAT_LOG_OFF)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);

	char ts[32];
	moat_time_format(moat_now(), ts);
	moat_buf_t b;
	moat_buf_init(&b, 8192);
	moat_err_t rc = moat_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":", ts,
				       names[level]);
	if (rc == MOAT_OK)
		rc = moat_buf_json_str(&b, event);
	if (rc == MOAT_OK)
		rc = moat_buf_puts(&b, ",\"msg\":");
	if (rc == MOAT_OK)
		rc = moat_buf_json_str(&b, msg);
	if (rc == MOAT_OK)
		rc = moat_buf_puts(&b, "}\n");
	if (rc == MOAT_OK) {
		pthread_mutex_lock(&log_lock);
		fwrite(b.data, 1, b.len, stderr);
		fflush(stderr);
		pthread_mutex_unlock(&log_lock);
	}
	moat_buf_free(&b);
}
