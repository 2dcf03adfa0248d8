/* moat principal key ID / moat principal passwd ID: credentials of a principal. */
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "moat/app.h"
#include "moat/crypto.h"
#include "moat/ledger.h"
#include "moat/model.h"

/* Reads one line (without the newline) from stdin, without echo on a terminal. */
static bool read_password(const char *prompt, char *out, size_t cap)
{
	bool tty = isatty(STDIN_FILENO);
	struct termios old, quiet;
	if (tty) {
		fprintf(stderr, "%s", prompt);
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	bool ok = fgets(out, (int)cap, stdin) != NULL;
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (!ok)
		return false;
	size_t n = strlen(out);
	if (n && out[n - 1] == '\n')
		out[--n] = '\0';
	if (n && out[n - 1] == '\r')
		out[--n] = '\0';
	return true;
}

/* A credential change is a PRINCIPAL ledger entry (never the secret), durable
 * before the change commits, as for add, suspend and resume. */
static moat_err_t log_change(moat_app_t *a, const char *id, const char *what, moat_error_t *e)
{
	moat_entry_t en = {.kind = MOAT_ENTRY_PRINCIPAL,
			   .time = moat_now(),
			   .principal = id,
			   .ref = what,
			   .detail = "cli"};
	return moat_ledger_append(a->ledger, &en, 1, NULL, e);
}

moat_err_t cli_principal_new_key(moat_store_t *s, const char *id, char key[72], moat_error_t *e)
{
	uint8_t hash[32];
	moat_err_t rc = moat_api_key_new(key, hash);
	if (rc != MOAT_OK)
		return moat_error_set(e, rc, NULL, "no randomness available");
	rc = moat_store_principal_set_key(s, id, hash, e);
	if (rc != MOAT_OK)
		memset(key, 0, 72);
	return rc;
}

int cli_principal_creds(const cli_common_t *c, const char *verb, int nargs, const char *id)
{
	if (nargs != 1 || !id)
		return cli_usage("principal", "%s expects one ID", verb);
	if (!moat_id_valid(id))
		return cli_usage("principal", "invalid principal id \"%s\"", id);
	bool is_key = strcmp(verb, "key") == 0;
	char pw[1100] = "", pw2[1100] = "";
	if (!is_key) {
		if (!read_password("new password: ", pw, sizeof pw))
			return cli_usage("principal", "no password given on stdin");
		if (isatty(STDIN_FILENO) &&
		    (!read_password("again: ", pw2, sizeof pw2) || strcmp(pw, pw2) != 0))
			return cli_usage("principal", "the passwords differ");
	}
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_open(c->data_dir, 0, &a, &e) != MOAT_OK)
		return cli_fail("principal", &e);
	moat_principal_row_t row;
	moat_err_t rc = moat_store_principal_get(a->store, id, &row, &e);
	char key[72] = "";
	if (rc == MOAT_OK && is_key) {
		rc = moat_store_begin(a->store, &e);
		if (rc == MOAT_OK) {
			rc = cli_principal_new_key(a->store, id, key, &e);
			if (rc == MOAT_OK)
				rc = log_change(a, id, "key", &e);
			if (rc == MOAT_OK)
				rc = moat_store_commit(a->store, &e);
			if (rc != MOAT_OK)
				moat_store_rollback(a->store);
		}
		if (rc == MOAT_OK) {
			if (c->json)
				printf("{\"principal\":\"%s\",\"api_key\":\"%s\"}\n", id, key);
			else
				printf("new api key for %s (shown once; the previous key no longer "
				       "works):\n%s\n",
				       id, key);
		}
	} else if (rc == MOAT_OK) {
		char phc[MOAT_PHC_MAX];
		rc = moat_password_hash(pw, phc, &e);
		if (rc == MOAT_OK && (rc = moat_store_begin(a->store, &e)) == MOAT_OK) {
			rc = moat_store_principal_set_password(a->store, id, phc, &e);
			if (rc == MOAT_OK)
				rc = log_change(a, id, "passwd", &e);
			if (rc == MOAT_OK)
				rc = moat_store_commit(a->store, &e);
			if (rc != MOAT_OK)
				moat_store_rollback(a->store);
		}
		if (rc == MOAT_OK)
			printf("password set for %s\n", id);
	}
	memset(key, 0, sizeof key);
	memset(pw, 0, sizeof pw);
	memset(pw2, 0, sizeof pw2);
	moat_app_close(a);
	return rc == MOAT_OK ? CLI_OK : cli_fail("principal", &e);
}
