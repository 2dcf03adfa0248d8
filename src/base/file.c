/* Whole-file reads, atomic writes, directory creation. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/base.h"

moat_err_t moat_path_join(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);
	return (n < 0 || (size_t)n >= cap) ? MOAT_ELIMIT : MOAT_OK;
}

moat_err_t moat_file_read(const char *path, size_t max, char **out, size_t *len, moat_error_t *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return moat_error_set(err, errno == ENOENT ? MOAT_ENOTFOUND : MOAT_EIO, NULL,
				      "cannot open %s: %s", path, strerror(errno));
	moat_buf_t b;
	moat_buf_init(&b, max);
	moat_err_t rc = MOAT_OK;
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = moat_error_set(err, MOAT_EIO, NULL, "cannot read %s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		if (moat_buf_append(&b, chunk, (size_t)n) != MOAT_OK) {
			rc = moat_error_set(err, MOAT_ELIMIT, NULL, "%s is larger than %zu bytes", path, max);
			goto fail;
		}
	}
	close(fd);
	if (len)
		*len = b.len;
	*out = moat_buf_take(&b);
	return MOAT_OK;
fail:
	close(fd);
	moat_buf_free(&b);
	return rc;
}

moat_err_t moat_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return MOAT_EIO;
	int r = fsync(fd);
	close(fd);
	return r == 0 ? MOAT_OK : MOAT_EIO;
}

moat_err_t moat_file_write_atomic(const char *path, const void *data, size_t len, int mode,
				  moat_error_t *err)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "path too long: %s", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return moat_error_set(err, MOAT_EIO, NULL, "cannot create %s: %s", tmp, strerror(errno));
	const char *p = data;
	size_t left = len;
	while (left) {
		ssize_t n = write(fd, p, left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += n;
		left -= (size_t)n;
	}
	if (fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	char dirbuf[4096];
	snprintf(dirbuf, sizeof dirbuf, "%s", path);
	if (moat_fsync_dir(dirname(dirbuf)) != MOAT_OK)
		return moat_error_set(err, MOAT_EIO, NULL, "cannot sync directory of %s", path);
	return MOAT_OK;
fail: {
	int saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return moat_error_set(err, MOAT_EIO, NULL, "cannot write %s: %s", path, strerror(saved));
}
}

moat_err_t moat_mkdirs(const char *path, int mode, moat_error_t *err)
{
	char buf[4096];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof buf)
		return moat_error_set(err, MOAT_EINVAL, NULL, "bad directory path");
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] == '/' || buf[i] == '\0') {
			char saved = buf[i];
			buf[i] = '\0';
			if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
				return moat_error_set(err, MOAT_EIO, NULL, "cannot create directory %s: %s",
						      buf, strerror(errno));
			buf[i] = saved;
		}
	}
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return moat_error_set(err, MOAT_EIO, NULL, "%s exists and is not a directory", path);
	return MOAT_OK;
}
