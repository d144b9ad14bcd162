#!/bin/sh
# make install into a prefix, build an outside program with pkg-config
# (libq7 and the alias libpq7, shared and static), run it, make uninstall.
set -eu
B=$1
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
make -s B="$B" install PREFIX="$d/prefix" >/dev/null
export PKG_CONFIG_PATH="$d/prefix/lib/pkgconfig"
cat > "$d/app.c" <<'C'
#include <q7.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  q7 *q; q7_topic *t; q7_producer *p; int32_t part; int64_t off;
  if (strcmp(q7_version(), "0.1.0") != 0 && argc < 0) return 2;
  if (q7_open(&q, argv[1], NULL)) { fprintf(stderr, "%s\n", q7_last_error()); return 1; }
  if (q7_topic_create(q, "t", 2, NULL) || q7_topic_open(q, "t", &t) || q7_producer_new(q, NULL, &p))
    return 1;
  q7_msg m = { .topic = t, .partition = 1, .value = "v", .value_len = 1 };
  if (q7_producer_send_sync(p, &m, &part, &off) || part != 1 || off != 0) return 1;
  q7_producer_close(p); q7_topic_close(t);
  printf("ok %s\n", q7_version());
  return q7_close(q);
}
C
for pc in libq7 libpq7; do
  cc -std=c11 -Wall -Werror ${Q7_SAN_CFLAGS:-} -o "$d/app-$pc" "$d/app.c" $(pkg-config --cflags --libs $pc) \
    -Wl,-rpath,"$d/prefix/lib"
  "$d/app-$pc" "$d/store-$pc" | grep -q '^ok '
done
cc -std=c11 ${Q7_SAN_CFLAGS:-} -o "$d/app-static" "$d/app.c" $(pkg-config --cflags libq7) \
  "$d/prefix/lib/libq7.a" $(pkg-config --libs-only-other --static libq7) -llmdb -lpthread
"$d/app-static" "$d/store-static" | grep -q '^ok '
[ -f "$d/prefix/include/q7.h" ] && [ -f "$d/prefix/lib/libq7.so.0" ]
ls "$d/prefix/share/man/man3/q7_open.3" >/dev/null 2>&1 || { echo "man pages not installed"; exit 1; }
make -s B="$B" uninstall PREFIX="$d/prefix" >/dev/null
left=$(find "$d/prefix" -type f | wc -l)
[ "$left" -eq 0 ] || { echo "uninstall left files:"; find "$d/prefix" -type f; exit 1; }
echo "installed, built with pkg-config (libq7, libpq7, static), ran, uninstalled"
