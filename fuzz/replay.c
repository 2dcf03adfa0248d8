/* Runs a fuzz target over files and directories of inputs (its corpus), for
 * builds without libFuzzer: `fuzz_json_replay fuzz/corpus/json`. Exits non-zero
 * if an input cannot be read or no input was found; a target's invariant aborts. */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "moat/base.h"

static int run_file(const char *path)
{
	char *buf = NULL;
	size_t n = 0;
	moat_error_t err;
	if (moat_file_read(path, (size_t)1 << 30, &buf, &n, &err) != MOAT_OK) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	/* An exact-size copy, so reads past the input's end are caught by ASan. */
	uint8_t *in = malloc(n ? n : 1);
	if (in && n)
		memcpy(in, buf, n);
	free(buf);
	if (!in)
		return -1;
	LLVMFuzzerTestOneInput(in, n);
	free(in);
	return 1;
}

static int run_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path);
	struct dirent **names;
	int k = scandir(path, &names, NULL, alphasort);
	if (k < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	int total = 0;
	for (int i = 0; i < k; i++) {
		if (names[i]->d_name[0] != '.' && total >= 0) {
			char sub[4096];
			snprintf(sub, sizeof sub, "%s/%s", path, names[i]->d_name);
			int r = run_path(sub);
			total = r < 0 ? -1 : total + r;
		}
		free(names[i]);
	}
	free(names);
	return total;
}

int main(int argc, char **argv)
{
	int total = 0;
	for (int i = 1; i < argc && total >= 0; i++) {
		int r = run_path(argv[i]);
		total = r < 0 ? -1 : total + r;
	}
	if (total <= 0) {
		fprintf(stderr, "%s: %s\n", argv[0], total < 0 ? "failed" : "no inputs");
		return 1;
	}
	printf("%s: %d inputs, every invariant held\n", argv[0], total);
	return 0;
}
