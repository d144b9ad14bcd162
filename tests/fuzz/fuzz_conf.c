/* fuzz_conf.c - libFuzzer target for configuration text (lib/conf.c):
 * q7__conf_load on arbitrary bytes (what a store's topic metadata holds),
 * and q7_conf_set / q7_conf_get on arbitrary names and values.
 *
 * Checks besides "no crash": a key that loads or sets holds a value that
 * q7_conf_get returns unchanged and that q7__conf_check accepts; dump then
 * load gives the same conf; get with a short buffer is Q7_ERANGE with the
 * needed length and leaves the buffer alone.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (tests/fuzz/run.sh). */
#include "q7_int.h"

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                       \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      fprintf(stderr, "fuzz_conf: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                            \
    }                                                                                     \
  } while (0)

/* Every key's value as get returns it, and as the conf holds it. */
static void
check_conf(const q7_conf *c)
{
  for (int k = 0; k < Q7K__COUNT; k++) {
    const char *name = q7__conf_name((enum q7__key)k);
    char buf[2048];
    size_t len = 0;
    CHECK(q7_conf_get(c, name, NULL, &len) == Q7_ERANGE);
    size_t need = len;
    CHECK(need >= 1);
    const char *held = q7__conf_str(c, (enum q7__key)k);
    CHECK(need == strlen(held) + 1);
    if (need <= sizeof buf) {
      len = sizeof buf;
      CHECK(q7_conf_get(c, name, buf, &len) == Q7_OK);
      CHECK(len == need && strcmp(buf, held) == 0);
      CHECK(q7__conf_check((enum q7__key)k, buf) == Q7_OK);
      if (need > 1) {
        memset(buf, '#', sizeof buf);
        len = need - 1;
        CHECK(q7_conf_get(c, name, buf, &len) == Q7_ERANGE);
        CHECK(len == need && buf[0] == '#');
      }
    }
  }
}

static void
check_dump_load(const q7_conf *c)
{
  size_t len;
  char *text = q7__conf_dump(c, Q7S_STORE | Q7S_TOPIC | Q7S_PRODUCER | Q7S_CONSUMER, &len);
  CHECK(text != NULL && strlen(text) == len);
  q7_conf *d = q7_conf_new();
  CHECK(d != NULL);
  int rc = q7__conf_load(d, text, len);
  /* A value longer than load's line buffer is the one thing set accepts
   * that load refuses (as ECORRUPT, never a crash). */
  if (rc == Q7_OK) {
    for (int k = 0; k < Q7K__COUNT; k++)
      CHECK(strcmp(q7__conf_str(c, (enum q7__key)k), q7__conf_str(d, (enum q7__key)k)) == 0);
  } else {
    CHECK(rc == Q7_ECORRUPT);
  }
  q7_conf_destroy(d);
  free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
  if (n < 1)
    return 0;
  uint8_t mode = d[0];
  const char *text = (const char *)d + 1;
  size_t len = n - 1;

  q7_conf *c = q7_conf_new();
  CHECK(c != NULL);
  if (mode & 1) {
    /* Metadata text: exactly len bytes, no terminator after them. */
    char *t = malloc(len ? len : 1);
    if (len)
      memcpy(t, text, len);
    int rc = q7__conf_load(c, t, len);
    CHECK(rc == Q7_OK || rc == Q7_ECORRUPT || rc == Q7_ENOMEM);
    if (rc)
      CHECK(q7_last_error()[0] != 0);
    free(t);
  } else {
    /* "name\0value\0name\0value..." pairs to q7_conf_set. */
    char *s = malloc(len + 2);
    memcpy(s, text, len);
    s[len] = s[len + 1] = 0;
    const char *p = s, *end = s + len;
    for (int i = 0; i < 16 && p < end; i++) {
      const char *name = p;
      const char *value = name + strlen(name) + 1;
      if (value > end)
        value = end; /* the terminator */
      char before[2048];
      size_t blen = sizeof before;
      int had = q7_conf_get(c, name, before, &blen);
      int rc = q7_conf_set(c, name, value);
      CHECK(rc == Q7_OK || rc == Q7_EINVAL);
      char got[2048];
      size_t glen = sizeof got;
      if (rc == Q7_OK) {
        int k = q7__conf_key(name, NULL);
        CHECK(k >= 0);
        CHECK(q7__conf_check((enum q7__key)k, value) == Q7_OK);
        if (strlen(value) < sizeof got) {
          CHECK(q7_conf_get(c, name, got, &glen) == Q7_OK);
          CHECK(strcmp(got, value) == 0);
        }
      } else {
        CHECK(q7_last_error()[0] != 0);
        /* A refused set changes nothing. */
        if (had == Q7_OK) {
          CHECK(q7_conf_get(c, name, got, &glen) == Q7_OK);
          CHECK(strcmp(got, before) == 0);
        }
      }
      p = value + strlen(value) + 1;
    }
    free(s);
  }
  check_conf(c);
  check_dump_load(c);
  q7_conf *dup;
  CHECK(q7_conf_dup(c, &dup) == Q7_OK);
  for (int k = 0; k < Q7K__COUNT; k++)
    CHECK(strcmp(q7__conf_str(c, (enum q7__key)k), q7__conf_str(dup, (enum q7__key)k)) == 0);
  q7_conf_destroy(dup);
  q7_conf_destroy(c);
  return 0;
}
