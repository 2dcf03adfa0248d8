/* The small data directory fuzz targets share (fuzz/world.h). */
#include <ftw.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fuzz.h"
#include "moat/crypto.h"
#include "moat/json.h"
#include "moat/store.h"
#include "world.h"

static char dir[256];

static void import_line(moat_app_t *app, moat_import_kind_t kind, const char *line)
{
	json_t *obj = NULL;
	moat_error_t e = {0};
	moat_arena_t *arena = moat_arena_new(4096);
	FUZZ_CHECK(arena && moat_json_parse(line, strlen(line), 16, &obj, &e) == MOAT_OK);
	if (moat_app_import_one(app, kind, obj, arena, &e) != MOAT_OK) {
		fprintf(stderr, "fuzz world: %s: %s\n", line, e.msg);
		abort();
	}
	json_decref(obj);
	moat_arena_free(arena);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void fuzz_rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void fuzz_world_remove(void)
{
	if (dir[0])
		fuzz_rm_tree(dir);
}

moat_app_t *fuzz_world_open(const char *name, char keys[MOAT_ROLE_COUNT][72])
{
	moat_app_t *app = NULL;
	moat_log_set_level(MOAT_LOG_OFF);
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof dir, "%s/moat-fuzz-%s-XXXXXX", base, name);
	FUZZ_CHECK(mkdtemp(dir) != NULL);
	char data[300];
	snprintf(data, sizeof data, "%s/data", dir);
	moat_error_t e = {0};
	FUZZ_CHECK(moat_app_init(data, &e) == MOAT_OK);
	FUZZ_CHECK(moat_app_open(data, 0, &app, &e) == MOAT_OK);
	moat_log_set_level(MOAT_LOG_OFF); /* the data directory's config set it again */
	FUZZ_CHECK(moat_store_begin(app->store, &e) == MOAT_OK);
	static const char *const parties[] = {
	    "{\"party\":\"plat\",\"kind\":\"platform\",\"name\":\"P\"}",
	    "{\"party\":\"m-a\",\"kind\":\"merchant\",\"name\":\"A\"}",
	    "{\"party\":\"l-x\",\"kind\":\"logistics\",\"name\":\"X\"}",
	    "{\"party\":\"isv-1\",\"kind\":\"isv\",\"name\":\"I\"}"};
	for (size_t i = 0; i < sizeof parties / sizeof *parties; i++)
		import_line(app, MOAT_IMPORT_PARTIES, parties[i]);
	static const char *const party_of[MOAT_ROLE_COUNT] = {"plat", "plat", "m-a",   "m-a",
							      "l-x",  "l-x",  "isv-1", "plat"};
	char line[1024], t0[32], t1[32], t2[32];
	moat_time_t now = moat_now();
	moat_time_format(now - 5 * 86400000LL, t0);
	moat_time_format(now - 2 * 86400000LL, t1);
	moat_time_format(now - 1 * 86400000LL, t2);
	for (int r = 0; r < MOAT_ROLE_COUNT; r++) {
		snprintf(line, sizeof line,
			 "{\"principal\":\"p-%d\",\"party\":\"%s\",\"role\":\"%s\"}", r,
			 party_of[r], moat_role_name((moat_role_t)r));
		import_line(app, MOAT_IMPORT_PRINCIPALS, line);
	}
	static const char *const status[] = {"paid", "shipped", "delivered"};
	for (int i = 0; i < 3; i++) {
		char ship[300] = "";
		if (i == 1)
			snprintf(ship, sizeof ship,
				 ",\"shipping\":{\"carrier\":\"l-x\",\"waybill\":\"SF1\","
				 "\"shipped_at\":\"%s\"}",
				 t1);
		else if (i == 2)
			snprintf(ship, sizeof ship,
				 ",\"shipping\":{\"carrier\":\"l-x\",\"waybill\":\"SF2\","
				 "\"shipped_at\":\"%s\",\"delivered_at\":\"%s\"}",
				 t1, t2);
		snprintf(
		    line, sizeof line,
		    "{\"order_id\":\"O%d\",\"merchant\":\"m-a\",\"placed_at\":\"%s\","
		    "\"status\":\"%s\",\"buyer\":{\"name\":\"刘晓梅\",\"phone\":\"1380000000%d\","
		    "\"id_number\":\"" FUZZ_ID_NUMBER "\",\"address\":{\"province\":\"广东省\","
		    "\"city\":\"广州市\",\"district\":\"天河区\",\"detail\":\"幸福路%d号\"}},"
		    "\"items\":[{\"sku\":\"S1\",\"title\":\"羊毛衫\",\"qty\":1,"
		    "\"price_cents\":1500}]%s}",
		    i, t0, status[i], i, i, ship);
		import_line(app, MOAT_IMPORT_ORDERS, line);
	}
	snprintf(line, sizeof line,
		 "{\"kind\":\"assign\",\"order_id\":\"O1\",\"principal\":\"p-%d\",\"from\":\"%s\"}",
		 MOAT_ROLE_COURIER, t0);
	import_line(app, MOAT_IMPORT_RELATIONS, line);
	snprintf(
	    line, sizeof line,
	    "{\"kind\":\"ticket\",\"order_id\":\"O2\",\"principal\":\"p-%d\",\"ticket\":\"T1\","
	    "\"opened\":\"%s\"}",
	    MOAT_ROLE_CS_AGENT, t0);
	import_line(app, MOAT_IMPORT_RELATIONS, line);
	snprintf(
	    line, sizeof line,
	    "{\"kind\":\"authorize\",\"merchant\":\"m-a\",\"principal\":\"p-%d\",\"from\":\"%s\"}",
	    MOAT_ROLE_ISV_APP, t0);
	import_line(app, MOAT_IMPORT_RELATIONS, line);
	for (int r = 0; r < MOAT_ROLE_COUNT; r++) {
		uint8_t hash[32];
		char id[16];
		snprintf(id, sizeof id, "p-%d", r);
		FUZZ_CHECK(moat_api_key_new(keys[r], hash) == MOAT_OK);
		FUZZ_CHECK(moat_store_principal_set_key(app->store, id, hash, &e) == MOAT_OK);
	}
	FUZZ_CHECK(moat_store_commit(app->store, &e) == MOAT_OK);
	return app;
}
