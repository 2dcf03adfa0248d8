/*
 * The ledger: write-ahead file with group commit, background integration into
 * C2SP tiles, signed checkpoints, crash recovery, reads, proofs and verification.
 *
 * Layout under the ledger directory (docs/ledger.md has the bytes):
 *   key          Ed25519 signer key "PRIVATE+KEY+…" (0600)
 *   vkey         verifier key "origin+keyid+base64"
 *   checkpoint   latest signed checkpoint
 *   lock         flock'd by the read-write owner
 *   wal/<20-digit first index>   write-ahead files: records
 *                [u16 BE length][32-byte leaf hash][entry bytes]
 *   tile/…       C2SP tlog-tiles (hash tiles and entry bundles)
 *
 * Invariants:
 *  - every entry ever acknowledged by append is in a write-ahead file that was
 *    fsync'd before the acknowledgement;
 *  - a checkpoint of size S is written only after every tile and bundle for S is
 *    on disk (syncfs), and a write-ahead file is deleted only when a durable
 *    checkpoint covers all of its records;
 *  - tiles below the checkpoint size are never rewritten, so recovery (which
 *    restarts integration from the checkpoint's tiles and replays the write-ahead
 *    files) only ever extends the published tree.
 *
 * Locks (always taken in this order): integ_mu (integration state, the builder and
 * the write-ahead reader) → wal_mu (batches, durable size, write-ahead file list) →
 * state_mu (published checkpoint, background thread control).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ledger/tiles.h"

#define LEVELS 8   /* 256^8 = 2^64 entries */
#define WAL_HDR 34 /* u16 length + 32-byte leaf hash */
#define WALRD_BUF (1u << 20)
/* The write-ahead file is extended with zeros this much at a time, ahead of the
 * records: a group commit then overwrites allocated blocks, so its fdatasync
 * flushes data only, not the file size and block map through the journal (on
 * this project's test disk about half the latency). Zeros past the last record
 * read as the file's end (a zero length prefix is never a record). */
#define WAL_PREALLOC ((off_t)1 << 19)
#define DEFAULT_INTERVAL_MS 1000

/* ---- tile builder: the right edge of the tree, one partial tile per level -------- */

typedef struct builder_level {
	uint64_t index; /* tile index at this level */
	unsigned width; /* hashes held */
	bool dirty;	/* grew since its partial tile was last written */
	uint8_t h[TILE_W][MOAT_HASH_LEN];
} builder_level_t;

typedef moat_err_t (*on_full_fn)(void *ctx, int level, uint64_t index, uint8_t (*h)[MOAT_HASH_LEN],
				 moat_error_t *err);

typedef struct builder {
	lhash_t *h;
	on_full_fn on_full;
	void *ctx;
	builder_level_t lv[LEVELS];
} builder_t;

static moat_err_t builder_push(builder_t *b, const uint8_t leaf[MOAT_HASH_LEN], moat_error_t *err)
{
	uint8_t cur[MOAT_HASH_LEN];
	memcpy(cur, leaf, MOAT_HASH_LEN);
	for (int level = 0; level < LEVELS; level++) {
		builder_level_t *lv = &b->lv[level];
		memcpy(lv->h[lv->width++], cur, MOAT_HASH_LEN);
		lv->dirty = true;
		if (lv->width < TILE_W)
			return MOAT_OK;
		moat_err_t rc = b->on_full(b->ctx, level, lv->index, lv->h, err);
		if (rc != MOAT_OK)
			return rc;
		lhash_pow2(b->h, (const uint8_t(*)[MOAT_HASH_LEN])lv->h, TILE_W, cur);
		lv->index++;
		lv->width = 0;
		lv->dirty = false;
	}
	return moat_error_set(err, MOAT_ELIMIT, NULL, "ledger is full");
}

static void builder_root(builder_t *b, uint8_t out[MOAT_HASH_LEN])
{
	uint8_t sub[LEVELS * 8][MOAT_HASH_LEN];
	int k = 0;
	for (int level = LEVELS - 1; level >= 0; level--) {
		unsigned w = b->lv[level].width, off = 0;
		for (int j = 7; j >= 0; j--)
			if (w & (1u << j)) {
				lhash_pow2(b->h,
					   (const uint8_t(*)[MOAT_HASH_LEN])(b->lv[level].h + off),
					   (size_t)1 << j, sub[k++]);
				off += 1u << j;
			}
	}
	if (k == 0) {
		unsigned int n = 0;
		if (EVP_Digest("", 0, out, &n, b->h->md, NULL) != 1)
			memset(out, 0, MOAT_HASH_LEN);
		return;
	}
	uint8_t acc[MOAT_HASH_LEN];
	memcpy(acc, sub[k - 1], MOAT_HASH_LEN);
	for (int i = k - 2; i >= 0; i--)
		lhash_node(b->h, sub[i], acc, acc);
	memcpy(out, acc, MOAT_HASH_LEN);
}

/* Loads the right edge of the tree of `size` entries from stored tiles. */
static moat_err_t builder_load(builder_t *b, const char *dir, uint64_t size, moat_error_t *err)
{
	for (int level = 0; level < LEVELS; level++) {
		uint64_t count = size >> (8 * level);
		builder_level_t *lv = &b->lv[level];
		lv->index = count / TILE_W;
		lv->width = (unsigned)(count % TILE_W);
		lv->dirty = false;
		if (lv->width > 0) {
			moat_err_t rc =
			    tile_read_hashes(dir, level, lv->index, lv->width, lv->h, err);
			if (rc != MOAT_OK)
				return rc;
		}
	}
	return MOAT_OK;
}

/* ---- write-ahead reader --------------------------------------------------------- */

typedef struct walrd {
	int fd;
	uint64_t first; /* first index of the open file */
	uint64_t next;	/* index of the next record */
	off_t boff;	/* file offset of buf[0] */
	uint8_t *buf;
	size_t len, pos;
} walrd_t;

/* REC_ZERO: a zero length prefix, the preallocated zeros past the last record
 * (or a torn write whose first bytes never reached the disk). */
enum { REC_OK = 1, REC_EOF = 0, REC_TORN = -1, REC_IOERR = -2, REC_ZERO = -3 };

static void walrd_close(walrd_t *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

static moat_err_t walrd_open(walrd_t *r, const char *waldir, uint64_t first, moat_error_t *err)
{
	char path[4096];
	walrd_close(r);
	snprintf(path, sizeof path, "%s/%020" PRIu64, waldir, first);
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		return moat_error_set(err, MOAT_EIO, NULL, "cannot open write-ahead file %s: %s",
				      path, strerror(errno));
	r->first = first;
	r->next = first;
	r->boff = 0;
	r->len = r->pos = 0;
	if (!r->buf && !(r->buf = malloc(WALRD_BUF + WAL_HDR + MOAT_ENTRY_MAX)))
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	return MOAT_OK;
}

/* Ensures `need` bytes are buffered; returns how many are (may be fewer at EOF). */
static ssize_t walrd_fill(walrd_t *r, size_t need)
{
	if (r->len - r->pos >= need)
		return (ssize_t)(r->len - r->pos);
	memmove(r->buf, r->buf + r->pos, r->len - r->pos);
	r->boff += (off_t)r->pos;
	r->len -= r->pos;
	r->pos = 0;
	size_t cap = WALRD_BUF + WAL_HDR + MOAT_ENTRY_MAX;
	while (r->len < need) {
		ssize_t n = pread(r->fd, r->buf + r->len, cap - r->len, r->boff + (off_t)r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		r->len += (size_t)n;
	}
	return (ssize_t)r->len;
}

/* Next record; *at receives its file offset. */
static int walrd_record(walrd_t *r, const uint8_t **data, size_t *len, const uint8_t **hash,
			off_t *at)
{
	*at = r->boff + (off_t)r->pos;
	ssize_t have = walrd_fill(r, WAL_HDR);
	if (have < 0)
		return REC_IOERR;
	if (have == 0)
		return REC_EOF;
	if (have < WAL_HDR)
		return REC_TORN;
	size_t el = ((size_t)r->buf[r->pos] << 8) | r->buf[r->pos + 1];
	if (el == 0)
		return REC_ZERO;
	have = walrd_fill(r, WAL_HDR + el);
	if (have < 0)
		return REC_IOERR;
	if ((size_t)have < WAL_HDR + el)
		return REC_TORN;
	*hash = r->buf + r->pos + 2;
	*data = r->buf + r->pos + WAL_HDR;
	*len = el;
	r->pos += WAL_HDR + el;
	r->next++;
	return REC_OK;
}

/* ---- the ledger ----------------------------------------------------------------- */

/* An asynchronous appender waiting on a batch: told once the batch is durable. */
typedef struct batch_cb {
	moat_ledger_done_fn fn;
	void *ctx;
	size_t pos; /* its first record's position in the batch */
} batch_cb_t;

/* A group of records written and synced together. refs counts the synchronous
 * appenders waiting on it, plus its leader while that runs the callbacks; the
 * last one out recycles it. */
typedef struct batch {
	moat_buf_t buf;
	size_t count;
	bool done;
	moat_err_t status;
	uint64_t first;
	int refs;
	batch_cb_t *cbs;
	size_t n_cbs, cap_cbs;
	uint64_t seq;		    /* groups led before it, plus one */
	struct batch *prev, *next; /* in the unanswered list while led and unanswered */
} batch_t;

struct moat_ledger {
	char dir[2048];
	char waldir[2100];
	bool readonly;
	int interval_ms;
	lkey_t key;
	int lock_fd;
	int dir_fd;
	EVP_MD *md; /* shared, read-only */

	/* append side (wal_mu) */
	pthread_mutex_t wal_mu;
	pthread_cond_t wal_cv;
	batch_t *cur;
	batch_t *spare; /* a finished batch kept to reuse its buffer's pages */
	/* Groups led and not yet answered, oldest first: groups are led in turn
	 * but answered in any order (a group's callbacks may still run while the
	 * next one is written and answered). */
	batch_t *unanswered, *unanswered_tail;
	uint64_t led; /* groups led so far: the seq of the latest */
	bool flushing, rotate;
	/* The committer thread leads groups that hold asynchronous appends (a
	 * synchronous appender leads its own); started by the first such append. */
	pthread_cond_t commit_cv;
	pthread_t committer;
	bool committer_started, commit_stop;
	uint64_t groups, grouped; /* groups synced, entries in them */
	atomic_bool broken;
	atomic_bool fail_writes;
	uint64_t durable;
	int wal_fd;	     /* leader only */
	uint64_t wal_first;  /* leader only */
	off_t wal_off;	     /* leader only */
	off_t wal_alloc;     /* leader only: the file's size, zeros past wal_off */
	uint64_t *wal_files; /* first index of each write-ahead file, ascending */
	size_t n_wal_files, cap_wal_files;

	/* integration (integ_mu) */
	pthread_mutex_t integ_mu;
	lhash_t ih;
	builder_t b;
	moat_buf_t bundle;
	unsigned bundle_n;
	uint64_t bundle_index;
	bool bundle_dirty;
	uint64_t integrated;
	walrd_t rd;
	bool integ_failed;
	uint64_t (*full_done)[2]; /* (level, index) of tiles filled this round */
	size_t n_full_done, cap_full_done;

	/* published state (state_mu) */
	pthread_mutex_t state_mu;
	pthread_cond_t thr_cv;
	uint64_t cp_size;
	uint8_t cp_root[MOAT_HASH_LEN];
	char *cp_text;
	size_t cp_len;
	bool stopping;
	pthread_t thr;
	bool thr_started;
};

/* Writes a tile or bundle under its final name via a temporary file and rename,
 * so a reader (or a recovery after a kill) never sees a half-written tile. Not
 * synced here: integrate_locked syncs the whole file system once per round. */
static moat_err_t write_rel(moat_ledger_t *l, const char *rel, const void *data, size_t len,
			    moat_error_t *err)
{
	char path[4096], tmp[4200];
	if (snprintf(path, sizeof path, "%s/%s", l->dir, rel) >= (int)sizeof path)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "path too long");
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 && errno == ENOENT) {
		char parent[4096];
		snprintf(parent, sizeof parent, "%s", path);
		*strrchr(parent, '/') = '\0';
		moat_err_t rc = moat_mkdirs(parent, 0755, err);
		if (rc != MOAT_OK)
			return rc;
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	}
	if (fd < 0)
		return moat_error_set(err, MOAT_EIO, NULL, "cannot create %s: %s", tmp,
				      strerror(errno));
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			unlink(tmp);
			return moat_error_set(err, MOAT_EIO, NULL, "cannot write %s: %s", path,
					      strerror(e));
		}
		p += n;
		len -= (size_t)n;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return moat_error_set(err, MOAT_EIO, NULL, "cannot write %s: %s", path,
				      strerror(e));
	}
	return MOAT_OK;
}

/* Remembers a tile (level -1: entry bundle) that became full this round, so its
 * partial versions can be removed once the checkpoint is published. */
static moat_err_t note_full(moat_ledger_t *l, int level, uint64_t index, moat_error_t *err)
{
	if (l->n_full_done == l->cap_full_done) {
		size_t nc = l->cap_full_done ? l->cap_full_done * 2 : 64;
		void *p = realloc(l->full_done, nc * sizeof *l->full_done);
		if (!p)
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		l->full_done = p;
		l->cap_full_done = nc;
	}
	l->full_done[l->n_full_done][0] = (uint64_t)(level + 1);
	l->full_done[l->n_full_done][1] = index;
	l->n_full_done++;
	return MOAT_OK;
}

static moat_err_t on_full_write(void *ctx, int level, uint64_t index, uint8_t (*h)[MOAT_HASH_LEN],
				moat_error_t *err)
{
	moat_ledger_t *l = ctx;
	char rel[128];
	moat_ledger_tile_path(level, index, TILE_W, rel, sizeof rel);
	moat_err_t rc = write_rel(l, rel, h, TILE_W * MOAT_HASH_LEN, err);
	return rc == MOAT_OK ? note_full(l, level, index, err) : rc;
}

/* Removes the partial versions of a tile wider than keep (0: all of them, once
 * the tile is full). */
static void remove_partials_above(moat_ledger_t *l, int level, uint64_t index, unsigned keep)
{
	char rel[128], path[4096];
	moat_ledger_tile_path(level, index, TILE_W, rel, sizeof rel);
	snprintf(path, sizeof path, "%s/%s.p", l->dir, rel);
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strtoul(de->d_name, NULL, 10) <= keep)
			continue;
		char f[4400];
		snprintf(f, sizeof f, "%s/%s", path, de->d_name);
		unlink(f);
	}
	closedir(d);
	if (keep == 0)
		rmdir(path);
}

static moat_err_t bundle_add(moat_ledger_t *l, const uint8_t *data, size_t len, moat_error_t *err)
{
	uint8_t pfx[2] = {(uint8_t)(len >> 8), (uint8_t)len};
	if (moat_buf_append(&l->bundle, pfx, 2) != MOAT_OK ||
	    moat_buf_append(&l->bundle, data, len) != MOAT_OK)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	l->bundle_dirty = true;
	if (++l->bundle_n < TILE_W)
		return MOAT_OK;
	char rel[128];
	moat_ledger_tile_path(-1, l->bundle_index, TILE_W, rel, sizeof rel);
	moat_err_t rc = write_rel(l, rel, l->bundle.data, l->bundle.len, err);
	if (rc != MOAT_OK)
		return rc;
	if ((rc = note_full(l, -1, l->bundle_index, err)) != MOAT_OK)
		return rc;
	moat_buf_reset(&l->bundle);
	l->bundle_n = 0;
	l->bundle_index++;
	l->bundle_dirty = false;
	return MOAT_OK;
}

static moat_err_t publish(moat_ledger_t *l, uint64_t size, moat_error_t *err)
{
	uint8_t root[MOAT_HASH_LEN];
	builder_root(&l->b, root);
	moat_buf_t note;
	moat_buf_init(&note, MOAT_LEDGER_NOTE_MAX);
	moat_err_t rc = lkey_sign_checkpoint(&l->key, size, root, &note, err);
	char path[4096];
	snprintf(path, sizeof path, "%s/checkpoint", l->dir);
	if (rc == MOAT_OK)
		rc = moat_file_write_atomic(path, note.data, note.len, 0644, err);
	if (rc != MOAT_OK) {
		moat_buf_free(&note);
		return rc;
	}
	pthread_mutex_lock(&l->state_mu);
	free(l->cp_text);
	l->cp_len = note.len;
	l->cp_text = moat_buf_take(&note);
	l->cp_size = size;
	memcpy(l->cp_root, root, MOAT_HASH_LEN);
	pthread_mutex_unlock(&l->state_mu);
	return MOAT_OK;
}

static bool wal_file_for(moat_ledger_t *l, uint64_t next, uint64_t cur_first)
{
	bool found = false;
	pthread_mutex_lock(&l->wal_mu);
	for (size_t i = 0; i < l->n_wal_files; i++)
		if (l->wal_files[i] == next && next != cur_first)
			found = true;
	pthread_mutex_unlock(&l->wal_mu);
	return found;
}

/* Integrates every durable entry, writes tiles, syncs and signs a checkpoint.
 * Caller holds integ_mu. */
static moat_err_t integrate_locked(moat_ledger_t *l, bool force_publish, moat_error_t *err)
{
	if (l->integ_failed)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL,
				      "ledger integration failed earlier; reopen the ledger");
	pthread_mutex_lock(&l->wal_mu);
	uint64_t target = l->durable;
	pthread_mutex_unlock(&l->wal_mu);
	if (target == l->integrated && !force_publish)
		return MOAT_OK;
	moat_err_t rc = MOAT_OK;
	l->n_full_done = 0;
	while (l->rd.next < target) {
		if (l->rd.pos == l->rd.len && wal_file_for(l, l->rd.next, l->rd.first)) {
			rc = walrd_open(&l->rd, l->waldir, l->rd.next, err);
			if (rc != MOAT_OK)
				goto fail;
		}
		const uint8_t *data, *hash;
		size_t len;
		off_t at;
		uint64_t idx = l->rd.next;
		int r = walrd_record(&l->rd, &data, &len, &hash, &at);
		if (r != REC_OK) {
			rc = moat_error_set(
			    err, MOAT_EIO, NULL,
			    "cannot read entry %" PRIu64 " from the write-ahead file", idx);
			goto fail;
		}
		if (idx < l->integrated)
			continue;
		if ((rc = bundle_add(l, data, len, err)) != MOAT_OK ||
		    (rc = builder_push(&l->b, hash, err)) != MOAT_OK)
			goto fail;
		l->integrated = idx + 1;
	}
	/* Bytes buffered past the last durable record may belong to a write that later
	 * failed and was cut; never keep them across rounds. */
	l->rd.boff += (off_t)l->rd.pos;
	l->rd.len = l->rd.pos = 0;
	/* Partial tiles and bundle for the new size. */
	for (int level = 0; level < LEVELS; level++) {
		builder_level_t *lv = &l->b.lv[level];
		if (!lv->dirty || lv->width == 0)
			continue;
		char rel[128];
		moat_ledger_tile_path(level, lv->index, lv->width, rel, sizeof rel);
		if ((rc = write_rel(l, rel, lv->h, (size_t)lv->width * MOAT_HASH_LEN, err)) !=
		    MOAT_OK)
			goto fail;
		lv->dirty = false;
	}
	if (l->bundle_dirty && l->bundle_n > 0) {
		char rel[128];
		moat_ledger_tile_path(-1, l->bundle_index, l->bundle_n, rel, sizeof rel);
		if ((rc = write_rel(l, rel, l->bundle.data, l->bundle.len, err)) != MOAT_OK)
			goto fail;
		l->bundle_dirty = false;
	}
	/* One sync for all tiles and directories, before the checkpoint names them. */
	if (syncfs(l->dir_fd) != 0) {
		rc = moat_error_set(err, MOAT_EIO, NULL, "cannot sync the ledger tiles: %s",
				    strerror(errno));
		goto fail;
	}
	if ((rc = publish(l, l->integrated, err)) != MOAT_OK)
		goto fail;
	/* The checkpoint is durable: drop covered write-ahead files, ask the next
	 * writer to start a new one, tidy superseded partial tiles. */
	uint64_t drop[64];
	size_t ndrop = 0;
	pthread_mutex_lock(&l->wal_mu);
	l->rotate = true;
	while (l->n_wal_files > 1 && l->wal_files[1] <= l->integrated &&
	       l->wal_files[0] != l->rd.first && ndrop < MOAT_ARRAY_LEN(drop)) {
		drop[ndrop++] = l->wal_files[0];
		memmove(l->wal_files, l->wal_files + 1, (l->n_wal_files - 1) * sizeof(uint64_t));
		l->n_wal_files--;
	}
	pthread_mutex_unlock(&l->wal_mu);
	for (size_t i = 0; i < ndrop; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%020" PRIu64, l->waldir, drop[i]);
		unlink(path);
	}
	for (size_t i = 0; i < l->n_full_done; i++)
		remove_partials_above(l, (int)l->full_done[i][0] - 1, l->full_done[i][1], 0);
	l->n_full_done = 0;
	return MOAT_OK;
fail:
	l->integ_failed = true;
	moat_log(MOAT_LOG_ERROR, "ledger_integrate_failed", "%s", err ? err->msg : "error");
	return rc;
}

static void *integrator_main(void *arg)
{
	moat_ledger_t *l = arg;
	pthread_mutex_lock(&l->state_mu);
	while (!l->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += l->interval_ms / 1000;
		ts.tv_nsec += (long)(l->interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&l->thr_cv, &l->state_mu, &ts);
		if (l->stopping)
			break;
		pthread_mutex_unlock(&l->state_mu);
		moat_error_t e;
		pthread_mutex_lock(&l->integ_mu);
		if (!l->integ_failed)
			(void)integrate_locked(l, false, &e);
		pthread_mutex_unlock(&l->integ_mu);
		pthread_mutex_lock(&l->state_mu);
	}
	pthread_mutex_unlock(&l->state_mu);
	return NULL;
}

/* ---- create / open / close ------------------------------------------------------ */

static moat_err_t empty_root(uint8_t out[MOAT_HASH_LEN])
{
	unsigned int n = 0;
	return EVP_Digest("", 0, out, &n, EVP_sha256(), NULL) == 1 ? MOAT_OK : MOAT_ECRYPTO;
}

moat_err_t moat_ledger_create(const char *dir, const char *origin, moat_error_t *err)
{
	char path[4096];
	struct stat st;
	if (strlen(dir) > 1900)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "ledger directory path too long");
	snprintf(path, sizeof path, "%s/checkpoint", dir);
	char kpath[4096];
	snprintf(kpath, sizeof kpath, "%s/key", dir);
	if (stat(path, &st) == 0 || stat(kpath, &st) == 0)
		return moat_error_set(err, MOAT_EEXIST, NULL, "%s already holds a ledger", dir);
	lkey_t k;
	char *keyfile = NULL;
	moat_err_t rc = lkey_generate(origin, &k, &keyfile, err);
	if (rc != MOAT_OK)
		return rc;
	char sub[4096];
	if ((rc = moat_mkdirs(dir, 0700, err)) != MOAT_OK)
		goto done;
	chmod(dir, 0700);
	snprintf(sub, sizeof sub, "%s/wal", dir);
	if ((rc = moat_mkdirs(sub, 0700, err)) != MOAT_OK)
		goto done;
	snprintf(sub, sizeof sub, "%s/tile", dir);
	if ((rc = moat_mkdirs(sub, 0755, err)) != MOAT_OK)
		goto done;
	if ((rc = moat_file_write_atomic(kpath, keyfile, strlen(keyfile), 0600, err)) != MOAT_OK)
		goto done;
	snprintf(sub, sizeof sub, "%s/vkey", dir);
	char vk[MOAT_LEDGER_VKEY_MAX + 2];
	snprintf(vk, sizeof vk, "%s\n", k.vkey);
	if ((rc = moat_file_write_atomic(sub, vk, strlen(vk), 0644, err)) != MOAT_OK)
		goto done;
	uint8_t root[MOAT_HASH_LEN];
	if ((rc = empty_root(root)) != MOAT_OK) {
		moat_error_set(err, rc, NULL, "SHA-256 failed");
		goto done;
	}
	moat_buf_t note;
	moat_buf_init(&note, MOAT_LEDGER_NOTE_MAX);
	rc = lkey_sign_checkpoint(&k, 0, root, &note, err);
	if (rc == MOAT_OK)
		rc = moat_file_write_atomic(path, note.data, note.len, 0644, err);
	moat_buf_free(&note);
done:
	if (keyfile) {
		memset(keyfile, 0, strlen(keyfile));
		free(keyfile);
	}
	lkey_free(&k);
	return rc;
}

/* Reads and verifies <dir>/checkpoint into cp_*. */
static moat_err_t load_checkpoint(moat_ledger_t *l, moat_error_t *err)
{
	char path[4096], *text = NULL;
	size_t len = 0;
	snprintf(path, sizeof path, "%s/checkpoint", l->dir);
	moat_err_t rc = moat_file_read(path, MOAT_LEDGER_NOTE_MAX, &text, &len, err);
	if (rc != MOAT_OK)
		return rc;
	moat_checkpoint_t cp;
	moat_error_t e;
	rc = moat_ledger_checkpoint_verify(text, len, l->key.vkey, &cp, &e);
	if (rc != MOAT_OK) {
		free(text);
		return moat_error_set(err, MOAT_ECORRUPT, NULL, "checkpoint does not verify: %s",
				      e.msg);
	}
	pthread_mutex_lock(&l->state_mu);
	free(l->cp_text);
	l->cp_text = text;
	l->cp_len = len;
	l->cp_size = cp.size;
	memcpy(l->cp_root, cp.root, MOAT_HASH_LEN);
	pthread_mutex_unlock(&l->state_mu);
	return MOAT_OK;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static moat_err_t add_wal_file(moat_ledger_t *l, uint64_t first)
{
	if (l->n_wal_files == l->cap_wal_files) {
		size_t nc = l->cap_wal_files ? l->cap_wal_files * 2 : 16;
		void *p = realloc(l->wal_files, nc * sizeof(uint64_t));
		if (!p)
			return MOAT_ENOMEM;
		l->wal_files = p;
		l->cap_wal_files = nc;
	}
	l->wal_files[l->n_wal_files++] = first;
	return MOAT_OK;
}

static moat_err_t wal_create(moat_ledger_t *l, uint64_t first, moat_error_t *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%020" PRIu64, l->waldir, first);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL,
				      "cannot create write-ahead file: %s", strerror(errno));
	if (moat_fsync_dir(l->waldir) != MOAT_OK) {
		close(fd);
		return moat_error_set(err, MOAT_EUNAVAIL, NULL,
				      "cannot sync the write-ahead directory");
	}
	if (l->wal_fd >= 0) {
		/* The old file ends at its last record (tidiness only: a zero tail in
		 * an older file reads as its end on recovery). */
		if (l->wal_alloc > l->wal_off && ftruncate(l->wal_fd, l->wal_off) != 0)
			moat_log(MOAT_LOG_WARN, "ledger_wal",
				 "cannot cut the preallocated tail: %s", strerror(errno));
		close(l->wal_fd);
	}
	l->wal_fd = fd;
	l->wal_first = first;
	l->wal_off = 0;
	l->wal_alloc = 0;
	return MOAT_OK;
}

/* Scans the write-ahead files, cuts a torn tail, sets durable and positions the
 * reader at the first file needed to integrate from the checkpoint. */
static moat_err_t recover_wal(moat_ledger_t *l, moat_error_t *err)
{
	uint64_t S = l->cp_size;
	DIR *d = opendir(l->waldir);
	if (!d)
		return moat_error_set(err, MOAT_EIO, NULL, "cannot open %s: %s", l->waldir,
				      strerror(errno));
	struct dirent *de;
	moat_err_t rc = MOAT_OK;
	while ((de = readdir(d)) != NULL) {
		if (strlen(de->d_name) != 20 || strspn(de->d_name, "0123456789") != 20)
			continue;
		if (add_wal_file(l, strtoull(de->d_name, NULL, 10)) != MOAT_OK) {
			closedir(d);
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		}
	}
	closedir(d);
	if (l->n_wal_files > 1)
		qsort(l->wal_files, l->n_wal_files, sizeof(uint64_t), cmp_u64);
	/* Files wholly below the checkpoint are obsolete. */
	size_t start = 0;
	while (start + 1 < l->n_wal_files && l->wal_files[start + 1] <= S)
		start++;
	if (l->n_wal_files == 0 || l->wal_files[start] > S) {
		if (l->n_wal_files > 0 && l->wal_files[0] > S)
			return moat_error_set(err, MOAT_ECORRUPT, NULL,
					      "write-ahead files start at entry %" PRIu64
					      " but the checkpoint covers only %" PRIu64,
					      l->wal_files[0], S);
		l->n_wal_files = 0;
		if ((rc = wal_create(l, S, err)) != MOAT_OK || add_wal_file(l, S) != MOAT_OK)
			return rc ? rc : MOAT_ENOMEM;
		l->durable = S;
		l->rd.next = S;
		return walrd_open(&l->rd, l->waldir, S, err);
	}
	for (size_t i = 0; i < start; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%020" PRIu64, l->waldir, l->wal_files[i]);
		unlink(path);
	}
	memmove(l->wal_files, l->wal_files + start, (l->n_wal_files - start) * sizeof(uint64_t));
	l->n_wal_files -= start;

	lhash_t *h = &l->ih;
	uint64_t idx = l->wal_files[0];
	walrd_t r = {.fd = -1};
	for (size_t f = 0; f < l->n_wal_files; f++) {
		bool last = f + 1 == l->n_wal_files;
		if (l->wal_files[f] != idx) {
			rc = moat_error_set(err, MOAT_ECORRUPT, NULL,
					    "write-ahead file %020" PRIu64
					    " does not follow entry %" PRIu64,
					    l->wal_files[f], idx);
			goto out;
		}
		if ((rc = walrd_open(&r, l->waldir, idx, err)) != MOAT_OK)
			goto out;
		off_t end = 0;
		for (;;) {
			const uint8_t *data, *hash;
			size_t len;
			off_t at;
			int res = walrd_record(&r, &data, &len, &hash, &at);
			bool bad = res == REC_TORN;
			if (res == REC_OK && idx >= S) {
				uint8_t hh[MOAT_HASH_LEN];
				lhash_leaf(h, data, len, hh);
				bad = memcmp(hh, hash, MOAT_HASH_LEN) != 0;
			}
			if (res == REC_IOERR) {
				rc = moat_error_set(err, MOAT_EIO, NULL,
						    "cannot read write-ahead file");
				goto out;
			}
			if (res == REC_EOF || (res == REC_ZERO && !last)) {
				/* An older file's zero tail: it ends there; the next file
				 * must start at idx, checked above. */
				end = at;
				break;
			}
			if (bad || res == REC_ZERO) {
				if (!last) {
					rc = moat_error_set(err, MOAT_ECORRUPT, NULL,
							    "write-ahead record for entry %" PRIu64
							    " is damaged",
							    idx);
					goto out;
				}
				end = at;
				if (res == REC_ZERO)
					moat_log(MOAT_LOG_INFO, "ledger_recover",
						 "cut the write-ahead file's zero tail at entry %" PRIu64,
						 idx);
				else
					moat_log(MOAT_LOG_WARN, "ledger_recover",
						 "cut a torn write-ahead tail at entry %" PRIu64, idx);
				char path[4096];
				snprintf(path, sizeof path, "%s/%020" PRIu64, l->waldir,
					 l->wal_files[f]);
				int fd = open(path, O_RDWR | O_CLOEXEC);
				if (fd < 0 || ftruncate(fd, at) != 0 || fsync(fd) != 0) {
					if (fd >= 0)
						close(fd);
					rc = moat_error_set(err, MOAT_EIO, NULL,
							    "cannot cut the torn write-ahead tail");
					goto out;
				}
				close(fd);
				break;
			}
			idx++;
		}
		if (last) {
			char path[4096];
			snprintf(path, sizeof path, "%s/%020" PRIu64, l->waldir, l->wal_files[f]);
			l->wal_fd = open(path, O_RDWR | O_CLOEXEC);
			if (l->wal_fd < 0) {
				rc = moat_error_set(err, MOAT_EIO, NULL, "cannot open %s", path);
				goto out;
			}
			l->wal_first = l->wal_files[f];
			l->wal_off = end;
			l->wal_alloc = end;
		}
	}
	if (idx < S) {
		/* The checkpoint's tiles hold entries the write-ahead files lost (only
		 * possible if they were removed by hand); continue from the tiles. */
		moat_log(MOAT_LOG_WARN, "ledger_recover",
			 "write-ahead files end at %" PRIu64 " below checkpoint %" PRIu64, idx, S);
		if ((rc = wal_create(l, S, err)) != MOAT_OK || (rc = add_wal_file(l, S)) != MOAT_OK)
			goto out;
		idx = S;
	}
	l->durable = idx;
	rc = walrd_open(&l->rd, l->waldir, l->wal_files[0], err);
out:
	walrd_close(&r);
	free(r.buf);
	return rc;
}

static void ledger_free(moat_ledger_t *l)
{
	if (!l)
		return;
	if (l->wal_fd >= 0)
		close(l->wal_fd);
	if (l->lock_fd >= 0)
		close(l->lock_fd);
	if (l->dir_fd >= 0)
		close(l->dir_fd);
	walrd_close(&l->rd);
	free(l->rd.buf);
	batch_t *bs[2] = {l->cur, l->spare};
	for (int i = 0; i < 2; i++)
		if (bs[i]) {
			moat_buf_free(&bs[i]->buf);
			free(bs[i]->cbs);
			free(bs[i]);
		}
	free(l->wal_files);
	free(l->full_done);
	free(l->cp_text);
	moat_buf_free(&l->bundle);
	lhash_free(&l->ih);
	EVP_MD_free(l->md);
	lkey_free(&l->key);
	pthread_mutex_destroy(&l->wal_mu);
	pthread_mutex_destroy(&l->integ_mu);
	pthread_mutex_destroy(&l->state_mu);
	pthread_cond_destroy(&l->wal_cv);
	pthread_cond_destroy(&l->commit_cv);
	pthread_cond_destroy(&l->thr_cv);
	free(l);
}

moat_err_t moat_ledger_open(const char *dir, const moat_ledger_opts_t *opts, moat_ledger_t **out,
			    moat_error_t *err)
{
	*out = NULL;
	if (strlen(dir) > 1900)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "ledger directory path too long");
	moat_ledger_t *l = calloc(1, sizeof *l);
	if (!l)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	l->wal_fd = l->lock_fd = l->dir_fd = -1;
	l->rd.fd = -1;
	pthread_mutex_init(&l->wal_mu, NULL);
	pthread_mutex_init(&l->integ_mu, NULL);
	pthread_mutex_init(&l->state_mu, NULL);
	pthread_cond_init(&l->wal_cv, NULL);
	pthread_cond_init(&l->commit_cv, NULL);
	pthread_cond_init(&l->thr_cv, NULL);
	snprintf(l->dir, sizeof l->dir, "%s", dir);
	snprintf(l->waldir, sizeof l->waldir, "%s/wal", dir);
	l->readonly = opts && opts->readonly;
	l->interval_ms = opts && opts->checkpoint_interval_ms > 0 ? opts->checkpoint_interval_ms
								  : DEFAULT_INTERVAL_MS;
	moat_buf_init(&l->bundle, TILE_BUNDLE_MAX);
	moat_err_t rc;
	char path[4096], *text = NULL;
	size_t len;
	l->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!l->md || lhash_init(&l->ih) != MOAT_OK) {
		rc = moat_error_set(err, MOAT_ECRYPTO, NULL, "SHA-256 unavailable");
		goto fail;
	}
	l->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dir_fd < 0) {
		rc = moat_error_set(err, errno == ENOENT ? MOAT_ENOTFOUND : MOAT_EIO, NULL,
				    "cannot open ledger directory %s: %s", dir, strerror(errno));
		goto fail;
	}
	if (l->readonly) {
		snprintf(path, sizeof path, "%s/vkey", dir);
		moat_error_t e;
		rc = moat_file_read(path, 4096, &text, &len, &e);
		if (rc != MOAT_OK) {
			rc = moat_error_set(err, rc == MOAT_ENOTFOUND ? MOAT_ENOTFOUND : rc, NULL,
					    "no ledger in %s (%s)", dir, e.msg);
			goto fail;
		}
		rc = lkey_parse_vkey(text, &l->key, err);
		free(text);
		if (rc != MOAT_OK)
			goto fail;
		if ((rc = load_checkpoint(l, err)) != MOAT_OK)
			goto fail;
		*out = l;
		return MOAT_OK;
	}
	snprintf(path, sizeof path, "%s/key", dir);
	rc = moat_file_read(path, 4096, &text, &len, err);
	if (rc != MOAT_OK) {
		if (rc == MOAT_ENOTFOUND)
			moat_error_set(err, rc, NULL, "no ledger in %s", dir);
		goto fail;
	}
	rc = lkey_parse_private(text, len, &l->key, err);
	memset(text, 0, len);
	free(text);
	if (rc != MOAT_OK)
		goto fail;
	snprintf(path, sizeof path, "%s/lock", dir);
	l->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (l->lock_fd < 0 || flock(l->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = moat_error_set(err, MOAT_ECONFLICT, NULL,
				    "the ledger in %s is open in another process", dir);
		goto fail;
	}
	if ((rc = load_checkpoint(l, err)) != MOAT_OK)
		goto fail;
	/* Right edge of the published tree, checked against the signed root. */
	l->b.h = &l->ih;
	l->b.on_full = on_full_write;
	l->b.ctx = l;
	if ((rc = builder_load(&l->b, dir, l->cp_size, err)) != MOAT_OK)
		goto fail;
	uint8_t root[MOAT_HASH_LEN];
	builder_root(&l->b, root);
	if (memcmp(root, l->cp_root, MOAT_HASH_LEN) != 0) {
		rc = moat_error_set(err, MOAT_ECORRUPT, NULL,
				    "stored tiles do not match the signed checkpoint root");
		goto fail;
	}
	/* A round interrupted by a crash may have left partial tiles wider than the
	 * checkpoint; they are rewritten from the write-ahead files, never trusted. */
	for (int level = 0; level < LEVELS; level++)
		remove_partials_above(l, level, l->b.lv[level].index, l->b.lv[level].width);
	remove_partials_above(l, -1, l->cp_size / TILE_W, (unsigned)(l->cp_size % TILE_W));
	l->integrated = l->cp_size;
	l->bundle_index = l->cp_size / TILE_W;
	l->bundle_n = (unsigned)(l->cp_size % TILE_W);
	if (l->bundle_n > 0) {
		uint32_t offs[TILE_W + 1];
		if ((rc = tile_read_bundle(dir, l->bundle_index, l->bundle_n, &l->bundle, offs,
					   err)) != MOAT_OK)
			goto fail;
		l->bundle.len = offs[l->bundle_n]; /* drop entries beyond the checkpoint */
	}
	if ((rc = recover_wal(l, err)) != MOAT_OK)
		goto fail;
	if (l->durable > l->integrated) {
		pthread_mutex_lock(&l->integ_mu);
		rc = integrate_locked(l, false, err);
		pthread_mutex_unlock(&l->integ_mu);
		if (rc != MOAT_OK)
			goto fail;
	}
	if (pthread_create(&l->thr, NULL, integrator_main, l) != 0) {
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "cannot start the ledger thread");
		goto fail;
	}
	l->thr_started = true;
	*out = l;
	return MOAT_OK;
fail:
	ledger_free(l);
	return rc;
}

void moat_ledger_close(moat_ledger_t *l)
{
	if (!l)
		return;
	/* Deferred appends nobody flushed are written now; the committer leaves
	 * once every asynchronous append is answered. */
	if (!l->readonly)
		moat_ledger_flush(l);
	pthread_mutex_lock(&l->wal_mu);
	bool committer = l->committer_started;
	l->commit_stop = true;
	pthread_cond_signal(&l->commit_cv);
	pthread_mutex_unlock(&l->wal_mu);
	if (committer)
		pthread_join(l->committer, NULL);
	if (l->thr_started) {
		pthread_mutex_lock(&l->state_mu);
		l->stopping = true;
		pthread_cond_signal(&l->thr_cv);
		pthread_mutex_unlock(&l->state_mu);
		pthread_join(l->thr, NULL);
	}
	/* No appender is left: end the write-ahead file at its last record. */
	if (!l->readonly && l->wal_fd >= 0 && l->wal_alloc > l->wal_off &&
	    ftruncate(l->wal_fd, l->wal_off) == 0)
		l->wal_alloc = l->wal_off;
	if (!l->readonly) {
		moat_error_t e;
		pthread_mutex_lock(&l->integ_mu);
		if (!l->integ_failed && integrate_locked(l, false, &e) != MOAT_OK)
			moat_log(MOAT_LOG_ERROR, "ledger_close", "final integration failed: %s",
				 e.msg);
		pthread_mutex_unlock(&l->integ_mu);
	}
	ledger_free(l);
}

/* ---- append ------------------------------------------------------------------------ */

/* Extends the write-ahead file with zeros to past `need` (WAL_PREALLOC at a
 * time); the next fdatasync makes the new size durable. On failure (a full
 * disk) the file is cut back to its last record and the records are written
 * without preallocation, failing as before if the disk is really full. Leader
 * only. */
static void wal_extend(moat_ledger_t *l, off_t need)
{
	static const char zeros[1 << 16];
	off_t to = (need / WAL_PREALLOC + 1) * WAL_PREALLOC;
	off_t at = l->wal_alloc > l->wal_off ? l->wal_alloc : l->wal_off;
	while (at < to) {
		size_t n = (size_t)(to - at) < sizeof zeros ? (size_t)(to - at) : sizeof zeros;
		ssize_t w = pwrite(l->wal_fd, zeros, n, at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (ftruncate(l->wal_fd, l->wal_off) != 0)
				l->broken = true;
			l->wal_alloc = l->wal_off;
			return;
		}
		at += w;
	}
	l->wal_alloc = to;
}

/* Writes a whole batch at wal_off and syncs it. Leader only. */
static moat_err_t flush_batch(moat_ledger_t *l, batch_t *b, uint64_t base, bool rotate)
{
	if (atomic_load(&l->fail_writes))
		return MOAT_EUNAVAIL;
	if (rotate && l->wal_first != base) {
		moat_error_t e;
		if (wal_create(l, base, &e) != MOAT_OK) {
			moat_log(MOAT_LOG_ERROR, "ledger_wal", "%s", e.msg);
			return MOAT_EUNAVAIL;
		}
		pthread_mutex_lock(&l->wal_mu);
		moat_err_t rc = add_wal_file(l, base);
		pthread_mutex_unlock(&l->wal_mu);
		if (rc != MOAT_OK)
			return MOAT_EUNAVAIL;
	}
	if (l->wal_off + (off_t)b->buf.len > l->wal_alloc)
		wal_extend(l, l->wal_off + (off_t)b->buf.len);
	const char *p = b->buf.data;
	size_t left = b->buf.len;
	off_t off = l->wal_off;
	while (left > 0) {
		ssize_t n = pwrite(l->wal_fd, p, left, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			moat_log(MOAT_LOG_ERROR, "ledger_wal", "write-ahead write failed: %s",
				 strerror(errno));
			/* Cut what was written so the file ends at a record boundary. */
			if (ftruncate(l->wal_fd, l->wal_off) != 0)
				l->broken = true;
			l->wal_alloc = l->wal_off;
			return MOAT_EUNAVAIL;
		}
		p += n;
		left -= (size_t)n;
		off += n;
	}
	if (fdatasync(l->wal_fd) != 0) {
		/* After a failed fsync the page cache state is unknown: stop appending. */
		moat_log(MOAT_LOG_ERROR, "ledger_wal", "write-ahead sync failed: %s",
			 strerror(errno));
		l->broken = true;
		return MOAT_EUNAVAIL;
	}
	l->wal_off = off;
	return MOAT_OK;
}

/* The batch new records join (wal_mu held); NULL when out of memory. */
static batch_t *open_batch(moat_ledger_t *l)
{
	if (!l->cur && l->spare) {
		l->cur = l->spare;
		l->spare = NULL;
	}
	if (!l->cur) {
		l->cur = calloc(1, sizeof *l->cur);
		if (!l->cur)
			return NULL;
		moat_buf_init(&l->cur->buf, SIZE_MAX / 2);
	}
	return l->cur;
}

/* Drops one reference to a finished batch (wal_mu held); the last one keeps it
 * as the spare (its buffer's pages are reused) or frees it. */
static void batch_unref(moat_ledger_t *l, batch_t *b)
{
	if (--b->refs > 0)
		return;
	if (!l->spare && b->buf.cap <= (64u << 20)) {
		moat_buf_reset(&b->buf);
		b->count = 0;
		b->n_cbs = 0;
		b->done = false;
		b->status = MOAT_OK;
		l->spare = b;
	} else {
		moat_buf_free(&b->buf);
		free(b->cbs);
		free(b);
	}
}

/* A led group's completions have all returned (wal_mu held): off the
 * unanswered list. */
static void mark_answered(moat_ledger_t *l, batch_t *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		l->unanswered = b->next;
	if (b->next)
		b->next->prev = b->prev;
	else
		l->unanswered_tail = b->prev;
	b->prev = b->next = NULL;
}

/* Leads one group: takes the whole pending batch, writes and syncs it (one
 * fdatasync for all its records), wakes its synchronous waiters and calls its
 * asynchronous ones. Called with wal_mu held, l->cur non-empty and no flush in
 * progress; returns with wal_mu held. The lock is dropped while writing, so the
 * next group gathers meanwhile, and while calling back, so the next group can be
 * written while this one's callers are told. */
static void lead_group(moat_ledger_t *l)
{
	l->flushing = true;
	batch_t *fb = l->cur;
	l->cur = NULL;
	fb->seq = ++l->led;
	fb->next = NULL;
	fb->prev = l->unanswered_tail;
	if (fb->prev)
		fb->prev->next = fb;
	else
		l->unanswered = fb;
	l->unanswered_tail = fb;
	uint64_t base = l->durable;
	bool rotate = l->rotate;
	l->rotate = false;
	bool broken = l->broken;
	pthread_mutex_unlock(&l->wal_mu);
	moat_err_t st = broken ? MOAT_EUNAVAIL : flush_batch(l, fb, base, rotate);
	pthread_mutex_lock(&l->wal_mu);
	if (st == MOAT_OK) {
		fb->first = l->durable;
		l->durable += fb->count;
		l->groups++;
		l->grouped += fb->count;
	} else if (rotate && l->wal_first != base) {
		l->rotate = true;
	}
	fb->status = st;
	fb->done = true;
	l->flushing = false;
	if (l->cur && l->cur->n_cbs > 0)
		pthread_cond_signal(&l->commit_cv);
	if (fb->n_cbs == 0)
		mark_answered(l, fb);
	pthread_cond_broadcast(&l->wal_cv);
	if (fb->n_cbs == 0)
		return;
	fb->refs++;
	pthread_mutex_unlock(&l->wal_mu);
	for (size_t i = 0; i < fb->n_cbs; i++)
		fb->cbs[i].fn(fb->cbs[i].ctx, st, st == MOAT_OK ? fb->first + fb->cbs[i].pos : 0);
	pthread_mutex_lock(&l->wal_mu);
	mark_answered(l, fb);
	pthread_cond_broadcast(&l->wal_cv); /* moat_ledger_flush waits for this */
	batch_unref(l, fb);
}

static moat_err_t append_records(moat_ledger_t *l, const uint8_t *recs, size_t recs_len, size_t n,
				 uint64_t *first_index, moat_error_t *err)
{
	pthread_mutex_lock(&l->wal_mu);
	if (l->broken) {
		pthread_mutex_unlock(&l->wal_mu);
		return moat_error_set(err, MOAT_EUNAVAIL, NULL, "the ledger is unavailable");
	}
	batch_t *b = open_batch(l);
	if (!b || moat_buf_append(&b->buf, recs, recs_len) != MOAT_OK) {
		pthread_mutex_unlock(&l->wal_mu);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	size_t pos = b->count;
	b->count += n;
	b->refs++;
	while (!b->done) {
		if (l->flushing)
			pthread_cond_wait(&l->wal_cv, &l->wal_mu);
		else
			lead_group(l); /* b is l->cur: not done, not being flushed */
	}
	moat_err_t st = b->status;
	uint64_t first = b->first + pos;
	batch_unref(l, b);
	pthread_mutex_unlock(&l->wal_mu);
	if (st != MOAT_OK)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL,
				      "the ledger cannot write to disk; nothing was recorded");
	if (first_index)
		*first_index = first;
	return MOAT_OK;
}

/* The committer: leads every group that holds an asynchronous append and that
 * no synchronous appender is leading. Sleeps while nothing is pending, so it
 * never syncs an empty group. */
static void *committer_main(void *arg)
{
	moat_ledger_t *l = arg;
	pthread_mutex_lock(&l->wal_mu);
	for (;;) {
		bool pending = l->cur && l->cur->n_cbs > 0;
		if (pending && !l->flushing)
			lead_group(l);
		else if (l->commit_stop && !pending)
			break;
		else
			pthread_cond_wait(&l->commit_cv, &l->wal_mu);
	}
	pthread_mutex_unlock(&l->wal_mu);
	return NULL;
}

/* Whether the committer thread runs, starting it on first use (wal_mu held);
 * false when it cannot (the ledger is closing, or no thread). */
static bool committer_running(moat_ledger_t *l)
{
	if (!l->committer_started && !l->commit_stop &&
	    pthread_create(&l->committer, NULL, committer_main, l) == 0)
		l->committer_started = true;
	return l->committer_started;
}

/* Queues records with a completion. With wake, the committer thread (started on
 * first use) leads their group; without, the caller leads it later through
 * moat_ledger_flush. */
static moat_err_t enqueue_records(moat_ledger_t *l, const uint8_t *recs, size_t recs_len, size_t n,
				  moat_ledger_done_fn done, void *ctx, bool wake, moat_error_t *err)
{
	pthread_mutex_lock(&l->wal_mu);
	moat_err_t rc = MOAT_OK;
	if (l->broken || l->commit_stop) {
		rc = moat_error_set(err, MOAT_EUNAVAIL, NULL, "the ledger is unavailable");
		goto out;
	}
	if (wake && !committer_running(l)) {
		rc = moat_error_set(err, MOAT_EUNAVAIL, NULL,
				    "cannot start the ledger's committer thread");
		goto out;
	}
	batch_t *b = open_batch(l);
	if (b && b->n_cbs == b->cap_cbs) {
		size_t cap = b->cap_cbs ? b->cap_cbs * 2 : 64;
		batch_cb_t *cbs = realloc(b->cbs, cap * sizeof *cbs);
		if (cbs) {
			b->cbs = cbs;
			b->cap_cbs = cap;
		} else {
			b = NULL;
		}
	}
	if (!b || moat_buf_append(&b->buf, recs, recs_len) != MOAT_OK) {
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		goto out;
	}
	b->cbs[b->n_cbs++] = (batch_cb_t){done, ctx, b->count};
	b->count += n;
	if (wake && !l->flushing)
		pthread_cond_signal(&l->commit_cv);
out:
	pthread_mutex_unlock(&l->wal_mu);
	return rc;
}

/* Writes one write-ahead record at out (WAL_HDR + len bytes). */
static void put_record(lhash_t *h, uint8_t *out, const uint8_t *data, size_t len)
{
	out[0] = (uint8_t)(len >> 8);
	out[1] = (uint8_t)len;
	lhash_leaf(h, data, len, out + 2);
	memcpy(out + WAL_HDR, data, len);
}

static moat_err_t hasher_for(moat_ledger_t *l, lhash_t *h, moat_error_t *err)
{
	h->md = l->md;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_MD_up_ref(l->md) != 1) {
		EVP_MD_CTX_free(h->ctx);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	return MOAT_OK;
}

/* Builds the write-ahead records of n encoded entries: *recs (caller frees) of
 * *total bytes. Leaf hashes are computed here, in the appending threads, in
 * parallel. */
static moat_err_t make_records(moat_ledger_t *l, const uint8_t *const *data, const size_t *len,
			       size_t n, uint8_t **recs, size_t *total, moat_error_t *err)
{
	*recs = NULL;
	if (l->readonly)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL, "the ledger is open read-only");
	if (n == 0 || n > MOAT_LEDGER_BATCH_MAX)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "append 1..%d entries at a time",
				      MOAT_LEDGER_BATCH_MAX);
	for (size_t i = 0; i < n; i++)
		if (len[i] == 0 || len[i] > MOAT_ENTRY_MAX)
			return moat_error_set(err, MOAT_ELIMIT, NULL,
					      "entry %zu has %zu bytes (1..%d allowed)", i, len[i],
					      MOAT_ENTRY_MAX);
	*total = 0;
	for (size_t i = 0; i < n; i++)
		*total += WAL_HDR + len[i];
	lhash_t h;
	moat_err_t rc = hasher_for(l, &h, err);
	if (rc != MOAT_OK)
		return rc;
	*recs = malloc(*total);
	if (!*recs) {
		lhash_free(&h);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	size_t pos = 0;
	for (size_t i = 0; i < n; i++) {
		put_record(&h, *recs + pos, data[i], len[i]);
		pos += WAL_HDR + len[i];
	}
	lhash_free(&h);
	return MOAT_OK;
}

moat_err_t moat_ledger_append_raw(moat_ledger_t *l, const uint8_t *const *data, const size_t *len,
				  size_t n, uint64_t *first_index, moat_error_t *err)
{
	uint8_t *recs;
	size_t total;
	moat_err_t rc = make_records(l, data, len, n, &recs, &total, err);
	if (rc == MOAT_OK)
		rc = append_records(l, recs, total, n, first_index, err);
	free(recs);
	return rc;
}

/* Encodes n entries and builds their records (see make_records). Encoding all
 * first means an invalid entry appends nothing. */
static moat_err_t encode_records(moat_ledger_t *l, const moat_entry_t *entries, size_t n,
				 uint8_t **recs, size_t *total, moat_error_t *err)
{
	*recs = NULL;
	if (n == 0 || n > MOAT_LEDGER_BATCH_MAX)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "append 1..%d entries at a time",
				      MOAT_LEDGER_BATCH_MAX);
	moat_buf_t enc;
	moat_buf_init(&enc, (size_t)MOAT_LEDGER_BATCH_MAX * MOAT_ENTRY_MAX);
	size_t *offs = malloc((n + 1) * sizeof *offs);
	const uint8_t **ptrs = malloc(n * sizeof *ptrs);
	size_t *lens = malloc(n * sizeof *lens);
	moat_err_t rc = MOAT_OK;
	if (!offs || !ptrs || !lens)
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	for (size_t i = 0; i < n && rc == MOAT_OK; i++) {
		offs[i] = enc.len;
		rc = moat_entry_encode(&entries[i], &enc, err);
		if (rc == MOAT_OK && enc.len - offs[i] > MOAT_ENTRY_MAX)
			rc = moat_error_set(err, MOAT_ELIMIT, NULL, "entry too long");
	}
	if (rc == MOAT_OK) {
		offs[n] = enc.len;
		for (size_t i = 0; i < n; i++) {
			ptrs[i] = (const uint8_t *)enc.data + offs[i];
			lens[i] = offs[i + 1] - offs[i];
		}
		rc = make_records(l, ptrs, lens, n, recs, total, err);
	}
	free(offs);
	free(ptrs);
	free(lens);
	moat_buf_free(&enc);
	return rc;
}

moat_err_t moat_ledger_append(moat_ledger_t *l, const moat_entry_t *entries, size_t n,
			      uint64_t *first_index, moat_error_t *err)
{
	uint8_t *recs;
	size_t total;
	moat_err_t rc = encode_records(l, entries, n, &recs, &total, err);
	if (rc == MOAT_OK)
		rc = append_records(l, recs, total, n, first_index, err);
	free(recs);
	return rc;
}

/* Encodes entries and queues them with done (wake: see enqueue_records). */
static moat_err_t queue_entries(moat_ledger_t *l, const moat_entry_t *entries, size_t n,
				moat_ledger_done_fn done, void *ctx, bool wake, moat_error_t *err)
{
	if (!done)
		return moat_error_set(err, MOAT_EINVAL, NULL,
				      "an asynchronous or deferred append needs done");
	uint8_t *recs;
	size_t total;
	moat_err_t rc = encode_records(l, entries, n, &recs, &total, err);
	if (rc == MOAT_OK)
		rc = enqueue_records(l, recs, total, n, done, ctx, wake, err);
	free(recs);
	return rc;
}

moat_err_t moat_ledger_append_async(moat_ledger_t *l, const moat_entry_t *entries, size_t n,
				    moat_ledger_done_fn done, void *ctx, moat_error_t *err)
{
	return queue_entries(l, entries, n, done, ctx, true, err);
}

moat_err_t moat_ledger_append_deferred(moat_ledger_t *l, const moat_entry_t *entries, size_t n,
				       moat_ledger_done_fn done, void *ctx, moat_error_t *err)
{
	return queue_entries(l, entries, n, done, ctx, false, err);
}

bool moat_ledger_flush_try(moat_ledger_t *l)
{
	pthread_mutex_lock(&l->wal_mu);
	if (l->flushing && committer_running(l)) {
		/* Someone is writing a group: the committer takes the next one as
		 * soon as that is done, and the caller goes on meanwhile. Not woken
		 * here: it could not lead before that group is done, and lead_group
		 * wakes it then (the entries queued here carry completions); waking
		 * it now only made it sleep again, a pair of context switches per
		 * group. */
		pthread_mutex_unlock(&l->wal_mu);
		return false;
	}
	pthread_mutex_unlock(&l->wal_mu);
	moat_ledger_flush(l);
	return true;
}

void moat_ledger_flush(moat_ledger_t *l)
{
	pthread_mutex_lock(&l->wal_mu);
	/* Everything queued so far is in l->cur, which becomes group led + 1, or
	 * in a group already led; done once every group up to that one is
	 * answered (their completions have returned), whichever thread led it. */
	uint64_t target = l->led + (l->cur && l->cur->count > 0 ? 1 : 0);
	for (;;) {
		if (l->led < target) {
			if (!l->flushing) {
				lead_group(l); /* l->cur is group target: not led yet */
				continue;
			}
		} else if (!l->unanswered || l->unanswered->seq > target) {
			break;
		}
		pthread_cond_wait(&l->wal_cv, &l->wal_mu);
	}
	pthread_mutex_unlock(&l->wal_mu);
}

void moat_ledger_commit_stats(moat_ledger_t *l, uint64_t *groups, uint64_t *entries)
{
	pthread_mutex_lock(&l->wal_mu);
	*groups = l->groups;
	*entries = l->grouped;
	pthread_mutex_unlock(&l->wal_mu);
}

void moat_ledger_fail_writes(moat_ledger_t *l, bool on)
{
	atomic_store(&l->fail_writes, on);
}

moat_err_t moat_ledger_sync(moat_ledger_t *l, moat_error_t *err)
{
	if (l->readonly)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL, "the ledger is open read-only");
	pthread_mutex_lock(&l->integ_mu);
	moat_err_t rc = integrate_locked(l, false, err);
	pthread_mutex_unlock(&l->integ_mu);
	return rc;
}

/* ---- reading ------------------------------------------------------------------------ */

/* Read-only handles follow the checkpoint file; a bad or missing one keeps the
 * last good state. */
static void refresh(moat_ledger_t *l)
{
	if (l->readonly)
		(void)load_checkpoint(l, NULL);
}

uint64_t moat_ledger_checkpoint_size(moat_ledger_t *l)
{
	refresh(l);
	pthread_mutex_lock(&l->state_mu);
	uint64_t n = l->cp_size;
	pthread_mutex_unlock(&l->state_mu);
	return n;
}

uint64_t moat_ledger_size(moat_ledger_t *l)
{
	if (l->readonly)
		return moat_ledger_checkpoint_size(l);
	pthread_mutex_lock(&l->wal_mu);
	uint64_t n = l->durable;
	pthread_mutex_unlock(&l->wal_mu);
	return n;
}

moat_err_t moat_ledger_checkpoint(moat_ledger_t *l, moat_buf_t *out, moat_error_t *err)
{
	refresh(l);
	pthread_mutex_lock(&l->state_mu);
	moat_err_t rc = moat_buf_append(out, l->cp_text, l->cp_len);
	pthread_mutex_unlock(&l->state_mu);
	return rc == MOAT_OK ? MOAT_OK : moat_error_set(err, rc, NULL, "checkpoint does not fit");
}

const char *moat_ledger_verifier_key(moat_ledger_t *l)
{
	return l->key.vkey;
}

const char *moat_ledger_origin(moat_ledger_t *l)
{
	return l->key.name;
}

/* Makes sure entries below `size` are in a checkpoint; returns the checkpoint size. */
static moat_err_t covered(moat_ledger_t *l, uint64_t size, uint64_t *cp, moat_error_t *err)
{
	*cp = moat_ledger_checkpoint_size(l);
	if (size <= *cp)
		return MOAT_OK;
	if (!l->readonly && size <= moat_ledger_size(l)) {
		moat_err_t rc = moat_ledger_sync(l, err);
		if (rc != MOAT_OK)
			return rc;
		*cp = moat_ledger_checkpoint_size(l);
		if (size <= *cp)
			return MOAT_OK;
	}
	return moat_error_set(
	    err, MOAT_ENOTFOUND, NULL,
	    "the ledger has %" PRIu64 " checkpointed entries, %" PRIu64 " asked for", *cp, size);
}

moat_err_t moat_ledger_read(moat_ledger_t *l, uint64_t index, moat_buf_t *out, moat_error_t *err)
{
	uint64_t cp;
	if (index == UINT64_MAX)
		return moat_error_set(err, MOAT_ENOTFOUND, NULL, "no such entry");
	moat_err_t rc = covered(l, index + 1, &cp, err);
	if (rc != MOAT_OK)
		return rc;
	uint64_t tile = index / TILE_W;
	unsigned pos = (unsigned)(index % TILE_W);
	moat_buf_t data;
	moat_buf_init(&data, TILE_BUNDLE_MAX);
	uint32_t *offs = malloc((TILE_W + 1) * sizeof *offs);
	if (!offs)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	rc = tile_read_bundle(l->dir, tile, tile_width_at(-1, tile, cp), &data, offs, err);
	if (rc == MOAT_OK && moat_buf_append(out, data.data + offs[pos] + 2,
					     offs[pos + 1] - offs[pos] - 2) != MOAT_OK)
		rc = moat_error_set(err, MOAT_ELIMIT, NULL, "entry does not fit the buffer");
	free(offs);
	moat_buf_free(&data);
	return rc;
}

struct moat_ledger_iter {
	moat_ledger_t *l;
	uint64_t next;
	uint64_t tile;	/* loaded bundle */
	unsigned width; /* entries usable in it (0 = none loaded) */
	moat_buf_t data;
	uint32_t offs[TILE_W + 1];
};

moat_err_t moat_ledger_iter_new(moat_ledger_t *l, uint64_t start, moat_ledger_iter_t **out,
				moat_error_t *err)
{
	moat_ledger_iter_t *it = calloc(1, sizeof *it);
	if (!it)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	it->l = l;
	it->next = start;
	moat_buf_init(&it->data, TILE_BUNDLE_MAX);
	*out = it;
	return MOAT_OK;
}

moat_err_t moat_ledger_iter_next(moat_ledger_iter_t *it, uint64_t *index, const uint8_t **data,
				 size_t *len, moat_error_t *err)
{
	uint64_t tile = it->next / TILE_W;
	unsigned pos = (unsigned)(it->next % TILE_W);
	if (it->width == 0 || it->tile != tile || pos >= it->width) {
		uint64_t cp = moat_ledger_checkpoint_size(it->l);
		if (it->next >= cp)
			return MOAT_ENOTFOUND;
		unsigned w = tile_width_at(-1, tile, cp);
		it->width = 0;
		moat_err_t rc = tile_read_bundle(it->l->dir, tile, w, &it->data, it->offs, err);
		if (rc != MOAT_OK)
			return rc;
		it->tile = tile;
		it->width = w;
	}
	*index = it->next++;
	*data = (const uint8_t *)it->data.data + it->offs[pos] + 2;
	*len = it->offs[pos + 1] - it->offs[pos] - 2;
	return MOAT_OK;
}

void moat_ledger_iter_free(moat_ledger_iter_t *it)
{
	if (!it)
		return;
	moat_buf_free(&it->data);
	free(it);
}

/* ---- proofs --------------------------------------------------------------------------- */

moat_err_t moat_ledger_root(moat_ledger_t *l, uint64_t size, uint8_t root[MOAT_HASH_LEN],
			    moat_error_t *err)
{
	uint64_t cp;
	moat_err_t rc = covered(l, size, &cp, err);
	if (rc != MOAT_OK)
		return rc;
	lhash_t h;
	if ((rc = hasher_for(l, &h, err)) != MOAT_OK)
		return rc;
	treeread_t *t = malloc(sizeof *t);
	if (!t) {
		lhash_free(&h);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	treeread_init(t, l->dir, size, &h);
	rc = treeread_root(t, root, err);
	free(t);
	lhash_free(&h);
	return rc;
}

moat_err_t moat_ledger_prove_inclusion(moat_ledger_t *l, uint64_t index, uint64_t size,
				       uint8_t leaf_hash[MOAT_HASH_LEN],
				       uint8_t proof[][MOAT_HASH_LEN], size_t *n, moat_error_t *err)
{
	if (index >= size)
		return moat_error_set(err, MOAT_EINVAL, NULL,
				      "index %" PRIu64 " is not below tree size %" PRIu64, index,
				      size);
	uint64_t cp;
	moat_err_t rc = covered(l, size, &cp, err);
	if (rc != MOAT_OK)
		return rc;
	lhash_t h;
	if ((rc = hasher_for(l, &h, err)) != MOAT_OK)
		return rc;
	treeread_t *t = malloc(sizeof *t);
	if (!t) {
		lhash_free(&h);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	treeread_init(t, l->dir, size, &h);
	uint8_t leaf[MOAT_HASH_LEN];
	rc = treeread_inclusion(t, index, leaf, proof, n, err);
	if (rc == MOAT_OK && leaf_hash)
		memcpy(leaf_hash, leaf, MOAT_HASH_LEN);
	free(t);
	lhash_free(&h);
	return rc;
}

moat_err_t moat_ledger_prove_consistency(moat_ledger_t *l, uint64_t old_size, uint64_t new_size,
					 uint8_t proof[][MOAT_HASH_LEN], size_t *n,
					 moat_error_t *err)
{
	if (old_size == 0 || old_size > new_size)
		return moat_error_set(err, MOAT_EINVAL, NULL,
				      "need 1 <= old size <= new size (got %" PRIu64 ", %" PRIu64
				      ")",
				      old_size, new_size);
	uint64_t cp;
	moat_err_t rc = covered(l, new_size, &cp, err);
	if (rc != MOAT_OK)
		return rc;
	lhash_t h;
	if ((rc = hasher_for(l, &h, err)) != MOAT_OK)
		return rc;
	treeread_t *t = malloc(sizeof *t);
	if (!t) {
		lhash_free(&h);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	treeread_init(t, l->dir, new_size, &h);
	rc = treeread_consistency(t, old_size, proof, n, err);
	free(t);
	lhash_free(&h);
	return rc;
}

/* ---- verify ------------------------------------------------------------------------- */

typedef struct vctx {
	const char *dir;
	uint64_t *bad;
	uint8_t (*stored)[MOAT_HASH_LEN];
} vctx_t;

static moat_err_t compare_tile(vctx_t *v, int level, uint64_t index, unsigned width,
			       uint8_t (*h)[MOAT_HASH_LEN], moat_error_t *err)
{
	char rel[128];
	moat_ledger_tile_path(level, index, width, rel, sizeof rel);
	moat_error_t e;
	moat_err_t rc = tile_read_hashes(v->dir, level, index, width, v->stored, &e);
	if (rc != MOAT_OK) {
		*v->bad = (index * TILE_W) << (8 * level);
		return moat_error_set(err, MOAT_ECORRUPT, NULL, "entry %" PRIu64 ": %s", *v->bad,
				      e.msg);
	}
	for (unsigned i = 0; i < width; i++)
		if (memcmp(v->stored[i], h[i], MOAT_HASH_LEN) != 0) {
			*v->bad = (index * TILE_W + i) << (8 * level);
			if (level == 0)
				return moat_error_set(err, MOAT_ECORRUPT, NULL,
						      "entry %" PRIu64
						      ": its leaf hash differs from hash %u of %s "
						      "(entry bundle or tile altered)",
						      *v->bad, i, rel);
			return moat_error_set(err, MOAT_ECORRUPT, NULL,
					      "entry %" PRIu64 ": hash %u of %s (entries %" PRIu64
					      "..%" PRIu64 ") does not match the entries",
					      *v->bad, i, rel, *v->bad,
					      *v->bad + ((uint64_t)1 << (8 * level)) - 1);
		}
	return MOAT_OK;
}

static moat_err_t on_full_verify(void *ctx, int level, uint64_t index, uint8_t (*h)[MOAT_HASH_LEN],
				 moat_error_t *err)
{
	return compare_tile(ctx, level, index, TILE_W, h, err);
}

moat_err_t moat_ledger_verify(moat_ledger_t *l, const char *vkey, uint64_t *bad_index,
			      moat_error_t *err)
{
	uint64_t bad_local;
	uint64_t *bad = bad_index ? bad_index : &bad_local;
	*bad = UINT64_MAX;
	char path[4096], *text = NULL;
	size_t len;
	snprintf(path, sizeof path, "%s/checkpoint", l->dir);
	moat_err_t rc = moat_file_read(path, MOAT_LEDGER_NOTE_MAX, &text, &len, err);
	if (rc != MOAT_OK)
		return rc;
	moat_checkpoint_t cp;
	moat_error_t e;
	rc = moat_ledger_checkpoint_verify(text, len, vkey ? vkey : l->key.vkey, &cp, &e);
	free(text);
	if (rc != MOAT_OK)
		return moat_error_set(err, MOAT_ECORRUPT, NULL, "checkpoint: %s", e.msg);

	lhash_t h;
	if ((rc = hasher_for(l, &h, err)) != MOAT_OK)
		return rc;
	builder_t *b = calloc(1, sizeof *b);
	uint8_t(*stored)[MOAT_HASH_LEN] = malloc(TILE_W * MOAT_HASH_LEN);
	uint32_t *offs = malloc((TILE_W + 1) * sizeof *offs);
	char *scratch = malloc(MOAT_ENTRY_MAX + 64);
	moat_buf_t data;
	moat_buf_init(&data, TILE_BUNDLE_MAX);
	vctx_t v = {.dir = l->dir, .bad = bad, .stored = stored};
	if (!b || !stored || !offs || !scratch) {
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		goto out;
	}
	b->h = &h;
	b->on_full = on_full_verify;
	b->ctx = &v;
	for (uint64_t tile = 0; tile * TILE_W < cp.size; tile++) {
		unsigned w = tile_width_at(-1, tile, cp.size);
		if ((rc = tile_read_bundle(l->dir, tile, w, &data, offs, &e)) != MOAT_OK) {
			*bad = tile * TILE_W;
			rc = moat_error_set(err, MOAT_ECORRUPT, NULL, "entry %" PRIu64 ": %s", *bad,
					    e.msg);
			goto out;
		}
		for (unsigned i = 0; i < w; i++) {
			const uint8_t *ed = (const uint8_t *)data.data + offs[i] + 2;
			size_t el = offs[i + 1] - offs[i] - 2;
			moat_entry_t ent;
			if (moat_entry_decode(ed, el, &ent, scratch, MOAT_ENTRY_MAX + 64, &e) !=
			    MOAT_OK) {
				*bad = tile * TILE_W + i;
				rc = moat_error_set(err, MOAT_ECORRUPT, NULL,
						    "entry %" PRIu64 " is not a valid entry: %s",
						    *bad, e.msg);
				goto out;
			}
			uint8_t leaf[MOAT_HASH_LEN];
			lhash_leaf(&h, ed, el, leaf);
			if ((rc = builder_push(b, leaf, err)) != MOAT_OK)
				goto out;
		}
	}
	for (int level = 0; level < LEVELS; level++)
		if (b->lv[level].width > 0 &&
		    (rc = compare_tile(&v, level, b->lv[level].index, b->lv[level].width,
				       b->lv[level].h, err)) != MOAT_OK)
			goto out;
	uint8_t root[MOAT_HASH_LEN];
	builder_root(b, root);
	if (memcmp(root, cp.root, MOAT_HASH_LEN) != 0)
		rc = moat_error_set(err, MOAT_ECORRUPT, NULL,
				    "checkpoint: its root does not match the %" PRIu64 " entries",
				    cp.size);
out:
	moat_buf_free(&data);
	free(scratch);
	free(offs);
	free(stored);
	free(b);
	lhash_free(&h);
	return rc;
}
