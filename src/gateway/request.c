/* Building a policy request from a principal, an order and the relation store. */
#include <string.h>

#include "moat/gateway.h"

moat_err_t moat_gateway_policy_request(moat_store_t *s, const moat_principal_row_t *p,
				       const moat_order_row_t *o, moat_purpose_t purpose,
				       moat_time_t now, moat_policy_request_t *out,
				       moat_assign_window_t *assign, moat_error_t *err)
{
	memset(out, 0, sizeof *out);
	unsigned mask = 0;
	moat_err_t rc =
	    moat_store_relation_check(s, p->principal, o->order_id, o->merchant, now, &mask, assign,
				      err);
	if (rc != MOAT_OK)
		return rc;
	out->role = p->role;
	out->purpose = purpose;
	out->relations = mask;
	out->own_merchant = strcmp(p->party, o->merchant) == 0;
	/* The state the order was in at `now`: a stored status names the latest
	 * state, and its timestamps say when the order got there. Normally every
	 * timestamp is in the past and this is the stored status; when now is
	 * earlier (a replayed world, `moat policy explain --at`), an order whose
	 * shipping or delivery lies after now is judged as it was then. Closed and
	 * refunded carry no time of their own, so only their shipping times move
	 * them back. */
	moat_order_status_t st = o->status;
	if (st != MOAT_STATUS_PAID && o->shipped_at != MOAT_TIME_NONE && o->shipped_at > now)
		st = MOAT_STATUS_PAID;
	else if (st != MOAT_STATUS_PAID && st != MOAT_STATUS_SHIPPED &&
		 o->delivered_at != MOAT_TIME_NONE && o->delivered_at > now)
		st = MOAT_STATUS_SHIPPED;
	out->status = st;
	out->placed_at = o->placed_at;
	out->shipped_at = o->shipped_at;
	out->delivered_at = o->delivered_at;
	out->now = now;
	out->shift = p->shift[0] ? p->shift : NULL;
	return MOAT_OK;
}
