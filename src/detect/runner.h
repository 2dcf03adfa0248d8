/* Internal: lets catchup.c hand a runner the rules and log it must free. */
#ifndef MOAT_DETECT_RUNNER_H
#define MOAT_DETECT_RUNNER_H

#include "moat/detect.h"

/* The runner takes ownership of rules (freed with it) and calls free_log(log ctx)
 * when freed. */
void moat_detect_runner_own(moat_detect_runner_t *x, moat_detect_rules_t *rules,
			    void (*free_log)(void *ctx));

#endif
