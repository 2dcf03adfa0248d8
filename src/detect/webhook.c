/*
 * The alert webhook: a thread that POSTs each alert, in the order raised, to a
 * configured URL, at least once (see include/moat/detect.h). Delivery state is
 * one cursor in the store (the ALERT ledger index last acknowledged with 2xx),
 * so nothing is skipped across restarts and a slow or dead receiver never
 * delays the detector or the gateway.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "moat/crypto.h"
#include "moat/detect.h"
#include "moat/store.h"

#define CURSOR_KEY "detect.webhook_cursor"
#define URL_MAX 512
#define SECRET_LEN 32
#define BATCH 64
#define TIMEOUT_MS 5000L
#define BACKOFF_MAX_S 60

struct moat_webhook {
	char url[URL_MAX + 1];
	uint8_t secret[SECRET_LEN];
	moat_store_t *store;
	CURL *curl;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop, poked;
	int64_t cursor;
};

bool moat_webhook_url_valid(const char *url)
{
	if (!url)
		return false;
	size_t n = strlen(url);
	if (n == 0 || n > URL_MAX)
		return false;
	size_t scheme = strncmp(url, "http://", 7) == 0	   ? 7
			: strncmp(url, "https://", 8) == 0 ? 8
							   : 0;
	if (!scheme || n == scheme)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f)
			return false;
	return true;
}

/* The signing secret: <data>/keys/webhook.key (hex, 0600), made on first use. */
static moat_err_t load_secret(const char *data_dir, uint8_t out[SECRET_LEN], moat_error_t *err)
{
	char keys[1100], path[1200];
	moat_err_t rc;
	if ((rc = moat_path_join(keys, sizeof keys, data_dir, "keys")) != MOAT_OK ||
	    (rc = moat_path_join(path, sizeof path, keys, "webhook.key")) != MOAT_OK)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "data directory path is too long");
	struct stat st;
	if (stat(path, &st) != 0) {
		char hex[2 * SECRET_LEN + 2];
		if (moat_random(out, SECRET_LEN) != MOAT_OK)
			return moat_error_set(err, MOAT_ECRYPTO, NULL, "no randomness available");
		moat_hex_encode(out, SECRET_LEN, hex);
		strcat(hex, "\n");
		rc = moat_file_write_atomic(path, hex, strlen(hex), 0600, err);
		OPENSSL_cleanse(hex, sizeof hex);
		return rc;
	}
	if (st.st_mode & 077)
		return moat_error_set(err, MOAT_EDENIED, NULL,
				      "key file %s is readable by others; run chmod 600 on it",
				      path);
	char *text = NULL;
	size_t len = 0;
	if ((rc = moat_file_read(path, 256, &text, &len, err)) != MOAT_OK)
		return rc;
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	size_t n = 0;
	bool ok = moat_hex_decode(text, len, out, &n, SECRET_LEN) && n == SECRET_LEN;
	OPENSSL_cleanse(text, len);
	free(text);
	return ok ? MOAT_OK
		  : moat_error_set(err, MOAT_ECORRUPT, NULL, "key file %s is malformed", path);
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p, (void)ctx;
	return size * n;
}

/* POSTs one alert; true on a 2xx answer. */
static bool deliver(moat_webhook_t *w, const moat_alert_row_t *row)
{
	moat_buf_t body;
	moat_buf_init(&body, 64 * 1024);
	if (moat_detect_alert_row_json(row, &body) != MOAT_OK ||
	    moat_buf_putc(&body, '\0') != MOAT_OK) {
		moat_buf_free(&body);
		return false;
	}
	size_t len = body.len - 1;
	uint8_t mac[32];
	unsigned int mlen = sizeof mac;
	HMAC(EVP_sha256(), w->secret, SECRET_LEN, (const uint8_t *)body.data, len, mac, &mlen);
	char sig[64 + 40], id[sizeof row->id + 32], hex[65];
	moat_hex_encode(mac, sizeof mac, hex);
	snprintf(sig, sizeof sig, "Moat-Signature: sha256=%s", hex);
	snprintf(id, sizeof id, "Moat-Alert-Id: %s", row->id);
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	h = h ? curl_slist_append(h, sig) : NULL;
	h = h ? curl_slist_append(h, id) : NULL;
	bool ok = false;
	if (h) {
		CURL *c = w->curl;
		curl_easy_reset(c);
		curl_easy_setopt(c, CURLOPT_URL, w->url);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, TIMEOUT_MS);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, TIMEOUT_MS);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(c, CURLOPT_USERAGENT, "moat-webhook/1");
		CURLcode cr = curl_easy_perform(c);
		long status = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		ok = cr == CURLE_OK && status >= 200 && status < 300;
		if (ok)
			moat_log(MOAT_LOG_INFO, "webhook.delivered", "alert=%s status=%ld", row->id,
				 status);
		else
			moat_log(MOAT_LOG_WARN, "webhook.failed", "alert=%s status=%ld curl=%s",
				 row->id, status, curl_easy_strerror(cr));
		curl_slist_free_all(h);
	}
	moat_buf_free(&body);
	return ok;
}

typedef struct pending {
	moat_alert_row_t *rows;
	size_t n;
} pending_t;

static int collect(void *ctx, const moat_alert_row_t *row)
{
	pending_t *p = ctx;
	p->rows[p->n++] = *row;
	return p->n == BATCH;
}

/* Sleeps until poked, stopped or `seconds` passed; false once stopped. */
static bool wait_for(moat_webhook_t *w, int seconds)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += seconds;
	pthread_mutex_lock(&w->lock);
	while (!w->stop && !w->poked)
		if (pthread_cond_timedwait(&w->wake, &w->lock, &until) != 0)
			break;
	w->poked = false;
	bool go = !w->stop;
	pthread_mutex_unlock(&w->lock);
	return go;
}

static bool stopping(moat_webhook_t *w)
{
	pthread_mutex_lock(&w->lock);
	bool s = w->stop;
	pthread_mutex_unlock(&w->lock);
	return s;
}

static void *run(void *arg)
{
	moat_webhook_t *w = arg;
	moat_alert_row_t *rows = malloc(BATCH * sizeof *rows);
	int backoff = 1;
	while (rows && !stopping(w)) {
		pending_t p = {rows, 0};
		moat_error_t e = {0};
		if (moat_store_alert_after(w->store, w->cursor, BATCH, collect, &p, &e) !=
		    MOAT_OK) {
			moat_log(MOAT_LOG_WARN, "webhook.store", "%s", e.msg);
			if (!wait_for(w, BACKOFF_MAX_S))
				break;
			continue;
		}
		bool failed = false;
		for (size_t i = 0; i < p.n && !stopping(w); i++) {
			if (!deliver(w, &rows[i])) {
				failed = true;
				break;
			}
			w->cursor = rows[i].ledger_index;
			char cur[32];
			snprintf(cur, sizeof cur, "%" PRId64, w->cursor);
			if (moat_store_meta_set(w->store, CURSOR_KEY, cur, &e) != MOAT_OK)
				moat_log(MOAT_LOG_WARN, "webhook.store", "%s", e.msg);
			backoff = 1;
		}
		if (failed) {
			if (!wait_for(w, backoff))
				break;
			backoff = backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : backoff * 2;
			continue;
		}
		if (p.n == BATCH)
			continue; /* more are waiting */
		if (!wait_for(w, 1))
			break;
	}
	free(rows);
	return NULL;
}

static int max_index(void *ctx, const moat_alert_row_t *row)
{
	int64_t *m = ctx;
	if (row->ledger_index > *m)
		*m = row->ledger_index;
	return 0;
}

moat_err_t moat_webhook_start(const char *data_dir, const char *url, moat_webhook_t **out,
			      moat_error_t *err)
{
	*out = NULL;
	if (!moat_webhook_url_valid(url))
		return moat_error_set(err, MOAT_EINVAL, "detect.webhook",
				      "must be an http:// or https:// URL of at most %d characters",
				      URL_MAX);
	moat_webhook_t *w = calloc(1, sizeof *w);
	if (!w)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	snprintf(w->url, sizeof w->url, "%s", url);
	char path[1200];
	moat_err_t rc = load_secret(data_dir, w->secret, err);
	if (rc == MOAT_OK &&
	    (rc = moat_path_join(path, sizeof path, data_dir, "moat.db")) != MOAT_OK)
		moat_error_set(err, rc, NULL, "data directory path is too long");
	if (rc == MOAT_OK)
		rc = moat_store_open_sqlite(path, false, &w->store, err);
	if (rc == MOAT_OK && !(w->curl = curl_easy_init()))
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "cannot start an HTTP client");
	if (rc == MOAT_OK) {
		/* First start: deliver what is raised from now on, not the history. */
		char cur[32];
		moat_error_t e = {0};
		if (moat_store_meta_get(w->store, CURSOR_KEY, cur, sizeof cur, &e) == MOAT_OK) {
			w->cursor = strtoll(cur, NULL, 10);
		} else {
			w->cursor = -1;
			rc = moat_store_alert_list(w->store, -1, 0, max_index, &w->cursor, err);
			snprintf(cur, sizeof cur, "%" PRId64, w->cursor);
			if (rc == MOAT_OK)
				rc = moat_store_meta_set(w->store, CURSOR_KEY, cur, err);
		}
	}
	if (rc == MOAT_OK) {
		pthread_mutex_init(&w->lock, NULL);
		pthread_cond_init(&w->wake, NULL);
		if (pthread_create(&w->thread, NULL, run, w) != 0) {
			pthread_mutex_destroy(&w->lock);
			pthread_cond_destroy(&w->wake);
			rc = moat_error_set(err, MOAT_ENOMEM, NULL,
					    "cannot start the webhook thread");
		}
	}
	if (rc != MOAT_OK) {
		if (w->curl)
			curl_easy_cleanup(w->curl);
		moat_store_close(w->store);
		OPENSSL_cleanse(w, sizeof *w);
		free(w);
		return rc;
	}
	moat_log(MOAT_LOG_INFO, "webhook.started", "delivering alerts after ledger index %" PRId64,
		 w->cursor);
	*out = w;
	return MOAT_OK;
}

void moat_webhook_poke(moat_webhook_t *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->poked = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

void moat_webhook_stop(moat_webhook_t *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	curl_easy_cleanup(w->curl);
	moat_store_close(w->store);
	OPENSSL_cleanse(w, sizeof *w);
	free(w);
}
