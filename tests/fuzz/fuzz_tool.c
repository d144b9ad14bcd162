/* fuzz_tool.c - libFuzzer target for the q7 tool's argument parsing: every
 * subcommand's options, numbers, KEY=VALUE pairs and help, with arbitrary
 * bytes.  The input is split at newlines into at most 24 arguments after
 * "q7 -d <a directory that cannot be created>", so no run touches a store;
 * -d/--dir and the subcommands that serve or reach Kafka are left out.
 * Properties: no crash, no sanitizer report, and an exit code of 0, 1 or 2. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define main q7_tool_main
#include "../../tools/q7.c"
#undef main

int
q7_tool_serve(int argc, char **argv)
{
  (void)argc;
  (void)argv;
  return 2;
}

int
q7_tool_kafka(int argc, char **argv)
{
  (void)argc;
  (void)argv;
  return 2;
}

/* stdin empty (produce reads it); the tool's own stdout and stderr are
 * closed by libFuzzer (-close_fd_mask=3 in fuzz_tool.flags), which keeps
 * its reports. */
static int
quiet(void)
{
  int fd = open("/dev/null", O_RDONLY);
  if (fd < 0)
    return -1;
  dup2(fd, 0);
  close(fd);
  unsetenv("Q7_DIR");
  unsetenv("Q7_REPLICA_DIRS");
  return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static int ready;
  if (!ready)
    ready = quiet() == 0 ? 1 : -1;
  if (size > 4096)
    return 0;
  char *buf = malloc(size + 1);
  if (!buf)
    return 0;
  memcpy(buf, data, size);
  buf[size] = 0;
  char *argv[32] = { "q7", "-d", "/nonexistent-q7-fuzz/store/x" };
  int argc = 3;
  for (char *tok = buf, *nl; tok && argc < 27; tok = nl) {
    nl = strchr(tok, '\n');
    if (nl)
      *nl++ = 0;
    if (!strcmp(tok, "-d") || !strncmp(tok, "--dir", 5) || !strncmp(tok, "-d", 2) ||
        !strcmp(tok, "serve") || !strcmp(tok, "kafka")) {
      free(buf);
      return 0; /* no store elsewhere, no server, no network */
    }
    argv[argc++] = tok;
  }
  argv[argc] = NULL;
  int rc = q7_tool_main(argc, argv);
  if (rc < 0 || rc > 2)
    abort(); /* the tool promises 0, 1 or 2 */
  free(buf);
  return 0;
}
