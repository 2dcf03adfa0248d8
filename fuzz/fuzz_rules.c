/* Detector rule files (src/detect/rules.c): whatever the text, parsing fails
 * cleanly with a line and field, or yields rules that each have a name and a
 * known type. */
#include "fuzz.h"
#include "moat/detect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	moat_detect_rules_t *r = NULL;
	moat_error_t err;
	if (moat_detect_rules_parse((const char *)data, size, &r, &err) != MOAT_OK)
		return 0;
	for (size_t i = 0; i < moat_detect_rules_count(r); i++) {
		const char *name = moat_detect_rules_name(r, i),
			   *type = moat_detect_rules_type(r, i);
		FUZZ_CHECK(name && name[0] && type && type[0]);
	}
	moat_detect_rules_free(r);
	return 0;
}
