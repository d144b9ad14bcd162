/* err.c - error codes, their text, and the per-thread last error. */
#include "q7_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

/* The one piece of state not hanging off a handle: q7_last_error() is
 * per thread by contract, like errno. */
static _Thread_local char q7__errbuf[512];

const char *
q7_strerror(int err)
{
  switch (err) {
  case Q7_OK: return "success";
  case Q7_EINVAL: return "invalid argument";
  case Q7_ENOENT: return "no such topic, partition, group or offset";
  case Q7_EEXIST: return "already exists";
  case Q7_ERANGE: return "offset out of range";
  case Q7_ETOOBIG: return "record too large";
  case Q7_EFULL: return "storage full";
  case Q7_EIO: return "input/output error";
  case Q7_ECORRUPT: return "stored data is corrupt";
  case Q7_ETIMEDOUT: return "timed out";
  case Q7_EBUSY: return "resource busy";
  case Q7_ENOMEM: return "out of memory";
  case Q7_EREPLICA: return "not enough replicas";
  case Q7_EVERSION: return "unsupported store format version";
  case Q7_ESTATE: return "invalid state for this call";
  default: return "unknown error";
  }
}

const char *
q7_last_error(void)
{
  return q7__errbuf;
}

int
q7__err(int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q7__errbuf, sizeof q7__errbuf, fmt, ap);
  va_end(ap);
  return code;
}

int
q7__errno_err(int e, const char *what, const char *path)
{
  int code;
  switch (e) {
  case ENOMEM: code = Q7_ENOMEM; break;
  case ENOSPC: case EDQUOT: case EFBIG: code = Q7_EFULL; break;
  case ENOENT: code = Q7_ENOENT; break;
  case EEXIST: code = Q7_EEXIST; break;
  case EBUSY: case EAGAIN: code = Q7_EBUSY; break;
  default: code = Q7_EIO; break;
  }
  return q7__err(code, "%s%s%s: %s", what, path ? " " : "", path ? path : "", strerror(e));
}

int
q7__mdb_err(int rc, const char *what)
{
  switch (rc) {
  case MDB_SUCCESS: return Q7_OK;
  case MDB_MAP_FULL:
    return q7__err(Q7_EFULL, "%s: storage map is full", what);
  case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_BAD_TXN:
  case MDB_INVALID: case MDB_BAD_VALSIZE:
    return q7__err(Q7_ECORRUPT, "%s: %s", what, mdb_strerror(rc));
  case MDB_VERSION_MISMATCH:
    return q7__err(Q7_EVERSION, "%s: %s", what, mdb_strerror(rc));
  case MDB_READERS_FULL: case MDB_TXN_FULL: case MDB_CURSOR_FULL:
  case MDB_DBS_FULL: case MDB_TLS_FULL:
    return q7__err(Q7_EBUSY, "%s: %s", what, mdb_strerror(rc));
  case MDB_NOTFOUND:
    return q7__err(Q7_ENOENT, "%s: not found", what);
  case MDB_MAP_RESIZED:
    return q7__err(Q7_EBUSY, "%s: map resized by another process", what);
  default:
    if (rc > 0)
      return q7__errno_err(rc, what, NULL);
    return q7__err(Q7_EIO, "%s: %s", what, mdb_strerror(rc));
  }
}
