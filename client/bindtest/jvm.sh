#!/bin/bash
# jvm.sh OUT: the app's bindings for this machine's JVM, in OUT (a directory of its own, so
# that two runs never share one): gobind's Java and Go sides, the Go side built as the JNI
# library libgojni.so (gomobile builds the same for a device), the Java side and AppDemo
# compiled into OUT/classes. client/bindtest's TestAppDemoOnTheJVM then runs AppDemo.
set -euo pipefail
out=$1
go=${GO:-go}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
rm -rf "$out/host" "$out/src" "$out/java" "$out/classes"
mkdir -p "$out/classes" "$out/host/gobind" "$out/host/include/android"
"$go" tool gobind -lang=go,java,objc -outdir="$out" ./client
test -s "$out/src/gobind/Client.objc.h" # the Objective-C side is generated (compiled on a Mac)

# The Go side: gobind's files for Android, named for every OS (their _android suffix is a
# build constraint), with Android's log as stderr and without its liblog.
for f in "$out"/src/gobind/*; do
  b=$(basename "$f")
  case $b in
    *_darwin*|*.objc.h|*.m) ;;
    *_android.go|*_android.c) cp "$f" "$out/host/gobind/${b%_android.*}_jni.${b##*.}" ;;
    *) cp "$f" "$out/host/gobind/" ;;
  esac
done
sed -i 's|^//#cgo LDFLAGS: -llog$||' "$out/host/gobind/seq_jni.go"
cat > "$out/host/include/android/log.h" <<'H'
/* Android's log on a desktop JVM: stderr. */
#include <stdio.h>
#define ANDROID_LOG_INFO 4
#define ANDROID_LOG_ERROR 6
#define ANDROID_LOG_FATAL 7
#define __android_log_print(prio, tag, ...) (fprintf(stderr, "%s: ", tag), fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))
#define __android_log_write(prio, tag, msg) fprintf(stderr, "%s: %s\n", tag, msg)
H
printf 'module sharevault.local/gobind\n\ngo 1.26\n' > "$out/host/gobind/go.mod"
(cd "$out/host" && "$go" work init ./gobind "$root")
java_home=$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")
(cd "$out/host/gobind" && GOWORK="$out/host/go.work" CGO_ENABLED=1 \
  CGO_CFLAGS="-I$java_home/include -I$java_home/include/linux -I$out/host/include -D__GOBIND_ANDROID__ -Wno-incompatible-pointer-types" \
  "$go" build -buildmode=c-shared -o "$out/libgojni.so" .)

cp "$("$go" list -m -f '{{.Dir}}' golang.org/x/mobile)/bind/java/Seq.java" "$out/java/go/"
javac -Xlint:none -d "$out/classes" $(find "$out/java" client/bindtest -name '*.java')
test -s "$out/classes/AppDemo.class"
echo "bindings: Java and Objective-C generated; libgojni.so, the Java side and AppDemo built in $out"
