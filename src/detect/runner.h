/* Internal: lets catchup.c hand a runner the rules and log it must free. */
#ifndef MOAT_DETECT_RUNNER_H
#define MOAT_DETECT_RUNNER_H

#include "moat/detect.h"

/* The runner takes ownership of rules (freed with it) and calls free_log(log ctx)
 * when freed. */
void moat_detect_runner_own(moat_detect_runner_t *x, moat_detect_rules_t *rules,
			    void (*free_log)(void *ctx));

/* Every engine the runner builds gets the policy's quotas (moat_detect_set_quota);
 * the runner calls free_ctx(ctx) (may be NULL) when freed. */
void moat_detect_runner_quota(moat_detect_runner_t *x, moat_detect_quota_fn fn, void *ctx,
			      void (*free_ctx)(void *ctx));

/* Local time of every engine the runner builds (moat_detect_set_local_offset). */
void moat_detect_runner_local_offset(moat_detect_runner_t *x, int minutes);

/* The digest of what the runner's engines depend on besides the log and the
 * store (see moat_detect_runner_same_inputs). */
void moat_detect_runner_inputs(moat_detect_runner_t *x, const uint8_t digest[32]);

#endif
