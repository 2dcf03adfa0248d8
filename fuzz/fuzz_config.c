/* moat.conf (src/app/config.c): whatever the file, loading fails with a message
 * naming the line and key, leaving the defaults it started from usable, or yields
 * settings inside the ranges docs/config.md gives, each string terminated. */
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "moat/app.h"

static bool terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[256];
	if (!path[0]) {
		const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(path, sizeof path, "%s/moat-fuzz-config-%d.conf", base, (int)getpid());
	}
	FILE *f = fopen(path, "wb");
	FUZZ_CHECK(f);
	FUZZ_CHECK(fwrite(data, 1, size, f) == size);
	fclose(f);
	moat_config_t c;
	moat_config_defaults(&c);
	moat_error_t err = {0};
	moat_err_t rc = moat_config_load(&c, path, &err);
	unlink(path);
	if (rc != MOAT_OK) {
		FUZZ_CHECK(err.msg[0] != '\0');
		return 0;
	}
	FUZZ_CHECK(terminated(c.listen, sizeof c.listen) &&
		   terminated(c.virtual_pool, sizeof c.virtual_pool) &&
		   terminated(c.webhook, sizeof c.webhook) &&
		   terminated(c.ledger_origin, sizeof c.ledger_origin));
	FUZZ_CHECK(c.threads >= 1 && c.threads <= 256);
	FUZZ_CHECK(c.max_body >= 1024 && c.max_body <= (size_t)1 << 30);
	FUZZ_CHECK(c.request_timeout_s >= 1 && c.request_timeout_s <= 3600);
	FUZZ_CHECK(c.checkpoint_interval_ms >= 10 && c.checkpoint_interval_ms <= 3600000);
	FUZZ_CHECK(c.virtual_grace_days >= 0 && c.virtual_grace_days <= 365 &&
		   c.case_window_days >= 1 && c.case_window_days <= 3650);
	FUZZ_CHECK((unsigned)c.log_level <= MOAT_LOG_OFF);
	return 0;
}
