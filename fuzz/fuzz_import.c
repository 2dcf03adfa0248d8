/* `moat import` of every kind (src/app/): the input's first byte picks the kind
 * (parties, principals, relations, orders, events), the rest is the file. An
 * import is all-or-nothing, so whatever the file: a failure names what is
 * wrong and leaves the orders and the ledger as they were; a success counts
 * its records, adds at most that many orders, and (events) grows the ledger by
 * exactly the entries it reports, from the index it reports. */
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "moat/app.h"
#include "moat/ledger.h"
#include "moat/store.h"
#include "world.h"

static moat_app_t *app;

static void stop(void)
{
	moat_app_close(app);
	fuzz_world_remove();
}

static int64_t orders(void)
{
	int64_t n = -1;
	moat_error_t err;
	FUZZ_CHECK(moat_store_order_count(app->store, &n, &err) == MOAT_OK);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[1100];
	if (!app) {
		char keys[MOAT_ROLE_COUNT][72];
		app = fuzz_world_open("import", keys);
		snprintf(path, sizeof path, "%s/../import.jsonl", app->data_dir);
		atexit(stop);
	}
	if (size < 1)
		return 0;
	unsigned kind = data[0] % (MOAT_IMPORT_KIND_COUNT + 1);
	FILE *f = fopen(path, "wb");
	FUZZ_CHECK(f);
	FUZZ_CHECK(fwrite(data + 1, 1, size - 1, f) == size - 1);
	fclose(f);
	int64_t before = orders();
	uint64_t size0 = moat_ledger_size(app->ledger);
	moat_error_t err = {0};
	moat_err_t rc;
	size_t count = 0, events = 0, entries = 0;
	uint64_t first = UINT64_MAX;
	if (kind < MOAT_IMPORT_KIND_COUNT)
		rc = moat_app_import_file(app, (moat_import_kind_t)kind, path, &count, &err);
	else
		rc = moat_app_import_events(app, path, &events, &entries, &first, &err);
	if (getenv("FUZZ_IMPORT_DEBUG"))
		fprintf(stderr, "kind %u: %s (%zu records, %zu entries) %s\n", kind,
			rc == MOAT_OK ? "ok" : "error", count + events, entries, err.msg);
	int64_t after = orders();
	uint64_t size1 = moat_ledger_size(app->ledger);
	if (rc != MOAT_OK) {
		FUZZ_CHECK(err.msg[0] != '\0');
		FUZZ_CHECK(after == before && size1 == size0);
	} else if (kind < MOAT_IMPORT_KIND_COUNT) {
		FUZZ_CHECK(size1 == size0);
		FUZZ_CHECK(after >= before && after - before <= (int64_t)count);
		if (kind != MOAT_IMPORT_ORDERS)
			FUZZ_CHECK(after == before);
	} else {
		FUZZ_CHECK(after == before && size1 == size0 + entries);
		FUZZ_CHECK(entries == 0 || first == size0);
	}
	unlink(path);
	return 0;
}
