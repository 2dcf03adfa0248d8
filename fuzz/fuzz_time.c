/* RFC 3339 times from requests and files (`since=`, `placed_at`, replay
 * headers; src/base/util.c): whatever the text, no crash; a time that parses
 * prints as text that parses back to the same instant (when the instant is one
 * the format can write: years 0000 – 9999 in UTC). */
#include <string.h>

#include "fuzz.h"
#include "moat/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256)
		return 0;
	char s[257];
	memcpy(s, data, size);
	s[size] = '\0';
	moat_time_t t, back;
	if (!moat_time_parse(s, &t))
		return 0;
	char out[32];
	moat_time_format(t, out);
	FUZZ_CHECK(strlen(out) >= 20 && strlen(out) <= 24);
	FUZZ_CHECK(moat_time_parse(out, &back));
	if (t >= -62167219200000LL && t <= 253402300799999LL)
		FUZZ_CHECK(back == t);
	return 0;
}
