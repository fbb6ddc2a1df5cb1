#!/usr/bin/env bash
# Builds the local Docker images the tests use. First the one the
# partition tests run: the release
# `caravan` binary, the shared libraries it links, and Debian's static
# busybox (for wget inside the containers), on `FROM scratch`. There is no
# image registry: nothing is pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${CARAVAN_TEST_IMAGE:-caravan-test:latest}
BIN=target/release/caravan
BUSYBOX=${BUSYBOX:-/bin/busybox}
[ -x "$BIN" ] || { echo "missing $BIN: run cargo build --release -p caravan" >&2; exit 1; }
[ -x "$BUSYBOX" ] || { echo "missing $BUSYBOX: install Debian's busybox-static" >&2; exit 1; }
CONTEXT=target/docker-image
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/rootfs/usr/local/bin" "$CONTEXT/rootfs/bin" "$CONTEXT/rootfs/data" "$CONTEXT/rootfs/tmp"
cp "$BIN" "$CONTEXT/rootfs/usr/local/bin/caravan"
cp "$BUSYBOX" "$CONTEXT/rootfs/bin/busybox"
# Every shared library the binary needs, at the same path.
for lib in $(ldd "$BIN" | grep -o '/[^ ]*'); do
    mkdir -p "$CONTEXT/rootfs$(dirname "$lib")"
    cp -L "$lib" "$CONTEXT/rootfs$lib"
done
cat > "$CONTEXT/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/usr/local/bin/caravan"]
DOCKERFILE
docker build --quiet -t "$IMAGE" "$CONTEXT" >/dev/null
echo "built $IMAGE"

# The docker driver's tests run tasks in a second image: Debian's static
# busybox alone, with its applets linked into /bin (sh, sleep, httpd, ...).
TASK_IMAGE=${CARAVAN_TASK_IMAGE:-caravan-busybox:test}
TASK_CONTEXT=target/docker-task-image
rm -rf "$TASK_CONTEXT"
mkdir -p "$TASK_CONTEXT/rootfs/bin" "$TASK_CONTEXT/rootfs/tmp" "$TASK_CONTEXT/rootfs/www"
cp "$BUSYBOX" "$TASK_CONTEXT/rootfs/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$TASK_CONTEXT/rootfs/bin/$applet"
done
echo "hello from caravan" > "$TASK_CONTEXT/rootfs/www/index.html"
cat > "$TASK_CONTEXT/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
CMD ["/bin/sh"]
DOCKERFILE
docker build --quiet -t "$TASK_IMAGE" "$TASK_CONTEXT" >/dev/null
echo "built $TASK_IMAGE"
