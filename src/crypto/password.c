/* Password hashing with argon2id (libargon2). */
#include <string.h>

#include <argon2.h>

#include "moat/crypto.h"

/* OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane. */
#define PW_T_COST 2
#define PW_M_COST (19 * 1024)
#define PW_LANES 1
#define PW_SALT 16
#define PW_HASH 32

moat_err_t moat_password_hash(const char *password, char out[MOAT_PHC_MAX], moat_error_t *err)
{
	size_t n = password ? strlen(password) : 0;
	if (n < 8 || n > 1024)
		return moat_error_set(err, MOAT_EINVAL, "password",
				      "password must be 8..1024 bytes");
	uint8_t salt[PW_SALT];
	if (moat_random(salt, sizeof salt) != MOAT_OK)
		return moat_error_set(err, MOAT_ECRYPTO, NULL, "no randomness for a salt");
	int r = argon2id_hash_encoded(PW_T_COST, PW_M_COST, PW_LANES, password, n, salt,
				      sizeof salt, PW_HASH, out, MOAT_PHC_MAX);
	if (r != ARGON2_OK)
		return moat_error_set(err, MOAT_ECRYPTO, NULL, "argon2id: %s",
				      argon2_error_message(r));
	return MOAT_OK;
}

moat_err_t moat_password_hash_secret(const char *secret, char out[MOAT_PHC_MAX], moat_error_t *err)
{
	size_t n = secret ? strlen(secret) : 0;
	if (n < MOAT_SECRET_MIN || n > 1024)
		return moat_error_set(err, MOAT_EINVAL, "password",
				      "a machine-generated secret must be %d..1024 bytes",
				      MOAT_SECRET_MIN);
	uint8_t salt[PW_SALT];
	if (moat_random(salt, sizeof salt) != MOAT_OK)
		return moat_error_set(err, MOAT_ECRYPTO, NULL, "no randomness for a salt");
	/* argon2's minimum: 8 KiB per lane, one pass. */
	int r = argon2id_hash_encoded(1, 8 * PW_LANES, PW_LANES, secret, n, salt, sizeof salt,
				      PW_HASH, out, MOAT_PHC_MAX);
	if (r != ARGON2_OK)
		return moat_error_set(err, MOAT_ECRYPTO, NULL, "argon2id: %s",
				      argon2_error_message(r));
	return MOAT_OK;
}

bool moat_password_verify(const char *phc, const char *password)
{
	/* A fixed hash of a random string: verifying against it costs what a real
	 * verification costs and never succeeds for a guessable password. */
	static const char dummy[] = "$argon2id$v=19$m=19456,t=2,p=1$"
				    "c29tZXNhbHRzb21lc2FsdA$"
				    "x8wB4Oz9xv3d3N0c6JgJ8ZJm3KqQf8tGz4mJ9E8b0qU";
	size_t n = password ? strlen(password) : 0;
	if (n > 1024)
		n = 1024;
	bool real = phc && strncmp(phc, "$argon2id$", 10) == 0;
	int r = argon2id_verify(real ? phc : dummy, password ? password : "", n);
	return real && r == ARGON2_OK;
}
