/* tool.h - declarations shared between the files of the q7 tool.
 *
 * The tool is one binary (the Makefile links every C file of tools/ with libq7.a);
 * tools/q7.c holds main() and every subcommand but `serve`, which lives in
 * tools/serve.c.  The tool uses only the public header <q7.h>. */
#ifndef Q7_TOOL_H
#define Q7_TOOL_H

/* tools/serve.c: q7 serve --listen ADDR:PORT --cluster NAME=DIR ... [--allow-delete]; argv[0] is "serve". Returns the process exit code. */
int q7_tool_serve(int argc, char **argv);

/* tools/kafka.c: q7 kafka export|import ...; argv[0] is "kafka", the store
 * directory comes from $Q7_DIR (main sets it from -d DIR) or -d after the
 * action.  Without librdkafka (no Q7_HAVE_RDKAFKA) it says so and returns 2.
 * Returns the process exit code. */
int q7_tool_kafka(int argc, char **argv);

#endif /* Q7_TOOL_H */
