#!/usr/bin/env bash
# Builds an OCI image archive (the layout `ctr image import` reads) from the busybox root of
# the test bundle: one gzip layer, config, manifest, index. No registry involved.
# usage: build-oci-image.sh ROOTFS OUT.tar [NAME] [CMD]   (NAME default docker.io/husk/busybox:latest,
#        CMD a JSON array, default ["sh"])
set -euo pipefail
rootfs=${1:?usage: build-oci-image.sh ROOTFS OUT.tar [NAME]}
out=${2:?usage: build-oci-image.sh ROOTFS OUT.tar [NAME]}
name=${3:-docker.io/husk/busybox:latest}
cmd=${4:-'["sh"]'}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/oci/blobs/sha256"
blob() {  # blob FILE -> prints "digest size" and stores it
  local d s
  d=$(sha256sum "$1" | cut -d' ' -f1)
  s=$(stat -c %s "$1")
  cp "$1" "$work/oci/blobs/sha256/$d"
  echo "$d $s"
}
(cd "$rootfs" && tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -cf "$work/layer.tar" .)
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -c "$work/layer.tar" >"$work/layer.tar.gz"
read -r layer_d layer_s < <(blob "$work/layer.tar.gz")
cat >"$work/config.json" <<J
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":$cmd,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]}}
J
read -r config_d config_s < <(blob "$work/config.json")
cat >"$work/manifest.json" <<J
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_d","size":$config_s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer_d","size":$layer_s}]}
J
read -r manifest_d manifest_s < <(blob "$work/manifest.json")
cat >"$work/oci/index.json" <<J
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_d","size":$manifest_s,"annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"latest"}}]}
J
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
mkdir -p "$(dirname "$out")"
(cd "$work/oci" && tar --sort=name -cf "$out.tmp" oci-layout index.json blobs)
mv "$out.tmp" "$out"
