/* A durable JSON-lines event journal with group commit (see gateway.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/entry.h"
#include "moat/gateway.h"

struct moat_journal {
	int fd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t entries; /* entries written (durable or not) */
	uint64_t written; /* write batches issued */
	uint64_t synced;  /* batches known durable */
	bool syncing;
	bool fail;
};

static const char *const kind_names[] = {"",	   "access", "deny",	  "login",
					 "export", "policy", "principal", "alert",
					 "action", "report", "call"};

moat_err_t moat_journal_open(const char *path, moat_journal_t **out, moat_error_t *err)
{
	*out = NULL;
	moat_journal_t *j = calloc(1, sizeof *j);
	if (!j)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		moat_err_t rc = moat_error_set(err, MOAT_EIO, NULL, "cannot open %s: %s", path,
					       strerror(errno));
		free(j);
		return rc;
	}
	/* Count existing lines so indexes continue where the journal left off. */
	char buf[65536];
	ssize_t n;
	while ((n = read(j->fd, buf, sizeof buf)) > 0)
		for (ssize_t i = 0; i < n; i++)
			j->entries += buf[i] == '\n';
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	*out = j;
	return MOAT_OK;
}

void moat_journal_close(moat_journal_t *j)
{
	if (!j)
		return;
	(void)fdatasync(j->fd);
	close(j->fd);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j);
}

static moat_err_t put_str(moat_buf_t *b, const char *key, const char *v)
{
	if (!v)
		return MOAT_OK;
	moat_err_t rc = moat_buf_printf(b, ",\"%s\":", key);
	return rc == MOAT_OK ? moat_buf_json_str(b, v) : rc;
}

static moat_err_t encode(const moat_entry_t *e, moat_buf_t *b)
{
	char t[32];
	moat_time_format(e->time, t);
	int k = (int)e->kind;
	moat_err_t rc =
	    moat_buf_printf(b, "{\"kind\":\"%s\",\"time\":\"%s\"",
			    k > 0 && k <= MOAT_ENTRY_KIND_MAX ? kind_names[k] : "unknown", t);
	if (rc == MOAT_OK)
		rc = put_str(b, "principal", e->principal);
	if (rc == MOAT_OK)
		rc = put_str(b, "order_id", e->order_id);
	if (rc == MOAT_OK && e->has_purpose)
		rc = moat_buf_printf(b, ",\"purpose\":\"%s\"", moat_purpose_name(e->purpose));
	if (rc == MOAT_OK && (e->kind == MOAT_ENTRY_ACCESS || e->kind == MOAT_ENTRY_EXPORT)) {
		rc = moat_buf_puts(b, ",\"fields\":{");
		for (int f = 0; f < MOAT_FIELD_COUNT && rc == MOAT_OK; f++)
			rc = moat_buf_printf(b, "%s\"%s\":\"%s\"", f ? "," : "",
					     moat_field_name((moat_field_t)f),
					     moat_view_name((moat_view_t)e->views[f]));
		if (rc == MOAT_OK)
			rc = moat_buf_putc(b, '}');
	}
	if (rc == MOAT_OK)
		rc = moat_buf_printf(b, ",\"relations\":%u", e->relations);
	if (rc == MOAT_OK)
		rc = put_str(b, "rule", e->rule);
	if (rc == MOAT_OK)
		rc = put_str(b, "ip", e->ip);
	if (rc == MOAT_OK)
		rc = put_str(b, "device", e->device);
	if (rc == MOAT_OK && e->result != MOAT_RESULT_NONE)
		rc = moat_buf_printf(b, ",\"result\":\"%s\"",
				     e->result == MOAT_RESULT_SUCCESS ? "success" : "failure");
	if (rc == MOAT_OK)
		rc = put_str(b, "ref", e->ref);
	if (rc == MOAT_OK)
		rc = put_str(b, "detail", e->detail);
	if (rc == MOAT_OK)
		rc = moat_buf_puts(b, "}\n");
	return rc;
}

static moat_err_t journal_append(void *ctx, const moat_entry_t *e, size_t n, uint64_t *first,
				 moat_error_t *err)
{
	moat_journal_t *j = ctx;
	moat_buf_t b;
	moat_buf_init(&b, (size_t)MOAT_ENTRY_MAX * (n ? n : 1) + 64);
	for (size_t i = 0; i < n; i++)
		if (encode(&e[i], &b) != MOAT_OK) {
			moat_buf_free(&b);
			return moat_error_set(err, MOAT_ELIMIT, NULL, "event too large");
		}
	moat_err_t rc = MOAT_OK;
	pthread_mutex_lock(&j->mu);
	if (j->fail) {
		rc = moat_error_set(err, MOAT_EUNAVAIL, NULL,
				    "event journal write failed (test hook)");
		goto out;
	}
	ssize_t w = write(j->fd, b.data, b.len);
	if (w != (ssize_t)b.len) {
		rc = moat_error_set(err, MOAT_EUNAVAIL, NULL, "event journal write failed: %s",
				    w < 0 ? strerror(errno) : "short write");
		goto out;
	}
	if (first)
		*first = j->entries;
	j->entries += n;
	uint64_t mine = ++j->written;
	/* Group commit: one thread syncs everything written so far while the others
	 * wait for a sync that covers their batch. */
	while (j->synced < mine) {
		if (!j->syncing) {
			j->syncing = true;
			uint64_t target = j->written;
			pthread_mutex_unlock(&j->mu);
			int s = fdatasync(j->fd);
			pthread_mutex_lock(&j->mu);
			j->syncing = false;
			if (s == 0)
				j->synced = target;
			pthread_cond_broadcast(&j->cv);
			if (s != 0) {
				rc = moat_error_set(err, MOAT_EUNAVAIL, NULL,
						    "event journal sync failed");
				goto out;
			}
		} else {
			pthread_cond_wait(&j->cv, &j->mu);
		}
	}
out:
	pthread_mutex_unlock(&j->mu);
	moat_buf_free(&b);
	return rc;
}

static uint64_t journal_size(void *ctx)
{
	moat_journal_t *j = ctx;
	pthread_mutex_lock(&j->mu);
	uint64_t n = j->entries;
	pthread_mutex_unlock(&j->mu);
	return n;
}

static void journal_fail(void *ctx, bool on)
{
	moat_journal_t *j = ctx;
	pthread_mutex_lock(&j->mu);
	j->fail = on;
	pthread_mutex_unlock(&j->mu);
}

void moat_journal_sink(moat_journal_t *j, moat_gateway_sink_t *out)
{
	out->ctx = j;
	out->append = journal_append;
	out->append_async = NULL;
	out->append_deferred = NULL;
	out->flush = NULL;
	out->size = journal_size;
	out->fail_writes = journal_fail;
}
