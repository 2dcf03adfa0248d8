/* Creating, opening and closing the modules that live beside the store in the
 * data directory. Each module adds its lines here as it lands. */
#include "app/app_internal.h"

moat_err_t moat_app_init_modules(const char *data_dir, const char *origin, moat_error_t *err)
{
	(void)data_dir;
	(void)origin;
	(void)err;
	return MOAT_OK;
}

moat_err_t moat_app_open_modules(moat_app_t *a, moat_error_t *err)
{
	(void)a;
	(void)err;
	return MOAT_OK;
}

void moat_app_close_modules(moat_app_t *a) { (void)a; }
