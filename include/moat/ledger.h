/*
 * moat ledger: the append-only, tamper-evident access log.
 *
 * Formats are the public transparency-log ones, so any standard client can check
 * the log (docs/ledger.md describes every byte):
 *  - RFC 6962 / RFC 9162 Merkle tree over SHA-256: leaf = H(0x00 || entry),
 *    node = H(0x01 || left || right);
 *  - C2SP tlog-tiles on disk: <dir>/tile/<L>/<N>[.p/<W>] hash tiles and
 *    <dir>/tile/entries/<N>[.p/<W>] entry bundles (2-byte big-endian length prefix);
 *  - C2SP tlog-checkpoint (origin, size, base64 root) in a C2SP signed note signed
 *    with Ed25519; <dir>/checkpoint is the latest one.
 *
 * Durability: moat_ledger_append writes entries to a write-ahead file and returns
 * only after the group holding them is fsync'd. A background thread integrates
 * durable entries into tiles and signs a new checkpoint at least every interval
 * (default 1 s) whenever the log grew. Opening after a crash cuts torn write-ahead
 * tails and integrates every durable entry; the tree only ever grows, so it is
 * consistent with every checkpoint published before.
 *
 * Threads: a read-write moat_ledger_t may be shared by any number of threads for
 * every call except moat_ledger_close. Only one process may hold a ledger open
 * read-write (flock); read-only handles (MOAT_LEDGER_READONLY) see the latest
 * published checkpoint and may be used while another process appends.
 */
#ifndef MOAT_LEDGER_H
#define MOAT_LEDGER_H

#include "moat/base.h"
#include "moat/entry.h"

#define MOAT_HASH_LEN 32
#define MOAT_LEDGER_TILE_WIDTH 256
/* Caps: a proof has at most 2*64 hashes; a note at most this many bytes. */
#define MOAT_LEDGER_PROOF_MAX 128
#define MOAT_LEDGER_NOTE_MAX 16384
#define MOAT_LEDGER_ORIGIN_MAX 128
/* Longest verifier key string: name + "+" + 8 hex + "+" + base64(33 bytes). */
#define MOAT_LEDGER_VKEY_MAX (MOAT_LEDGER_ORIGIN_MAX + 80)

typedef struct moat_ledger moat_ledger_t;

typedef struct moat_ledger_opts {
	/* Integrate and sign a checkpoint at least this often when the log grew
	 * (milliseconds; 0 = default 1000). */
	int checkpoint_interval_ms;
	/* Open read-only: no write-ahead file, no background thread, no lock; size,
	 * reads and proofs follow the latest published checkpoint. */
	bool readonly;
} moat_ledger_opts_t;

/* ---- life cycle ------------------------------------------------------------------ */

/* Creates a new ledger in dir (made 0700 if absent; refused with MOAT_EEXIST if it
 * already holds a ledger): a fresh Ed25519 key (<dir>/key, 0600), its verifier key
 * (<dir>/vkey) and the checkpoint of the empty tree. origin is the log's name and
 * key name, e.g. "moat.local/3f9a…" (1..128 printable ASCII, no '+' or space). */
moat_err_t moat_ledger_create(const char *dir, const char *origin,
			      moat_error_t *err) MOAT_MUST_CHECK;

/* Opens the ledger in dir, recovering from a crash if needed (see above). opts may
 * be NULL. *out is owned by the caller: moat_ledger_close it. MOAT_ENOTFOUND if
 * dir holds no ledger, MOAT_ECONFLICT if another process has it open read-write,
 * MOAT_ECORRUPT if stored tiles disagree with the signed checkpoint. */
moat_err_t moat_ledger_open(const char *dir, const moat_ledger_opts_t *opts, moat_ledger_t **out,
			    moat_error_t *err) MOAT_MUST_CHECK;

/* Waits for in-flight appends, integrates everything durable, signs a final
 * checkpoint and frees l. NULL is a no-op. */
void moat_ledger_close(moat_ledger_t *l);

/* ---- appending ------------------------------------------------------------------- */

/* Encodes and appends n entries (1..MOAT_LEDGER_BATCH_MAX) as consecutive indexes;
 * *first_index (may be NULL) receives the first. Thread-safe; blocks until the
 * group holding them is fsync'd. Errors: MOAT_EINVAL/MOAT_ELIMIT for an entry that
 * does not encode (nothing appended), MOAT_EUNAVAIL if the write-ahead file cannot
 * be written or synced (nothing appended; the message names no entry data). */
#define MOAT_LEDGER_BATCH_MAX 65536
moat_err_t moat_ledger_append(moat_ledger_t *l, const moat_entry_t *entries, size_t n,
			      uint64_t *first_index, moat_error_t *err) MOAT_MUST_CHECK;

/* Same for already-encoded entries: data[i] of len[i] bytes (1..MOAT_ENTRY_MAX).
 * The bytes are logged as given (moat_ledger_verify later checks they decode). */
moat_err_t moat_ledger_append_raw(moat_ledger_t *l, const uint8_t *const *data, const size_t *len,
				  size_t n, uint64_t *first_index,
				  moat_error_t *err) MOAT_MUST_CHECK;

/* Completion of an asynchronous append: status MOAT_OK with the first entry's
 * index once the group holding the entries is fsync'd, or MOAT_EUNAVAIL (index
 * 0) if the write-ahead file could not be written or synced (nothing appended). */
typedef void (*moat_ledger_done_fn)(void *ctx, moat_err_t status, uint64_t first_index);

/* Like moat_ledger_append, but returns without waiting for the disk: the entries
 * are encoded and queued (entries are borrowed only for the call) and the next
 * group commit takes them. MOAT_OK means done(ctx, …) will be called exactly
 * once, from a ledger thread or another appender's thread, possibly before this
 * returns; done must be quick and must not append to or close this ledger. Any
 * other return (encoding, limits, out of memory, a broken or closing ledger)
 * means nothing was queued and done is never called. moat_ledger_close answers
 * every queued append before it returns. */
moat_err_t moat_ledger_append_async(moat_ledger_t *l, const moat_entry_t *entries, size_t n,
				    moat_ledger_done_fn done, void *ctx,
				    moat_error_t *err) MOAT_MUST_CHECK;

/* Like moat_ledger_append_async, but no ledger thread is woken for it: the
 * entries wait in the pending group until a moat_ledger_flush (from any
 * thread), a synchronous append, or moat_ledger_close writes them. For event
 * loops that queue every request of one pass and then flush once, leading the
 * group commit on their own thread instead of handing it to another. */
moat_err_t moat_ledger_append_deferred(moat_ledger_t *l, const moat_entry_t *entries, size_t n,
				       moat_ledger_done_fn done, void *ctx,
				       moat_error_t *err) MOAT_MUST_CHECK;

/* Returns once everything queued before the call (deferred or asynchronous) is
 * durable or has failed and the completions of every group holding any of it
 * have returned (groups are answered in any order: one group's completions may
 * still run while the next is written), leading the group commit on the calling
 * thread when no other thread is writing one (completions run on the leader's
 * thread). */
void moat_ledger_flush(moat_ledger_t *l);
/* moat_ledger_flush when no other thread is writing a group; when one is, hands
 * what is queued to the committer thread, which writes it as soon as that group
 * is done, and returns false at once: the completions come from the committer.
 * For a caller with other work to do meanwhile (a server loop). */
bool moat_ledger_flush_try(moat_ledger_t *l);

/* Group commit counters since open: groups written and fsync'd successfully,
 * and the entries they held (entries / groups = mean group size). */
void moat_ledger_commit_stats(moat_ledger_t *l, uint64_t *groups, uint64_t *entries);

/* Test hook: while on, every write-ahead write fails as if the disk were full
 * (appends return MOAT_EUNAVAIL). */
void moat_ledger_fail_writes(moat_ledger_t *l, bool on);

/* Integrates all durable entries now and signs a checkpoint if the log grew
 * (the background thread does this on its own; tests and tools call it to avoid
 * waiting). MOAT_EUNAVAIL on a read-only handle. */
moat_err_t moat_ledger_sync(moat_ledger_t *l, moat_error_t *err) MOAT_MUST_CHECK;

/* ---- reading --------------------------------------------------------------------- */

/* Number of durable entries (read-only handle: size of the latest checkpoint,
 * re-read from disk). */
uint64_t moat_ledger_size(moat_ledger_t *l);
/* Size of the latest signed checkpoint (<= moat_ledger_size). */
uint64_t moat_ledger_checkpoint_size(moat_ledger_t *l);

/* Appends the bytes of entry `index` to out. Entries not yet in a checkpoint are
 * integrated first. MOAT_ENOTFOUND if index >= size. */
moat_err_t moat_ledger_read(moat_ledger_t *l, uint64_t index, moat_buf_t *out,
			    moat_error_t *err) MOAT_MUST_CHECK;

/* Sequential reader over checkpointed entries, from a start index. Safe to use
 * while appends continue (on the same or another handle); each iterator belongs to
 * one thread. Borrowed l must outlive it. */
typedef struct moat_ledger_iter moat_ledger_iter_t;
moat_err_t moat_ledger_iter_new(moat_ledger_t *l, uint64_t start, moat_ledger_iter_t **out,
				moat_error_t *err) MOAT_MUST_CHECK;
/* Next entry: MOAT_OK with *data and *len borrowed until the next call and *index set;
 * MOAT_ENOTFOUND when it reached the checkpointed size (call again later to get
 * newer entries). */
moat_err_t moat_ledger_iter_next(moat_ledger_iter_t *it, uint64_t *index, const uint8_t **data,
				 size_t *len, moat_error_t *err) MOAT_MUST_CHECK;
void moat_ledger_iter_free(moat_ledger_iter_t *it);

/* ---- checkpoints and proofs ------------------------------------------------------ */

/* Appends the latest signed checkpoint note (UTF-8 text) to out. */
moat_err_t moat_ledger_checkpoint(moat_ledger_t *l, moat_buf_t *out,
				  moat_error_t *err) MOAT_MUST_CHECK;
/* The verifier key "origin+keyid+base64key" (NUL-terminated). */
const char *moat_ledger_verifier_key(moat_ledger_t *l);
const char *moat_ledger_origin(moat_ledger_t *l);

/* Root hash of the tree of the first `size` entries (size <= checkpoint size). */
moat_err_t moat_ledger_root(moat_ledger_t *l, uint64_t size, uint8_t root[MOAT_HASH_LEN],
			    moat_error_t *err) MOAT_MUST_CHECK;

/* Inclusion proof of entry `index` in the tree of `size` entries (index < size <=
 * checkpoint size). proof must hold MOAT_LEDGER_PROOF_MAX hashes; *n receives the
 * count; leaf_hash (may be NULL) receives the entry's leaf hash. */
moat_err_t moat_ledger_prove_inclusion(moat_ledger_t *l, uint64_t index, uint64_t size,
				       uint8_t leaf_hash[MOAT_HASH_LEN],
				       uint8_t proof[][MOAT_HASH_LEN], size_t *n,
				       moat_error_t *err) MOAT_MUST_CHECK;
/* Consistency proof between tree sizes old_size <= new_size <= checkpoint size
 * (old_size >= 1). */
moat_err_t moat_ledger_prove_consistency(moat_ledger_t *l, uint64_t old_size, uint64_t new_size,
					 uint8_t proof[][MOAT_HASH_LEN], size_t *n,
					 moat_error_t *err) MOAT_MUST_CHECK;

/* Recomputes the whole tree from the entry bundles and checks that every entry
 * decodes canonically, every stored tile matches and the checkpoint verifies under
 * vkey (NULL: the ledger's own <dir>/vkey). On a mismatch returns MOAT_ECORRUPT with
 * a message naming the first bad index (and *bad_index set, else UINT64_MAX). */
moat_err_t moat_ledger_verify(moat_ledger_t *l, const char *vkey, uint64_t *bad_index,
			      moat_error_t *err) MOAT_MUST_CHECK;

/* ---- offline verification (no ledger needed) ------------------------------------ */

/* Leaf hash H(0x00 || data) and node hash H(0x01 || left || right). */
void moat_ledger_leaf_hash(const void *data, size_t len, uint8_t out[MOAT_HASH_LEN]);
void moat_ledger_node_hash(const uint8_t left[MOAT_HASH_LEN], const uint8_t right[MOAT_HASH_LEN],
			   uint8_t out[MOAT_HASH_LEN]);

/* RFC 9162 §2.1.3.2: true iff proof (proof_len bytes, a multiple of 32) proves
 * leaf_hash at index in the tree of `size` leaves with root. Hash arguments give
 * their lengths so that malformed input is rejected, never over-read. */
bool moat_ledger_verify_inclusion(const uint8_t *leaf_hash, size_t leaf_hash_len, uint64_t index,
				  uint64_t size, const uint8_t *proof, size_t proof_len,
				  const uint8_t *root, size_t root_len);
/* RFC 9162 §2.1.4.2: true iff proof shows the tree (size1, root1) is a prefix of
 * (size2, root2). size1 == 0 is always rejected; size1 == size2 needs an empty
 * proof and identical roots. */
bool moat_ledger_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t *root1,
				    size_t root1_len, const uint8_t *root2, size_t root2_len,
				    const uint8_t *proof, size_t proof_len);

/* A parsed C2SP checkpoint body. */
typedef struct moat_checkpoint {
	char origin[MOAT_LEDGER_ORIGIN_MAX + 1];
	uint64_t size;
	uint8_t root[MOAT_HASH_LEN];
} moat_checkpoint_t;

/* Parses a signed note and checks it carries a valid Ed25519 signature by vkey
 * ("name+keyid+base64(0x01||pubkey)"); other signatures are ignored. On success
 * *text_len (may be NULL) receives the length of the signed text. MOAT_EINVAL for
 * a malformed note or key, MOAT_EDENIED if no valid signature by vkey. */
moat_err_t moat_ledger_note_verify(const char *note, size_t len, const char *vkey, size_t *text_len,
				   moat_error_t *err) MOAT_MUST_CHECK;
/* Verifies a checkpoint note with vkey and parses its body (origin must equal the
 * key name; extension lines are allowed and ignored). */
moat_err_t moat_ledger_checkpoint_verify(const char *note, size_t len, const char *vkey,
					 moat_checkpoint_t *out, moat_error_t *err) MOAT_MUST_CHECK;
/* Computes the 4-byte key id of an Ed25519 key per c2sp.org/signed-note:
 * SHA-256(name || 0x0A || 0x01 || pubkey)[:4]. */
void moat_ledger_key_id(const char *name, const uint8_t pubkey[32], uint8_t id[4]);

/* C2SP tlog-tiles path of a tile: level -1 is the entry bundle ("tile/entries/…"),
 * width 256 (or 0) a full tile, else a partial ".p/<width>". out >= 64 bytes. */
void moat_ledger_tile_path(int level, uint64_t index, unsigned width, char *out, size_t cap);

#endif
