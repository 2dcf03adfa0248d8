/*
 * Crash test: a child process appends under load from several threads and is
 * killed with SIGKILL at a random moment, 50 times (some kills land during the
 * child's own recovery). Some rounds also leave a torn record at the end of the
 * write-ahead file, as a power cut would. After each kill the parent reopens the
 * ledger and checks that
 *  - every index the child had acknowledged is present (size > max acked index);
 *  - moat_ledger_verify passes (every entry decodes, every tile and the signed
 *    checkpoint match);
 *  - the new checkpoint is consistent with every checkpoint seen before, including
 *    the last one the child published before it died.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "check.h"
#include "ledger_util.h"

#define ROUNDS 50
#define THREADS 4

typedef struct ack {
	uint64_t first, n;
} ack_t;

static int ack_fd;
static moat_ledger_t *child_ledger;

static void *child_appender(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg ^ (unsigned)getpid();
	char bufs[64][64];
	moat_entry_t es[64];
	for (uint64_t round = 0;; round++) {
		size_t n = 1 + (size_t)(rand_r(&seed) % 64);
		for (size_t k = 0; k < n; k++)
			es[k] = sample_entry(round * 64 + k, bufs[k]);
		uint64_t first;
		moat_error_t err;
		if (moat_ledger_append(child_ledger, es, n, &first, &err) != MOAT_OK)
			_exit(3);
		ack_t a = {first, n};
		/* <= PIPE_BUF: atomic with respect to the other threads */
		if (write(ack_fd, &a, sizeof a) != sizeof a)
			_exit(4);
	}
	return NULL;
}

static void child_main(const char *ldir, int fd)
{
	ack_fd = fd;
	moat_error_t err;
	moat_ledger_opts_t opts = {.checkpoint_interval_ms = 10};
	if (moat_ledger_open(ldir, &opts, &child_ledger, &err) != MOAT_OK) {
		fprintf(stderr, "child open: %s\n", err.msg);
		_exit(2);
	}
	pthread_t th[THREADS];
	for (int t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, child_appender, (void *)(uintptr_t)(t + 1));
	for (;;)
		pause();
}

/* Appends a torn (incomplete) record to the newest write-ahead file. */
static void tear_wal(const char *ldir, unsigned *seed)
{
	char wdir[1200], newest[256] = "", path[1600];
	snprintf(wdir, sizeof wdir, "%s/wal", ldir);
	DIR *d = opendir(wdir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && strcmp(de->d_name, newest) > 0)
			snprintf(newest, sizeof newest, "%s", de->d_name);
	closedir(d);
	if (!newest[0])
		return;
	snprintf(path, sizeof path, "%s/%s", wdir, newest);
	FILE *f = fopen(path, "ab");
	if (!f)
		return;
	/* A length prefix promising more bytes than follow, or a full-length record
	 * whose leaf hash does not match. */
	uint8_t rec[34 + 40];
	for (size_t i = 0; i < sizeof rec; i++)
		rec[i] = (uint8_t)rand_r(seed);
	rec[0] = 0;
	rec[1] = 40;
	size_t n = rand_r(seed) % 2 ? sizeof rec : 1 + (size_t)(rand_r(seed) % (sizeof rec - 1));
	fwrite(rec, 1, n, f);
	fclose(f);
}

typedef struct seen {
	uint64_t size;
	uint8_t root[32];
} seen_t;

static bool read_checkpoint(const char *ldir, const char *vkey, seen_t *out)
{
	char path[1200], *text;
	size_t len;
	moat_error_t err;
	snprintf(path, sizeof path, "%s/checkpoint", ldir);
	if (moat_file_read(path, MOAT_LEDGER_NOTE_MAX, &text, &len, &err) != MOAT_OK)
		return false;
	moat_checkpoint_t cp;
	moat_err_t rc = moat_ledger_checkpoint_verify(text, len, vkey, &cp, &err);
	free(text);
	if (rc != MOAT_OK)
		return false;
	out->size = cp.size;
	memcpy(out->root, cp.root, 32);
	return true;
}

int main(void)
{
	char *dir = tmpdir_new("crash");
	char ldir[1024];
	snprintf(ldir, sizeof ldir, "%s/ledger", dir);
	moat_error_t err;
	CHECK_INT(moat_ledger_create(ldir, "moat.test/crash", &err), MOAT_OK);
	moat_ledger_opts_t ro = {.readonly = true};
	moat_ledger_t *l;
	CHECK_INT(moat_ledger_open(ldir, &ro, &l, &err), MOAT_OK);
	char vkey[MOAT_LEDGER_VKEY_MAX + 1];
	snprintf(vkey, sizeof vkey, "%s", moat_ledger_verifier_key(l));
	moat_ledger_close(l);

	seen_t *seen = calloc(4 * ROUNDS, sizeof *seen);
	size_t nseen = 0;
	unsigned seed = (unsigned)time(NULL);
	printf("seed %u\n", seed);
	uint64_t max_acked = 0, total_acks = 0;
	bool any_acked = false;
	uint64_t t0 = moat_mono_ns();
	for (int round = 0; round < ROUNDS; round++) {
		int p[2];
		CHECK(pipe(p) == 0);
		pid_t pid = fork();
		if (pid == 0) {
			close(p[0]);
			child_main(ldir, p[1]);
		}
		close(p[1]);
		/* Kill at a random moment: sometimes during the child's recovery. */
		struct timespec ts = {0, (long)(rand_r(&seed) % 300) * 1000000L};
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
			  "child exited on its own (status %d)", status);
		ack_t a;
		ssize_t r;
		while ((r = read(p[0], &a, sizeof a)) == sizeof a) {
			if (a.first + a.n - 1 > max_acked || !any_acked)
				max_acked = a.first + a.n - 1;
			any_acked = true;
			total_acks++;
		}
		close(p[0]);
		/* The child's last published checkpoint must stay valid history. */
		if (read_checkpoint(ldir, vkey, &seen[nseen]) && seen[nseen].size > 0)
			nseen++;
		if (round % 5 == 4)
			tear_wal(ldir, &seed);

		moat_ledger_opts_t opts = {.checkpoint_interval_ms = 10};
		moat_err_t rc = moat_ledger_open(ldir, &opts, &l, &err);
		CHECK_MSG(rc == MOAT_OK, "round %d: reopen: %s", round, err.msg);
		if (rc != MOAT_OK)
			break;
		uint64_t size = moat_ledger_size(l);
		CHECK_MSG(!any_acked || size > max_acked,
			  "round %d: size %llu but index %llu was acknowledged", round,
			  (unsigned long long)size, (unsigned long long)max_acked);
		CHECK_INT(moat_ledger_checkpoint_size(l), size); /* open integrates everything */
		uint64_t bad;
		CHECK_MSG(moat_ledger_verify(l, vkey, &bad, &err) == MOAT_OK,
			  "round %d: verify: %s", round, err.msg);
		seen_t now;
		CHECK(read_checkpoint(ldir, vkey, &now));
		CHECK_INT(now.size, size);
		for (size_t i = 0; i < nseen; i++) {
			uint8_t proof[MOAT_LEDGER_PROOF_MAX][32];
			size_t np = 0;
			CHECK_MSG(seen[i].size <= now.size, "round %d: tree shrank", round);
			bool ok =
			    moat_ledger_prove_consistency(l, seen[i].size, now.size, proof, &np,
							  &err) == MOAT_OK &&
			    moat_ledger_verify_consistency(seen[i].size, now.size, seen[i].root, 32,
							   now.root, 32, (uint8_t *)proof, np * 32);
			CHECK_MSG(ok, "round %d: checkpoint %llu not consistent with %llu", round,
				  (unsigned long long)now.size, (unsigned long long)seen[i].size);
		}
		if (now.size > 0)
			seen[nseen++] = now;
		moat_ledger_close(l);
	}
	printf("%d kills, %llu acknowledged appends, final size > %llu, %zu checkpoints "
	       "cross-checked, %.1f s\n",
	       ROUNDS, (unsigned long long)total_acks, (unsigned long long)max_acked, nseen,
	       (double)(moat_mono_ns() - t0) / 1e9);
	CHECK(total_acks > 0);
	free(seen);
	rm_rf(dir);
	free(dir);
	return check_done();
}
