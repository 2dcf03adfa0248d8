/*
 * moat views: how one field of an order is shown. Masking is done server-side
 * with one fixed pattern per field (varying the starred positions would let
 * colluders rebuild the value):
 *   name       mask: surname (first character) + "*"          刘丽 → 刘*
 *   phone      mask: first 3 + "****" + last 4                13812345678 → 138****5678
 *   id_number  mask: first 6 + "********" + last 4
 *   address    coarse: province city district (no detail)
 *   items      category: titles dropped, SKUs and quantities kept
 * Output is appended to a bounded buffer.
 */
#ifndef MOAT_VIEW_H
#define MOAT_VIEW_H

#include "moat/base.h"

moat_err_t moat_view_mask_name(const char *name, moat_buf_t *out) MOAT_MUST_CHECK;
moat_err_t moat_view_mask_phone(const char *phone, moat_buf_t *out) MOAT_MUST_CHECK;
moat_err_t moat_view_mask_id_number(const char *id, moat_buf_t *out) MOAT_MUST_CHECK;
/* "广东省 广州市 天河区" */
moat_err_t moat_view_coarse_address(const char *province, const char *city, const char *district,
				    moat_buf_t *out) MOAT_MUST_CHECK;

#endif
