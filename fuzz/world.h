/*
 * A small data directory for the fuzz targets that need one (fuzz_http,
 * fuzz_import), made in /dev/shm when it exists: parties plat, m-a (merchant),
 * l-x (logistics), isv-1; a principal p-<role> of each role with an API key;
 * orders O0 (paid), O1 (shipped, assigned to the courier), O2 (delivered, a
 * ticket of the CS agent) of merchant m-a, whose buyer's resident id is
 * FUZZ_ID_NUMBER; the ISV app authorised by m-a.
 */
#ifndef MOAT_FUZZ_WORLD_H
#define MOAT_FUZZ_WORLD_H

#include "moat/app.h"

#define FUZZ_ID_NUMBER "11010519491231002X"

/* Makes and opens the directory (name goes into its path); keys[r] receives
 * p-<r>'s API key. Aborts on any failure. */
moat_app_t *fuzz_world_open(const char *name, char keys[MOAT_ROLE_COUNT][72]);
/* Removes the directory (after moat_app_close). */
void fuzz_world_remove(void);
/* rm -r */
void fuzz_rm_tree(const char *path);

#endif
