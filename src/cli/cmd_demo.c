/*
 * moat demo [--data DIR] [--seed S] [--port P]
 *
 * moat's main job end to end (what `make demo` runs): scripts/demo.sh is compiled
 * into the binary (cmake/embed.cmake), so an installed moat needs no source tree.
 * The script is written to a private temporary file (0700 in a 0700 directory),
 * run with bash and this very binary, and removed; its exit status is ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"

extern const char moat_demo_script[];
extern const size_t moat_demo_script_len;

static void help(void)
{
	printf("usage: moat demo [--data DIR] [--seed S] [--port P]\n\n"
	       "Runs moat's whole loop on a fresh data directory, in about a minute:\n"
	       "  1. a labelled e-commerce world from the simulator (four leakers at once)\n"
	       "  2. moat in front: the world replayed through `moat serve` over HTTP;\n"
	       "     policy and views decide every read, the ledger logs it, the detector\n"
	       "     stops pulls while they run, scam calls to virtual numbers name a courier\n"
	       "  3. moat on logs alone: the same history imported, alerts, and the scam\n"
	       "     reports traced to their leakers with p-values and whom to notify\n"
	       "  4. the score against the simulator's ground truth (`moat eval`)\n"
	       "  5. a live gateway on the real clock: a read, a denial, a pull suspended\n"
	       "  6. the ledger verified and an inclusion proof checked offline\n\n"
	       "options:\n"
	       "  --data DIR  data directory to (re)create (default ./moat-data); an\n"
	       "              existing directory that is not moat's is never touched.\n"
	       "              DIR.world and DIR.evidence are written beside it.\n"
	       "  --seed S    the simulated world's seed (default 20261128)\n"
	       "  --port P    local port for the demo's servers (default 18080)\n\n"
	       "Needs bash, curl and python3 (what `make demo` installs).\n");
}

static bool all_digits(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int cmd_demo(int argc, char **argv)
{
	enum { OPT_SEED = 2000, OPT_PORT };
	static const struct option opts[] = {{"data", required_argument, NULL, CLI_OPT_DATA},
					     {"seed", required_argument, NULL, OPT_SEED},
					     {"port", required_argument, NULL, OPT_PORT},
					     {"help", no_argument, NULL, 'h'},
					     {0, 0, 0, 0}};
	const char *data = getenv("MOAT_DATA");
	if (!data || !*data)
		data = "moat-data";
	const char *seed = NULL, *port = NULL;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			help();
			return CLI_OK;
		case CLI_OPT_DATA:
			data = optarg;
			break;
		case OPT_SEED:
			if (!all_digits(optarg, 20))
				return cli_usage("demo", "--seed: expected an unsigned integer, got \"%s\"", optarg);
			seed = optarg;
			break;
		case OPT_PORT:
			if (!all_digits(optarg, 5) || atoi(optarg) < 1 || atoi(optarg) > 65535)
				return cli_usage("demo", "--port: expected 1..65535, got \"%s\"", optarg);
			port = optarg;
			break;
		default:
			return cli_bad_option("demo");
		}
	}
	if (optind < argc)
		return cli_usage("demo", "unexpected argument \"%s\"", argv[optind]);
	if (!*data || strlen(data) > 1024)
		return cli_usage("demo", "--data: expected a path of 1 to 1024 bytes");

	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0) {
		fprintf(stderr, "moat demo: cannot find this program's path: %s\n", strerror(errno));
		return CLI_FAIL;
	}
	self[n] = '\0';

	const char *tmp = getenv("TMPDIR");
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/moat-demo.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "moat demo: cannot create a temporary directory: %s\n", strerror(errno));
		return CLI_FAIL;
	}
	char script[PATH_MAX + 16];
	snprintf(script, sizeof script, "%s/demo.sh", dir);
	int fd = open(script, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
	if (fd < 0 || write_all(fd, moat_demo_script, moat_demo_script_len) != 0 || close(fd) != 0) {
		fprintf(stderr, "moat demo: cannot write %s: %s\n", script, strerror(errno));
		unlink(script);
		rmdir(dir);
		return CLI_FAIL;
	}

	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "moat demo: fork: %s\n", strerror(errno));
		unlink(script);
		rmdir(dir);
		return CLI_FAIL;
	}
	if (pid == 0) {
		if (seed)
			setenv("DEMO_SEED", seed, 1);
		if (port)
			setenv("DEMO_PORT", port, 1);
		char *args[] = {"bash", script, self, (char *)data, NULL};
		execvp("bash", args);
		fprintf(stderr, "moat demo: cannot run bash: %s\n", strerror(errno));
		_exit(127);
	}
	/* Ctrl-C reaches the script (same process group); wait for it to clean up. */
	signal(SIGINT, SIG_IGN);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	signal(SIGINT, SIG_DFL);
	unlink(script);
	rmdir(dir);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return CLI_OK;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		return CLI_FAIL;
	fprintf(stderr, "moat demo: the demo stopped before the end (%s %d)\n",
		WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return CLI_FAIL;
}
