/* fuzz_name.c - libFuzzer target for topic and group name validation
 * (q7__name_check in lib/topic.c, q7__group_check in lib/offsets.c).
 *
 * The input, NUL-terminated, is checked as a topic name and as a group
 * name.  The result must equal a reference written from SPEC.md: a topic
 * name is [A-Za-z0-9._-]{1,249}, not "." or "..", so it can never name a
 * path outside the store (no '/', no NUL inside, no ".."); a group name is
 * 1 to 255 bytes (a key in the store, never a path).  Every refusal is
 * Q7_EINVAL with a message.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (tests/fuzz/run.sh). */
#include "q7_int.h"

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                       \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      fprintf(stderr, "fuzz_name: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                            \
    }                                                                                     \
  } while (0)

static bool
topic_ok(const char *s)
{
  size_t n = strlen(s);
  if (n < 1 || n > 249 || !strcmp(s, ".") || !strcmp(s, ".."))
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return false;
  }
  return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
  char *s = malloc(n + 1);
  memcpy(s, d, n);
  s[n] = 0;

  int rc = q7__name_check(s);
  CHECK(rc == Q7_OK || rc == Q7_EINVAL);
  CHECK((rc == Q7_OK) == topic_ok(s));
  if (rc == Q7_OK) {
    /* DIR/topics/NAME stays one level below DIR/topics. */
    CHECK(!strchr(s, '/') && strcmp(s, "..") && strcmp(s, "."));
    char path[600];
    snprintf(path, sizeof path, "/store/topics/%s", s);
    CHECK(strncmp(path, "/store/topics/", 14) == 0 && !strchr(path + 14, '/'));
  } else {
    CHECK(q7_last_error()[0] != 0);
  }

  rc = q7__group_check(s);
  size_t len = strlen(s);
  CHECK(rc == Q7_OK || rc == Q7_EINVAL);
  CHECK((rc == Q7_OK) == (len >= 1 && len <= Q7__MAX_GROUP_LEN));
  if (rc)
    CHECK(q7_last_error()[0] != 0);

  CHECK(q7__name_check(NULL) == Q7_EINVAL && q7__group_check(NULL) == Q7_EINVAL);
  free(s);
  return 0;
}
