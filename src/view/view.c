/* Fixed masking patterns per field (see include/moat/view.h). */
#include <string.h>

#include "moat/view.h"

/* Length in bytes of the UTF-8 sequence starting at s (1 for invalid lead bytes). */
static size_t utf8_char_len(const unsigned char *s)
{
	if (*s >= 0xf0)
		return 4;
	if (*s >= 0xe0)
		return 3;
	if (*s >= 0xc0)
		return 2;
	return 1;
}

moat_err_t moat_view_mask_name(const char *name, moat_buf_t *out)
{
	size_t n = strlen(name);
	if (n == 0)
		return moat_buf_puts(out, "*");
	size_t first = utf8_char_len((const unsigned char *)name);
	if (first > n)
		first = n;
	moat_err_t rc = moat_buf_append(out, name, first);
	return rc == MOAT_OK ? moat_buf_puts(out, "*") : rc;
}

moat_err_t moat_view_mask_phone(const char *phone, moat_buf_t *out)
{
	size_t n = strlen(phone);
	if (n < 8)
		return moat_buf_puts(out, "****");
	moat_err_t rc = moat_buf_append(out, phone, 3);
	if (rc == MOAT_OK)
		rc = moat_buf_puts(out, "****");
	return rc == MOAT_OK ? moat_buf_append(out, phone + n - 4, 4) : rc;
}

moat_err_t moat_view_mask_id_number(const char *id, moat_buf_t *out)
{
	size_t n = strlen(id);
	if (n < 11)
		return moat_buf_puts(out, "********");
	moat_err_t rc = moat_buf_append(out, id, 6);
	if (rc == MOAT_OK)
		rc = moat_buf_puts(out, "********");
	return rc == MOAT_OK ? moat_buf_append(out, id + n - 4, 4) : rc;
}

moat_err_t moat_view_coarse_address(const char *province, const char *city, const char *district,
				    moat_buf_t *out)
{
	return moat_buf_printf(out, "%s %s %s", province, city, district);
}
